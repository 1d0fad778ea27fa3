"""Our ActionClient keeps no future per goal (rclpy 9.1's send_goal_async leaks one: ros2/rclpy#1532).

The executor node sends 17 controller goals an episode; a soak of 300 episodes showed its allocations
growing by one rclpy ``Future`` per goal, and the executor walks that list at each message.
"""

from __future__ import annotations

import threading
import time

import pytest

pytestmark = pytest.mark.ros


def _goals_through(client_class, ros_context, name: str, goals: int) -> tuple[int, int]:
    """(futures the client holds after one goal, after ``goals`` goals), each goal answered in full."""
    import rclpy
    from rclpy.action import ActionServer

    from llm_trainer_interfaces.action import GripperCommand

    def execute(goal_handle):
        goal_handle.succeed()
        return GripperCommand.Result(width=goal_handle.request.width, reached_goal=True)

    node = rclpy.create_node(name, context=ros_context)
    server = ActionServer(node, GripperCommand, f"/{name}/gripper", execute)
    client = client_class(node, GripperCommand, f"/{name}/gripper")
    executor = rclpy.executors.MultiThreadedExecutor(context=ros_context)
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    try:
        assert client.wait_for_server(timeout_sec=20.0)
        time.sleep(0.5)  # let the server match the client's response readers too
        held = []
        for i in range(goals):
            done = threading.Event()
            send = client.send_goal_async(GripperCommand.Goal(width=0.01 * (i % 8), max_effort=20.0))
            send.add_done_callback(lambda _f, done=done: done.set())
            assert done.wait(10.0), "goal response lost"
            handle = send.result()
            assert handle.accepted
            result = handle.get_result_async()
            finished = threading.Event()
            result.add_done_callback(lambda _f, finished=finished: finished.set())
            assert finished.wait(10.0), "result lost"
            assert result.result().result.reached_goal
            time.sleep(0.01)  # the done callbacks that drop answered futures run on the executor
            held.append(len(client._futures))
        return held[0], held[-1]
    finally:
        executor.shutdown()
        spinner.join(timeout=5)
        client.destroy()
        server.destroy()
        node.destroy_node()


def test_the_action_client_holds_no_future_per_goal(ros_context) -> None:
    from llm_trainer.ros.action_client import ActionClient

    first, last = _goals_through(ActionClient, ros_context, "leak_free_client", goals=40)
    assert last <= max(first, 2), (first, last)  # rclpy 9.1.2's own client: 40 after 40 goals
