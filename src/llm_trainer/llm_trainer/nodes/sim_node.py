"""Simulator bridge node (embedded MuJoCo): the simulated Panda, its cameras and the task checks.

Publishes ``/joint_states``, ``/joint_commands``, ``/ee_pose``, ``/scene/ground_truth``, ``/clock``
and each camera's streams of the camera contract (``llm_trainer.sensors.cameras``: raw and
compressed colour and depth, intrinsics, extrinsics), all stamped with simulation time, which runs
on across resets (never backwards, as ``use_sim_time`` nodes and bags expect). Offers
``~/reset`` (ResetScene), ``~/check_success`` (CheckSuccess) and the controller actions
``~/follow_joint_trajectory`` and ``~/gripper_command`` that the executor drives, like
ros2_control's controllers on the real robot.

One thread owns MuJoCo (its GL context must stay on the thread that made it): service and action
callbacks hand it jobs and wait. While a motion runs, physics goes as fast as the CPU allows
(``real_time_factor`` 0) or paced; when idle it runs in real time so topics keep flowing.

Rates: the streams follow simulated time (``stream_clock: sim``, what a recording needs: 50 Hz of
robot time whatever the speed) or, when nobody records, wall time (``stream_clock: wall``): an
unpaced motion at 20x real time then costs 50 messages a second to each listener, not 1,000, and a
listener only ever wants the latest state. The scene follows the same clock; on wall time the
simulator also sends the state and the scene as each controller goal ends, stamped like its result,
ahead of it: the executor checks each motion against the scene as of the previous goal's end
(``scene_after_goal_timeout``), which a 10 Hz wall-time stream alone would leave up to two simulated
seconds stale (a block just let go still in hand). Trajectory feedback always runs on wall time
(``feedback_rate_hz``), as ros2_control's trajectory controller does; nothing records it.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from geometry_msgs.msg import PoseStamped, TransformStamped
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, JointState

from llm_trainer.config import ConfigError
from llm_trainer.ros.conversions import scene_to_msg, seconds_from_stamp, stamp_from_seconds
from llm_trainer.ros.node_runner import run_node
from llm_trainer.ros.qos import EXTRINSICS_QOS, SCENE_QOS
from llm_trainer.sensors.cameras import camera_topics
from llm_trainer.sim import panda_description as panda
from llm_trainer.sim.backends import make_simulator
from llm_trainer.sim.mujoco_sim import MujocoSimulation
from llm_trainer.sim.sim_config import SimConfig, load_sim_config
from llm_trainer.sim.topics import SCENE, SimTopics
from llm_trainer.tasks.registry import get_task, task_names
from llm_trainer_interfaces.action import FollowJointTrajectory, GripperCommand
from llm_trainer_interfaces.msg import SceneState as SceneStateMsg
from llm_trainer_interfaces.srv import CheckSuccess, ResetScene


class _Job:
    """Work for the physics thread; the caller waits on ``done``."""

    def __init__(self, fn: Callable[[], Any]):
        self.fn = fn
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self.fn()
        except BaseException as exc:  # noqa: BLE001 - handed back to the waiting caller
            self.error = exc
        finally:
            self.done.set()


class _CancelWatch:
    """``should_stop`` for one controller goal, asked at every physics step. The action server's cancel
    callback sets it at once; the goal's own state (a C call under the server's lock, 6 % of the physics
    thread's Python when asked every step) is read every ``every`` steps too, for a request that came
    in before the watch was registered."""

    def __init__(self, goal_handle, every: int = 25):
        self.goal_handle = goal_handle
        self.requested = threading.Event()
        self._every = every
        self._calls = 0

    def __call__(self) -> bool:
        if self.requested.is_set():
            return True
        self._calls += 1
        if self._calls % self._every == 0 and self.goal_handle.is_cancel_requested:
            self.requested.set()
        return self.requested.is_set()


class SimNode(Node):
    def __init__(self) -> None:
        super().__init__("sim")
        self.declare_parameter("config_file", "")
        self.declare_parameter("task", "put_block")
        self.declare_parameter("seed", 0)
        self.declare_parameter("render_cameras", True)
        self.declare_parameter("camera_rate_hz", 0.0)  # 0: from the config file
        self.declare_parameter("real_time_factor", -1.0)  # <0: from the config file
        self.declare_parameter("success_settle_time", 0.5)
        self.declare_parameter("simulator", "mujoco")  # mujoco | gazebo | coppeliasim (sim.backends)
        self.declare_parameter("simulator_config_file", "")  # coppeliasim: default config/coppeliasim.yaml
        self.declare_parameter("stream_clock", "sim")  # sim | wall: the streams' publishing schedule (above)
        self.declare_parameter("feedback_rate_hz", 20.0)  # [Hz, wall time] trajectory feedback
        self.config = self._load_config()
        self._stream_clock = str(self.get_parameter("stream_clock").value)
        if self._stream_clock not in ("sim", "wall"):
            raise ConfigError(f"stream_clock must be 'sim' or 'wall', got {self._stream_clock!r}")
        feedback_rate = float(self.get_parameter("feedback_rate_hz").value)
        if feedback_rate <= 0:
            raise ConfigError(f"feedback_rate_hz must be positive, got {feedback_rate}")
        self._feedback_period = 1.0 / feedback_rate

        self._group = ReentrantCallbackGroup()
        state_qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        # Every stream is built once as CDR bytes (llm_trainer.sim.topics, shared with the in-process
        # runner's recorder) and published as serialised data; the publishers only carry the type.
        self.topics = SimTopics(self.config)
        latched = EXTRINSICS_QOS
        self._pubs = {
            "/joint_states": self.create_publisher(JointState, "/joint_states", state_qos),
            "/joint_commands": self.create_publisher(JointState, "/joint_commands", state_qos),
            "/ee_pose": self.create_publisher(PoseStamped, "/ee_pose", state_qos),
            "/scene/ground_truth": self.create_publisher(SceneStateMsg, "/scene/ground_truth", SCENE_QOS),
            "/clock": self.create_publisher(Clock, "/clock", 10),
        }
        # The camera contract (llm_trainer.sensors.cameras): raw and image_transport-compressed streams,
        # intrinsics, and the optical frame's pose (transient local, as /tf_static is).
        for cam in self.config.cameras:
            topics = camera_topics(cam.name)
            self._pubs[topics.color] = self.create_publisher(Image, topics.color, 10)
            self._pubs[topics.depth] = self.create_publisher(Image, topics.depth, 10)
            self._pubs[topics.color_compressed] = self.create_publisher(CompressedImage, topics.color_compressed, 10)
            self._pubs[topics.depth_compressed] = self.create_publisher(CompressedImage, topics.depth_compressed, 10)
            self._pubs[topics.camera_info] = self.create_publisher(CameraInfo, topics.camera_info, 10)
            self._pubs[topics.extrinsics] = self.create_publisher(TransformStamped, topics.extrinsics, latched)
        self.create_service(ResetScene, "~/reset", self._on_reset, callback_group=self._group)
        self.create_service(CheckSuccess, "~/check_success", self._on_check_success, callback_group=self._group)
        ActionServer(
            self,
            FollowJointTrajectory,
            "~/follow_joint_trajectory",
            self._on_trajectory,
            goal_callback=lambda _g: GoalResponse.ACCEPT,
            cancel_callback=self._on_cancel,
            callback_group=self._group,
        )
        ActionServer(
            self,
            GripperCommand,
            "~/gripper_command",
            self._on_gripper,
            goal_callback=lambda _g: GoalResponse.ACCEPT,
            cancel_callback=self._on_cancel,
            callback_group=self._group,
        )

        self._watches: dict[bytes, _CancelWatch] = {}  # goal id -> the running goal's cancel watch
        self._jobs: queue.Queue[_Job] = queue.Queue()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._busy = False
        self._anchor: tuple[float, float, float] | None = None
        self._clock_offset = 0.0  # [s] ROS time at the current episode's MuJoCo time 0
        self.sim: MujocoSimulation | None = None
        self._startup_error: BaseException | None = None
        self._thread = threading.Thread(target=self._physics_loop, name="physics", daemon=True)
        self._thread.start()
        self._ready.wait(timeout=60.0)
        if self._startup_error is not None:
            raise self._startup_error

    # ------------------------------------------------------------------ set-up
    def _load_config(self) -> SimConfig:
        path = self.get_parameter("config_file").value or None
        config = load_sim_config(path)
        config.render_cameras = bool(self.get_parameter("render_cameras").value)
        rate = float(self.get_parameter("camera_rate_hz").value)
        if rate > 0:
            config.camera_rate_hz = rate
        rtf = float(self.get_parameter("real_time_factor").value)
        if rtf >= 0:
            config.real_time_factor = rtf
        config.validate()
        return config

    # ------------------------------------------------------------------ physics thread
    def _physics_loop(self) -> None:
        try:
            self.sim = make_simulator(
                self.get_parameter("simulator").value, self.config, self.get_parameter("simulator_config_file").value
            )
            task = str(self.get_parameter("task").value)
            self.sim.reset(get_task(task), int(self.get_parameter("seed").value))
        except BaseException as exc:  # noqa: BLE001 - reported by the constructor
            self._startup_error = exc
            self._ready.set()
            return
        self._ready.set()
        while not self._stop.is_set():
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                job = None
            if job is not None:
                self._busy = True
                self._anchor = None
                job.run()
                self._busy = False
                self._anchor = None
                continue
            self.sim.step()
            self._on_step(self.sim)
        self.sim.close()

    def _submit(self, fn: Callable[[], Any], timeout: float = 600.0) -> Any:
        job = _Job(fn)
        self._jobs.put(job)
        if not job.done.wait(timeout):
            raise TimeoutError("the physics thread did not finish the request in time")
        if job.error is not None:
            raise job.error
        return job.result

    def _pace(self, sim: MujocoSimulation) -> None:
        # Idle physics runs in real time; a motion runs at the configured factor (0 = unpaced).
        rtf = self.config.real_time_factor if self._busy else 1.0
        if rtf <= 0:
            return
        now = time.monotonic()
        if self._anchor is None or self._anchor[2] != rtf:
            self._anchor = (now, sim.time, rtf)
            return
        wall0, sim0, _ = self._anchor
        ahead = wall0 + (sim.time - sim0) / rtf - now
        if ahead > 0.002:
            time.sleep(ahead)
        elif ahead < -0.5:  # far behind (e.g. rendering): do not try to catch up in a burst
            self._anchor = (now, sim.time, rtf)

    def _on_step(self, sim: MujocoSimulation) -> None:
        t = sim.time
        schedule = t if self._stream_clock == "sim" else time.monotonic()
        for sample in self.topics.due_samples(sim, schedule, self._clock_offset + t, want_raw=self._raw_wanted):
            self._pubs[sample.topic].publish(sample.data)
        self._pace(sim)

    def _ended(self, outcome: Any) -> tuple[Any, float]:
        """A controller goal's outcome and the simulation time it ended at (the result's stamp: the
        executor takes a joint state and a scene this new as the world after it). With nothing
        recording (``stream_clock: wall``) both go out at once, ahead of the result, instead of at the
        next period of the wall-time schedule; a recording keeps its regular grid of simulated time."""
        t = self.sim.time
        if self._stream_clock == "wall":
            stamp = self._clock_offset + t
            t_ns = int(round(stamp * 1e9))
            for sample in self.topics.state_samples(self.sim, stamp, t_ns):
                self._pubs[sample.topic].publish(sample.data)
            self._pubs[SCENE].publish(self.topics.scene(self.sim.scene_state(), stamp))
        return outcome, t

    def _raw_wanted(self, camera: str, kind: str) -> bool:
        """Raw images only while someone listens (image_transport's habit): serialising them is costly."""
        topics = camera_topics(camera)
        return self._pubs[topics.color if kind == "color" else topics.depth].get_subscription_count() > 0

    def _stamp(self, t: float):
        """The ROS stamp of simulation time ``t`` in the current episode (see ``_clock_offset``)."""
        return stamp_from_seconds(self._clock_offset + t)

    # ------------------------------------------------------------------ services
    def _on_reset(self, request: ResetScene.Request, response: ResetScene.Response) -> ResetScene.Response:
        try:
            task = get_task(request.task_name)
        except KeyError:
            response.success = False
            response.message = f"unknown task {request.task_name!r}; known: {', '.join(task_names())}"
            return response

        def reset():
            # MuJoCo restarts its time at a reset; /clock and every stamp carry on from where the
            # last episode ended, so ROS time never runs backwards and stamps tell episodes apart.
            self._clock_offset += self.sim.time
            instance = self.sim.reset(task, int(request.seed))
            # A new episode restarts simulation time: restart the publishing schedule with it.
            self.topics.restart()
            return instance, self.sim.scene_state(), self.sim.time

        try:
            instance, scene, t = self._submit(reset)
        except Exception as exc:  # noqa: BLE001 - reported to the caller, the node stays up
            response.success, response.message = False, f"reset failed: {exc}"
            return response
        response.success = True
        response.message = f"task {instance.task_name} seed {instance.seed}"
        response.instruction = instance.instruction
        response.goal_json = json.dumps(instance.goal)
        response.scene = scene_to_msg(scene, self._stamp(t))
        self.get_logger().info(f"reset: {instance.task_name} seed {instance.seed}: {instance.instruction!r}")
        return response

    def _on_check_success(self, _request, response: CheckSuccess.Response) -> CheckSuccess.Response:
        settle = float(self.get_parameter("success_settle_time").value)

        def check():
            # Let objects come to rest first: a block still sliding off a stack is not a success.
            self.sim.step_for(settle, self._on_step)
            return self.sim.check_success(), self.sim.scene_state(), self.sim.time

        report, scene, t = self._submit(check)
        response.success = report.success
        response.details_json = json.dumps(report.to_dict())
        response.scene = scene_to_msg(scene, self._stamp(t))
        return response

    # ------------------------------------------------------------------ controller actions
    def _on_cancel(self, goal_handle) -> CancelResponse:
        watch = self._watches.get(bytes(goal_handle.goal_id.uuid))
        if watch is not None:
            watch.requested.set()
        return CancelResponse.ACCEPT

    def _watch(self, goal_handle) -> _CancelWatch:
        watch = _CancelWatch(goal_handle)
        self._watches[bytes(goal_handle.goal_id.uuid)] = watch
        if goal_handle.is_cancel_requested:  # cancelled before it was registered
            watch.requested.set()
        return watch

    def _unwatch(self, goal_handle) -> None:
        self._watches.pop(bytes(goal_handle.goal_id.uuid), None)

    def _on_trajectory(self, goal_handle) -> FollowJointTrajectory.Result:
        traj = goal_handle.request.trajectory
        result = FollowJointTrajectory.Result()
        names = list(traj.joint_names)
        if sorted(names) != sorted(panda.JOINT_NAMES):
            goal_handle.abort()
            result.error_code = FollowJointTrajectory.Result.INVALID_JOINTS
            result.message = f"expected joints {list(panda.JOINT_NAMES)}, got {names}"
            return result
        if not traj.points:
            goal_handle.abort()
            result.error_code = FollowJointTrajectory.Result.INVALID_GOAL
            result.message = "trajectory has no points"
            return result
        order = [names.index(n) for n in panda.JOINT_NAMES]
        times = np.array([seconds_from_stamp(p.time_from_start) for p in traj.points])
        positions = np.array([[p.positions[i] for i in order] for p in traj.points], dtype=float)
        tolerance = goal_handle.request.goal_tolerance or 0.01
        feedback = FollowJointTrajectory.Feedback()
        start = {"t": None, "next": 0.0}

        def on_step(sim: MujocoSimulation) -> None:
            self._on_step(sim)
            if start["t"] is None:
                start["t"] = sim.time
            now = time.monotonic()
            if now >= start["next"]:
                start["next"] = now + self._feedback_period
                feedback.time_from_start = sim.time - start["t"]
                goal_handle.publish_feedback(feedback)

        watch = self._watch(goal_handle)
        try:
            outcome, end = self._submit(
                lambda: self._ended(
                    self.sim.follow_trajectory(
                        times, positions, on_step=on_step, should_stop=watch, goal_tolerance=tolerance
                    )
                )
            )
        finally:
            self._unwatch(goal_handle)
        result.stamp = self._stamp(end)
        result.error_code, result.message, result.final_error = outcome.error_code, outcome.message, outcome.final_error
        if outcome.final_positions is not None:
            result.final_positions = [float(outcome.final_positions[panda.JOINT_NAMES.index(n)]) for n in names]
        if outcome.error_code == FollowJointTrajectory.Result.CANCELED:
            goal_handle.canceled()
        elif outcome.error_code == 0:
            goal_handle.succeed()
        else:
            goal_handle.abort()
        return result

    def _on_gripper(self, goal_handle) -> GripperCommand.Result:
        req = goal_handle.request
        force = req.max_effort if req.max_effort > 0 else panda.GRIPPER_MAX_FORCE
        watch = self._watch(goal_handle)
        try:
            outcome, end = self._submit(
                lambda: self._ended(self.sim.move_gripper(req.width, force, on_step=self._on_step, should_stop=watch))
            )
        finally:
            self._unwatch(goal_handle)
        result = GripperCommand.Result(width=outcome.width, stalled=outcome.stalled, reached_goal=outcome.reached_goal)
        result.stamp = self._stamp(end)
        if goal_handle.is_cancel_requested:
            goal_handle.canceled()
        else:
            goal_handle.succeed()
        return result

    def destroy_node(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    return run_node(
        SimNode,
        name="sim_node",
        args=args,
        num_threads=4,
        startup_errors=(ConfigError, KeyError, ValueError),
        cleanup_timeout_s=10.0,
    )


if __name__ == "__main__":
    raise SystemExit(main())
