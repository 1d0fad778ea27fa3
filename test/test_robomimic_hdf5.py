"""robomimic-layout HDF5: layout, masks, numbering across reopen, failed writes, bag conversion."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from llm_trainer.datasets import DatasetError, EpisodeArrays, RobomimicWriter, episode_from_bag, read_demo
from llm_trainer.datasets.robomimic_hdf5 import make_env_args


def synthetic_episode(n: int, success: bool, k: int = 2, seed: int = 0, images: bool = False) -> EpisodeArrays:
    rng = np.random.default_rng(seed)
    return EpisodeArrays(
        actions=rng.normal(size=(n, 8)),
        joint_pos=rng.normal(size=(n, 7)),
        joint_vel=rng.normal(size=(n, 7)),
        gripper_width=np.full((n, 1), 0.08),
        ee_pos=rng.normal(size=(n, 3)),
        ee_quat=np.tile([0.0, 0.0, 0.0, 1.0], (n, 1)),
        object_poses=rng.normal(size=(n, k, 4)),
        object_names=[f"block_{i}" for i in range(k)],
        timestamps=np.arange(n) / 10.0,
        images={"front": rng.integers(0, 255, size=(n, 4, 6, 3), dtype=np.uint8)} if images else {},
        success=success,
        task="stack_blocks",
        seed=seed,
        instruction="stack the red block on the blue block",
        plan=[{"primitive": "open_gripper"}],
        scene={"objects": [{"name": "block_0"}]},
        episode_id=f"episode_{seed:06d}",
        bag_path=f"/data/bags/episode_{seed:06d}",
        provenance={"llm_trainer_version": "0.1.0"},
    )


def test_layout_masks_and_totals(tmp_path):
    path = tmp_path / "dataset.hdf5"
    writer = RobomimicWriter(path, env_args=make_env_args("mujoco", "stack_blocks", {"rate_hz": 10}))
    names = [
        writer.append(synthetic_episode(5, True, seed=0, images=True)),
        writer.append(synthetic_episode(7, False, seed=1)),
        writer.append(synthetic_episode(4, True, seed=2)),
    ]
    assert names == ["demo_0", "demo_1", "demo_2"]

    with h5py.File(path, "r") as f:
        data = f["data"]
        assert data.attrs["total"] == 16
        env_args = json.loads(data.attrs["env_args"])
        assert env_args["simulator"] == "mujoco" and env_args["task"] == "stack_blocks"
        assert env_args["config"] == {"rate_hz": 10} and env_args["env_name"] == "stack_blocks"
        assert list(f["mask/successful"][()]) == [b"demo_0", b"demo_2"]
        assert list(f["mask/failed"][()]) == [b"demo_1"]

        demo = data["demo_1"]
        assert demo.attrs["num_samples"] == 7
        assert bool(demo.attrs["success"]) is False
        assert demo.attrs["task"] == "stack_blocks" and demo.attrs["seed"] == 1
        assert demo.attrs["instruction"].startswith("stack the red")
        assert json.loads(demo.attrs["plan_json"]) == [{"primitive": "open_gripper"}]
        assert json.loads(demo.attrs["scene_json"]) == {"objects": [{"name": "block_0"}]}
        assert demo.attrs["episode_id"] == "episode_000001"
        assert demo.attrs["bag_path"] == "/data/bags/episode_000001"
        assert json.loads(demo.attrs["provenance_json"])["llm_trainer_version"] == "0.1.0"
        assert json.loads(demo.attrs["object_names"]) == ["block_0", "block_1"]
        shapes = {
            "actions": (7, 8),
            "obs/joint_pos": (7, 7),
            "obs/joint_vel": (7, 7),
            "obs/gripper_width": (7, 1),
            "obs/ee_pos": (7, 3),
            "obs/ee_quat": (7, 4),
            "obs/object_poses": (7, 2, 4),
            "dones": (7,),
            "rewards": (7,),
        }
        for key, shape in shapes.items():
            assert demo[key].shape == shape, key
        assert list(demo["dones"][()]) == [0] * 6 + [1]
        assert list(demo["rewards"][()]) == [0.0] * 7  # failed: no reward at the end
        assert data["demo_0"]["rewards"][-1] == 1.0
        assert data["demo_0"]["obs/front_rgb"].shape == (5, 4, 6, 3)
        assert data["demo_0"]["obs/front_rgb"].dtype == np.uint8
        assert "front_rgb" not in data["demo_1"]["obs"]

    back = read_demo(path, "demo_0")
    original = synthetic_episode(5, True, seed=0, images=True)
    np.testing.assert_array_equal(back.actions, original.actions)
    np.testing.assert_array_equal(back.images["front"], original.images["front"])
    assert back.success and back.object_names == ["block_0", "block_1"]


def test_numbering_continues_after_reopen(tmp_path):
    path = tmp_path / "dataset.hdf5"
    first = RobomimicWriter(path)
    for i in range(3):
        first.append(synthetic_episode(3, i != 1, seed=i))
    reopened = RobomimicWriter(path)
    assert reopened.num_demos == 3
    assert reopened.append(synthetic_episode(6, False, seed=3)) == "demo_3"
    with h5py.File(path, "r") as f:
        assert f["data"].attrs["total"] == 15
        assert list(f["mask/failed"][()]) == [b"demo_1", b"demo_3"]
        assert json.loads(f["data"].attrs["env_args"])["env_name"] == "stack_blocks"


def test_failed_write_leaves_earlier_demos_intact(tmp_path):
    path = tmp_path / "dataset.hdf5"
    writer = RobomimicWriter(path)
    writer.append(synthetic_episode(4, True, seed=0))
    writer.append(synthetic_episode(5, False, seed=1))

    bad_shape = synthetic_episode(4, True, seed=2)
    bad_shape.joint_pos = np.zeros((4, 6))
    with pytest.raises(DatasetError, match="joint_pos"):
        writer.append(bad_shape)

    # This one passes validation and fails halfway through writing (a set is not JSON).
    unserialisable = synthetic_episode(4, True, seed=3)
    unserialisable.plan = {"not", "json"}
    with pytest.raises(TypeError):
        writer.append(unserialisable)

    with h5py.File(path, "r") as f:
        assert sorted(f["data"].keys()) == ["demo_0", "demo_1"]
        assert f["data"].attrs["total"] == 9
    np.testing.assert_array_equal(read_demo(path, "demo_1").actions, synthetic_episode(5, False, seed=1).actions)
    assert writer.append(synthetic_episode(2, True, seed=4)) == "demo_2"


def test_episode_from_bag_resamples_nearest_previous(tmp_path):
    rclpy_serialization = pytest.importorskip("rclpy.serialization")
    from geometry_msgs.msg import PoseStamped
    from sensor_msgs.msg import Image, JointState

    from llm_trainer.recording import EpisodeBagWriter
    from llm_trainer_interfaces.msg import ObjectState, SceneState

    ser = rclpy_serialization.serialize_message
    names = [f"panda_joint{i}" for i in range(1, 8)] + ["panda_finger_joint1", "panda_finger_joint2"]
    t0 = 500_000_000_000

    def stamp(msg, t):
        msg.header.stamp.sec, msg.header.stamp.nanosec = t // 1_000_000_000, t % 1_000_000_000
        return msg

    bag_dir = tmp_path / "bags" / "episode_000003"
    meta = {"task": "stack_blocks", "seed": 11, "instruction": "stack", "plan": [], "scene": {}, "success": True}
    with EpisodeBagWriter(bag_dir, meta) as bag:
        for i in range(51):  # 1.0 s of joint states at 50 Hz
            t = t0 + i * 20_000_000
            js = stamp(JointState(), t)
            js.name = names
            js.position = [float(i)] * 7 + [0.01 * (i % 5), 0.01 * (i % 5)]
            js.velocity = [1.0] * 9
            bag.write("/joint_states", "sensor_msgs/msg/JointState", ser(js), t)
            cmd = stamp(JointState(), t)
            cmd.name = names
            cmd.position = [float(i) + 0.5] * 7 + [0.04, 0.04]
            bag.write("/joint_commands", "sensor_msgs/msg/JointState", ser(cmd), t)
            pose = stamp(PoseStamped(), t)
            pose.pose.position.x = float(i)
            pose.pose.orientation.w = 1.0
            bag.write("/ee_pose", "geometry_msgs/msg/PoseStamped", ser(pose), t)
            if i % 5 == 0:  # 10 Hz scene
                scene = stamp(SceneState(), t)
                obj = ObjectState(name="red_block", yaw=0.3)
                obj.position.x = float(i)
                scene.objects = [obj]
                bag.write("/scene/ground_truth", "llm_trainer_interfaces/msg/SceneState", ser(scene), t)
            if i % 10 == 0:  # 5 Hz camera
                img = stamp(Image(), t)
                img.height, img.width, img.encoding, img.step = 2, 3, "rgb8", 9
                img.data = bytes([i] * 18)
                bag.write("/cameras/front/color", "sensor_msgs/msg/Image", ser(img), t)
        bag.close(success=True)

    ep = episode_from_bag(bag_dir, rate_hz=10.0, include_images=True)
    assert ep.num_samples == 11  # 0.0 .. 1.0 s at 10 Hz
    np.testing.assert_allclose(ep.timestamps, np.arange(11) / 10.0)
    # Grid step k sits exactly on joint state 5k.
    np.testing.assert_allclose(ep.joint_pos[:, 0], 5.0 * np.arange(11))
    np.testing.assert_allclose(ep.actions[:, 0], 5.0 * np.arange(11) + 0.5)
    np.testing.assert_allclose(ep.actions[:, 7], 0.08)
    np.testing.assert_allclose(ep.gripper_width[:, 0], 0.0)  # (5k % 5) * 0.02
    np.testing.assert_allclose(ep.joint_vel, 1.0)
    np.testing.assert_allclose(ep.ee_pos[:, 0], 5.0 * np.arange(11))
    np.testing.assert_allclose(ep.ee_quat, np.tile([0, 0, 0, 1.0], (11, 1)))
    assert ep.object_names == ["red_block"]
    np.testing.assert_allclose(ep.object_poses[:, 0, 0], 5.0 * np.arange(11))
    np.testing.assert_allclose(ep.object_poses[:, 0, 3], 0.3)
    # The camera runs at 5 Hz: odd grid steps repeat the previous frame.
    assert ep.images["front"].shape == (11, 2, 3, 3)
    assert [int(ep.images["front"][k, 0, 0, 0]) for k in range(4)] == [0, 0, 10, 10]
    assert ep.success and ep.task == "stack_blocks" and ep.seed == 11 and ep.episode_id == "episode_000003"
    assert ep.bag_path == str(bag_dir) and "hostname" in ep.provenance

    assert RobomimicWriter(tmp_path / "d.hdf5").append(ep) == "demo_0"
    assert episode_from_bag(bag_dir, rate_hz=10.0).images == {}
