"""The simulator bridges behind the simulator interface: CoppeliaSim against a local stand-in of its ZeroMQ
remote API (test/coppeliasim_standin.py), Gazebo's generated world and ros_gz_bridge configuration against
the camera contract and the topics the adaptor uses. Neither simulator exists on this machine."""

from __future__ import annotations

import math
import subprocess
import sys
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import yaml

pytest.importorskip("zmq")
pytest.importorskip("cbor2")

from coppeliasim_standin import CoppeliaStandIn, FakeScene  # noqa: E402

from llm_trainer.sensors.cameras import camera_topics, optical_frame  # noqa: E402
from llm_trainer.sim import panda_description as panda  # noqa: E402
from llm_trainer.sim import topics as sim_topics  # noqa: E402
from llm_trainer.sim.base import Simulator, optical_rotation_look_at, pinhole_intrinsics  # noqa: E402
from llm_trainer.sim.coppeliasim.adaptor import CoppeliaConfig, CoppeliaSimulation  # noqa: E402
from llm_trainer.sim.coppeliasim.remote_api import RemoteApiClient, RemoteApiError  # noqa: E402
from llm_trainer.sim.gazebo.adaptor import GazeboLink, GazeboSimulation, link_topics  # noqa: E402
from llm_trainer.sim.gazebo.bridge import bridge_entries, bridge_yaml, check_bridge_entries  # noqa: E402
from llm_trainer.sim.gazebo.names import GazeboNames  # noqa: E402
from llm_trainer.sim.gazebo.world import build_world_sdf, horizontal_fov  # noqa: E402
from llm_trainer.sim.sim_config import SimConfig, load_sim_config  # noqa: E402
from llm_trainer.tasks.registry import get_task  # noqa: E402


@pytest.fixture
def standin():
    with CoppeliaStandIn(FakeScene(dt=0.01)) as server:
        yield server


@pytest.fixture
def client(standin):
    c = RemoteApiClient("127.0.0.1", standin.port, timeout_s=5.0, connect_timeout_s=2.0)
    yield c
    c.close()


def small_config() -> SimConfig:
    cfg = SimConfig(settle_time=0.05)
    for cam in cfg.cameras:
        cam.width, cam.height = 32, 24
    return cfg


# ------------------------------------------------------------------ CoppeliaSim: the wire protocol
def test_requests_have_the_protocol_2_shape(standin, client):
    sim = client.require("sim")
    assert sim.getObject("/panda/panda_joint1") == standin.scene.handle_of("panda_joint1")
    first, *rest = standin.requests
    assert first["func"] == "zmqRemoteApi.require" and first["args"] == ["sim"] and first["argsL"] == 1
    assert first["ver"] == 2 and first["lang"] == "python" and isinstance(first["timeout"], int)
    assert all("ver" not in r for r in rest), "ver is sent on the first contact only"
    assert {r["uuid"] for r in standin.requests} == {client.uuid}
    assert [r["func"] for r in rest] == ["zmqRemoteApi.info", "sim.getObject"]


def test_replies_unwrap_errors_raise(standin, client):
    sim = client.require("sim")
    assert sim.handle_world == -1  # a constant from zmqRemoteApi.info
    assert sim.getSimulationState() == 0  # one return value
    h = sim.createVisionSensor(1, [4, 3, 0, 0], [0.05, 3.0, 1.0, 0.01, 0, 0, 0, 0, 0, 0, 0])
    buf, res = sim.getVisionSensorImg(h)  # two return values -> a tuple
    assert res == [4, 3] and len(buf) == 4 * 3 * 3
    assert sim.setObjectAlias(h, "cam") is None  # none -> None
    with pytest.raises(RemoteApiError, match=r"sim.getObject: Object does not exist"):
        sim.getObject("/nothing")
    with pytest.raises(RemoteApiError, match="No such function: sim.noSuchThing"):
        client.call("sim.noSuchThing", [])
    with pytest.raises(AttributeError, match="no function or constant 'noSuchThing'"):
        _ = sim.noSuchThing
    assert sim.getSimulationTime() == 0.0  # the connection still works after errors


def test_step_answers_the_servers_wait(standin, client):
    sim = client.require("sim")
    sim.setStepping(True)
    sim.startSimulation()
    sim.step()
    sim.step()
    funcs = [r["func"] for r in standin.requests]
    assert funcs.count("sim.step") == 2 and funcs.count("_*executed*_") == 2
    assert funcs.index("_*executed*_") == funcs.index("sim.step") + 1
    assert sim.getSimulationTime() == pytest.approx(0.02)


def test_a_protocol_1_server_reply_is_an_error():
    assert "success" in CoppeliaStandIn().handle({"func": "sim.getObject", "args": ["/x"]})  # no uuid: protocol 1

    class OldServer(CoppeliaStandIn):
        def handle(self, req):
            return {"success": False, "error": "version mismatch"}

    with OldServer() as server, RemoteApiClient("127.0.0.1", server.port, connect_timeout_s=2.0) as c:
        with pytest.raises(RemoteApiError, match="another protocol version.*version mismatch"):
            c.call("sim.getObject", ["/x"])


def test_no_server_is_one_clear_error():
    import zmq

    ctx = zmq.Context()
    sock = ctx.socket(zmq.REP)
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    sock.close(linger=0)  # nobody listens there any more
    ctx.term()
    with RemoteApiClient("127.0.0.1", port, connect_timeout_s=0.3) as c:
        with pytest.raises(RemoteApiError, match=r"no reply from tcp://127.0.0.1:\d+ within 0.3 s"):
            c.require("sim")


def test_official_client_speaks_to_the_standin(standin):
    """The stand-in is shaped after the real server: the official client must work against it unchanged."""
    official = pytest.importorskip("coppeliasim_zmqremoteapi_client")
    c = official.RemoteAPIClient("127.0.0.1", standin.port)
    try:
        sim = c.require("sim")
        assert sim.getObject("/panda/panda_joint3") == standin.scene.handle_of("panda_joint3")
        sim.setStepping(True)
        sim.startSimulation()
        sim.step()
        assert sim.getSimulationTime() == pytest.approx(0.01)
        with pytest.raises(Exception, match="Object does not exist"):
            sim.getObject("/nothing")
    finally:  # its socket lingers forever by default: a garbage-collected context would then block
        c.socket.close(linger=0)
        c.context.term()


# ------------------------------------------------------------------ CoppeliaSim: the adaptor
def test_coppelia_reset_spawns_the_task_and_checks_success(standin):
    bridge = CoppeliaConfig(port=standin.port, scene="panda_lab.ttt", connect_timeout_s=2.0, call_timeout_s=5.0)
    sim = CoppeliaSimulation(small_config(), bridge)
    try:
        instance = sim.reset(get_task("put_block"), 3)
        scene = standin.scene
        assert isinstance(sim, Simulator) and scene.loaded_scene == "panda_lab.ttt"
        for spec in instance.objects:
            obj = scene.objects[scene.handle_of(spec.name)]
            assert obj.pose[:3] == pytest.approx(list(spec.position))
            assert obj.static == (0 if spec.movable else 1)
            pos, yaw = sim.object_pose(spec)
            assert pos == pytest.approx(spec.position) and yaw == pytest.approx(spec.yaw, abs=1e-9)
        assert np.allclose(sim.joint_positions(), panda.HOME_Q)
        assert sim.gripper_width() == pytest.approx(2 * panda.FINGER_TRAVEL)
        assert sim.time == pytest.approx(0.05)  # settle_time in stepped physics
        report = sim.check_success()
        assert not report.success
        # Put the block on the target area, as a successful plan would, and ask again.
        area = next(o for o in instance.objects if o.name == instance.goal["area"])
        block = next(o for o in instance.objects if o.name == instance.goal["block"])
        z = area.size[2] + block.size[2] / 2
        sim.sim.setObjectPose(sim.object_handle(block.name), [area.position[0], area.position[1], z, 0, 0, 0, 1], -1)
        assert sim.check_success().success
        # A second reset replaces the scene: no object of the first episode is left.
        sim.reset(get_task("stack_blocks"), 1)
        aliases = {o.alias for o in scene.objects.values()}
        assert "target_area" not in aliases and {"front", "left", "right"} <= aliases
    finally:
        sim.close()


def test_coppelia_arm_follows_a_trajectory_in_stepped_mode(standin):
    bridge = CoppeliaConfig(port=standin.port, scene="panda_lab.ttt", connect_timeout_s=2.0, call_timeout_s=5.0)
    sim = CoppeliaSimulation(small_config(), bridge)
    try:
        sim.reset(get_task("put_block"), 0, settle=False)
        goal = panda.HOME_Q + np.array([0.2, -0.1, 0.0, 0.1, 0.0, 0.05, -0.2])
        steps_before = standin.scene.steps
        outcome = sim.follow_trajectory(np.array([0.0, 0.5]), np.vstack([panda.HOME_Q, goal]), goal_tolerance=0.005)
        assert outcome.error_code == 0, outcome.message
        assert np.allclose(sim.joint_positions(), goal, atol=0.005)
        assert standin.scene.steps - steps_before == pytest.approx(round(outcome.duration / 0.01), abs=1)
        tcp, _ = sim.tcp_pose()
        assert 0.2 < tcp[0] < 0.8  # forward kinematics of the measured joints
        grip = sim.move_gripper(0.02)
        assert grip.reached_goal and sim.gripper_width() == pytest.approx(0.02, abs=0.003)
        rgb, depth = sim.render("front")
        assert rgb.shape == (24, 32, 3) and depth.shape == (24, 32)
        assert tuple(rgb[-1, 0]) == (255, 0, 0), "CoppeliaSim's first row is the bottom row of the image"
        assert np.allclose(depth, 1.25)
    finally:
        sim.close()


def test_coppelia_unknown_scene_is_a_clear_error(standin):
    bridge = CoppeliaConfig(port=standin.port, scene="missing.ttt", connect_timeout_s=2.0, call_timeout_s=5.0)
    sim = CoppeliaSimulation(small_config(), bridge)
    try:
        with pytest.raises(RemoteApiError, match=r"sim.loadScene: scene file 'missing.ttt' does not exist"):
            sim.reset(get_task("put_block"), 0)
    finally:
        sim.close()


def test_cameras_from_the_contract_match_mujoco():
    """The interface's nominal camera model is the one the MuJoCo scene renders with."""
    mujoco_sim = pytest.importorskip("llm_trainer.sim.mujoco_sim")
    cfg = small_config()
    m = mujoco_sim.MujocoSimulation(cfg)
    try:
        for cam in cfg.cameras:
            pos, rot = m.camera_pose_optical(cam.name)
            assert np.allclose(pos, cam.position, atol=1e-6)
            assert np.allclose(rot, optical_rotation_look_at(cam.position, cam.look_at), atol=1e-5)
            assert np.allclose(m.camera_intrinsics(cam.name), pinhole_intrinsics(cam))
    finally:
        m.close()


# ------------------------------------------------------------------ Gazebo: world, bridge, adaptor
def _gz_topics_of_world(root: ET.Element) -> set[str]:
    """The Gazebo topics the world's sensors and plugins publish or subscribe, read from the SDF itself."""
    world = root.find("world").get("name")
    topics = {f"/world/{world}/clock", f"/world/{world}/dynamic_pose/info"}
    for sensor in root.iter("sensor"):
        base = sensor.find("topic").text
        topics |= {f"{base}/image", f"{base}/depth_image", f"{base}/camera_info"}
    for model in root.find("world").findall("model"):
        for plugin in model.findall("plugin"):
            if plugin.get("name").endswith("JointStatePublisher"):
                topics.add(f"/world/{world}/model/{model.get('name')}/joint_state")
            if plugin.get("name").endswith("JointPositionController"):
                topics.add(plugin.find("topic").text)
    return topics


def test_world_sdf_parses_and_holds_the_episode():
    cfg = load_sim_config()
    instance = get_task("put_block").instance(5)
    root = ET.fromstring(build_world_sdf(instance, cfg))
    models = {m.get("name"): m for m in root.find("world").findall("model")}
    assert {o.name for o in instance.objects} | {"table", "panda"} <= set(models)
    for spec in instance.objects:
        pose = [float(v) for v in models[spec.name].find("pose").text.split()]
        assert pose[:3] == pytest.approx(list(spec.position)) and pose[5] == pytest.approx(spec.yaw)
        assert models[spec.name].find("static").text == ("false" if spec.movable else "true")
    panda_model = models["panda"]
    movable = [j.get("name") for j in panda_model.findall("joint") if j.get("type") in ("revolute", "prismatic")]
    assert movable == list(panda.JOINT_NAMES + panda.FINGER_JOINT_NAMES)
    links = {link.get("name") for link in panda_model.findall("link")}
    for j in panda_model.findall("joint"):  # every joint's frames name links (or the world) that exist
        assert j.find("child").text in links and j.find("parent").text in links | {"world"}
        if j.get("name") != "world_weld":  # URDF joints: the origin is in the parent link's frame
            assert j.find("pose").get("relative_to") == j.find("parent").text
    controlled = [p.find("joint_name").text for p in panda_model.findall("plugin") if p.find("joint_name") is not None]
    assert controlled == movable
    for sensor, cam in zip(root.iter("sensor"), cfg.cameras):
        assert sensor.get("name") == cam.name and sensor.get("type") == "rgbd_camera"
        assert sensor.find("gz_frame_id").text == optical_frame(cam.name)
        image = sensor.find("camera/image")
        assert (int(image.find("width").text), int(image.find("height").text)) == (cam.width, cam.height)
        assert float(sensor.find("camera/horizontal_fov").text) == pytest.approx(horizontal_fov(cam), rel=1e-5)


def test_gz_camera_pose_looks_at_the_contracts_target():
    cfg = load_sim_config()
    root = ET.fromstring(build_world_sdf(None, cfg))
    for cam in cfg.cameras:
        model = next(m for m in root.iter("model") if m.get("name") == f"camera_{cam.name}")
        x, y, z, roll, pitch, yaw = (float(v) for v in model.find("pose").text.split())
        forward = np.array(  # the link's +x axis after fixed-axis roll, pitch, yaw
            [math.cos(yaw) * math.cos(pitch), math.sin(yaw) * math.cos(pitch), -math.sin(pitch)]
        )
        to_target = np.subtract(cam.look_at, cam.position)
        assert (x, y, z) == pytest.approx(cam.position)
        assert np.allclose(forward, to_target / np.linalg.norm(to_target), atol=1e-5)


def test_bridge_matches_world_contract_and_adaptor(repo_root):
    cfg = load_sim_config()
    entries = bridge_entries(cfg)
    assert check_bridge_entries(entries) == []
    # Gazebo side: exactly the topics the world's sensors and plugins use.
    root = ET.fromstring(build_world_sdf(get_task("put_block").instance(0), cfg))
    assert {e["gz_topic_name"] for e in entries} == _gz_topics_of_world(root)
    # ROS side: exactly what the adaptor subscribes and publishes, with the same types and directions.
    assert {e["ros_topic_name"]: (e["ros_type_name"], e["direction"]) for e in entries} == link_topics(
        cfg, GazeboNames()
    )
    # Every contract camera is carried; no bridged topic collides with one the simulator node publishes.
    node_topics = {sim_topics.JOINT_STATES, sim_topics.JOINT_COMMANDS, sim_topics.EE_POSE, sim_topics.SCENE}
    node_topics |= {sim_topics.CLOCK}
    for cam in cfg.cameras:
        node_topics |= set(camera_topics(cam.name).__dict__.values())
        assert sum(f"/cameras/{cam.name}/" in e["ros_topic_name"] for e in entries) == 3
    assert not node_topics & {e["ros_topic_name"] for e in entries}
    # The committed file is the generator's output.
    assert (repo_root / "config" / "gazebo_bridge.yaml").read_text() == bridge_yaml(cfg)
    assert yaml.safe_load(bridge_yaml(cfg)) == entries


def test_bridge_checker_rejects_what_ros_gz_bridge_rejects():
    good = bridge_entries(SimConfig())[0]
    assert check_bridge_entries({"a": 1}) == ["the top level must be a YAML sequence"]
    bad = [
        {**good, "direction": "SIDEWAYS"},
        {**good, "gz_type_name": "gz.msgs.Image"},
        {"topic_name": "/x", "ros_topic_name": "/x", "ros_type_name": "std_msgs/msg/Float64", "gz_type_name": ""},
    ]
    problems = check_bridge_entries(bad)
    assert any("invalid direction" in p for p in problems)
    assert any("does not bridge to gz.msgs.Image" in p for p in problems)
    assert any("mutually" in p or "excludes" in p for p in problems)
    assert any("must be set" in p for p in problems)


class FakeGazebo(GazeboLink):
    """A paused world whose joints jump to their commanded targets on each step; poses set by hand."""

    def __init__(self, dt: float):
        self.dt, self.t, self.loaded = dt, None, []
        self.q = {n: 0.0 for n in GazeboNames().joints}
        self.targets = dict(self.q)
        self.pose_table: dict = {}

    def load_world(self, sdf):
        self.loaded.append(ET.fromstring(sdf))
        self.t = 0.0

    def control(self, *, pause, multi_step=0):
        assert pause
        self.t += multi_step * self.dt
        self.q.update(self.targets)

    def clock(self):
        return self.t

    def joint_state(self):
        return (self.t, {n: (q, 0.0) for n, q in self.q.items()})

    def poses(self):
        return self.pose_table

    def image(self, camera, kind):
        return np.zeros((24, 32, 3), np.uint8) if kind == "color" else np.full((24, 32), np.inf, np.float32)

    def command(self, joint, position):
        self.targets[joint] = position


def test_gazebo_adaptor_steps_commands_and_judges_success():
    cfg = small_config()
    link = FakeGazebo(cfg.timestep)
    sim = GazeboSimulation(cfg, link=link)
    instance = sim.reset(get_task("put_block"), 2)
    assert {m.get("name") for m in link.loaded[0].iter("model")} >= {o.name for o in instance.objects}
    assert np.allclose(sim.joint_positions(), panda.HOME_Q) and sim.time == pytest.approx(cfg.settle_time)
    area = next(o for o in instance.objects if o.name == instance.goal["area"])
    block = next(o for o in instance.objects if o.name == instance.goal["block"])
    link.pose_table = {o.name: (o.position, (0.0, 0.0, 0.0, 1.0)) for o in instance.objects}
    assert not sim.check_success().success
    link.pose_table[block.name] = ((area.position[0], area.position[1], area.size[2] + 0.025), (0, 0, 0, 1))
    assert sim.check_success().success
    _, depth = sim.render("front")
    assert depth.dtype == np.float32 and not depth.any(), "no-return pixels (inf) become 0"
    link.pose_table.pop(block.name)
    with pytest.raises(RuntimeError, match="no pose of"):
        sim.check_success()


def test_gazebo_module_cli_writes_and_refuses(tmp_path):
    out = tmp_path / "world.sdf"
    ok = subprocess.run(
        [sys.executable, "-m", "llm_trainer.sim.gazebo", "world", "--task", "stack_blocks", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ok.returncode == 0, ok.stderr
    assert ET.parse(out).getroot().tag == "sdf"
    bad = subprocess.run(
        [sys.executable, "-m", "llm_trainer.sim.gazebo", "world", "--task", "nope"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and bad.stderr.startswith("error: unknown task 'nope'")
    assert "Traceback" not in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


def test_the_sim_node_picks_its_simulator_by_name(standin, tmp_path):
    from llm_trainer.sim.backends import make_simulator
    from llm_trainer.sim.mujoco_sim import MujocoSimulation

    mujoco = make_simulator("mujoco", SimConfig(render_cameras=False))
    try:
        assert isinstance(mujoco, MujocoSimulation) and isinstance(mujoco, Simulator) and mujoco.timestep == 0.002
    finally:
        mujoco.close()
    bridge = tmp_path / "coppeliasim.yaml"
    bridge.write_text(f"coppeliasim:\n  host: 127.0.0.1\n  port: {standin.port}\n  scene: panda_lab.ttt\n")
    coppelia = make_simulator("coppeliasim", small_config(), str(bridge))
    try:
        assert isinstance(coppelia, CoppeliaSimulation)
        instance = coppelia.reset(get_task("put_block"), 1)
        assert {o.name for o in coppelia.scene_state().objects} == {o.name for o in instance.objects}
    finally:
        coppelia.close()
    with pytest.raises(ValueError, match="unknown simulator 'webots'"):
        make_simulator("webots", SimConfig())
