"""The node graph over real DDS: simulator, planner and executor as separate processes.

The graph is started once per module with the same local bringup the CLI uses (separate
processes, isolated ROS domain from conftest). Tests talk to it with the generator's client.
"""

from __future__ import annotations

import math
import threading
import time

import numpy as np
import pytest

pytestmark = pytest.mark.ros

from llm_trainer.bringup.graph import load_graph  # noqa: E402
from llm_trainer.bringup.local import LocalGraph  # noqa: E402
from llm_trainer.datagen.graph_client import GraphClient  # noqa: E402
from llm_trainer.execution.executor import ErrorCode  # noqa: E402
from llm_trainer.primitives import Primitive  # noqa: E402
from llm_trainer.ros.conversions import primitive_to_msg, scene_from_msg  # noqa: E402


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    spec = load_graph("sim")
    spec.nodes = [n for n in spec.nodes if n.executable != "recorder_node"]
    out = tmp_path_factory.mktemp("graph")
    with LocalGraph(spec, {"output_dir": str(out), "render_cameras": False}, log_dir=out / "logs") as local:
        client = GraphClient(record=False)
        try:
            client.wait_ready(timeout=90.0, alive_check=local.check_alive)
            yield client, local
        finally:
            client.close()


def _joint_state(client: GraphClient, timeout: float = 10.0):
    """Latest /joint_states seen by a fresh subscription on the client's node."""
    from sensor_msgs.msg import JointState

    got: list = []
    event = threading.Event()

    def on_msg(msg):
        got.append(msg)
        if len(got) >= 3:  # a message or two may predate the call; the third is fresh
            event.set()

    sub = client.node.create_subscription(JointState, "/joint_states", on_msg, 10)
    try:
        assert event.wait(timeout), "no /joint_states from the simulator"
        return np.array(got[-1].position[:7]), got[-1].header.stamp
    finally:
        client.node.destroy_subscription(sub)


def test_plan_service_and_execute_action_solve_a_task(graph):
    client, _ = graph
    reset = client.reset("put_block", 4)
    assert "block" in reset.instruction
    plan = client.plan(reset.instruction, reset.scene, "put_block", __import__("json").loads(reset.goal_json))
    assert plan.success, plan.message
    assert plan.backend == "oracle" and len(plan.plan) >= 9
    feedback: list = []
    result = client.execute(plan.plan, feedback=lambda fb: feedback.append(fb.feedback))
    assert result.success, result.message
    assert result.error_code == ErrorCode.SUCCEEDED and result.failed_index == -1
    assert [s.status for s in result.statuses] == [2] * len(plan.plan)  # DONE
    # Feedback per primitive over DDS: each index reported at least once, in order.
    indices = [f.current.index for f in feedback]
    assert sorted(set(indices)) == list(range(len(plan.plan)))
    assert indices == sorted(indices)
    check = client.check_success()
    assert check.success, check.details_json


def test_planner_rejects_request_without_task_for_oracle(graph):
    client, _ = graph
    reset = client.reset("put_block", 1)
    plan = client.plan(reset.instruction, reset.scene, task_name="")
    assert not plan.success
    assert "task name" in plan.message


def test_unreachable_pose_is_rejected_with_reason_and_no_motion(graph):
    client, _ = graph
    client.reset("put_block", 2)
    q_before, stamp_before = _joint_state(client)
    # Inside the safety box but beyond the arm's reach with a top-down gripper: x 0.75 at table height.
    plan = [
        primitive_to_msg(Primitive.move((0.3, 0.0, 0.3), 0.0)),
        primitive_to_msg(Primitive.move((0.75, 0.4, 0.01), 1.5)),
    ]
    result = client.execute(plan)
    assert not result.success
    assert result.error_code == ErrorCode.UNREACHABLE
    assert result.failed_index == 1
    assert "unreachable" in result.message or "IK" in result.message
    q_after, stamp_after = _joint_state(client)
    assert (stamp_after.sec, stamp_after.nanosec) > (stamp_before.sec, stamp_before.nanosec)
    # Nothing moved: not even the first, reachable primitive ran.
    assert np.max(np.abs(q_after - q_before)) < 1e-3


def test_out_of_workspace_target_is_refused(graph):
    client, _ = graph
    result = client.execute([primitive_to_msg(Primitive.move((0.5, 0.0, 0.9), 0.0))])
    assert not result.success and result.error_code == ErrorCode.LIMIT
    assert "workspace" in result.message


def test_cancel_stops_a_running_execution(graph):
    from llm_trainer_interfaces.action import ExecutePlan

    client, _ = graph
    client.reset("put_block", 3)
    # A long, slow back-and-forth so that the cancel lands mid-motion.
    moves = [(0.3, -0.3, 0.4), (0.65, 0.3, 0.1), (0.3, -0.3, 0.4), (0.65, 0.3, 0.1)]
    plan = [primitive_to_msg(Primitive.move(p, 0.0)) for p in moves]
    running = threading.Event()

    def on_feedback(fb):
        if fb.feedback.current.index >= 1 and fb.feedback.current.status == 1:
            running.set()

    send = client._execute.send_goal_async(ExecutePlan.Goal(plan=plan), feedback_callback=on_feedback)
    handle = client._wait(send, 30.0, "goal")
    assert handle.accepted
    assert running.wait(60.0), "execution never reached the second primitive"
    client._wait(handle.cancel_goal_async(), 10.0, "cancel")
    result = client._wait(handle.get_result_async(), 60.0, "result").result
    assert result.error_code == ErrorCode.CANCELED
    assert 1 <= result.failed_index < len(plan) - 1
    # The arm is stopped: two joint states a moment apart agree.
    q1, _ = _joint_state(client)
    time.sleep(0.3)
    q2, _ = _joint_state(client)
    assert np.max(np.abs(q2 - q1)) < 2e-3


def test_reset_unknown_task_answers_with_known_tasks(graph):
    client, _ = graph
    from llm_trainer.datagen.graph_client import GraphError

    with pytest.raises(GraphError, match="known: .*stack_blocks"):
        client.reset("no_such_task", 0)


def test_reset_scene_matches_seed(graph):
    client, _ = graph
    a = scene_from_msg(client.reset("stack_blocks", 11).scene)
    b = scene_from_msg(client.reset("stack_blocks", 11).scene)
    c = scene_from_msg(client.reset("stack_blocks", 12).scene)
    pa = {o.name: o.position for o in a.objects}
    pb = {o.name: o.position for o in b.objects}
    assert pa.keys() == pb.keys()
    assert all(math.dist(pa[k], pb[k]) < 1e-6 for k in pa)
    assert {o.name: o.position for o in c.objects} != pa
