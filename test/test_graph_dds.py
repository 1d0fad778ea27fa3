"""The node graph over real DDS: simulator, planner and executor as separate processes.

The graph is started once per module with the same local bringup the CLI uses (separate
processes, isolated ROS domain from conftest). Tests talk to it with the generator's client.
"""

from __future__ import annotations

import math
import os
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
from llm_trainer.ros.domains import domain_beside  # noqa: E402


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


def test_cancel_stops_a_running_execution(tmp_path):
    """The cancel is sent when the second primitive starts; motions run paced at real time here
    (``real_time_factor: 1``), so that primitive's 3 s of simulated motion cannot finish before the cancel
    arrives, however loaded the machine (the module's graph runs unpaced, where it could)."""
    from llm_trainer_interfaces.action import ExecutePlan

    spec = load_graph("sim")
    spec.nodes = [n for n in spec.nodes if n.executable in ("sim_node", "executor_node")]
    args = {"output_dir": str(tmp_path), "render_cameras": False, "real_time_factor": 1.0}
    domain = domain_beside(int(os.environ["ROS_DOMAIN_ID"]), 50)  # away from the module's (unpaced) graph
    with LocalGraph(spec, args, log_dir=tmp_path / "logs", domain_id=domain) as local:
        client = GraphClient(record=False, alive_check=local.check_alive, domain_id=domain)
        try:
            deadline = time.monotonic() + 90
            while not (client._reset.service_is_ready() and client._execute.server_is_ready()):
                assert time.monotonic() < deadline, "the graph did not come up"
                local.check_alive()
                time.sleep(0.1)
            time.sleep(0.5)
            client.reset("put_block", 3)
            moves = [(0.3, -0.3, 0.4), (0.65, 0.3, 0.1), (0.3, -0.3, 0.4), (0.65, 0.3, 0.1)]
            plan = [primitive_to_msg(Primitive.move(p, 0.0)) for p in moves]
            running = threading.Event()

            def on_feedback(fb):
                if fb.feedback.current.index == 1 and fb.feedback.current.status == 1:
                    running.set()

            send = client._execute.send_goal_async(ExecutePlan.Goal(plan=plan), feedback_callback=on_feedback)
            handle = client._wait(send, 30.0, "goal")
            assert handle.accepted
            assert running.wait(60.0), "execution never reached the second primitive"
            client._wait(handle.cancel_goal_async(), 10.0, "cancel")
            result = client._wait(handle.get_result_async(), 60.0, "result").result
            assert result.error_code == ErrorCode.CANCELED
            assert result.failed_index == 1, result.message  # stopped in the primitive it was running
            # The arm is stopped: two joint states a moment apart agree.
            q1, _ = _joint_state(client)
            time.sleep(0.3)
            q2, _ = _joint_state(client)
            assert np.max(np.abs(q2 - q1)) < 2e-3
        finally:
            client.close()


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


def test_simulation_time_runs_on_across_resets(graph):
    """ROS time never goes backwards (use_sim_time nodes and bags need that), and a stamp tells which
    episode a message is from: every reset starts after the last episode's time."""
    client, _ = graph
    first = client.reset("put_block", 0).scene.header.stamp
    check = client.check_success().scene.header.stamp
    second = client.reset("stack_blocks", 1).scene.header.stamp
    t = [s.sec + s.nanosec * 1e-9 for s in (first, check, second)]
    assert t[0] < t[1] < t[2], t
    _, state_stamp = _joint_state(client)
    assert state_stamp.sec + state_stamp.nanosec * 1e-9 >= t[2]


def test_the_executor_ignores_scenes_stamped_before_its_goal(ros_context):
    """The executor's scene source (the fix behind 45-50/50 -> 50/50 through the graph): a scene
    stamped before the goal's (a previous episode's, still queued) is never planned around."""
    import rclpy

    from llm_trainer.nodes.executor_node import SceneSubscriber
    from llm_trainer.ros.conversions import scene_to_msg, stamp_from_seconds
    from llm_trainer.ros.qos import SCENE_QOS
    from llm_trainer.scene import ObjectState, SceneState
    from llm_trainer_interfaces.msg import SceneState as SceneStateMsg

    node = rclpy.create_node("scene_source_test", context=ros_context)
    executor = rclpy.executors.SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    try:
        # The scene contract's QoS: a volatile publisher would never match the latched reader.
        pub = node.create_publisher(SceneStateMsg, "/test/scene", SCENE_QOS)
        scenes = SceneSubscriber(node, "/test/scene")
        deadline = time.monotonic() + 20
        while pub.get_subscription_count() < 1 and time.monotonic() < deadline:
            time.sleep(0.05)

        def publish(name: str, t: float) -> None:
            scene = SceneState([ObjectState(name, (0.5, 0.0, 0.025), 0.0, (0.05, 0.05, 0.05))])
            pub.publish(scene_to_msg(scene, stamp_from_seconds(t)))

        publish("old_block", 10.0)
        deadline = time.monotonic() + 10
        while scenes.latest() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert scenes.latest().names() == ["old_block"]
        assert scenes.latest_since(15.0) is None  # the goal's scene is stamped 15: this one is older news
        publish("new_block", 15.5)
        deadline = time.monotonic() + 10
        while scenes.latest_since(15.0) is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert scenes.latest_since(15.0).names() == ["new_block"]
        # fresh(): a scene queued from before "now" is skipped; the first one stamped near now is taken
        result: dict = {}
        waiter = threading.Thread(target=lambda: result.update(scene=scenes.fresh(5.0, now=30.0)))
        waiter.start()
        time.sleep(0.2)
        publish("stale_block", 12.0)
        time.sleep(0.2)
        publish("current_block", 29.8)
        waiter.join(timeout=10)
        assert result["scene"] is not None and result["scene"].names() == ["current_block"]
        # wait_since(): the scene the simulator sends as a goal ends (stamped like the goal's result),
        # not the one before it; None when it never comes
        assert scenes.wait_since(40.0, timeout=0.2) is None
        later = threading.Timer(0.2, lambda: publish("after_goal_block", 40.0))
        later.start()
        waited = scenes.wait_since(40.0, timeout=10.0)
        later.join()
        assert waited is not None and waited.names() == ["after_goal_block"]
    finally:
        scenes.close()
        executor.shutdown()
        spinner.join(timeout=5)
        node.destroy_node()


@pytest.mark.parametrize("stream_clock", ["sim", "wall"])
def test_state_streams_follow_their_clock_and_results_carry_the_end_stamp(stream_clock, tmp_path):
    """``stream_clock: sim`` (recording): /joint_states at 50 Hz of simulated time through a motion,
    whatever its speed, the scene at 10 Hz. ``wall`` (nothing records): at most 50 states and 10 scenes
    a wall-clock second, and the state and the scene at the goal's end go out ahead of the result, so
    the backend's next query within a plan needs no new message and the executor checks the next
    motion against the world as the goal left it. Every controller result carries the simulation
    time its goal ended."""
    import rclpy.executors
    from rclpy.context import Context
    from sensor_msgs.msg import JointState

    from llm_trainer.motion.trajectory import JointTrajectory
    from llm_trainer.ros.conversions import seconds_from_stamp
    from llm_trainer.ros.qos import SCENE_QOS
    from llm_trainer.ros.sim_controller_backend import SimControllerBackend
    from llm_trainer_interfaces.msg import SceneState as SceneStateMsg

    spec = load_graph("sim")
    spec.nodes = [n for n in spec.nodes if n.executable == "sim_node"]
    args = {"output_dir": str(tmp_path), "render_cameras": False, "stream_clock": stream_clock}
    # A domain of its own: the module's graph (the fixture above) may be running, with its own simulator.
    domain = domain_beside(int(os.environ["ROS_DOMAIN_ID"]), 54 if stream_clock == "sim" else 55)
    ros_context = Context()
    rclpy.init(context=ros_context, domain_id=domain)
    with LocalGraph(spec, args, log_dir=tmp_path / "logs", domain_id=domain) as local:
        node = rclpy.create_node(f"clock_test_{stream_clock}", context=ros_context)
        executor = rclpy.executors.MultiThreadedExecutor(context=ros_context)
        executor.add_node(node)
        spinner = threading.Thread(target=executor.spin, daemon=True)
        spinner.start()
        backend = SimControllerBackend(node)
        stamps: list[float] = []
        sub = node.create_subscription(
            JointState, "/joint_states", lambda m: stamps.append(seconds_from_stamp(m.header.stamp)), 1000
        )
        scene_stamps: list[float] = []
        scene_sub = node.create_subscription(
            SceneStateMsg,
            "/scene/ground_truth",
            lambda m: scene_stamps.append(seconds_from_stamp(m.header.stamp)),
            SCENE_QOS,
        )
        try:
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                local.check_alive()
                try:
                    backend.wait_ready(timeout=5.0)
                    break
                except Exception:  # noqa: BLE001 - the simulator is still starting
                    continue
            # Live scenes reach this reader: a transient-local reader that matched a moment ago is still
            # catching up, and the writer may replace samples in its history (depth 10) before it acks them.
            live = len(scene_stamps) + 3
            deadline = time.monotonic() + 10
            while len(scene_stamps) < live and time.monotonic() < deadline:
                time.sleep(0.02)
            backend.new_plan()
            q0 = backend.joint_positions()
            q1 = q0 + np.array([0.3, 0.2, 0.0, 0.2, 0.0, -0.2, 0.3])
            times = np.linspace(0.0, 2.0, 21)
            positions = q0 + (q1 - q0) * (times / 2.0)[:, None]
            # Published after the goal was sent: stamped after the state the backend holds now (this reader
            # may still have older ones queued).
            since = backend.latest_state_stamp()
            w0 = time.monotonic()
            outcome = backend.follow_joint_trajectory(
                JointTrajectory(times=times, positions=positions), threading.Event()
            )
            wall = time.monotonic() - w0
            assert outcome.error_code == 0, outcome.message
            end = backend.goal_end_stamp()  # the result's stamp
            during = [s for s in stamps if since < s <= end]
            scenes_during = [s for s in scene_stamps if since < s < end - 1e-6]
            sim_span = end - during[0]
            assert sim_span >= 2.0  # the whole trajectory ran (plus settling)
            if stream_clock == "sim":
                # on a 20 ms grid of simulated time, whatever the speed (a loaded reader may lose a few)
                # every sample on the grid (a sample lost by a loaded reader leaves a 40 or 60 ms gap, never
                # an off-grid one); no more samples than the grid holds
                gaps = np.diff(during)
                assert abs(float(np.median(gaps)) - 0.02) < 1e-3, gaps
                assert np.all(np.abs(gaps / 0.02 - np.round(gaps / 0.02)) < 1e-3), gaps
                assert len(during) <= 50 * sim_span + 3, (len(during), sim_span)
                scene_gaps = np.diff(scenes_during)
                assert abs(float(np.median(scene_gaps)) - 0.1) < 1e-3, scene_gaps
            else:
                assert len(during) <= 50 * wall + 3, (len(during), wall)
                assert len(scenes_during) <= 10 * wall + 3, (len(scenes_during), wall)
                # the end state and scene were sent ahead of the result: already here, or on their way
                deadline = time.monotonic() + 2.0
                while (max(stamps) < end or not any(abs(s - end) < 1e-6 for s in scene_stamps)) and (
                    time.monotonic() < deadline
                ):
                    time.sleep(0.005)
                assert max(stamps) >= end
                assert any(abs(s - end) < 1e-6 for s in scene_stamps), (end, [round(s, 3) for s in scene_stamps])
            q = backend.joint_positions()  # within the plan: a state at or after the goal's end
            assert backend.latest_state_stamp() >= end
            assert np.max(np.abs(q - q1)) < 0.02
            gripper = backend.move_gripper(0.06, 20.0, threading.Event())
            assert gripper.reached_goal and backend.goal_end_stamp() > end
        finally:
            node.destroy_subscription(sub)
            node.destroy_subscription(scene_sub)
            backend.close()
            executor.shutdown()
            spinner.join(timeout=5)
            node.destroy_node()
            rclpy.shutdown(context=ros_context)
