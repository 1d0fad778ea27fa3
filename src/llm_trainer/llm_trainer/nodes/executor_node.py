"""Executor node: the ``~/execute_plan`` action (ExecutePlan) over a pluggable motion backend.

Every plan is validated and fully planned (IK along every path) before the first motion; feedback
is sent per primitive; cancel stops the arm at once. Backends: ``sim`` (the simulator node's
controllers); ``moveit`` and ``panda_py`` are for the lab robot and need their libraries.
"""

from __future__ import annotations

import threading

import rclpy
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node

from llm_trainer.config import ConfigError
from llm_trainer.execution.executor import ErrorCode, PlanExecutor
from llm_trainer.execution.executor_config import load_executor_config
from llm_trainer.ros.conversions import primitive_from_msg, status_to_msg
from llm_trainer.ros.sim_controller_backend import BackendUnavailable, SimControllerBackend
from llm_trainer_interfaces.action import ExecutePlan

HARDWARE_BACKENDS = {
    "moveit": "MoveIt 2's Python API (moveit_py): install ros-jazzy-moveit-py on a full ROS 2 install (see docker/)",
    "panda_py": "panda-py: pip install panda-python (bundles libfranka 0.9.2 for the Panda FER)",
}


class ExecutorNode(Node):
    def __init__(self) -> None:
        super().__init__("executor")
        self.declare_parameter("config_file", "")
        self.declare_parameter("backend", "")
        self.declare_parameter("controller_namespace", "/sim")
        self.config = load_executor_config(self.get_parameter("config_file").value or None)
        backend_name = self.get_parameter("backend").value or self.config.backend
        self._group = ReentrantCallbackGroup()
        if backend_name in ("sim", "direct_sim"):
            self.backend = SimControllerBackend(
                self, self.get_parameter("controller_namespace").value, callback_group=self._group
            )
        elif backend_name in HARDWARE_BACKENDS:
            raise BackendUnavailable(
                f"executor backend {backend_name!r} is not available here: {HARDWARE_BACKENDS[backend_name]}"
            )
        else:
            raise ConfigError(f"unknown executor backend {backend_name!r}")
        self.executor_core = PlanExecutor(self.backend, self.config)
        self._busy = threading.Lock()
        self._cancel_events: dict[bytes, threading.Event] = {}
        ActionServer(
            self,
            ExecutePlan,
            "~/execute_plan",
            self._execute,
            goal_callback=self._on_goal,
            cancel_callback=self._on_cancel,
            callback_group=self._group,
        )
        self.get_logger().info(f"executor ready: backend {backend_name}")

    def _on_goal(self, _goal) -> GoalResponse:
        return GoalResponse.REJECT if self._busy.locked() else GoalResponse.ACCEPT

    def _on_cancel(self, goal_handle) -> CancelResponse:
        event = self._cancel_events.get(bytes(goal_handle.goal_id.uuid))
        if event is not None:
            event.set()
        return CancelResponse.ACCEPT

    def _execute(self, goal_handle) -> ExecutePlan.Result:
        result = ExecutePlan.Result()
        key = bytes(goal_handle.goal_id.uuid)
        cancel = threading.Event()
        self._cancel_events[key] = cancel
        try:
            with self._busy:
                try:
                    plan = [primitive_from_msg(m) for m in goal_handle.request.plan]
                except ValueError as exc:
                    result.success, result.error_code = False, ErrorCode.INVALID
                    result.failed_index, result.message = -1, f"invalid primitive: {exc}"
                    goal_handle.abort()
                    return result

                def feedback(status, total):
                    goal_handle.publish_feedback(ExecutePlan.Feedback(current=status_to_msg(status), total=total))

                outcome = self.executor_core.execute(
                    plan, dry_run=goal_handle.request.dry_run, feedback=feedback, cancel=cancel
                )
        finally:
            self._cancel_events.pop(key, None)
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


def main(args: list[str] | None = None) -> int:
    rclpy.init(args=args)
    try:
        node = ExecutorNode()
    except (ConfigError, BackendUnavailable, ValueError) as exc:
        print(f"executor_node: {exc}", flush=True)
        rclpy.try_shutdown()
        return 2
    executor = MultiThreadedExecutor(num_threads=4)
    executor.add_node(node)
    code = 0
    try:
        executor.spin()
    except KeyboardInterrupt:
        pass
    except ExternalShutdownException:
        code = 1
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return code


if __name__ == "__main__":
    raise SystemExit(main())
