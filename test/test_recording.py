"""Episode recording: MCAP bags from CDR bytes, reading them back, and the demo_recorder node."""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from pathlib import Path

import pytest

# test/conftest.py normally isolates ROS; these defaults only apply when it has not (yet) done so.
os.environ.setdefault("ROS_LOG_DIR", str(Path(tempfile.gettempdir()) / "llm_trainer_test_ros_logs"))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 100))

rclpy = pytest.importorskip("rclpy")

from geometry_msgs.msg import PoseStamped  # noqa: E402
from rclpy.serialization import serialize_message  # noqa: E402
from sensor_msgs.msg import Image, JointState  # noqa: E402

from llm_trainer.recording import (  # noqa: E402
    EpisodeBagWriter,
    EpisodeRecorder,
    RecorderError,
    bag_summary,
    header_stamp_ns,
    read_episode_bag,
    read_episode_metadata,
)
from llm_trainer_interfaces.msg import ObjectState, SceneState  # noqa: E402

JS = "sensor_msgs/msg/JointState"
SCENE = "llm_trainer_interfaces/msg/SceneState"
IMAGE = "sensor_msgs/msg/Image"
POSE = "geometry_msgs/msg/PoseStamped"
JOINT_NAMES = [f"panda_joint{i}" for i in range(1, 8)] + ["panda_finger_joint1", "panda_finger_joint2"]
T0 = 1_000_000_000_000  # 1000 s of simulation time


def _stamp(msg, t_ns: int):
    msg.header.stamp.sec = t_ns // 1_000_000_000
    msg.header.stamp.nanosec = t_ns % 1_000_000_000
    return msg


def make_joint_state(t_ns: int, i: int) -> JointState:
    msg = _stamp(JointState(), t_ns)
    msg.name = list(JOINT_NAMES)
    msg.position = [0.1 * i + 0.01 * j for j in range(7)] + [0.02, 0.02]
    msg.velocity = [0.5] * 9
    return msg


def make_scene(t_ns: int, i: int) -> SceneState:
    msg = _stamp(SceneState(), t_ns)
    msg.source = "ground_truth"
    for k, name in enumerate(("red_block", "blue_block")):
        obj = ObjectState(name=name, category="block", yaw=0.1 * k, confidence=1.0)
        obj.position.x, obj.position.y, obj.position.z = 0.5 + 0.01 * i, -0.1 + 0.2 * k, 0.025
        obj.size.x = obj.size.y = obj.size.z = 0.05
        msg.objects.append(obj)
    msg.workspace = [0.2, 0.75, -0.4, 0.4, 0.0, 0.6]
    msg.gripper_width = 0.08
    return msg


def make_image(t_ns: int, i: int, h: int = 4, w: int = 6) -> Image:
    msg = _stamp(Image(), t_ns)
    msg.height, msg.width, msg.encoding, msg.step = h, w, "rgb8", w * 3
    msg.data = bytes((i + p) % 256 for p in range(h * w * 3))
    return msg


def make_pose(t_ns: int, i: int) -> PoseStamped:
    msg = _stamp(PoseStamped(), t_ns)
    msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = 0.4, 0.01 * i, 0.5
    msg.pose.orientation.w = 1.0
    return msg


def write_sample_bag(path: Path, n: int = 10) -> Path:
    with EpisodeBagWriter(path, {"task": "stack", "seed": 3}) as bag:
        for i in range(n):
            t = T0 + i * 20_000_000
            bag.write("/joint_states", JS, serialize_message(make_joint_state(t, i)), t)
            if i % 5 == 0:
                bag.write("/scene/ground_truth", SCENE, serialize_message(make_scene(t, i)), t)
            if i % 2 == 0:
                bag.write("/cameras/front/color", IMAGE, serialize_message(make_image(t, i)), t)
    return path


# --------------------------------------------------------------------------- pure (no DDS)


def test_bags_with_the_same_definitions_share_one_typestore(tmp_path):
    """An export reads a run's bags with the first one's typestore (a fresh one per bag generated its
    deserialisers again: half of each read); a bag with other definitions gets its own."""
    from rosbags.highlevel import AnyReader

    from llm_trainer.recording.bag_reader import _bag_location, _store_for

    first = write_sample_bag(tmp_path / "bags" / "episode_000001", n=4)
    second = write_sample_bag(tmp_path / "bags" / "episode_000002", n=6)
    other = tmp_path / "bags" / "episode_000003"
    with EpisodeBagWriter(other, {"task": "stack"}) as bag:
        bag.write("/joint_states", JS, serialize_message(make_joint_state(T0, 0)), T0)
    stores = []
    for path in (first, second, other):
        with AnyReader([_bag_location(path)]) as reader:
            stores.append(_store_for(reader))
    assert stores[0] is stores[1] and stores[2] is not stores[0]
    # ... and the shared store reads the second bag as its own would
    streams = read_episode_bag(second)
    assert len(streams["/joint_states"]) == 6 and streams["/joint_states"][5][1].position[0] == pytest.approx(0.5)


def test_bag_roundtrip_from_rclpy_serialized_messages(tmp_path):
    bag = write_sample_bag(tmp_path / "bags" / "episode_000001", n=10)
    streams = read_episode_bag(bag)
    assert set(streams) == {"/joint_states", "/scene/ground_truth", "/cameras/front/color"}
    assert [len(streams[t]) for t in ("/joint_states", "/scene/ground_truth", "/cameras/front/color")] == [10, 2, 5]
    assert [t for t, _ in streams["/joint_states"]] == [T0 + i * 20_000_000 for i in range(10)]

    t3, js = streams["/joint_states"][3]
    assert list(js.name) == JOINT_NAMES
    assert js.position[0] == pytest.approx(0.3)
    assert js.header.stamp.sec * 1_000_000_000 + js.header.stamp.nanosec == t3

    t_scene, scene = streams["/scene/ground_truth"][1]
    assert t_scene == T0 + 5 * 20_000_000
    assert [o.name for o in scene.objects] == ["red_block", "blue_block"]
    assert scene.objects[0].position.x == pytest.approx(0.55)
    assert scene.objects[1].yaw == pytest.approx(0.1)
    assert list(scene.workspace) == pytest.approx([0.2, 0.75, -0.4, 0.4, 0.0, 0.6])

    _, img = streams["/cameras/front/color"][2]
    assert (img.height, img.width, img.encoding) == (4, 6, "rgb8")
    assert bytes(img.data) == bytes(make_image(0, 4).data)

    only_scene = read_episode_bag(bag, topics=["/scene/ground_truth"])
    assert set(only_scene) == {"/scene/ground_truth"}


def test_bag_is_real_mcap_and_summary_counts(tmp_path):
    bag = write_sample_bag(tmp_path / "ep", n=10)
    mcap = bag / "ep.mcap"
    raw = mcap.read_bytes()
    assert raw[:8] == b"\x89MCAP0\r\n" and raw[-8:] == b"\x89MCAP0\r\n"
    assert (bag / "metadata.yaml").exists()
    assert bag_summary(bag) == {"/joint_states": 10, "/scene/ground_truth": 2, "/cameras/front/color": 5}
    assert bag_summary(mcap) == bag_summary(bag)  # the bare .mcap file reads the same

    meta = read_episode_metadata(bag)
    assert meta["task"] == "stack" and meta["seed"] == 3 and meta["status"] == "complete"
    assert meta["bag"]["message_count"] == 17
    assert meta["bag"]["topics"]["/scene/ground_truth"] == {"type": SCENE, "count": 2}
    assert meta["bag"]["start_ns"] == T0
    prov = meta["provenance"]
    assert {"llm_trainer_version", "git_commit", "hostname", "created"} <= set(prov)


def test_header_stamp_peek():
    t = T0 + 123_456_789
    assert header_stamp_ns(serialize_message(make_joint_state(t, 0)), JS) == t
    assert header_stamp_ns(serialize_message(make_image(t, 0)), IMAGE) == t
    assert header_stamp_ns(serialize_message(JointState()), JS) is None  # unset stamp -> receive time
    from rosgraph_msgs.msg import Clock
    from std_msgs.msg import String

    clock = Clock()
    clock.clock.sec = 5
    assert header_stamp_ns(serialize_message(clock), "rosgraph_msgs/msg/Clock") == 5_000_000_000
    assert header_stamp_ns(serialize_message(String(data="x")), "std_msgs/msg/String") is None


def test_writes_reach_disk_before_close_and_close_is_idempotent(tmp_path):
    bag = EpisodeBagWriter(tmp_path / "ep", flush_interval_s=0.0)
    mcap = bag.mcap_path
    marker = "unique_object_name_7f3a"
    scene = make_scene(T0, 0)
    scene.objects[0].name = marker
    bag.write("/scene/ground_truth", SCENE, serialize_message(scene), T0)
    # Without closing, the message is already in a complete (zstd-compressed) chunk on disk: a crash
    # here would not lose it (the mcap stream reader finds it; recording.recovery rebuilds the bag).
    from llm_trainer.recording.recovery import recover_mcap_messages

    topics, messages = recover_mcap_messages(mcap)
    assert topics == [("/scene/ground_truth", SCENE)] and len(messages) == 1
    assert marker.encode() in messages[0][2] and marker.encode() not in mcap.read_bytes()
    assert read_episode_metadata(tmp_path / "ep")["status"] == "recording"
    with pytest.raises(ValueError, match="never closed"):
        read_episode_bag(tmp_path / "ep")
    assert bag.close(success=True) == tmp_path / "ep"
    assert bag.close() == tmp_path / "ep"
    assert bag_summary(tmp_path / "ep") == {"/scene/ground_truth": 1}
    with pytest.raises(RecorderError):
        bag.write("/scene/ground_truth", SCENE, serialize_message(scene), T0)


def test_bag_writer_refuses_overwrite_and_type_change(tmp_path):
    write_sample_bag(tmp_path / "ep", n=1)
    with pytest.raises(FileExistsError):
        EpisodeBagWriter(tmp_path / "ep")
    with EpisodeBagWriter(tmp_path / "ep2") as bag:
        bag.write("/x", JS, serialize_message(make_joint_state(T0, 0)), T0)
        with pytest.raises(ValueError, match="recorded as"):
            bag.write("/x", POSE, serialize_message(make_pose(T0, 0)), T0)
        with pytest.raises(ValueError, match="unknown"):
            bag.add_topic("/y", "no_pkg/msg/Nothing")


def test_context_manager_keeps_partial_episode_on_error(tmp_path):
    with pytest.raises(RuntimeError):
        with EpisodeBagWriter(tmp_path / "ep") as bag:
            bag.write("/joint_states", JS, serialize_message(make_joint_state(T0, 0)), T0)
            raise RuntimeError("sim crashed")
    meta = read_episode_metadata(tmp_path / "ep")
    assert meta["status"] == "error" and meta["success"] is False and "sim crashed" in meta["error"]
    assert bag_summary(tmp_path / "ep") == {"/joint_states": 1}


def test_episode_recorder_lifecycle(tmp_path):
    rec = EpisodeRecorder(tmp_path)
    with pytest.raises(RecorderError, match="START"):
        rec.stop()
    assert rec.write("/joint_states", JS, b"", T0) is False

    path = rec.start("", {"task": "stack", "seed": 1, "instruction": "stack red on blue"})
    assert path == tmp_path / "bags" / "episode_000000"
    with pytest.raises(RecorderError, match="still recording"):
        rec.start()
    assert rec.write("/joint_states", JS, serialize_message(make_joint_state(T0, 0)), T0)
    with pytest.raises(RecorderError, match="does not match"):
        rec.stop("episode_999999")
    stop_meta = {"instruction": "put red on blue", "plan": [{"primitive": "open_gripper"}]}
    summary = rec.stop("episode_000000", stop_meta, success=True)
    assert (summary.episode_id, summary.message_count, summary.success) == ("episode_000000", 1, True)
    meta = read_episode_metadata(path)
    assert meta["task"] == "stack" and meta["seed"] == 1  # from START
    assert meta["instruction"] == "put red on blue"  # STOP overrides START
    assert meta["plan"] == [{"primitive": "open_gripper"}]
    assert meta["success"] is True and meta["aborted"] is False and meta["status"] == "complete"

    assert rec.start() == tmp_path / "bags" / "episode_000001"  # numbering continues
    aborted = rec.abort()
    assert aborted.status == "aborted" and not aborted.success
    assert read_episode_metadata(aborted.bag_path)["aborted"] is True

    with pytest.raises(RecorderError, match="safe directory name"):
        rec.start("../escape")
    rec.start("custom_id")
    rec.stop()
    with pytest.raises(RecorderError, match="already exists"):
        rec.start("custom_id")


# --------------------------------------------------------------------------- ROS: the node in-process


def _wait_for(predicate, timeout: float = 15.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _call(client, request, timeout: float = 20.0):
    future = client.call_async(request)
    done = threading.Event()
    future.add_done_callback(lambda _f: done.set())
    assert done.wait(timeout), "service call timed out"
    return future.result()


@pytest.mark.ros
def test_recorder_node_records_and_the_exporter_reads_its_bag(tmp_path, ros_context):  # ros_context: test/conftest.py
    import h5py
    from rclpy.executors import MultiThreadedExecutor
    from rclpy.parameter import Parameter

    from llm_trainer.nodes.recorder_node import DemoRecorderNode
    from llm_trainer.ros.qos import SCENE_QOS
    from llm_trainer_interfaces.srv import EpisodeControl

    topics = ["/joint_states", "/joint_commands", "/ee_pose", "/scene/ground_truth", "/cameras/front/color"]
    recorder = DemoRecorderNode(
        context=ros_context,
        parameter_overrides=[Parameter("output_dir", value=str(tmp_path)), Parameter("topics", value=topics)],
    )
    sim = rclpy.create_node("fake_sim", context=ros_context)
    client_node = rclpy.create_node("episode_client", context=ros_context)
    pubs = {
        "/joint_states": sim.create_publisher(JointState, "/joint_states", 100),
        "/joint_commands": sim.create_publisher(JointState, "/joint_commands", 100),
        "/ee_pose": sim.create_publisher(PoseStamped, "/ee_pose", 100),
    }
    client = client_node.create_client(EpisodeControl, "/demo_recorder/episode")
    executor = MultiThreadedExecutor(context=ros_context)
    for node in (recorder, sim, client_node):
        executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    try:
        assert client.wait_for_service(timeout_sec=20.0)

        def request(command, episode_id="", metadata=None, success=False):
            req = EpisodeControl.Request(command=command, episode_id=episode_id, task_success=success)
            req.metadata_json = metadata if isinstance(metadata, str) else json.dumps(metadata or {})
            return _call(client, req)

        stop_first = request(EpisodeControl.Request.STOP)
        assert not stop_first.ok and "START" in stop_first.message
        assert not request(EpisodeControl.Request.START, metadata="{not json").ok

        start_meta = {"task": "stack_blocks", "seed": 7, "instruction": "stack", "scene": {"objects": []}}
        started = request(EpisodeControl.Request.START, metadata=start_meta)
        assert started.ok, started.message
        episode_id = started.episode_id
        assert episode_id == "episode_000000"
        assert not request(EpisodeControl.Request.START).ok  # already recording

        # Advertised only after START: the recorder's retry timer must pick it up.
        pubs["/scene/ground_truth"] = sim.create_publisher(SceneState, "/scene/ground_truth", SCENE_QOS)
        for topic, pub in pubs.items():
            _wait_for(lambda p=pub: p.get_subscription_count() >= 1, what=f"the recorder to subscribe {topic}")
        # Both ends must have matched: a reader that has not yet seen the writer drops its first samples.
        _wait_for(
            lambda: set(pubs) <= set(recorder.subscribed_topics()) and not recorder.unmatched_topics(),
            what="the recorder's readers to match the publishers",
        )

        n = 30
        for i in range(n):
            t = T0 + i * 20_000_000
            pubs["/joint_states"].publish(make_joint_state(t, i))
            cmd = make_joint_state(t, i + 1)
            cmd.velocity = []
            pubs["/joint_commands"].publish(cmd)
            pubs["/ee_pose"].publish(make_pose(t, i))
            if i % 5 == 0:
                pubs["/scene/ground_truth"].publish(make_scene(t, i))
        expected = {"/joint_states": n, "/joint_commands": n, "/ee_pose": n, "/scene/ground_truth": n // 5}
        _wait_for(lambda: recorder.recorder.counts() == expected, what=f"counts {expected}")

        mismatched = request(EpisodeControl.Request.STOP, episode_id="episode_000042")
        assert not mismatched.ok and "does not match" in mismatched.message
        bad_until = request(EpisodeControl.Request.STOP, episode_id=episode_id, metadata={"record_until": "late"})
        assert not bad_until.ok and "record_until" in bad_until.message

        last_stamp_s = (T0 + (n - 1) * 20_000_000) / 1e9
        stop_meta = {
            "plan": [{"primitive": "open_gripper"}],
            "instruction": "stack red on blue",
            "record_until": last_stamp_s,
        }
        stopped = request(EpisodeControl.Request.STOP, episode_id=episode_id, metadata=stop_meta, success=True)
        assert stopped.ok, stopped.message
        assert stopped.message_count == sum(expected.values())
        bag = Path(stopped.bag_path)
        assert bag == tmp_path / "bags" / episode_id
        assert bag_summary(bag) == expected
        streams = read_episode_bag(bag, ["/joint_states"])
        assert [t for t, _ in streams["/joint_states"]] == [T0 + i * 20_000_000 for i in range(n)]

        meta = read_episode_metadata(bag)
        assert meta["task"] == "stack_blocks" and meta["seed"] == 7 and meta["scene"] == {"objects": []}
        assert meta["instruction"] == "stack red on blue" and meta["plan"] == stop_meta["plan"]
        assert meta["success"] is True and meta["status"] == "complete"
        assert meta["record_until_reached"] is True

        # The node writes bags only; datasets are exported from them (llm-trainer export).
        assert not (tmp_path / "dataset.hdf5").exists()
        from llm_trainer.datasets.export import ExportOptions, export_run

        export_run(ExportOptions(run_dir=tmp_path, format="robomimic", out=tmp_path / "dataset.hdf5"))
        with h5py.File(tmp_path / "dataset.hdf5", "r") as f:
            demo = f["data/demo_0"]
            assert bool(demo.attrs["success"]) is True
            assert demo.attrs["episode_id"] == episode_id and demo.attrs["task"] == "stack_blocks"
            # 29 steps of 20 ms = 0.58 s of joint states on a 10 Hz grid -> 6 samples.
            assert demo.attrs["num_samples"] == 6 and demo["actions"].shape == (6, 8)
            assert json.loads(demo.attrs["object_names"]) == ["red_block", "blue_block"]
            assert list(f["mask/successful"][()]) == [b"demo_0"]

        # ABORT keeps the bag and flags it; exporters skip it.
        assert request(EpisodeControl.Request.START).ok
        aborted = request(EpisodeControl.Request.ABORT)
        assert aborted.ok and aborted.episode_id == "episode_000001"
        assert read_episode_metadata(aborted.bag_path)["status"] == "aborted"
        options = ExportOptions(run_dir=tmp_path, format="robomimic", out=tmp_path / "again.hdf5")
        assert export_run(options)["skipped"] == {"aborted": 1}
        with h5py.File(tmp_path / "again.hdf5", "r") as f:
            assert list(f["data"].keys()) == ["demo_0"]
        assert not request(EpisodeControl.Request.ABORT).ok
    finally:
        executor.shutdown()
        spinner.join(timeout=10)
        for node in (recorder, sim, client_node):
            node.destroy_node()
