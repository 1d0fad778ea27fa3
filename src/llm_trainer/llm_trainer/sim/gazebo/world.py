"""The SDF world of an episode for gz-sim: the MuJoCo scene's table, a task instance's objects, the Panda
converted from ``urdf/panda.urdf`` and one RGB-D camera per camera of the contract (``config/sim.yaml``).

Frames and sizes follow ``llm_trainer.sim.mujoco_sim``: the table top is z = 0, the robot base stands at the
origin, an object's pose is its bounding-box centre and yaw. Conventions converted here:

- a part's ``euler`` is MJCF's (sequence xyz about the rotating axes); SDF poses are fixed-axis roll, pitch, yaw;
- a capsule's ``size[2]`` includes its caps; SDF's capsule ``length`` does not;
- gz cameras look along their link's +x with +z up; the optical frame (x right, y down, z forward) is
  published as ``<gz_frame_id>`` for the images and, as for MuJoCo, as the contract's extrinsics by the node;
- gz's ``horizontal_fov`` from the contract's vertical one and the image's aspect.

Plugins (gz-sim 8, Harmonic): physics, user commands (world control), scene broadcaster (clock, poses),
sensors (ogre2), JointStatePublisher and one JointPositionController per joint on the Panda. The world is
meant to be started paused (``gz sim -s world.sdf`` without ``-r``) and stepped by ``GazeboSimulation``.
Verified here: the SDF parses as XML and its names match the bridge and the contract (tests); not loaded
into gz-sim here (no Gazebo on this machine), so gains and contact parameters are starting values.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from llm_trainer.config import repo_root
from llm_trainer.sensors.cameras import optical_frame
from llm_trainer.sim import panda_description as panda
from llm_trainer.sim.base import optical_rotation_look_at
from llm_trainer.sim.gazebo.names import GazeboNames
from llm_trainer.sim.sim_config import CameraConfig, SimConfig
from llm_trainer.tasks.base import ObjectSpec, Part, TaskInstance

SDF_VERSION = "1.10"
TABLE_POSE = (0.45, 0.0, -0.025)
TABLE_SIZE = (1.3, 1.6, 0.05)
#: JointPositionController gains (force PID on position error), per arm joint then for the fingers.
ARM_GAINS = (600.0, 0.0, 50.0)
FINGER_GAINS = (200.0, 0.0, 5.0)
#: The URDF's fingers carry no geometry: pads the hand can grip with, in each finger's frame.
FINGER_PAD_SIZE = (0.02, 0.012, 0.045)
FINGER_PAD_POS = (0.0, 0.006, 0.0225)


def _f(v) -> str:
    return " ".join(f"{float(x) + 0.0:.9g}" for x in v)  # + 0.0: no "-0"


def default_urdf_path() -> Path:
    root = repo_root()
    if root is None:
        raise FileNotFoundError("urdf/panda.urdf not found: pass urdf_path (no repository checkout here)")
    return root / "urdf" / "panda.urdf"


def matrix_to_rpy(r: np.ndarray) -> tuple[float, float, float]:
    """Fixed-axis roll, pitch, yaw (R = Rz(yaw) Ry(pitch) Rx(roll)), as SDF and URDF poses take them."""
    pitch = math.asin(max(-1.0, min(1.0, -float(r[2, 0]))))
    if abs(math.cos(pitch)) > 1e-9:
        roll = math.atan2(float(r[2, 1]), float(r[2, 2]))
        yaw = math.atan2(float(r[1, 0]), float(r[0, 0]))
    else:  # gimbal lock: put it all in yaw
        roll, yaw = 0.0, math.atan2(-float(r[0, 1]), float(r[1, 1]))
    return roll, pitch, yaw


def euler_xyz_matrix(euler) -> np.ndarray:
    a, b, c = (float(v) for v in euler)
    rx = np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])
    ry = np.array([[math.cos(b), 0, math.sin(b)], [0, 1, 0], [-math.sin(b), 0, math.cos(b)]])
    rz = np.array([[math.cos(c), -math.sin(c), 0], [math.sin(c), math.cos(c), 0], [0, 0, 1]])
    return rx @ ry @ rz


def horizontal_fov(cam: CameraConfig) -> float:
    return 2 * math.atan(math.tan(math.radians(cam.fovy_deg) / 2) * cam.width / cam.height)


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrib) -> ET.Element:
    el = ET.SubElement(parent, tag, {k: str(v) for k, v in attrib.items()})
    if text is not None:
        el.text = text
    return el


def _geometry(parent: ET.Element, part: Part) -> None:
    geom = _sub(parent, "geometry")
    a, b, c = part.size
    if part.shape == "box":
        _sub(_sub(geom, "box"), "size", _f(part.size))
    elif part.shape == "cylinder":
        cyl = _sub(geom, "cylinder")
        _sub(cyl, "radius", f"{a / 2:.6g}")
        _sub(cyl, "length", f"{c:.6g}")
    elif part.shape == "capsule":
        cap = _sub(geom, "capsule")
        _sub(cap, "radius", f"{a / 2:.6g}")
        _sub(cap, "length", f"{c - a:.6g}")
    elif part.shape == "sphere":
        _sub(_sub(geom, "sphere"), "radius", f"{a / 2:.6g}")
    else:
        _sub(_sub(geom, "ellipsoid"), "radii", _f((a / 2, b / 2, c / 2)))


def _box_inertia(parent: ET.Element, mass: float, size) -> None:
    a, b, c = size
    inertial = _sub(parent, "inertial")
    _sub(inertial, "mass", f"{mass:.6g}")
    inertia = _sub(inertial, "inertia")
    for tag, value in (
        ("ixx", mass * (b * b + c * c) / 12),
        ("iyy", mass * (a * a + c * c) / 12),
        ("izz", mass * (a * a + b * b) / 12),
        ("ixy", 0.0),
        ("ixz", 0.0),
        ("iyz", 0.0),
    ):
        _sub(inertia, tag, f"{value:.6g}")


def object_model(world: ET.Element, spec: ObjectSpec, friction: float) -> ET.Element:
    """One object as a model of one link (a collision and a visual per part); fixtures are static."""
    model = _sub(world, "model", name=spec.name)
    _sub(model, "static", "false" if spec.movable else "true")
    _sub(model, "pose", _f((*spec.position, 0.0, 0.0, spec.yaw)))
    link = _sub(model, "link", name="link")
    if spec.movable:
        _box_inertia(link, spec.mass, spec.size)  # the bounding box's inertia: close enough for blocks and cans
    for i, part in enumerate(spec.geometry()):
        rpy = matrix_to_rpy(euler_xyz_matrix(part.euler))
        rgba = part.rgba if part.rgba is not None else spec.rgba
        if part.collide:
            col = _sub(link, "collision", name=f"collision{i}")
            _sub(col, "pose", _f((*part.pos, *rpy)))
            _geometry(col, part)
            ode = _sub(_sub(_sub(col, "surface"), "friction"), "ode")
            _sub(ode, "mu", f"{friction:.6g}")
            _sub(ode, "mu2", f"{friction:.6g}")
        vis = _sub(link, "visual", name=f"visual{i}")
        _sub(vis, "pose", _f((*part.pos, *rpy)))
        _geometry(vis, part)
        mat = _sub(vis, "material")
        _sub(mat, "ambient", _f(rgba))
        _sub(mat, "diffuse", _f(rgba))
    return model


def camera_model(world: ET.Element, cam: CameraConfig, names: GazeboNames, rate_hz: float) -> ET.Element:
    """A static model holding one rgbd_camera sensor named after the contract's camera."""
    r_opt = optical_rotation_look_at(cam.position, cam.look_at)
    r_gz = np.column_stack([r_opt[:, 2], -r_opt[:, 0], -r_opt[:, 1]])  # gz camera: x forward, y left, z up
    model = _sub(world, "model", name=f"camera_{cam.name}")
    _sub(model, "static", "true")
    _sub(model, "pose", _f((*cam.position, *matrix_to_rpy(r_gz))))
    link = _sub(model, "link", name="link")
    sensor = _sub(link, "sensor", name=cam.name, type="rgbd_camera")
    _sub(sensor, "always_on", "true")
    _sub(sensor, "update_rate", f"{rate_hz:.6g}")
    _sub(sensor, "topic", names.camera_topic(cam.name))
    _sub(sensor, "gz_frame_id", optical_frame(cam.name))
    camera = _sub(sensor, "camera", name=cam.name)
    _sub(camera, "horizontal_fov", f"{horizontal_fov(cam):.6g}")
    image = _sub(camera, "image")
    _sub(image, "width", str(cam.width))
    _sub(image, "height", str(cam.height))
    _sub(image, "format", "R8G8B8")
    clip = _sub(camera, "clip")
    _sub(clip, "near", "0.05")
    _sub(clip, "far", "3.0")
    depth_clip = _sub(_sub(camera, "depth_camera"), "clip")
    _sub(depth_clip, "near", "0.05")
    _sub(depth_clip, "far", "3.0")
    return model


def _urdf_origin(el: ET.Element | None) -> str:
    if el is None:
        return "0 0 0 0 0 0"
    xyz = el.get("xyz", "0 0 0").split()
    rpy = el.get("rpy", "0 0 0").split()
    return _f([float(v) for v in xyz + rpy])


def _urdf_geometry(parent: ET.Element, geom: ET.Element) -> None:
    out = _sub(parent, "geometry")
    shape = geom[0]
    if shape.tag == "box":
        _sub(_sub(out, "box"), "size", shape.get("size"))
    elif shape.tag == "cylinder":
        cyl = _sub(out, "cylinder")
        _sub(cyl, "radius", shape.get("radius"))
        _sub(cyl, "length", shape.get("length"))
    elif shape.tag == "sphere":
        _sub(_sub(out, "sphere"), "radius", shape.get("radius"))
    else:
        raise ValueError(f"URDF geometry {shape.tag!r} is not supported by the SDF converter")


def panda_model(world: ET.Element, names: GazeboNames, urdf_path: Path | None = None) -> ET.Element:
    """The Panda as an SDF model converted from the URDF: the same links, joints, limits and collisions
    (visuals = collisions), welded to the world at the origin, with the joint state publisher and one
    position controller per joint."""
    robot = ET.parse(urdf_path or default_urdf_path()).getroot()
    model = _sub(world, "model", name=names.model)
    _sub(model, "pose", "0 0 0 0 0 0")
    parent_joint = {j.find("child").get("link"): j.get("name") for j in robot.findall("joint")}
    for link in robot.findall("link"):
        name = link.get("name")
        out = _sub(model, "link", name=name)
        _sub(out, "pose", "0 0 0 0 0 0", relative_to=parent_joint.get(name, "__model__"))
        inertial = link.find("inertial")
        if inertial is not None:
            mass = float(inertial.find("mass").get("value"))
            inertia = inertial.find("inertia")
            el = _sub(out, "inertial")
            _sub(el, "mass", f"{mass:.6g}")
            ine = _sub(el, "inertia")
            for tag in ("ixx", "ixy", "ixz", "iyy", "iyz", "izz"):
                _sub(ine, tag, inertia.get(tag, "0"))
        else:
            heavy = name == "panda_hand"
            _box_inertia(out, panda.HAND_MASS if heavy else panda.FINGER_MASS, (0.05, 0.05, 0.05))
        for i, col in enumerate(link.findall("collision")):
            for tag in ("collision", "visual"):
                el = _sub(out, tag, name=f"{tag}{i}")
                _sub(el, "pose", _urdf_origin(col.find("origin")))
                _urdf_geometry(el, col.find("geometry"))
        if name in ("panda_leftfinger", "panda_rightfinger"):
            sign = 1.0 if name == "panda_leftfinger" else -1.0
            pad_pos = (FINGER_PAD_POS[0], sign * FINGER_PAD_POS[1], FINGER_PAD_POS[2])
            for tag in ("collision", "visual"):
                el = _sub(out, tag, name=f"{tag}_pad")
                _sub(el, "pose", _f((*pad_pos, 0, 0, 0)))
                _sub(_sub(_sub(el, "geometry"), "box"), "size", _f(FINGER_PAD_SIZE))
    weld = _sub(model, "joint", name="world_weld", type="fixed")
    _sub(weld, "parent", "world")
    _sub(weld, "child", robot.find("link").get("name"))
    for joint in robot.findall("joint"):
        jtype = joint.get("type")
        out = _sub(model, "joint", name=joint.get("name"), type=jtype)
        parent, child = joint.find("parent").get("link"), joint.find("child").get("link")
        _sub(out, "pose", _urdf_origin(joint.find("origin")), relative_to=parent)
        _sub(out, "parent", parent)
        _sub(out, "child", child)
        if jtype in ("revolute", "prismatic"):
            axis = _sub(out, "axis")
            _sub(axis, "xyz", joint.find("axis").get("xyz"))
            lim, el = joint.find("limit"), _sub(axis, "limit")
            for tag in ("lower", "upper", "effort", "velocity"):
                _sub(el, tag, lim.get(tag))
            _sub(_sub(axis, "dynamics"), "damping", "0.5" if jtype == "revolute" else "5.0")
    _sub(model, "plugin", filename="gz-sim-joint-state-publisher-system", name="gz::sim::systems::JointStatePublisher")
    for joint in names.joints:
        gains = FINGER_GAINS if "finger" in joint else ARM_GAINS
        plugin = _sub(
            model,
            "plugin",
            filename="gz-sim-joint-position-controller-system",
            name="gz::sim::systems::JointPositionController",
        )
        _sub(plugin, "joint_name", joint)
        _sub(plugin, "topic", names.joint_command(joint))
        for tag, value in zip(("p_gain", "i_gain", "d_gain"), gains):
            _sub(plugin, tag, f"{value:g}")
        effort = panda.GRIPPER_MAX_FORCE if "finger" in joint else float(panda.JOINT_TORQUE_LIMIT[0])
        _sub(plugin, "cmd_max", f"{effort:g}")
        _sub(plugin, "cmd_min", f"{-effort:g}")
        initial = panda.FINGER_TRAVEL if "finger" in joint else float(panda.HOME_Q[names.joints.index(joint)])
        _sub(plugin, "initial_position", f"{initial:.6g}")
    return model


def build_world_sdf(
    instance: TaskInstance | None,
    config: SimConfig | None = None,
    *,
    names: GazeboNames | None = None,
    urdf_path: Path | None = None,
) -> str:
    """The whole SDF world of an episode, as text."""
    config = config or SimConfig()
    names = names or GazeboNames()
    sdf = ET.Element("sdf", version=SDF_VERSION)
    world = _sub(sdf, "world", name=names.world)
    physics = _sub(world, "physics", name="default", type="dart")
    _sub(physics, "max_step_size", f"{config.timestep:.6g}")
    _sub(physics, "real_time_factor", f"{config.real_time_factor or 1.0:.6g}")
    _sub(physics, "real_time_update_rate", "0")  # 0: as fast as possible while unpaused
    for filename, name in (
        ("gz-sim-physics-system", "gz::sim::systems::Physics"),
        ("gz-sim-user-commands-system", "gz::sim::systems::UserCommands"),
        ("gz-sim-scene-broadcaster-system", "gz::sim::systems::SceneBroadcaster"),
    ):
        _sub(world, "plugin", filename=filename, name=name)
    sensors = _sub(world, "plugin", filename="gz-sim-sensors-system", name="gz::sim::systems::Sensors")
    _sub(sensors, "render_engine", "ogre2")
    light = _sub(world, "light", name="sun", type="directional")
    _sub(light, "pose", "0.5 0 1.6 0 0 0")
    _sub(light, "direction", "0 0 -1")
    _sub(light, "diffuse", "0.8 0.8 0.8 1")
    _sub(light, "cast_shadows", "false")
    floor = ObjectSpec("floor", "floor", (6.0, 6.0, 0.02), (0.0, 0.0, -0.76), movable=False, rgba=(0.35, 0.35, 0.38, 1))
    table = ObjectSpec("table", "table", TABLE_SIZE, TABLE_POSE, movable=False, rgba=(0.78, 0.7, 0.58, 1))
    for fixture in (floor, table):
        object_model(world, fixture, config.object_friction)
    panda_model(world, names, urdf_path)
    for spec in instance.objects if instance else []:
        object_model(world, spec, config.object_friction)
    for cam in config.cameras:
        camera_model(world, cam, names, config.camera_rate_hz)
    ET.indent(sdf)
    return '<?xml version="1.0"?>\n' + ET.tostring(sdf, encoding="unicode") + "\n"
