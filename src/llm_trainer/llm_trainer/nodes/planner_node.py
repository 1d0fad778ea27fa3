"""Planner service node: ``~/plan`` (PlanTask) turns a task sentence + scene into validated primitives.

The scene comes with the request or, when the request has none, from the latest message on
``scene_topic`` (perception's ``/scene/objects`` on the robot, the simulator's ground truth in
simulation). Every request is appended to ``request_log``: one JSON line per request, the
``PlanningRecord`` (prompt and its version, raw answer, the parsed and the validated plan, every
rejection reason) with the request's ``episode_id`` and ``seed``, so plans join their episodes. The
response carries the same record as ``planning_json``.

Dynamic replanning over the service: ``goal_json`` may carry ``"planner_mode": "dynamic"``, the
calls already executed (``"executed"``: primitives as dicts) and ``"holding"`` (the object in the
hand); the answer is then the next call only.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.node import Node

from llm_trainer.config import ConfigError, to_dict
from llm_trainer.episodes import PlanningRecord
from llm_trainer.planning.base import PlanRequest
from llm_trainer.planning.registry import load_planner_config, make_planner
from llm_trainer.primitives import plan_from_dicts
from llm_trainer.ros.conversions import primitive_to_msg, scene_from_msg
from llm_trainer.ros.listener import Listener
from llm_trainer.ros.node_runner import run_node
from llm_trainer.ros.qos import SCENE_QOS
from llm_trainer_interfaces.msg import SceneState as SceneStateMsg
from llm_trainer_interfaces.srv import PlanTask


class PlannerNode(Node):
    def __init__(self) -> None:
        super().__init__("planner")
        self.declare_parameter("config_file", "")
        self.declare_parameter("backend", "")
        self.declare_parameter("scene_topic", "/scene/objects")
        self.declare_parameter("request_log", "")
        self.declare_parameter("server_url", "")  # "": config's openai.base_url (an OpenAI-compatible server)
        self.config = load_planner_config(self.get_parameter("config_file").value or None)
        if self.get_parameter("server_url").value:
            self.config.openai.base_url = self.get_parameter("server_url").value
        self.default_backend = self.get_parameter("backend").value or self.config.backend
        self._planners = {self.default_backend: make_planner(self.default_backend, self.config)}
        self._latest_scene: SceneStateMsg | None = None
        self._log_lock = threading.Lock()
        log = self.get_parameter("request_log").value
        self._log_path = Path(log) if log else None
        if self._log_path:
            self._log_path.parent.mkdir(parents=True, exist_ok=True)
        group = ReentrantCallbackGroup()
        # The latest scene, for requests without one; off the main executor (a Listener: scenes stream at
        # 200 a second while an unpaced simulation runs at 20x; measured 41 % of a core on the main one).
        self._scenes = Listener(self, SceneStateMsg, self.get_parameter("scene_topic").value, self._on_scene, SCENE_QOS)
        self.create_service(PlanTask, "~/plan", self._on_plan, callback_group=group)
        self.get_logger().info(f"planner ready: backend {self.default_backend}")

    def _on_scene(self, msg: SceneStateMsg) -> None:
        self._latest_scene = msg

    def _on_plan(self, request: PlanTask.Request, response: PlanTask.Response) -> PlanTask.Response:
        backend = request.backend or self.default_backend
        scene_msg = request.scene if request.scene.objects else self._latest_scene
        if scene_msg is None:
            response.success = False
            response.message = "no scene: the request has no objects and nothing arrived on the scene topic yet"
            return response
        try:
            if backend not in self._planners:
                self._planners[backend] = make_planner(backend, self.config)
            goal = json.loads(request.goal_json) if request.goal_json else {}
            if not isinstance(goal, dict):
                raise ValueError("goal_json must hold a JSON object")
            mode = goal.pop("planner_mode", "sequential")
            history = plan_from_dicts(goal.pop("executed", []))
            holding = str(goal.pop("holding", ""))
            scene = scene_from_msg(scene_msg)
        except (ValueError, KeyError, TypeError) as exc:
            response.success, response.message, response.backend = False, f"bad request: {exc}", backend
            return response
        plan_request = PlanRequest(request.instruction, scene, request.task_name, goal, mode, history, holding)
        result = self._planners[backend].plan(plan_request)
        record = PlanningRecord.from_result(result, to_dict(self.config.llm.prompt))
        record.mode = mode
        response.success = result.success
        response.message = result.message
        response.plan = [primitive_to_msg(p) for p in result.plan]
        response.backend = result.backend
        response.prompt = result.prompt
        response.raw_answer = result.raw_answer
        response.planning_time = result.planning_time
        response.planning_json = json.dumps(record.to_dict())
        if not result.success:
            self.get_logger().warning(f"plan rejected for {request.instruction!r}: {result.message}")
        self._log(request, scene.to_dict(), record)
        return response

    def _log(self, request, scene: dict, record: PlanningRecord) -> None:
        """One line per request: the planning record plus what it was for (joins with the episode records)."""
        if not self._log_path:
            return
        entry = {
            "time": time.time(),
            "episode_id": request.episode_id,
            "seed": int(request.seed),
            "task_name": request.task_name,
            "instruction": request.instruction,
            "scene": scene,
            **record.to_dict(),
        }
        with self._log_lock, open(self._log_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")

    def destroy_node(self) -> None:
        scenes = getattr(self, "_scenes", None)
        if scenes is not None:
            scenes.close()
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    return run_node(
        PlannerNode,
        name="planner_node",
        args=args,
        num_threads=2,
        startup_errors=(ConfigError, ValueError),
        cleanup_timeout_s=10.0,
    )


if __name__ == "__main__":
    raise SystemExit(main())
