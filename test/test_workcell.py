"""The workcell URDF: the Panda, the table and the camera frames from the same sources as the simulator."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import yaml

from llm_trainer.sensors.realsense import load_realsense_config
from llm_trainer.sim.workcell import rotation_to_rpy, rpy_to_rotation, workcell_urdf


def _joints(urdf: str) -> dict[str, ET.Element]:
    return {j.get("name"): j for j in ET.fromstring(urdf).iter("joint")}


def _origin(joint: ET.Element) -> tuple[np.ndarray, np.ndarray]:
    o = joint.find("origin")
    return np.array(o.get("xyz").split(), float), rpy_to_rotation([float(v) for v in o.get("rpy").split()])


def test_rpy_round_trips_rotations() -> None:
    from scipy.spatial.transform import Rotation

    for r in Rotation.random(50, random_state=0).as_matrix():
        assert rpy_to_rotation(rotation_to_rpy(r)) == pytest.approx(r, abs=1e-9)


def test_the_committed_workcell_is_the_generated_one_and_a_tree(repo_root) -> None:
    urdf = workcell_urdf()
    assert (repo_root / "urdf" / "workcell.urdf").read_text() == urdf, (
        "urdf/workcell.urdf is stale: regenerate with `llm-trainer urdf --workcell > urdf/workcell.urdf`"
    )
    root = ET.fromstring(urdf)
    links = {link.get("name") for link in root.iter("link")}
    children = [j.find("child").get("link") for j in root.iter("joint")]
    assert len(children) == len(set(children)) == len(links) - 1  # every link but world has one parent
    assert {j.find("parent").get("link") for j in root.iter("joint")} <= links
    assert "world" in links and "world" not in children and "panda_hand_tcp" in links


def test_camera_frames_and_table_match_the_simulator() -> None:
    from llm_trainer.sim.mujoco_sim import MujocoSimulation
    from llm_trainer.sim.sim_config import SimConfig
    from llm_trainer.tasks.registry import get_task

    joints = _joints(workcell_urdf())
    sim = MujocoSimulation(SimConfig(render_cameras=False))
    try:
        sim.reset(get_task("put_block"), 0, settle=False)
        for cam in load_realsense_config().cameras:
            pos, rot = _origin(joints[f"{cam.name}_camera_joint"])
            assert pos == pytest.approx(cam.extrinsics.position, abs=1e-6)
            assert rot == pytest.approx(cam.extrinsics.rotation(), abs=1e-6)
            sim_pos, sim_rot = sim.camera_pose_optical(cam.name)
            assert pos == pytest.approx(sim_pos, abs=1e-4) and rot == pytest.approx(sim_rot, abs=1e-4)
        table = sim.model.geom("table")
        box = ET.fromstring(workcell_urdf()).find("link[@name='table']/collision")
        assert np.array(box.find("origin").get("xyz").split(), float) == pytest.approx(sim.model.geom_pos[table.id])
        size = np.array(box.find("geometry/box").get("size").split(), float)
        assert size == pytest.approx(2 * sim.model.geom_size[table.id])
    finally:
        sim.close()


def test_a_calibration_file_moves_the_camera_frames(tmp_path, repo_root) -> None:
    data = yaml.safe_load((repo_root / "config" / "realsense.yaml").read_text())
    data["realsense"]["cameras"][0]["extrinsics"]["position"] = [1.4, 0.05, 0.71]
    path = tmp_path / "calibration.yaml"
    path.write_text(yaml.safe_dump(data))
    name = data["realsense"]["cameras"][0]["name"]
    pos, _ = _origin(_joints(workcell_urdf(path))[f"{name}_camera_joint"])
    assert pos == pytest.approx([1.4, 0.05, 0.71])
    proc = subprocess.run([sys.executable, "-m", "llm_trainer.cli", "urdf", "--calibration", str(path)],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 2 and "--calibration goes with --workcell" in proc.stderr
