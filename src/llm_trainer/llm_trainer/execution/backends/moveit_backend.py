"""MoveIt 2 backend through ``moveit_py``: the lab's full ROS 2 install plans and executes.

Needs MoveIt 2's Python API (``moveit_py``; Jazzy: ``apt install ros-jazzy-moveit-py``), a running
``robot_description`` / ``ros2_control`` for the arm (franka_ros2's FER tag on the lab robot) and a
gripper action server (``control_msgs/action/GripperCommand``). Configuration: ``config/moveit.yaml``.

Per ``move_gripper`` the executor hands this backend's ``native_planner`` the start configuration,
the top-down TCP target and the ``CollisionContext`` (obstacles, held object, allowed contacts). It
mirrors the context into MoveIt's planning scene (boxes as collision objects, the held object
attached to the hand, the allowed contacts in the allowed collision matrix), asks the ``straight``
pipeline (Pilz LIN: a straight TCP line) first and the ``free`` pipeline (OMPL RRTConnect) when the
straight line fails, with the executor's velocity and acceleration scaling, and returns the joint
trajectory. The executor's safety layer checks it like any other before ``follow_joint_trajectory``
sends it back through MoveIt's trajectory execution; cancel stops that execution.

``planner: builtin`` keeps the executor's own planner (MuJoCo collision model + RRT-Connect) and
uses MoveIt for execution only.

Nothing here runs without ``confirm_hardware: true`` and ``robot_ip``. Tested here without MoveIt:
configuration, the confirmation, the missing-library message and the pure translation of goals,
planning-scene objects, request parameters and trajectories.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mujoco
import numpy as np

from llm_trainer.config import config_dir, load_section
from llm_trainer.execution.backend import CANCELED, TIMED_OUT, GripperResult, MotionBackend
from llm_trainer.execution.backends.common import BackendUnavailable, import_or_explain, require_confirmation
from llm_trainer.motion.collision import TABLE, CollisionContext
from llm_trainer.motion.kinematics import top_down_rotation
from llm_trainer.motion.planning import MotionPlan
from llm_trainer.motion.trajectory import JointTrajectory, TimingLimits
from llm_trainer.sim import panda_description as panda
from llm_trainer.sim.mujoco_sim import TrajectoryOutcome

INSTALL_HINT = (
    "the moveit backend needs MoveIt 2's Python API (moveit_py) on a full ROS 2 install: "
    "apt install ros-jazzy-moveit-py ros-jazzy-moveit-configs-utils (see docker/), "
    "then source /opt/ros/jazzy/setup.bash"
)

#: Link names of the Franka description for the parts the collision context talks about.
FINGER_LINKS = ("panda_leftfinger", "panda_rightfinger")
GRIPPER_LINKS = ("panda_hand", *FINGER_LINKS)


@dataclass
class PipelineConfig:
    pipeline: str = "ompl"
    planner_id: str = "RRTConnectkConfigDefault"
    planning_time: float = 2.0  # [s]
    planning_attempts: int = 1

    def validate(self) -> None:
        if not self.pipeline:
            raise ValueError("pipeline must name a planning pipeline")
        if self.planning_time <= 0 or self.planning_attempts < 1:
            raise ValueError("planning_time must be positive and planning_attempts at least 1")


@dataclass
class MoveItConfig:
    """``config/moveit.yaml`` (section ``moveit``)."""

    robot_ip: str = ""  # the arm's FCI address (also given to franka_ros2's launch)
    confirm_hardware: bool = False  # must be true to start: this backend moves a real robot
    node_name: str = "llm_trainer_moveit"
    moveit_config_file: str = ""  # YAML given to MoveItPy (planning pipelines, scene monitor); "" = launch params
    planning_group: str = "panda_arm"
    tcp_link: str = "panda_hand_tcp"
    base_frame: str = "panda_link0"
    planner: str = "moveit"  # moveit: MoveIt's pipelines plan; builtin: the executor's planner, MoveIt executes
    straight: PipelineConfig = field(
        default_factory=lambda: PipelineConfig("pilz_industrial_motion_planner", "LIN", 1.0, 1)
    )
    free: PipelineConfig = field(default_factory=PipelineConfig)
    gripper_action: str = "/panda_gripper/gripper_action"  # control_msgs/action/GripperCommand
    execution_slack: float = 5.0  # [s] granted beyond a trajectory's duration before it is stopped

    def validate(self) -> None:
        if self.planner not in ("moveit", "builtin"):
            raise ValueError(f"planner must be 'moveit' or 'builtin', got {self.planner!r}")
        for key in ("planning_group", "tcp_link", "base_frame", "node_name", "gripper_action"):
            if not getattr(self, key):
                raise ValueError(f"{key} must not be empty")
        if self.execution_slack < 0:
            raise ValueError("execution_slack must be >= 0")


def load_moveit_config(path: Path | str | None = None) -> MoveItConfig:
    return load_section(MoveItConfig, path or config_dir() / "moveit.yaml", "moveit")


# ---------------------------------------------------------------------------------- pure translation
def quaternion_xyzw(rotation: np.ndarray) -> tuple[float, float, float, float]:
    """Unit quaternion (x, y, z, w; ROS order) of a rotation matrix, w >= 0."""
    q = np.zeros(4)
    mujoco.mju_mat2Quat(q, np.asarray(rotation, float).ravel())
    if q[0] < 0:
        q = -q
    w, x, y, z = (float(v) for v in q)
    return (x, y, z, w)


def tcp_pose_goal(position, yaw: float, config: MoveItConfig) -> dict[str, Any]:
    """The PoseStamped (as plain data) for a top-down TCP target, in the base frame, for ``tcp_link``."""
    p = [float(v) for v in position]
    return {
        "frame_id": config.base_frame,
        "link": config.tcp_link,
        "position": p,
        "orientation_xyzw": quaternion_xyzw(top_down_rotation(yaw)),
    }


def planning_scene_objects(context: CollisionContext | None, config: MoveItConfig) -> dict[str, Any]:
    """The planning scene for one motion as plain data: world boxes, the attached object and the
    allowed-collision entries (link, object) that the context permits."""
    out: dict[str, Any] = {"world": [], "attached": None, "allowed": []}
    if context is None:
        return out
    for box in context.obstacles:
        out["world"].append(
            {
                "id": box.name,
                "frame_id": config.base_frame,
                "dimensions": [float(v) for v in box.size],
                "position": [float(v) for v in box.position],
                "orientation_xyzw": quaternion_xyzw(
                    np.array(
                        [
                            [math.cos(box.yaw), -math.sin(box.yaw), 0],
                            [math.sin(box.yaw), math.cos(box.yaw), 0],
                            [0, 0, 1],
                        ]
                    )
                ),
            }
        )
    if context.attached is not None:
        att = context.attached
        out["attached"] = {
            "id": att.name,
            "link": config.tcp_link,
            "dimensions": [float(v) for v in att.size],
            "position": [float(v) for v in att.position],  # in the TCP frame
            "orientation_xyzw": quaternion_xyzw(np.asarray(att.rotation).reshape(3, 3)),
            "touch_links": list(GRIPPER_LINKS),
        }
    allowed: set[tuple[str, str]] = set()
    for name in context.fingers_may_touch:
        allowed |= {(link, name) for link in FINGER_LINKS}
    for name in context.gripper_may_touch:
        allowed |= {(link, name) for link in GRIPPER_LINKS}
    if context.attached is not None:
        for name in context.held_may_touch:
            allowed.add((context.attached.name, "<table>" if name == TABLE else name))
    out["allowed"] = sorted(allowed)
    return out


def plan_request_parameters(pipeline: PipelineConfig, timing: TimingLimits) -> dict[str, Any]:
    """``moveit.planning.PlanRequestParameters`` fields for one pipeline with the executor's scaling."""
    return {
        "planning_pipeline": pipeline.pipeline,
        "planner_id": pipeline.planner_id,
        "planning_time": float(pipeline.planning_time),
        "planning_attempts": int(pipeline.planning_attempts),
        "max_velocity_scaling_factor": float(timing.velocity_scaling),
        "max_acceleration_scaling_factor": float(timing.acceleration_scaling),
    }


def trajectory_from_points(joint_names: list[str], points: list[tuple[float, list[float]]]) -> JointTrajectory:
    """Our JointTrajectory (the Panda's seven arm joints, in order) from (time, positions) points of a
    trajectory_msgs/JointTrajectory with ``joint_names``; raises ValueError when arm joints are missing."""
    index = {n: i for i, n in enumerate(joint_names)}
    missing = [n for n in panda.JOINT_NAMES if n not in index]
    if missing:
        raise ValueError(f"the trajectory lacks joints {', '.join(missing)}")
    cols = [index[n] for n in panda.JOINT_NAMES]
    times = np.array([float(t) for t, _ in points])
    positions = np.array([[float(q[c]) for c in cols] for _, q in points]).reshape(len(points), 7)
    if len(times) and times[0] > 0:  # MoveIt starts at t=0 normally; keep our convention anyway
        times = times - times[0]
    return JointTrajectory(panda.JOINT_NAMES, times, positions)


def trajectory_points_from_msg(msg) -> tuple[list[str], list[tuple[float, list[float]]]]:
    """(joint names, (time, positions) points) of a trajectory_msgs/JointTrajectory message."""
    points = [(p.time_from_start.sec + p.time_from_start.nanosec * 1e-9, list(p.positions)) for p in msg.points]
    return list(msg.joint_names), points


# ---------------------------------------------------------------------------------- runtime
class _MoveItPlanner:
    """``native_planner`` of the MoveIt backend: MoveIt's pipelines plan each move."""

    def __init__(self, backend: MoveItBackend):
        self.backend = backend

    def plan(self, q_start, position, yaw, limits: TimingLimits, context: CollisionContext | None) -> MotionPlan:
        return self.backend.plan_move(np.asarray(q_start, float), position, yaw, limits, context)


class MoveItBackend(MotionBackend):
    """MoveIt 2 via ``moveit_py``; see the module docstring."""

    name = "moveit"
    hardware = True

    def __init__(self, config: MoveItConfig, node=None, *, where: str = "config/moveit.yaml"):
        require_confirmation("moveit", config.confirm_hardware, config.robot_ip, where)
        self.config = config
        planning = import_or_explain("moveit.planning", INSTALL_HINT)
        self._robot_state_mod = import_or_explain("moveit.core.robot_state", INSTALL_HINT)
        self._robot_trajectory_mod = import_or_explain("moveit.core.robot_trajectory", INSTALL_HINT)
        self._moveit_msgs = import_or_explain("moveit_msgs.msg", INSTALL_HINT)
        self._shape_msgs = import_or_explain("shape_msgs.msg", INSTALL_HINT)
        self._geometry_msgs = import_or_explain("geometry_msgs.msg", INSTALL_HINT)
        self._planning = planning
        kwargs: dict[str, Any] = {"node_name": config.node_name}
        if config.moveit_config_file:
            kwargs["launch_params_filepaths"] = [config.moveit_config_file]
        try:
            self._moveit = planning.MoveItPy(**kwargs)
        except Exception as exc:  # noqa: BLE001 - MoveItPy raises RuntimeError and friends
            raise BackendUnavailable(
                f"MoveItPy did not start ({exc}); is the robot's move_group config loaded?"
            ) from exc
        self._arm = self._moveit.get_planning_component(config.planning_group)
        self._model = self._moveit.get_robot_model()
        self._scene_monitor = self._moveit.get_planning_scene_monitor()
        self._node = node
        self._gripper = None
        if node is not None:
            control_msgs = import_or_explain("control_msgs.action", INSTALL_HINT)
            from llm_trainer.ros.action_client import ActionClient

            self._gripper_type = control_msgs.GripperCommand
            self._gripper = ActionClient(node, control_msgs.GripperCommand, config.gripper_action)
        self.native_planner = _MoveItPlanner(self) if config.planner == "moveit" else None
        self._executing = threading.Lock()

    # ------------------------------------------------------------------ state
    def joint_positions(self) -> np.ndarray:
        with self._scene_monitor.read_only() as scene:
            state = scene.current_state
            return np.array(state.get_joint_group_positions(self.config.planning_group), dtype=float)

    # ------------------------------------------------------------------ planning
    def _robot_state(self, q: np.ndarray):
        state = self._robot_state_mod.RobotState(self._model)
        state.set_joint_group_positions(self.config.planning_group, np.asarray(q, float))
        state.update()
        return state

    def _apply_scene(self, context: CollisionContext | None) -> None:
        data = planning_scene_objects(context, self.config)
        msgs, shapes, geo = self._moveit_msgs, self._shape_msgs, self._geometry_msgs

        def box_object(spec: dict[str, Any], frame: str):
            obj = msgs.CollisionObject()
            obj.header.frame_id = frame
            obj.id = spec["id"]
            prim = shapes.SolidPrimitive(type=shapes.SolidPrimitive.BOX, dimensions=spec["dimensions"])
            pose = geo.Pose()
            pose.position.x, pose.position.y, pose.position.z = spec["position"]
            (pose.orientation.x, pose.orientation.y, pose.orientation.z, pose.orientation.w) = spec["orientation_xyzw"]
            obj.primitives.append(prim)
            obj.primitive_poses.append(pose)
            obj.operation = msgs.CollisionObject.ADD
            return obj

        with self._scene_monitor.read_write() as scene:
            scene.remove_all_collision_objects()
            for spec in data["world"]:
                scene.apply_collision_object(box_object(spec, spec["frame_id"]))
            if data["attached"] is not None:
                att = data["attached"]
                attached = msgs.AttachedCollisionObject()
                attached.link_name = att["link"]
                attached.object = box_object(att, att["link"])
                attached.touch_links = att["touch_links"]
                scene.process_attached_collision_object(attached)
            acm = scene.allowed_collision_matrix
            for link, other in data["allowed"]:
                acm.set_entry(link, other, True)
            scene.current_state.update()

    def plan_move(
        self, q_start: np.ndarray, position, yaw: float, limits: TimingLimits, context: CollisionContext | None
    ) -> MotionPlan:
        t0 = time.perf_counter()
        self._apply_scene(context)
        goal = tcp_pose_goal(position, yaw, self.config)
        pose = self._geometry_msgs.PoseStamped()
        pose.header.frame_id = goal["frame_id"]
        pose.pose.position.x, pose.pose.position.y, pose.pose.position.z = goal["position"]
        (pose.pose.orientation.x, pose.pose.orientation.y, pose.pose.orientation.z, pose.pose.orientation.w) = goal[
            "orientation_xyzw"
        ]
        errors = []
        for method, pipeline in (("straight", self.config.straight), ("moveit_free", self.config.free)):
            self._arm.set_start_state(robot_state=self._robot_state(q_start))
            self._arm.set_goal_state(pose_stamped_msg=pose, pose_link=goal["link"])
            params = self._planning.PlanRequestParameters(self._moveit)
            for key, value in plan_request_parameters(pipeline, limits).items():
                setattr(params, key, value)
            result = self._arm.plan(single_plan_parameters=params)
            if result and getattr(result, "trajectory", None) is not None:
                msg = result.trajectory.get_robot_trajectory_msg().joint_trajectory
                names, points = trajectory_points_from_msg(msg)
                trajectory = trajectory_from_points(names, points)
                plan = MotionPlan(True, trajectory, method, planning_time=time.perf_counter() - t0)
                plan.message = f"MoveIt {pipeline.pipeline}/{pipeline.planner_id}"
                return plan
            errors.append(f"{pipeline.pipeline}/{pipeline.planner_id}: {getattr(result, 'error_code', 'failed')}")
        return MotionPlan(
            False,
            JointTrajectory(),
            error="collision",
            message=f"MoveIt found no plan ({'; '.join(errors)})",
            planning_time=time.perf_counter() - t0,
        )

    # ------------------------------------------------------------------ execution
    def follow_joint_trajectory(
        self, trajectory: JointTrajectory, cancel: threading.Event, timeout: float = float("inf")
    ) -> TrajectoryOutcome:
        traj_msgs = import_or_explain("trajectory_msgs.msg", INSTALL_HINT)
        builtin = import_or_explain("builtin_interfaces.msg", INSTALL_HINT)
        msg = self._moveit_msgs.RobotTrajectory()
        jt = traj_msgs.JointTrajectory(joint_names=list(trajectory.joint_names))
        for t, q in zip(trajectory.times, trajectory.positions):
            sec = int(math.floor(t))
            jt.points.append(
                traj_msgs.JointTrajectoryPoint(
                    positions=[float(v) for v in q],
                    time_from_start=builtin.Duration(sec=sec, nanosec=int((t - sec) * 1e9)),
                )
            )
        msg.joint_trajectory = jt
        robot_trajectory = self._robot_trajectory_mod.RobotTrajectory(self._model)
        robot_trajectory.set_robot_trajectory_msg(self._robot_state(trajectory.positions[0]), msg)
        done = threading.Event()
        status: list[Any] = []

        def run() -> None:
            try:
                status.append(self._moveit.execute(robot_trajectory, controllers=[]))
            except Exception as exc:  # noqa: BLE001 - reported as a controller error
                status.append(exc)
            finally:
                done.set()

        with self._executing:
            t0 = time.monotonic()
            threading.Thread(target=run, name="moveit_execute", daemon=True).start()
            limit = min(timeout, trajectory.duration + self.config.execution_slack)
            code, message = 0, ""
            while not done.wait(0.02):
                if cancel.is_set() or time.monotonic() - t0 > limit:
                    code = CANCELED if cancel.is_set() else TIMED_OUT
                    message = "cancelled" if cancel.is_set() else f"stopped after {limit:.1f} s"
                    self._stop_execution()
                    done.wait(5.0)
                    break
        if code == 0 and status and isinstance(status[0], Exception):
            code, message = -1, f"MoveIt execution failed: {status[0]}"
        q = self.joint_positions()
        err = float(np.max(np.abs(q - trajectory.positions[-1])))
        return TrajectoryOutcome(code, err, 0.0, time.monotonic() - t0, message, q)

    def _stop_execution(self) -> None:
        manager = getattr(self._moveit, "get_trajectory_execution_manager", None) or getattr(
            self._moveit,
            "get_trajactory_execution_manager",
            None,  # the binding's spelling in some releases
        )
        if manager is not None:
            manager().stop_execution(True)

    def move_gripper(
        self, width: float, force: float, cancel: threading.Event, timeout: float = float("inf")
    ) -> GripperResult:
        if self._gripper is None:
            return GripperResult(float("nan"), False, False, message="no gripper action client (no ROS node given)")
        goal = self._gripper_type.Goal()
        goal.command.position = float(width) / 2  # franka_gripper's GripperCommand takes one finger's travel
        goal.command.max_effort = float(force)
        if not self._gripper.wait_for_server(timeout_sec=5.0):
            return GripperResult(float("nan"), False, False, message=f"{self.config.gripper_action} is not available")
        send = self._gripper.send_goal_async(goal)
        deadline = time.monotonic() + min(timeout, 30.0)
        while not send.done():
            if time.monotonic() > deadline:
                return GripperResult(float("nan"), False, False, timed_out=True, message="goal not accepted in time")
            time.sleep(0.01)
        handle = send.result()
        result = handle.get_result_async()
        while not result.done():
            if cancel.is_set() or time.monotonic() > deadline:
                handle.cancel_goal_async()
                return GripperResult(float("nan"), False, False, timed_out=not cancel.is_set(), message="stopped")
            time.sleep(0.01)
        r = result.result().result
        return GripperResult(2 * float(r.position), bool(r.stalled), bool(r.reached_goal))

    def close(self) -> None:
        shutdown = getattr(self._moveit, "shutdown", None)
        if callable(shutdown):
            shutdown()
