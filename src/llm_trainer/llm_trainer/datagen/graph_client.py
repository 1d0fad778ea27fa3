"""A blocking client of the node graph: reset, plan, execute, check, record, over real DDS.

The generator drives episodes through the same services and actions a user or another robot
would call. The client spins its node on a background thread and waits on futures, so every
call here is a plain blocking function with a timeout and a clear error.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import Any

import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node

from llm_trainer.ros.action_client import ActionClient
from llm_trainer_interfaces.action import ExecutePlan
from llm_trainer_interfaces.msg import SceneState as SceneStateMsg
from llm_trainer_interfaces.srv import CheckSuccess, EpisodeControl, PlanTask, ResetScene

#: Seconds between discovering the graph's servers and the first call (see ``wait_ready``).
DISCOVERY_SETTLE = 0.5


class GraphError(RuntimeError):
    """The graph did not answer, or answered with an error."""


@dataclass
class GraphEndpoints:
    reset: str = "/sim/reset"
    check_success: str = "/sim/check_success"
    plan: str = "/planner/plan"
    execute: str = "/executor/execute_plan"
    episode: str = "/recorder/episode"
    stop: str = "/executor/stop"
    resume: str = "/executor/resume"


class GraphClient:
    def __init__(
        self,
        *,
        domain_id: int | None = None,
        endpoints: GraphEndpoints | None = None,
        record: bool = True,
        node_name: str = "llm_trainer_generator",
        alive_check=None,
    ):
        self.endpoints = endpoints or GraphEndpoints()
        self.record = record
        # Called while waiting for any answer: raises when a node of the graph has died, so a dead
        # node is noticed within a poll period instead of after the call's whole timeout.
        self.alive_check = alive_check
        # [s] how long a plan (an LLM may take minutes) and an execution may take before the
        # graph counts as not answering
        self.plan_timeout = 300.0
        self.execute_timeout = 600.0
        self.context = Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        # One name per client in a process: rosout keeps one logger per node name.
        self.node = Node(node_name, context=self.context)
        e = self.endpoints
        self._reset = self.node.create_client(ResetScene, e.reset)
        self._check = self.node.create_client(CheckSuccess, e.check_success)
        self._plan = self.node.create_client(PlanTask, e.plan)
        self._episode = self.node.create_client(EpisodeControl, e.episode) if record else None
        self._execute = ActionClient(self.node, ExecutePlan, e.execute)
        self._executor = SingleThreadedExecutor(context=self.context)
        self._executor.add_node(self.node)
        self._spin_thread = threading.Thread(target=self._spin, daemon=True)
        self._spin_thread.start()

    def _spin(self) -> None:
        try:
            self._executor.spin()
        except Exception:  # noqa: BLE001 - shutdown races end the spin
            pass

    # ------------------------------------------------------------------ plumbing
    def wait_ready(self, timeout: float = 60.0, alive_check=None) -> None:
        """Wait until every service and action server of the graph is discoverable.

        ``alive_check`` (or the client's own) raises when a node has died; it is kept for later calls.
        """
        if alive_check is not None:
            self.alive_check = alive_check
        alive_check = self.alive_check
        deadline = time.monotonic() + timeout
        pending = {
            self.endpoints.reset: self._reset,
            self.endpoints.check_success: self._check,
            self.endpoints.plan: self._plan,
        }
        if self._episode is not None:
            pending[self.endpoints.episode] = self._episode
        while time.monotonic() < deadline:
            if alive_check:
                alive_check()
            pending = {n: c for n, c in pending.items() if not c.service_is_ready()}
            if not pending and self._execute.server_is_ready():
                # We see the servers; let them see our response readers too, or the first answers are lost.
                time.sleep(DISCOVERY_SETTLE)
                return
            time.sleep(0.1)
        missing = list(pending) + ([] if self._execute.server_is_ready() else [self.endpoints.execute])
        raise GraphError(f"the node graph did not come up within {timeout:.0f} s; missing: {', '.join(missing)}")

    #: [s] how often a waiting call checks that the graph's nodes are still alive
    ALIVE_POLL = 0.25

    def _wait(self, future, timeout: float, what: str):
        done = threading.Event()
        future.add_done_callback(lambda _f: done.set())
        deadline = time.monotonic() + timeout
        while not done.wait(min(self.ALIVE_POLL, max(0.0, deadline - time.monotonic()))):
            if self.alive_check is not None:
                try:
                    self.alive_check()
                except Exception as exc:  # noqa: BLE001 - whatever the check raises, the graph is broken
                    raise GraphError(f"{what}: {exc}") from None
            if time.monotonic() >= deadline:
                raise GraphError(f"{what}: no answer within {timeout:.0f} s")
        if future.exception() is not None:
            raise GraphError(f"{what}: {future.exception()}")
        return future.result()

    def _call(self, client, request, timeout: float, what: str):
        return self._wait(client.call_async(request), timeout, what)

    # ------------------------------------------------------------------ the graph's operations
    def reset(self, task_name: str, seed: int, timeout: float = 60.0) -> ResetScene.Response:
        response = self._call(self._reset, ResetScene.Request(task_name=task_name, seed=seed), timeout, "reset")
        if not response.success:
            raise GraphError(f"reset failed: {response.message}")
        return response

    def plan(
        self,
        instruction: str,
        scene: SceneStateMsg,
        task_name: str = "",
        goal: dict | None = None,
        backend: str = "",
        timeout: float | None = None,
        *,
        episode_id: str = "",
        seed: int = 0,
    ) -> PlanTask.Response:
        request = PlanTask.Request(
            instruction=instruction,
            task_name=task_name,
            goal_json=json.dumps(goal or {}),
            scene=scene,
            backend=backend,
            episode_id=episode_id,
            seed=int(seed),
        )
        return self._call(self._plan, request, timeout or self.plan_timeout, "plan")

    def execute(
        self,
        plan,
        *,
        scene: SceneStateMsg | None = None,
        dry_run: bool = False,
        timeout: float | None = None,
        feedback=None,
    ) -> ExecutePlan.Result:
        """Run a plan; ``scene``: the scene it was planned for (else the executor waits for a fresh one)."""
        goal = ExecutePlan.Goal(plan=plan, dry_run=dry_run, use_scene=scene is not None)
        if scene is not None:
            goal.scene = scene
        goal_handle = self._wait(
            self._execute.send_goal_async(goal, feedback_callback=feedback),
            30.0,
            "execute (goal)",
        )
        if not goal_handle.accepted:
            raise GraphError("the executor rejected the goal (is another plan running?)")
        return self._wait(goal_handle.get_result_async(), timeout or self.execute_timeout, "execute").result

    def check_success(self, timeout: float = 60.0) -> CheckSuccess.Response:
        return self._call(self._check, CheckSuccess.Request(), timeout, "check_success")

    def start_episode(
        self, episode_id: str, metadata: dict[str, Any], timeout: float = 30.0
    ) -> EpisodeControl.Response:
        request = EpisodeControl.Request(
            command=EpisodeControl.Request.START, episode_id=episode_id, metadata_json=json.dumps(metadata)
        )
        response = self._call(self._episode, request, timeout, "recorder start")
        if not response.ok:
            raise GraphError(f"recorder refused to start: {response.message}")
        return response

    def stop_episode(
        self, episode_id: str, metadata: dict[str, Any], success: bool, timeout: float = 120.0
    ) -> EpisodeControl.Response:
        request = EpisodeControl.Request(
            command=EpisodeControl.Request.STOP,
            episode_id=episode_id,
            metadata_json=json.dumps(metadata),
            task_success=success,
        )
        response = self._call(self._episode, request, timeout, "recorder stop")
        if not response.ok:
            raise GraphError(f"recorder refused to stop: {response.message}")
        return response

    def stop(self, timeout: float = 5.0) -> str:
        """The executor's ~/stop: every goal canceled, the arm held, new goals refused until ``resume``."""
        return self._trigger(self.endpoints.stop, timeout)

    def resume(self, timeout: float = 5.0) -> str:
        return self._trigger(self.endpoints.resume, timeout)

    def _trigger(self, name: str, timeout: float) -> str:
        from std_srvs.srv import Trigger

        client = self.node.create_client(Trigger, name)
        try:
            if not client.wait_for_service(timeout_sec=timeout):
                raise GraphError(f"no service {name} (is the executor running?)")
            response = self._call(client, Trigger.Request(), timeout, name)
            return response.message
        finally:
            self.node.destroy_client(client)

    def close(self) -> None:
        self._executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
        self._spin_thread.join(timeout=2.0)
