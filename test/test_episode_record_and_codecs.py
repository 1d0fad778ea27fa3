"""The episode record (versioned, typed outcomes), the camera contract, the image codecs, bag recovery."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from llm_trainer.episodes import (
    EpisodeRecord,
    ExecutionRecord,
    Outcome,
    OutcomeKind,
    PlanningRecord,
    classify,
)
from llm_trainer.sensors.cameras import (
    CameraModel,
    camera_of_topic,
    camera_topics,
    quaternion_to_rotation,
    rotation_to_quaternion,
)
from llm_trainer.sensors.image_codec import (
    CodecError,
    decode_color,
    decode_depth,
    depth_to_mm,
    encode_color,
    encode_depth,
)


# ------------------------------------------------------------------ episode record
def _planning(ok: bool = True) -> PlanningRecord:
    return PlanningRecord("oracle", ok, "" if ok else "rejected: primitive 3: it would close on nothing")


def _execution(ok: bool, error: str = "SUCCEEDED", statuses=()) -> ExecutionRecord:
    return ExecutionRecord(ok, error, -1 if ok else 2, "executed" if ok else "primitive 2: collision", list(statuses))


@pytest.mark.parametrize(
    "planning, execution, task_success, kind",
    [
        (_planning(False), None, False, OutcomeKind.PLAN_REJECTED),
        (None, None, False, OutcomeKind.PLAN_REJECTED),
        (_planning(), _execution(False, "COLLISION", [{"status": "pending"}, {"status": "failed"}]), False,
         OutcomeKind.EXECUTION_REFUSED),
        # the same code after a primitive ran is a failure during motion, not a refusal
        (_planning(), _execution(False, "COLLISION", [{"status": "done"}, {"status": "failed"}]), False,
         OutcomeKind.EXECUTION_FAILED),
        (_planning(), _execution(False, "TIMEOUT", [{"status": "failed"}]), False, OutcomeKind.EXECUTION_FAILED),
        (_planning(), _execution(True), False, OutcomeKind.TASK_NOT_ACHIEVED),
        (_planning(), _execution(True), True, OutcomeKind.SUCCESS),
    ],
)  # fmt: skip
def test_outcomes_are_typed(planning, execution, task_success, kind) -> None:
    outcome = classify(planning, execution, task_success)
    assert outcome.kind == kind
    assert outcome.success == (kind == OutcomeKind.SUCCESS)
    if kind == OutcomeKind.PLAN_REJECTED and planning is not None:
        assert "close on nothing" in outcome.reason


def test_record_round_trips_and_refuses_other_versions() -> None:
    record = EpisodeRecord(
        "episode_000007", "stack_blocks", 7, index=7, planning=_planning(), execution=_execution(True),
        outcome=Outcome(OutcomeKind.SUCCESS), success=True, scene={"objects": []}, timing={"wall": 1.5},
    )  # fmt: skip
    text = record.to_json()
    data = json.loads(text)
    assert list(data)[:2] == ["schema", "version"] and data["outcome"] == {"kind": "success", "reason": ""}
    again = EpisodeRecord.from_json(text)
    assert again == record
    with pytest.raises(ValueError, match="version 2"):
        EpisodeRecord.from_dict({**data, "version": 2})
    with pytest.raises(ValueError, match="not an llm_trainer.episode record"):
        EpisodeRecord.from_dict({"task": "x"})
    with pytest.raises(ValueError, match="unknown field"):
        EpisodeRecord.from_dict({**data, "surprise": 1})
    with pytest.raises(ValueError, match="outcome kind"):
        EpisodeRecord.from_dict({**data, "outcome": {"kind": "graph error: something"}})


# ------------------------------------------------------------------ camera contract
def test_camera_topics_follow_image_transport_and_map_back() -> None:
    t = camera_topics("front")
    assert t.color == "/cameras/front/color/image_raw"
    assert t.color_compressed == t.color + "/compressed"
    assert t.depth_compressed == "/cameras/front/depth/image_raw/compressedDepth"
    assert camera_of_topic(t.extrinsics) == ("front", "extrinsics")
    assert camera_of_topic(t.depth_compressed) == ("front", "depth_compressed")
    assert camera_of_topic("/joint_states") is None and camera_of_topic("/cameras/front/other") is None
    # every bag keeps the compressed streams and calibration, never the raw images
    assert set(t.recorded()) == {t.color_compressed, t.depth_compressed, t.camera_info, t.extrinsics}


def test_quaternions_and_deprojection() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        q = rng.normal(size=4)
        q /= np.linalg.norm(q)
        r = quaternion_to_rotation(q)
        assert np.allclose(r @ r.T, np.eye(3), atol=1e-9)
        assert np.allclose(quaternion_to_rotation(rotation_to_quaternion(r)), r, atol=1e-9)
    # A camera 1 m above the table looking straight down sees a flat table at depth 1 m. K in
    # CameraInfo's convention (pixel centres at integers): a centred 64x48 image has cx 31.5, cy 23.5.
    down = np.array([[1.0, 0, 0], [0, -1.0, 0], [0, 0, -1.0]])  # optical z = world -z
    k = np.array([[50.0, 0, 31.5], [0, 50.0, 23.5], [0, 0, 1]])
    cam = CameraModel("top", 64, 48, k, np.array([0.5, 0, 1.0]), down)
    points = cam.world_points(np.ones((48, 64)))
    assert points.shape == (64 * 48, 3) and np.allclose(points[:, 2], 0.0)
    assert abs(points[:, 0].mean() - 0.5) < 1e-9 and abs(points[:, 1].mean()) < 1e-9
    assert CameraModel.from_dict(cam.to_dict()).to_dict() == cam.to_dict()


# ------------------------------------------------------------------ codecs
def test_depth_codec_is_lossless_and_color_jpeg_is_close() -> None:
    rng = np.random.default_rng(1)
    depth = rng.integers(0, 65535, size=(48, 64), dtype=np.uint16)
    fmt, data = encode_depth(depth)
    assert fmt == "16UC1; compressedDepth png" and len(data) > 12
    assert np.array_equal(decode_depth(fmt, data), depth)
    # metric depth -> millimetres: rounding only, 0 where there is no reading
    metres = np.array([[0.0, 0.5004, np.nan], [1.2346, np.inf, -1.0]])
    assert depth_to_mm(metres).tolist() == [[0, 500, 0], [1235, 0, 0]]
    smooth = np.zeros((48, 64, 3), np.uint8)
    smooth[..., 0] = np.linspace(0, 255, 64, dtype=np.uint8)
    smooth[10:30, 20:40] = (20, 200, 60)
    fmt, data = encode_color(smooth, "jpeg", 90)
    assert fmt == "rgb8; jpeg compressed bgr8"
    back = decode_color(fmt, data)
    assert back.shape == smooth.shape and np.abs(back.astype(int) - smooth).mean() < 3
    assert np.abs(back[20, 30].astype(int) - (20, 200, 60)).max() < 12  # channels not swapped
    fmt, data = encode_color(smooth, "png")
    assert np.array_equal(decode_color(fmt, data), smooth)
    with pytest.raises(CodecError):
        decode_depth("32FC1; compressedDepth", data)
    with pytest.raises(CodecError):
        encode_depth(depth.astype(np.float32))


# ------------------------------------------------------------------ a crashed recording
def test_a_bag_that_was_never_closed_is_recovered_and_marked(tmp_path: Path) -> None:
    pytest.importorskip("rclpy")
    from rclpy.serialization import serialize_message
    from sensor_msgs.msg import JointState

    from llm_trainer.recording import EpisodeBagWriter, read_episode_bag, read_episode_metadata
    from llm_trainer.recording.recovery import mark_incomplete

    bag = EpisodeBagWriter(tmp_path / "live" / "episode_000000", {"task": "put_block"}, flush_interval_s=1e9)
    for i in range(40):
        msg = JointState(name=["a"], position=[float(i)])
        msg.header.stamp.sec = 100 + i
        bag.write("/joint_states", "sensor_msgs/msg/JointState", serialize_message(msg), (100 + i) * 10**9)
        if i == 24:
            bag.flush()  # what a crash after this point leaves on disk: 25 messages in closed chunks
    # Copy the files as a SIGKILL would leave them: flushed chunks, no footer, no metadata.yaml.
    crashed = tmp_path / "crashed" / "episode_000000"
    shutil.copytree(bag.path, crashed)
    bag.close()
    assert not (crashed / "metadata.yaml").exists()
    with pytest.raises(ValueError, match="never closed"):
        read_episode_bag(crashed)
    meta = mark_incomplete(crashed, "recorder died (SIGKILL)")
    assert meta["status"] == "incomplete" and meta["incomplete_reason"] == "recorder died (SIGKILL)"
    assert meta["recovered_messages"] == 25
    streams = read_episode_bag(crashed)  # readable again, with every message that reached the disk
    assert [m.position[0] for _, m in streams["/joint_states"]] == [float(i) for i in range(25)]
    assert read_episode_metadata(crashed)["status"] == "incomplete"
    assert mark_incomplete(crashed, "again")["recovered_messages"] == 25  # idempotent on a closed bag
