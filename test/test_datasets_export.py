"""Exporters on a real recorded run (graph, cameras, MCAP), each read back by an independent reader.

The bag side is read with the ``mcap`` library and its ROS 2 decoder (the users' MCAP reader), not
with our own bag code; the exports are read with h5py / robomimic's ``SequenceDataset`` (robomimic),
pyarrow / lerobot's ``LeRobotDataset`` (LeRobot) and json (SFT). The users' own readers live in side
venvs (``make reader-venvs``); their tests are skipped, with that reason, where those are absent.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from llm_trainer.datasets.export import ExportOptions, export_run
from llm_trainer.episodes import EpisodeRecord

pytestmark = [pytest.mark.ros, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
READERS = REPO / ".venv-readers"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, ros_env) -> Path:
    import os

    from llm_trainer.datagen.generate import GenerateOptions, generate

    for key in ("ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_LOG_DIR", "MUJOCO_GL"):
        os.environ[key] = ros_env[key]
    out = tmp_path_factory.mktemp("export") / "run"
    summary = generate(GenerateOptions(task="put_block", episodes=2, seed=3, out=out), log=lambda _l: None)
    assert summary["successes"] == 2, summary
    return out


def _mcap_messages(bag: Path, topic: str) -> list:
    """(log_time, decoded message) of one topic, through mcap + mcap_ros2 (independent of rosbags)."""
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    with open(next(bag.glob("*.mcap")), "rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        return [(m.log_time, d) for _, _, m, d in reader.iter_decoded_messages(topics=[topic])]


def _grid_index(stamps: np.ndarray, grid: np.ndarray) -> np.ndarray:
    return np.clip(np.searchsorted(stamps, grid, side="right") - 1, 0, len(stamps) - 1)


def _ns(msg) -> int:
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


def test_robomimic_export_matches_the_bag(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "demo.hdf5"
    summary = export_run(ExportOptions(run_dir, "robomimic", out, images=True, depth=True, rate_hz=10.0))
    assert summary["demos"] == 2 and not (tmp_path / "demo.hdf5.partial").exists()
    bag = run_dir / "bags" / "put_block_000000"
    joints = _mcap_messages(bag, "/joint_states")
    commands = _mcap_messages(bag, "/joint_commands")
    colors = _mcap_messages(bag, "/cameras/front/color/image_raw/compressed")
    depths = _mcap_messages(bag, "/cameras/left/depth/image_raw/compressedDepth")
    js_t = np.array(sorted(_ns(m) for _, m in joints))
    grid = js_t[0] + 100_000_000 * np.arange(int((js_t[-1] - js_t[0]) // 100_000_000) + 1)
    with h5py.File(out, "r") as f:
        demo = f["data/demo_0"]
        record = EpisodeRecord.from_dict(json.loads(demo.attrs["record_json"]))
        assert record.episode_id == "put_block_000000" and record.seed == 3 and demo.attrs["success"]
        n = int(demo.attrs["num_samples"])
        assert n == len(grid) == demo["actions"].shape[0] and f["data"].attrs["total"] == summary["samples"]
        # actions: the commanded joints at each grid time, straight from the bag
        cmd_sorted = sorted(commands, key=lambda x: _ns(x[1]))
        cmd_t = np.array([_ns(m) for _, m in cmd_sorted])
        expected = np.array([list(cmd_sorted[i][1].position[:7]) for i in _grid_index(cmd_t, grid)])
        assert np.allclose(demo["actions"][:, :7], expected)
        assert np.allclose(demo["next_obs/joint_pos"][:-1], demo["obs/joint_pos"][1:])
        # colour frames are the bag's JPEGs decoded (OpenCV here too, but from mcap's bytes)
        import cv2

        col_sorted = sorted(colors, key=lambda x: _ns(x[1]))
        col_t = np.array([_ns(m) for _, m in col_sorted])
        k = _grid_index(col_t, grid)[n // 2]
        jpeg = cv2.imdecode(np.frombuffer(bytes(col_sorted[k][1].data), np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1]
        assert np.array_equal(demo["obs/front_image"][n // 2], jpeg)
        assert demo["obs/front_image"].shape == (n, 240, 320, 3) and demo["obs/front_image"].dtype == np.uint8
        # depth is lossless: the PNG's millimetres, as metres
        dep_sorted = sorted(depths, key=lambda x: _ns(x[1]))
        dep_t = np.array([_ns(m) for _, m in dep_sorted])
        raw = bytes(dep_sorted[_grid_index(dep_t, grid)[0]][1].data)[12:]
        mm = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_UNCHANGED)
        assert np.array_equal(demo["obs/left_depth"][0, :, :, 0], mm.astype(np.float32) * np.float32(0.001))
        assert sorted(m.decode() for m in f["mask/successful"][()]) == ["demo_0", "demo_1"]
        assert len(f["mask/train"]) + len(f["mask/valid"]) == 2
        env_args = json.loads(f["data"].attrs["env_args"])
        assert env_args["llm_trainer"]["action_space"] == "joint_pos"


def test_action_spaces_agree_with_each_other(run_dir: Path, tmp_path: Path) -> None:
    from llm_trainer.datasets.bag_episode import episode_from_bag
    from llm_trainer.motion.kinematics import PandaKinematics

    ep = episode_from_bag(run_dir / "bags" / "put_block_000001", 10.0)
    fk = PandaKinematics()
    for i in (0, ep.num_samples // 2, ep.num_samples - 1):
        pos, _ = fk.forward(ep.actions["joint_pos"][i, :7])
        assert np.allclose(ep.actions["ee_pose_abs"][i, :3], pos)
        meas, _ = fk.forward(ep.obs["joint_pos"][i])
        assert np.allclose(ep.actions["ee_pose_delta"][i, :3], pos - meas)
    # the commanded TCP leads the measured one by at most a servo lag, and ends where it stopped
    assert np.abs(ep.actions["ee_pose_delta"][:, :3]).max() < 0.05
    assert ep.cameras["front"]["K"][0][0] > 0 and len(ep.cameras) == 3


def test_sft_prompt_is_the_logged_prompt_byte_for_byte(run_dir: Path, tmp_path: Path, repo_root) -> None:
    """A replay-backed run (answers: the oracle run's canonical plans) logs real prompts; the SFT
    export of that run carries exactly those prompts and the model's answers."""
    import yaml

    from llm_trainer.datagen.generate import GenerateOptions, generate

    oracle_sft = tmp_path / "oracle.jsonl"
    export_run(ExportOptions(run_dir, "sft-jsonl", oracle_sft))
    oracle_rows = [json.loads(x) for x in oracle_sft.read_text().splitlines()]
    assert [r["completion_source"] for r in oracle_rows] == ["canonical", "canonical"]
    answers = tmp_path / "answers.jsonl"
    answers.write_text("".join(json.dumps({"instruction": r["instruction"], "raw_answer": r["completion"]}) + "\n"
                               for r in oracle_rows))  # fmt: skip
    planner_cfg = yaml.safe_load((repo_root / "config" / "planner.yaml").read_text())
    planner_cfg["planner"]["replay"]["path"] = str(answers)
    (tmp_path / "planner.yaml").write_text(yaml.safe_dump(planner_cfg))
    graph = yaml.safe_load((repo_root / "config" / "graphs" / "sim.yaml").read_text())
    for node in graph["nodes"]:
        if node["name"] == "planner":
            node["parameters"]["config_file"] = str(tmp_path / "planner.yaml")
    (tmp_path / "graph.yaml").write_text(yaml.safe_dump(graph))
    replay_run = tmp_path / "replay"
    summary = generate(
        GenerateOptions(task="put_block", episodes=2, seed=3, out=replay_run, planner="replay",
                        render_cameras=False, graph=str(tmp_path / "graph.yaml")),
        log=lambda _l: None,
    )  # fmt: skip
    assert summary["successes"] == 2, summary
    sft = tmp_path / "replay.jsonl"
    export_run(ExportOptions(replay_run, "sft-jsonl", sft))
    rows = [json.loads(x) for x in sft.read_text().splitlines()]
    logged = {
        e["episode_id"]: e for e in map(json.loads, (replay_run / "planner_requests.jsonl").read_text().splitlines())
    }
    assert len(rows) == 2
    for row in rows:
        entry = logged[row["episode_id"]]
        assert row["prompt"].encode() == entry["prompt"].encode() and row["prompt"]
        assert row["completion"] == entry["raw_answer"] and row["completion_source"] == "model"
        assert row["messages"][:-1] == entry["prompt_messages"] and row["messages"][-1]["role"] == "assistant"
        assert row["seed"] == entry["seed"] and row["prompt_version"] == "malmm-single-v1"
    # The oracle's prompts are what the same builder makes for those scenes: equal to the model's.
    by_seed = {r["seed"]: r for r in oracle_rows}
    assert all(by_seed[r["seed"]]["prompt"] == r["prompt"] for r in rows)


def _reader(name: str) -> Path:
    python = READERS / name / "bin" / "python"
    if not python.exists():
        pytest.skip(f"{name}'s own reader is not installed here (`make reader-venvs` puts it in {READERS / name})")
    return python


def test_robomimic_sequence_dataset_loads_the_export(run_dir: Path, tmp_path: Path) -> None:
    python = _reader("robomimic")
    out = tmp_path / "demo.hdf5"
    export_run(ExportOptions(run_dir, "robomimic", out, images=True))
    script = f"""
import json, numpy as np
import robomimic.utils.obs_utils as ObsUtils
from robomimic.utils.dataset import SequenceDataset
ObsUtils.initialize_obs_utils_with_obs_specs({{"obs": {{"low_dim": ["joint_pos", "gripper_width", "ee_pos", "object"],
                                                      "rgb": ["front_image"]}}}})
ds = SequenceDataset(hdf5_path={str(out)!r}, obs_keys=("joint_pos", "gripper_width", "ee_pos", "object", "front_image"),
                     dataset_keys=("actions", "rewards", "dones"), seq_length=10)
item = ds[5]
print(json.dumps({{"len": len(ds), "demos": ds.n_demos, "actions": list(item["actions"].shape),
                  "image": list(item["obs"]["front_image"].shape), "next": sorted(item["next_obs"])}}))
"""
    proc = subprocess.run([str(python), "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    with h5py.File(out, "r") as f:
        total = int(f["data"].attrs["total"])
    assert result["demos"] == 2 and result["len"] == total
    assert result["actions"] == [10, 8] and result["image"][0] == 10
    assert result["next"] == ["ee_pos", "front_image", "gripper_width", "joint_pos", "object"]


def test_lerobot_dataset_loads_the_export(run_dir: Path, tmp_path: Path) -> None:
    python = _reader("lerobot")
    from llm_trainer.datasets.bag_episode import episode_from_bag

    out = tmp_path / "lerobot"
    summary = export_run(ExportOptions(run_dir, "lerobot", out, images=True, rate_hz=10.0))
    episodes = [episode_from_bag(run_dir / "bags" / f"put_block_00000{i}", 10.0, images=True) for i in range(2)]
    expected = {
        "num_episodes": 2,
        "num_frames": sum(e.num_samples for e in episodes),
        "episodes": [
            {
                "length": e.num_samples,
                "task": e.instruction,
                "episode_id": e.episode_id,
                "first_action": e.actions["joint_pos"][0].tolist(),
                "first_state": np.concatenate([e.obs["joint_pos"][0], e.obs["gripper_width"][0]]).tolist(),
                "first_frame": {"front": e.images["front"][0].tolist()},
            }
            for e in episodes
        ],
        "max_pixel_mae": 4.0,
    }
    (tmp_path / "expected.json").write_text(json.dumps(expected))
    proc = subprocess.run(
        [str(python), str(REPO / "test" / "lerobot_reader_check.py"), str(out), str(tmp_path / "expected.json")],
        capture_output=True, text=True, timeout=600, env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1])["ok"] is True
    assert summary["episodes"] == 2


def test_export_cli_refuses_bad_input_in_one_line(run_dir: Path, tmp_path: Path, ros_env) -> None:
    exe = Path(sys.prefix) / "bin" / "llm-trainer"
    for args, message in (
        (["--from", str(tmp_path / "no"), "--format", "robomimic", "--out", str(tmp_path / "x")], "no run directory"),
        (["--from", str(run_dir), "--format", "robomimic", "--out", str(run_dir / "dataset.hdf5")], "exists"),
        (["--from", str(run_dir), "--format", "robomimic", "--out", str(tmp_path / "y"), "--rate", "0"], "--rate"),
    ):  # fmt: skip
        proc = subprocess.run([str(exe), "export", *args], capture_output=True, text=True, env=ros_env, timeout=120)
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and message in proc.stderr, proc.stderr


def test_video_encoding_leaves_the_scheduling_policy_alone(tmp_path: Path) -> None:
    """libsvtav1 switches its calling thread to SCHED_FIFO 99 when it may (root); every node started
    afterwards inherited it and the graph's busy loops starved the simulator. The exporter restores it."""
    import os

    from llm_trainer.datasets.episode_data import EpisodeData
    from llm_trainer.datasets.exporters.lerobot import write_lerobot_dataset

    n = 6
    frames = np.zeros((n, 48, 64, 3), np.uint8)
    frames[:, 10:20, 10:20] = 200
    ep = EpisodeData(
        "ep0", "t", "do it", 0, True, 10.0, np.arange(n) / 10.0,
        {"joint_pos": np.zeros((n, 7)), "gripper_width": np.zeros((n, 1))}, {"joint_pos": np.zeros((n, 8))},
        images={"front": frames},
    )  # fmt: skip
    before = (os.sched_getscheduler(0), os.sched_getparam(0))
    for codec in ("libsvtav1", "libx264"):
        try:
            write_lerobot_dataset([ep], tmp_path / codec, vcodec=codec)
        except Exception as exc:  # noqa: BLE001 - an encoder this PyAV lacks is not the point here
            if "encoder" not in str(exc):
                raise
        assert (os.sched_getscheduler(0), os.sched_getparam(0)) == before, codec


def test_show_writes_a_contact_sheet_videos_and_a_summary(run_dir: Path, tmp_path: Path) -> None:
    import av
    import cv2

    from llm_trainer.datasets.bag_episode import episode_from_bag
    from llm_trainer.datasets.show import show_run

    summary = show_run(run_dir, episode="put_block_000001", out=tmp_path)
    assert summary["episodes"] == 2 and summary["success_per_task"] == {"put_block": "2/2"}
    sheet = cv2.imread(str(tmp_path / "put_block_000001_sheet.png"))
    assert sheet is not None and sheet.shape[0] >= 3 * 240 and sheet.shape[1] >= 6 * 320  # 3 cameras x 6 times
    ep = episode_from_bag(run_dir / "bags" / "put_block_000001", 10.0)
    for cam in ("front", "left", "right"):
        with av.open(str(tmp_path / f"put_block_000001_{cam}.mp4")) as video:
            assert sum(1 for _ in video.decode(video=0)) == ep.num_samples
    assert json.loads((tmp_path / "summary.json").read_text())["successes"] == 2
    with pytest.raises(FileNotFoundError, match="no complete episode"):
        show_run(run_dir, episode="episode_999999", out=tmp_path)
