"""Executor node: the ``~/execute_plan`` action (ExecutePlan) over a pluggable motion backend.

Every plan is validated and fully planned (collision-aware, against the scene) before the first
motion; feedback is sent per primitive; cancel stops the arm at once. Backends (parameter
``backend``, default from ``config/executor.yaml``):

- ``sim``: the simulator node's controller actions (``controller_namespace``);
- ``moveit``: MoveIt 2 through moveit_py (``config/moveit.yaml``);
- ``panda_py``: panda-py direct control (``config/panda_py.yaml``).

The hardware backends start only with ``confirm_hardware:=true`` and ``robot_ip:=...`` (parameters
or their YAML). Obstacles come from the ``scene_topic`` (``/scene/ground_truth`` in simulation,
``/scene/objects`` from perception) unless the goal carries the scene its plan was made for
(``use_scene``); without one, each plan waits for a scene published after its goal arrived.

Operational safety on hardware: ``dry_run:=true`` (the lab graph's default) runs every goal's checks
and planning but never moves, whatever the goal asks, until the node is started with
``dry_run:=false``; ``speed_scale`` (0-1] scales every speed and acceleration limit; ``~/stop``
(std_srvs/Trigger) cancels every goal, holds the arm and refuses new goals until ``~/resume``.
"""

from __future__ import annotations

import threading
import traceback

from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.node import Node
from std_srvs.srv import Trigger

from llm_trainer.config import ConfigError
from llm_trainer.execution.backends import HARDWARE_BACKENDS, BackendUnavailable, make_hardware_backend
from llm_trainer.execution.executor import ErrorCode, PlanExecutor
from llm_trainer.execution.executor_config import load_executor_config, scaled_speeds
from llm_trainer.ros.conversions import (
    primitive_from_msg,
    primitive_to_msg,
    scene_from_msg,
    seconds_from_stamp,
    stamp_from_seconds,
    status_to_msg,
)
from llm_trainer.ros.listener import Listener
from llm_trainer.ros.node_runner import run_node
from llm_trainer.ros.qos import SCENE_QOS
from llm_trainer.ros.sim_controller_backend import SimControllerBackend
from llm_trainer.scene import SceneState
from llm_trainer_interfaces.action import ExecutePlan
from llm_trainer_interfaces.msg import PrimitiveEvent
from llm_trainer_interfaces.msg import SceneState as SceneStateMsg

#: [s] How far before the robot's clock a scene may be stamped and still count as current.
SCENE_MAX_AGE = 0.5


class SceneSubscriber:
    """The latest SceneState from a topic; ``fresh()`` waits for one published after the call.

    Read by a ``Listener`` (off the node's main executor): the simulator streams scenes at 10 Hz of
    simulated time, 200 a second while an unpaced motion runs at 20x real time."""

    def __init__(self, node: Node, topic: str):
        self._cond = threading.Condition()
        self._scene: SceneState | None = None
        self._stamp = 0.0
        self._count = 0
        self.topic = topic
        self._listener = Listener(node, SceneStateMsg, topic, self._on_scene, SCENE_QOS)

    def close(self) -> None:
        self._listener.close()

    def _on_scene(self, msg: SceneStateMsg) -> None:
        try:
            scene = scene_from_msg(msg)
        except ValueError:
            return  # malformed (e.g. non-finite) scenes are not obstacles to trust
        with self._cond:
            self._scene = scene
            self._stamp = seconds_from_stamp(msg.header.stamp)
            self._count += 1
            self._cond.notify_all()

    def latest(self) -> SceneState | None:
        with self._cond:
            return self._scene

    def latest_since(self, stamp: float) -> SceneState | None:
        """The latest scene if it was stamped at or after ``stamp`` (else None: it is older news)."""
        with self._cond:
            return self._scene if self._scene is not None and self._stamp >= stamp else None

    def wait_since(self, stamp: float, timeout: float) -> SceneState | None:
        """The latest scene once one stamped at or after ``stamp`` arrived (None after ``timeout``)."""
        with self._cond:
            arrived = self._cond.wait_for(lambda: self._scene is not None and self._stamp >= stamp, timeout=timeout)
            return self._scene if arrived else None

    def fresh(self, timeout: float, now: float | None = None, max_age: float = SCENE_MAX_AGE) -> SceneState | None:
        """A scene received after the call and, given the robot's clock ``now``, stamped near it.

        Messages queued before the call may describe the previous episode (under load several can
        be in flight after a reset); the robot's clock tells them apart: a scene older than
        ``max_age`` before ``now``, or from another time base (a robot clock that was restarted), is
        skipped.
        """

        def fits() -> bool:
            if self._count < target:
                return False
            return now is None or now - max_age <= self._stamp <= now + 1.0

        with self._cond:
            target = self._count + (1 if now is not None else 2)
            self._cond.wait_for(fits, timeout=timeout)
            return self._scene if fits() else None


class ExecutorNode(Node):
    def __init__(self) -> None:
        super().__init__("executor")
        self.declare_parameter("config_file", "")
        self.declare_parameter("backend", "")
        self.declare_parameter("controller_namespace", "/sim")
        self.declare_parameter("scene_topic", "<config>")  # "<config>": executor.yaml's scene_topic; "" = none
        self.declare_parameter("scene_timeout", 2.0)  # [s] waiting for a fresh scene per plan
        # [s] > 0: the scene source sends a scene as each controller goal ends, stamped like its result
        # (the simulator with stream_clock: wall); a motion after the plan's first waits this long for
        # that scene instead of taking the latest. 0: the latest (perception, a recorded simulation).
        self.declare_parameter("scene_after_goal_timeout", 0.0)
        self.declare_parameter("confirm_hardware", False)
        self.declare_parameter("robot_ip", "")
        self.declare_parameter("hardware_config_file", "")  # default: config/<backend>.yaml
        self.declare_parameter("dry_run", False)  # true: every goal is checked and planned, never executed
        self.declare_parameter("speed_scale", 1.0)  # (0, 1]: times every speed and acceleration limit
        self.config = load_executor_config(self.get_parameter("config_file").value or None)
        self.config = scaled_speeds(self.config, float(self.get_parameter("speed_scale").value))
        self._force_dry_run = bool(self.get_parameter("dry_run").value)
        self._stopped = threading.Event()
        backend_name = self.get_parameter("backend").value or self.config.backend
        self._group = ReentrantCallbackGroup()
        if backend_name in ("sim", "direct_sim"):
            self.backend = SimControllerBackend(
                self, self.get_parameter("controller_namespace").value, callback_group=self._group
            )
        elif backend_name in HARDWARE_BACKENDS:
            overrides = {"robot_ip": self.get_parameter("robot_ip").value}
            if self.get_parameter("confirm_hardware").value is True:
                overrides["confirm_hardware"] = True
            self.backend = make_hardware_backend(
                backend_name,
                node=self,
                path=self.get_parameter("hardware_config_file").value or None,
                overrides=overrides,
            )
        else:
            raise ConfigError(f"unknown executor backend {backend_name!r} (sim, {', '.join(HARDWARE_BACKENDS)})")
        topic = self.get_parameter("scene_topic").value
        topic = self.config.scene_topic if topic == "<config>" else topic
        self._scenes = SceneSubscriber(self, topic) if topic else None
        self._scene_timeout = float(self.get_parameter("scene_timeout").value)
        self._scene_after_goal = float(self.get_parameter("scene_after_goal_timeout").value)
        if self._scene_after_goal < 0:
            raise ConfigError(f"scene_after_goal_timeout must be >= 0, got {self._scene_after_goal}")
        if self._scene_after_goal > 0 and not hasattr(self.backend, "goal_end_stamp"):
            raise ConfigError(f"scene_after_goal_timeout needs the sim backend, not {backend_name!r}")
        # Live scenes (re-checked before every motion) must not predate the scene the plan was made for.
        self._live_since = 0.0
        self.executor_core = PlanExecutor(self.backend, self.config, scene_source=self._live_scene)
        self._busy = threading.Lock()
        self._cancel_events: dict[bytes, threading.Event] = {}
        self._events = self.create_publisher(PrimitiveEvent, "~/primitive_events", 100)
        ActionServer(
            self,
            ExecutePlan,
            "~/execute_plan",
            self._execute,
            goal_callback=self._on_goal,
            cancel_callback=self._on_cancel,
            callback_group=self._group,
        )
        self.create_service(Trigger, "~/stop", self._on_stop, callback_group=self._group)
        self.create_service(Trigger, "~/resume", self._on_resume, callback_group=self._group)
        mode = "DRY RUN (checks only; start with dry_run:=false to move)" if self._force_dry_run else "live"
        self.get_logger().info(
            f"executor ready: backend {backend_name}, {mode}, speed scale "
            f"{float(self.get_parameter('speed_scale').value):g}, scene from {topic or 'nowhere (table only)'}"
        )

    def _live_scene(self) -> SceneState | None:
        """The scene a motion is checked against: the latest one not older than the plan's scene or,
        with ``scene_after_goal_timeout``, the one sent as the plan's previous goal ended."""
        if self._scenes is None:
            return None
        if self._scene_after_goal > 0:
            goal_end = self.backend.goal_end_stamp()
            if goal_end > 0.0 and goal_end >= self._live_since:
                scene = self._scenes.wait_since(goal_end, self._scene_after_goal)
                if scene is not None:
                    return scene
                self.get_logger().warning(
                    f"no scene stamped at the last goal's end ({goal_end:.3f} s) on {self._scenes.topic} within "
                    f"{self._scene_after_goal} s; checking against the latest one",
                    throttle_duration_sec=5.0,
                )
        return self._scenes.latest_since(self._live_since)

    def _on_goal(self, _goal) -> GoalResponse:
        if self._stopped.is_set():
            self.get_logger().warning("goal refused: the executor is stopped (call ~/resume)")
            return GoalResponse.REJECT
        return GoalResponse.REJECT if self._busy.locked() else GoalResponse.ACCEPT

    def _on_stop(self, _request, response: Trigger.Response) -> Trigger.Response:
        """Cancel every goal (the backend stops and holds the arm) and refuse new ones until ~/resume."""
        self._stopped.set()
        events = list(self._cancel_events.values())
        for event in events:
            event.set()
        self.get_logger().warning(f"STOP: {len(events)} goal(s) canceled; new goals refused until ~/resume")
        response.success = True
        response.message = f"stopped: {len(events)} goal(s) canceled, the arm holds; call ~/resume to go on"
        return response

    def _on_resume(self, _request, response: Trigger.Response) -> Trigger.Response:
        was = self._stopped.is_set()
        self._stopped.clear()
        response.success = True
        response.message = "resumed: goals are accepted again" if was else "was not stopped"
        return response

    def _on_cancel(self, goal_handle) -> CancelResponse:
        event = self._cancel_events.get(bytes(goal_handle.goal_id.uuid))
        if event is not None:
            event.set()
        return CancelResponse.ACCEPT

    def _execute(self, goal_handle) -> ExecutePlan.Result:
        key = bytes(goal_handle.goal_id.uuid)
        cancel = threading.Event()
        self._cancel_events[key] = cancel
        try:
            with self._busy:
                try:
                    plan = [primitive_from_msg(m) for m in goal_handle.request.plan]
                except ValueError as exc:
                    return _abort(goal_handle, ErrorCode.INVALID, f"invalid primitive: {exc}")

                def feedback(status, total):
                    goal_handle.publish_feedback(ExecutePlan.Feedback(current=status_to_msg(status), total=total))
                    self._publish_event(plan, status, total)

                self.backend.new_plan()  # the plan's first motion waits for a state newer than this goal
                scene, problem = self._scene_for(goal_handle.request)
                if problem:
                    return _abort(goal_handle, ErrorCode.INVALID, problem)
                try:
                    outcome = self.executor_core.execute(
                        plan,
                        dry_run=goal_handle.request.dry_run or self._force_dry_run,
                        feedback=feedback,
                        cancel=cancel,
                        scene=scene,
                    )
                    if self._force_dry_run and not goal_handle.request.dry_run and outcome.success:
                        outcome.message = (outcome.message + "; " if outcome.message else "") + (
                            "dry run only: the executor runs with dry_run:=true"
                        )
                except Exception as exc:  # noqa: BLE001 - a bug must still end the goal with its reason
                    self.get_logger().error(f"plan execution raised: {exc!r}\n{traceback.format_exc()}")
                    return _abort(goal_handle, ErrorCode.BACKEND_ERROR, f"internal error in the executor: {exc!r}")
        finally:
            self._cancel_events.pop(key, None)
        result = ExecutePlan.Result()
        result.success = outcome.success
        result.error_code = int(outcome.error_code)
        result.failed_index = outcome.failed_index
        result.message = outcome.message
        result.statuses = [status_to_msg(s) for s in outcome.statuses]
        if outcome.success:
            goal_handle.succeed()
        elif outcome.error_code == ErrorCode.CANCELED:
            goal_handle.canceled()
        else:
            self.get_logger().warning(f"plan failed: {outcome.message}")
            goal_handle.abort()
        return result

    def _publish_event(self, plan, status, total: int) -> None:
        """A primitive started or ended, stamped with the robot's clock (recorded: datagen info per sample)."""
        event = PrimitiveEvent(index=int(status.index), total=int(total), status=status_to_msg(status))
        event.primitive = primitive_to_msg(plan[status.index])
        latest = getattr(self.backend, "latest_state_stamp", None)
        if latest is not None:
            event.header.stamp = stamp_from_seconds(latest())
        else:
            event.header.stamp = self.get_clock().now().to_msg()
        self._events.publish(event)

    def _scene_for(self, goal: ExecutePlan.Goal) -> tuple[SceneState | None, str]:
        """The scene to plan around, and a reason to refuse the goal ("" when none)."""
        if goal.use_scene:
            # The scene the plan was made for: the planner and the executor agree on every object.
            try:
                scene = scene_from_msg(goal.scene)
            except ValueError as exc:
                return None, f"invalid scene in the goal: {exc}"
            self._live_since = seconds_from_stamp(goal.scene.header.stamp)
            if hasattr(self.backend, "not_before"):
                # the arm's state must be as new as the scene too (a reset moved it)
                self.backend.not_before = self._live_since
            return scene, ""
        # A scene published after the goal arrived: never plan around a previous episode's objects.
        now = self.backend.fresh_state_stamp() if hasattr(self.backend, "fresh_state_stamp") else None
        scene = self._scenes.fresh(self._scene_timeout, now) if self._scenes else None
        self._live_since = now - SCENE_MAX_AGE if now is not None else 0.0
        if self._scenes is not None and scene is None:
            self.get_logger().warning(
                f"no fresh scene on {self._scenes.topic} within {self._scene_timeout} s; "
                "planning around the last one received (if any)"
            )
        return scene, ""

    def destroy_node(self) -> None:
        backend = getattr(self, "backend", None)  # absent when the constructor failed
        try:
            if getattr(self, "_scenes", None) is not None:
                self._scenes.close()
            if backend is not None:
                backend.close()
        finally:
            super().destroy_node()


def _abort(goal_handle, code: ErrorCode, message: str) -> ExecutePlan.Result:
    """End a goal that failed before any primitive ran (failed_index -1) with its reason."""
    goal_handle.abort()
    return ExecutePlan.Result(success=False, error_code=int(code), failed_index=-1, message=message)


def main(args: list[str] | None = None) -> int:
    return run_node(
        ExecutorNode,
        name="executor_node",
        args=args,
        num_threads=4,
        startup_errors=(ConfigError, BackendUnavailable, ValueError),
        cleanup_timeout_s=10.0,
    )


if __name__ == "__main__":
    raise SystemExit(main())
