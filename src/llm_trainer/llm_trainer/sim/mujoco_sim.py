"""The embedded simulator: a Panda on a table with a task's objects and three RGB-D cameras.

``MujocoSimulation`` is ROS-free. It builds one MJCF scene per episode from a ``TaskInstance``,
steps real MuJoCo physics, follows joint trajectories with the arm's position servos, closes
the gripper with a force limit, renders the cameras and reports the ground-truth scene state
and the task's success predicate. The simulator node (``llm_trainer.nodes.sim_node``) and the
in-process generator both drive this class.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import mujoco
import numpy as np

from llm_trainer.scene import Workspace, normalize_yaw
from llm_trainer.sim import panda_description as panda
from llm_trainer.sim.base import GripperOutcome, Simulator, TrajectoryOutcome  # noqa: F401 - re-exported
from llm_trainer.sim.sim_config import CameraConfig, SimConfig
from llm_trainer.tasks.base import ObjectSpec, Part, Task, TaskInstance

TABLE_HEIGHT = 0.0  # the table top is the world's z = 0 plane; the robot base stands on it
# The table as a box (centre, half extents) in the world; the workcell URDF (sim.workcell) uses the same.
TABLE_CENTER = (0.45, 0.0, -0.025)
TABLE_HALF_SIZE = (0.65, 0.8, 0.025)


def _v(values) -> str:
    return " ".join(f"{v:g}" for v in values)


StepCallback = Callable[["MujocoSimulation"], None]
StopCheck = Callable[[], bool]


def look_at_xyaxes(position, target) -> tuple[np.ndarray, np.ndarray]:
    """MuJoCo camera x and y axes for a camera at ``position`` looking at ``target`` (z up)."""
    forward = np.asarray(target, float) - np.asarray(position, float)
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    if np.linalg.norm(right) < 1e-6:  # looking straight down
        right = np.array([0.0, -1.0, 0.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    return right, up


def quat_to_yaw(q_wxyz: np.ndarray) -> float:
    w, x, y, z = q_wxyz
    return math.atan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))


def _fmt(v) -> str:
    return " ".join(f"{float(x):.6g}" for x in v)


def _part_geom_attrs(part: Part) -> str:
    """MJCF type, size and placement of one part (its ``size`` is full extents; MJCF wants halves)."""
    a, b, c = part.size
    if part.shape == "box":
        size = (a / 2, b / 2, c / 2)
    elif part.shape == "cylinder":
        size = (a / 2, c / 2)
    elif part.shape == "capsule":
        size = (a / 2, (c - a) / 2)
    elif part.shape == "sphere":
        size = (a / 2,)
    else:  # ellipsoid
        size = (a / 2, b / 2, c / 2)
    attrs = f'type="{part.shape}" size="{_fmt(size)}" pos="{_fmt(part.pos)}"'
    if any(part.euler):
        attrs += f' euler="{_fmt(part.euler)}"'
    return attrs


def object_body_xml(obj: ObjectSpec) -> str:
    """One object: a free body for movable objects, a body welded to the world for fixtures.

    Every part becomes a geom; the first is named ``<name>_geom`` and the others
    ``<name>_geom<i>``. A movable object's mass is shared among its colliding parts by volume.
    """
    parts = obj.geometry()
    colliding = [p for p in parts if p.collide]
    total = sum(p.volume() for p in colliding) or 1.0
    quat = _fmt((math.cos(obj.yaw / 2), 0, 0, math.sin(obj.yaw / 2)))
    geoms = []
    for i, part in enumerate(parts):
        name = f"{obj.name}_geom" if i == 0 else f"{obj.name}_geom{i}"
        rgba = _fmt(part.rgba if part.rgba is not None else obj.rgba)
        cls = "object" if obj.movable else "fixture"
        attrs = f'name="{name}" class="{cls}" {_part_geom_attrs(part)} rgba="{rgba}"'
        if not part.collide:
            attrs += ' contype="0" conaffinity="0"'
        if obj.movable:
            mass = obj.mass * part.volume() / total if part.collide else 1e-6
            attrs += f' mass="{mass:.6g}"'
        geoms.append(f"<geom {attrs}/>")
    joint = f'<freejoint name="{obj.name}_joint"/>' if obj.movable else ""
    return f'<body name="{obj.name}" pos="{_fmt(obj.position)}" quat="{quat}">{joint}{"".join(geoms)}</body>'


def build_scene_xml(instance: TaskInstance | None, config: SimConfig) -> str:
    """The whole MJCF of an episode: table, robot, the instance's objects and the cameras."""
    max_w = max([c.width for c in config.cameras] + [640])
    max_h = max([c.height for c in config.cameras] + [480])
    f = config.object_friction
    objects = instance.objects if instance else []
    bodies = [object_body_xml(obj) for obj in objects]
    cameras = []
    for cam in config.cameras:
        x_axis, y_axis = look_at_xyaxes(cam.position, cam.look_at)
        cameras.append(
            f'<camera name="{cam.name}" pos="{_fmt(cam.position)}" xyaxes="{_fmt(x_axis)} {_fmt(y_axis)}" '
            f'fovy="{cam.fovy_deg}"/>'
        )
    return f"""<mujoco model="llm_trainer_scene">
  <compiler angle="radian" autolimits="true"/>
  <option timestep="{config.timestep}" integrator="implicitfast" cone="elliptic" impratio="10"/>
  <visual>
    <global offwidth="{max_w}" offheight="{max_h}"/>
    <quality shadowsize="0" offsamples="0"/>
    <headlight ambient="0.45 0.45 0.45" diffuse="0.5 0.5 0.5"/>
  </visual>
  <default>
    {panda.panda_mjcf_defaults(pad_friction=f)}
    <default class="object">
      <geom contype="1" conaffinity="1" condim="4" friction="{f} 0.005 0.0001" solref="0.005 1"
            solimp="0.95 0.99 0.001" group="2"/>
    </default>
    <default class="fixture">
      <geom contype="1" conaffinity="1" condim="3" group="2"/>
    </default>
  </default>
  <worldbody>
    <light pos="0.5 0 1.6" dir="0 0 -1" directional="true" castshadow="false" diffuse="0.5 0.5 0.5"/>
    <geom name="floor" type="plane" pos="0 0 -0.75" size="3 3 0.1" rgba="0.35 0.35 0.38 1"/>
    <geom name="table" type="box" pos="{_v(TABLE_CENTER)}" size="{_v(TABLE_HALF_SIZE)}" rgba="0.78 0.7 0.58 1"
          contype="1" conaffinity="1"/>
    {panda.panda_mjcf_body()}
    {"".join(bodies)}
    {"".join(cameras)}
  </worldbody>
  <actuator>
    {panda.panda_mjcf_actuators()}
  </actuator>
</mujoco>"""


class MujocoSimulation(Simulator):
    """A seeded, resettable MuJoCo scene of the Panda, a task's objects and cameras."""

    def __init__(self, config: SimConfig | None = None):
        self.config = config or SimConfig()
        self.workspace = Workspace()
        self.model: mujoco.MjModel | None = None
        self.data: mujoco.MjData | None = None
        self.instance: TaskInstance | None = None
        self.task: Task | None = None
        self._renderers: dict[tuple[int, int], mujoco.Renderer] = {}
        self._gripper_target = panda.FINGER_TRAVEL * 2
        self.physics_steps = 0
        self.physics_wall_time = 0.0
        self.render_wall_time = 0.0
        self._load(None)

    # ---------------------------------------------------------------- building
    def _load(self, instance: TaskInstance | None) -> None:
        self.close_renderers()
        self.model = mujoco.MjModel.from_xml_string(build_scene_xml(instance, self.config))
        self.model.light_castshadow[:] = 0
        self.data = mujoco.MjData(self.model)
        m = self.model
        self._arm_qpos = np.array([m.jnt_qposadr[m.joint(n).id] for n in panda.JOINT_NAMES])
        self._arm_dof = np.array([m.jnt_dofadr[m.joint(n).id] for n in panda.JOINT_NAMES])
        self._finger_qpos = np.array([m.jnt_qposadr[m.joint(n).id] for n in panda.FINGER_JOINT_NAMES])
        self._finger_dof = np.array([m.jnt_dofadr[m.joint(n).id] for n in panda.FINGER_JOINT_NAMES])
        self._arm_act = np.array([m.actuator(f"act_{n}").id for n in panda.JOINT_NAMES])
        self._finger_act = np.array([m.actuator(f"act_finger{k}").id for k in (1, 2)])
        self._tcp_site = m.site("tcp").id
        self._object_bodies: dict[str, int] = {}
        self._object_geoms: dict[str, list[int]] = {}
        for obj in instance.objects if instance else []:
            body = m.body(obj.name).id
            if obj.movable:
                self._object_bodies[obj.name] = body
            self._object_geoms[obj.name] = [g for g in range(m.ngeom) if int(m.geom_bodyid[g]) == body]
        self.instance = instance
        self.set_arm_configuration(panda.HOME_Q)

    def reset(self, task: Task, seed: int, *, settle: bool = True) -> TaskInstance:
        """Build a fresh episode of ``task`` from ``seed`` and let the objects settle (``settle=False``:
        leave them exactly where the task spawned them, e.g. to check the spawn itself)."""
        instance = task.instance(seed)
        self.task = task
        self._load(instance)
        if settle:
            self.step_for(self.config.settle_time)
        return instance

    def set_arm_configuration(self, q: np.ndarray, gripper_width: float = panda.FINGER_TRAVEL * 2) -> None:
        """Teleport the arm (only for resets) and hold it there."""
        d = self.data
        d.qpos[self._arm_qpos] = q
        d.qvel[self._arm_dof] = 0.0
        d.qpos[self._finger_qpos] = gripper_width / 2
        d.ctrl[self._arm_act] = q
        self.set_gripper_target(gripper_width)
        mujoco.mj_forward(self.model, d)

    # ---------------------------------------------------------------- stepping
    @property
    def time(self) -> float:
        return float(self.data.time)

    @property
    def timestep(self) -> float:
        return float(self.model.opt.timestep)

    def step(self, n: int = 1) -> None:
        t0 = time.perf_counter()
        mujoco.mj_step(self.model, self.data, nstep=n)
        self.physics_wall_time += time.perf_counter() - t0
        self.physics_steps += n

    # ---------------------------------------------------------------- robot state
    def joint_positions(self) -> np.ndarray:
        return self.data.qpos[self._arm_qpos].copy()

    def joint_velocities(self) -> np.ndarray:
        return self.data.qvel[self._arm_dof].copy()

    def finger_positions(self) -> np.ndarray:
        return self.data.qpos[self._finger_qpos].copy()

    def finger_velocities(self) -> np.ndarray:
        return self.data.qvel[self._finger_dof].copy()

    def commanded_joint_positions(self) -> np.ndarray:
        return self.data.ctrl[self._arm_act].copy()

    @property
    def gripper_target(self) -> float:
        return self._gripper_target

    def tcp_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """Tool centre point position and rotation matrix in the world frame."""
        return self.data.site_xpos[self._tcp_site].copy(), self.data.site_xmat[self._tcp_site].reshape(3, 3).copy()

    def tcp_quaternion(self) -> np.ndarray:
        """TCP orientation as a unit quaternion (w, x, y, z)."""
        quat = np.zeros(4)
        mujoco.mju_mat2Quat(quat, self.data.site_xmat[self._tcp_site])
        return quat

    def tcp_yaw(self) -> float:
        rot = self.tcp_pose()[1]
        return math.atan2(rot[1, 0], rot[0, 0])

    # ---------------------------------------------------------------- commands
    def set_arm_target(self, q: np.ndarray) -> None:
        self.data.ctrl[self._arm_act] = np.clip(q, panda.JOINT_LOWER, panda.JOINT_UPPER)

    def set_gripper_target(self, width: float, force: float | None = None) -> None:
        width = float(np.clip(width, 0.0, 2 * panda.FINGER_TRAVEL))
        self._gripper_target = width
        self.data.ctrl[self._finger_act] = width / 2
        if force is not None:
            f = float(np.clip(force, 1.0, 140.0))
            self.model.actuator_forcerange[self._finger_act] = (-f, f)

    def follow_trajectory(
        self,
        times: np.ndarray,
        positions: np.ndarray,
        *,
        on_step: StepCallback | None = None,
        should_stop: StopCheck | None = None,
        goal_tolerance: float = 0.01,
        settle_time: float = 0.5,
    ) -> TrajectoryOutcome:
        """Track a joint trajectory (times from its start, one row of 7 positions per time)."""
        times = np.asarray(times, float)
        positions = np.asarray(positions, float)
        if positions.ndim != 2 or positions.shape[1] != 7 or len(times) != len(positions) or len(times) == 0:
            return TrajectoryOutcome(-1, math.inf, 0.0, 0.0, "trajectory needs N times and N x 7 positions")
        if np.any(np.diff(times) < 0):
            return TrajectoryOutcome(-1, math.inf, 0.0, 0.0, "trajectory times must not decrease")
        dt = self.model.opt.timestep
        t_start = self.time
        end = float(times[-1])
        goal = positions[-1]
        settle_deadline = end + settle_time
        # The reference for every physics step of the motion, computed at once: per-step np.interp and
        # clip calls were a third of an in-process episode's time. The step times repeat MuJoCo's own
        # clock (data.time += timestep, in the same float arithmetic), so the targets are bit for bit
        # what a per-step evaluation gives; a step whose time differs falls back to that evaluation.
        clock = [t_start]
        while clock[-1] - t_start + dt <= end:
            clock.append(clock[-1] + dt)
        clock = np.asarray(clock[:-1])
        step_t = clock - t_start + dt
        refs, targets = self._references(step_t, times, positions, dt)
        tracked = np.empty_like(refs)
        k, off_clock_track = 0, 0.0
        arm_qpos, arm_act = self._arm_qpos, self._arm_act
        while True:
            if should_stop and should_stop():
                self.set_arm_target(self.joint_positions())  # hold where the arm is now
                return TrajectoryOutcome(
                    -6,
                    float(np.max(np.abs(self.joint_positions() - goal))),
                    max(self._max_track(tracked[:k], refs[:k]), off_clock_track),
                    self.time - t_start,
                    "cancelled",
                    self.joint_positions(),
                )
            now = self.time
            t = now - t_start + dt
            moving, ref = t <= end, None
            if moving and k < len(clock) and now == clock[k]:
                self.data.ctrl[arm_act] = targets[k]
            elif moving:  # off the precomputed clock (not expected): this step evaluated on its own
                one_ref, one_target = self._references(np.array([t]), times, positions, dt)
                ref = one_ref[0]
                self.data.ctrl[arm_act] = one_target[0]
            else:
                self.set_arm_target(goal)
            self.step()
            if on_step:
                on_step(self)
            if moving:
                if ref is None:
                    tracked[k] = self.data.qpos[arm_qpos]
                    k += 1
                else:
                    off_clock_track = max(off_clock_track, float(np.max(np.abs(self.data.qpos[arm_qpos] - ref))))
                continue
            q = self.joint_positions()
            err = float(np.max(np.abs(q - goal)))
            settled = err < goal_tolerance * 0.2 and float(np.max(np.abs(self.joint_velocities()))) < 0.02
            if settled or t >= settle_deadline:
                ok = err <= goal_tolerance
                return TrajectoryOutcome(
                    0 if ok else -5,
                    err,
                    max(self._max_track(tracked[:k], refs[:k]), off_clock_track),
                    self.time - t_start,
                    "" if ok else f"final joint error {err:.4f} rad exceeds tolerance {goal_tolerance}",
                    q,
                )

    @staticmethod
    def _references(step_t: np.ndarray, times: np.ndarray, positions: np.ndarray, dt: float):
        """The reference at each step time and the servo target that tracks it: the servos' damping (kv)
        lags a moving reference by kv/kp * velocity, so the target feeds that velocity forward."""
        ref = np.stack([np.interp(step_t, times, positions[:, j]) for j in range(7)], axis=1)
        ahead = np.stack([np.interp(step_t + dt, times, positions[:, j]) for j in range(7)], axis=1)
        target = np.clip(ref + panda.SERVO_KV_OVER_KP * (ahead - ref) / dt, panda.JOINT_LOWER, panda.JOINT_UPPER)
        return ref, target

    @staticmethod
    def _max_track(q: np.ndarray, ref: np.ndarray) -> float:
        """The largest joint deviation from the reference while it moved (0 for an instant motion)."""
        return float(np.max(np.abs(q - ref))) if len(q) else 0.0

    # ---------------------------------------------------------------- scene
    def object_pose(self, spec: ObjectSpec) -> tuple[tuple[float, float, float], float]:
        if spec.movable:
            body = self._object_bodies[spec.name]
            pos = self.data.xpos[body]
            yaw = quat_to_yaw(self.data.xquat[body])
            return (float(pos[0]), float(pos[1]), float(pos[2])), normalize_yaw(yaw)
        return spec.position, spec.yaw

    def object_geom_ids(self, name: str) -> list[int]:
        """MuJoCo ids of every geom of an object of the episode (one per part)."""
        return list(self._object_geoms[name])

    def objects_in_gripper(self) -> list[str]:
        """Objects touched by both finger pads at once (i.e. held)."""
        pads = {self.model.geom("pad1").id: 1, self.model.geom("pad2").id: 2}
        touching: dict[str, set[int]] = {}
        geom_to_obj = {g: n for n, ids in self._object_geoms.items() for g in ids}
        for i in range(self.data.ncon):
            c = self.data.contact[i]
            for pad_geom, other in ((c.geom1, c.geom2), (c.geom2, c.geom1)):
                if pad_geom in pads and other in geom_to_obj:
                    touching.setdefault(geom_to_obj[other], set()).add(pads[pad_geom])
        return sorted(n for n, p in touching.items() if len(p) == 2)

    # ---------------------------------------------------------------- cameras
    def camera(self, name: str) -> CameraConfig:
        for cam in self.config.cameras:
            if cam.name == name:
                return cam
        raise KeyError(f"no camera named {name!r}")

    def _renderer(self, cam: CameraConfig) -> mujoco.Renderer:
        key = (cam.width, cam.height)
        if key not in self._renderers:
            self._renderers[key] = mujoco.Renderer(self.model, height=cam.height, width=cam.width)
        return self._renderers[key]

    def render(self, name: str, depth: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """RGB (H x W x 3 uint8) and metric depth along the optical axis (H x W float32) of a camera."""
        cam = self.camera(name)
        t0 = time.perf_counter()
        renderer = self._renderer(cam)
        renderer.update_scene(self.data, camera=name)
        rgb = renderer.render().copy()
        d = None
        if depth:
            renderer.enable_depth_rendering()
            renderer.update_scene(self.data, camera=name)
            d = renderer.render().astype(np.float32)
            renderer.disable_depth_rendering()
        self.render_wall_time += time.perf_counter() - t0
        return rgb, d

    def camera_intrinsics(self, name: str) -> np.ndarray:
        """Pinhole K of a camera (square pixels, principal point at the image centre), in the ROS /
        OpenCV convention that CameraInfo carries: pixel (u, v) has its centre at integer u, v, so the
        centre of a W-pixel-wide image is at u = W/2 - 0.5."""
        cam = self.camera(name)
        fy = (cam.height / 2) / math.tan(math.radians(cam.fovy_deg) / 2)
        return np.array([[fy, 0.0, cam.width / 2 - 0.5], [0.0, fy, cam.height / 2 - 0.5], [0.0, 0.0, 1.0]])

    def camera_pose_optical(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """World position and rotation of a camera's optical frame (z forward, x right, y down)."""
        cam_id = self.model.camera(name).id
        pos = self.data.cam_xpos[cam_id].copy()
        rot_gl = self.data.cam_xmat[cam_id].reshape(3, 3)
        # MuJoCo cameras look along -z with y up; the optical (OpenCV/ROS) frame flips y and z.
        return pos, rot_gl @ np.diag([1.0, -1.0, -1.0])

    def close_renderers(self) -> None:
        for r in self._renderers.values():
            r.close()
        self._renderers.clear()

    def close(self) -> None:
        self.close_renderers()
