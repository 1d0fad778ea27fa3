"""Motion backend that drives the simulator node's controller actions over DDS.

The executor node uses it with ``backend: sim``: trajectories go to
``<ns>/follow_joint_trajectory`` and gripper commands to ``<ns>/gripper_command``; the arm's
state comes from ``/joint_states``. Waiting happens on threading events, never by spinning,
because the caller already runs inside a multi-threaded executor.
``/joint_states`` (50 Hz of simulated time: a thousand messages a second while an unpaced motion runs
at 20x real time) is read by a ``Listener``, off the executor node's busy main executor.
"""

from __future__ import annotations

import threading
import time

import numpy as np
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState

from llm_trainer.execution.backend import TIMED_OUT, GripperResult, MotionBackend
from llm_trainer.execution.backends.common import BackendUnavailable
from llm_trainer.motion.trajectory import JointTrajectory
from llm_trainer.ros.action_client import ActionClient
from llm_trainer.ros.conversions import seconds_from_stamp, trajectory_to_msg
from llm_trainer.ros.listener import Listener
from llm_trainer.sim import panda_description as panda
from llm_trainer.sim.mujoco_sim import GripperOutcome, TrajectoryOutcome
from llm_trainer_interfaces.action import FollowJointTrajectory, GripperCommand

#: Seconds granted on top of a timeout for the goal and result to travel over DDS.
TRANSPORT_SLACK = 10.0
#: Seconds to let a just-discovered action server finish matching before the first goal: the
#: client can see the server's request reader before the server sees the client's response
#: reader, and an answer sent in that window is lost.
DISCOVERY_SETTLE = 0.5


def _wait_future(future, timeout: float) -> bool:
    done = threading.Event()
    future.add_done_callback(lambda _f: done.set())
    return done.wait(timeout)


_NOT_STARTED = {
    "unavailable": f"the simulator's {{what}} controller is not available (waited {TRANSPORT_SLACK:.0f} s)",
    "unanswered": f"no answer from the {{what}} controller within {TRANSPORT_SLACK:.0f} s (goal or reply lost)",
    "rejected": "the {what} controller rejected the goal",
}


class SimControllerBackend(MotionBackend):
    name = "sim"

    def __init__(
        self, node: Node, namespace: str = "/sim", joint_states_topic: str = "/joint_states", callback_group=None
    ):
        self._node = node
        ns = namespace.rstrip("/")
        self._trajectory = ActionClient(
            node, FollowJointTrajectory, f"{ns}/follow_joint_trajectory", callback_group=callback_group
        )
        self._gripper = ActionClient(node, GripperCommand, f"{ns}/gripper_command", callback_group=callback_group)
        self._matched: set[int] = set()  # id() of the action clients whose server has been seen
        self._lock = threading.Lock()
        self._q: np.ndarray | None = None
        self._have_state = threading.Event()
        self._state_count = 0
        self._stamp = 0.0
        #: [s] joint states stamped before this (the robot's clock) are stale: set per goal by the executor node
        self.not_before = 0.0
        #: [s] the controller's clock when its last goal ended (its result's stamp); 0 until one ends
        self._goal_end = 0.0
        self._state_cond = threading.Condition(self._lock)
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self._states = Listener(node, JointState, joint_states_topic, self._on_joint_state, qos)

    def close(self) -> None:
        self._states.close()

    def _on_joint_state(self, msg: JointState) -> None:
        index = {n: i for i, n in enumerate(msg.name)}
        if not all(n in index for n in panda.JOINT_NAMES):
            return
        with self._lock:
            self._q = np.array([msg.position[index[n]] for n in panda.JOINT_NAMES])
            self._stamp = seconds_from_stamp(msg.header.stamp)
            self._state_count += 1
            self._state_cond.notify_all()
        self._have_state.set()

    def latest_state_stamp(self) -> float:
        """Stamp [s] of the newest joint state received (no waiting): the robot's clock, roughly now."""
        with self._lock:
            return self._stamp

    def fresh_state_stamp(self) -> float:
        """Stamp [s] of a joint state published after this call: the robot's 'now' in its own clock."""
        self.joint_positions()
        with self._lock:
            return self._stamp

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        for client, what in ((self._trajectory, "trajectory"), (self._gripper, "gripper")):
            if not client.wait_for_server(timeout_sec=max(0.1, deadline - time.monotonic())):
                raise BackendUnavailable(f"the simulator's {what} controller action is not available")
        if not self._have_state.wait(max(0.1, deadline - time.monotonic())):
            raise BackendUnavailable("no /joint_states received from the simulator")

    def joint_positions(self) -> np.ndarray:
        """The arm's state as of now.

        Within a plan (``new_plan``), after one of our goals ended, a joint state stamped at or after
        that end is the arm as it is now: nothing else moves it between the goals of one plan, and the
        simulator sends that state ahead of the result. Otherwise (a plan's first motion) wait for
        two joint states newer than the call: a message already queued may predate a reset; the
        second one after the call was published after it.
        """
        if not self._have_state.wait(10.0):
            raise BackendUnavailable("no /joint_states received")
        with self._lock:
            if self._goal_end > 0.0 and self._goal_end >= self.not_before:
                since = self._goal_end
                fresh = lambda: self._stamp >= since  # noqa: E731
            else:
                target, since = self._state_count + 2, self.not_before
                # ... and stamped at or after ``not_before`` (the reset of the episode the plan is for):
                # under load, a backlog of the previous episode's states can still be arriving after a reset.
                fresh = lambda: self._state_count >= target and self._stamp >= since  # noqa: E731
            if not self._state_cond.wait_for(fresh, timeout=5.0):
                raise BackendUnavailable(f"no /joint_states stamped after {since:.3f} s arrived")
            return self._q.copy()

    def goal_end_stamp(self) -> float:
        """[s] The controller's clock when this plan's last goal ended (0 before its first one)."""
        with self._lock:
            return self._goal_end

    def new_plan(self) -> None:
        """A new plan starts: the world may have changed since our last goal (a reset, another
        client), so its first state query waits for states newer than the call again."""
        with self._lock:
            self._goal_end = 0.0

    def _ended_at(self, result) -> None:
        stamp = seconds_from_stamp(result.stamp)
        with self._lock:
            self._goal_end = max(self._goal_end, stamp)

    def _run_goal(self, client: ActionClient, goal, cancel: threading.Event, timeout: float):
        """The action's result, or "unavailable" (no server), "unanswered" (no reply to the goal),
        "rejected" or "timeout". The timeout is wall-clock time (the
        simulator runs at least as fast as real time here); on it the goal is cancelled, which
        makes the controller hold the arm where it is."""
        if id(client) not in self._matched:
            # The first goal would be lost (not queued) if the server is not discovered yet.
            if not client.wait_for_server(timeout_sec=TRANSPORT_SLACK):
                return "unavailable"
            time.sleep(DISCOVERY_SETTLE)
            self._matched.add(id(client))
        send = client.send_goal_async(goal)
        if not _wait_future(send, TRANSPORT_SLACK):
            return "unanswered"
        if not send.result().accepted:
            return "rejected"
        handle = send.result()
        result_future = handle.get_result_async()
        deadline = time.monotonic() + timeout
        cancel_sent = False
        while not _wait_future(result_future, 0.05):
            if cancel.is_set() and not cancel_sent:
                handle.cancel_goal_async()
                cancel_sent = True
            if time.monotonic() > deadline:
                handle.cancel_goal_async()
                _wait_future(result_future, 5.0)
                return "timeout"
        return result_future.result().result

    def follow_joint_trajectory(
        self, trajectory: JointTrajectory, cancel: threading.Event, timeout: float = float("inf")
    ) -> TrajectoryOutcome:
        goal = FollowJointTrajectory.Goal(trajectory=trajectory_to_msg(trajectory), goal_tolerance=0.01)
        wall = min(timeout, trajectory.duration * 20 + 30.0) + TRANSPORT_SLACK
        result = self._run_goal(self._trajectory, goal, cancel, timeout=wall)
        if isinstance(result, str) and result in _NOT_STARTED:
            return TrajectoryOutcome(-1, float("inf"), 0.0, 0.0, _NOT_STARTED[result].format(what="trajectory"))
        if result == "timeout":
            return TrajectoryOutcome(TIMED_OUT, float("inf"), 0.0, 0.0, f"no result within {wall:.0f} s; cancelled")
        self._ended_at(result)
        final = None
        if len(result.final_positions) == len(panda.JOINT_NAMES):
            final = np.array(result.final_positions)
        return TrajectoryOutcome(result.error_code, result.final_error, 0.0, 0.0, result.message, final)

    def move_gripper(
        self, width: float, force: float, cancel: threading.Event, timeout: float = float("inf")
    ) -> GripperOutcome:
        goal = GripperCommand.Goal(width=width, max_effort=force)
        result = self._run_goal(self._gripper, goal, cancel, timeout=min(timeout, 30.0) + TRANSPORT_SLACK)
        if isinstance(result, str):
            why = _NOT_STARTED.get(result, "no result in time; cancelled").format(what="gripper")
            return GripperResult(float("nan"), False, False, timed_out=result == "timeout", message=why)
        self._ended_at(result)
        return GripperResult(result.width, result.stalled, result.reached_goal)
