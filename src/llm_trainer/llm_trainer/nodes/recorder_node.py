"""demo_recorder: records episodes to MCAP on request.

Service ``~/episode`` (llm_trainer_interfaces/srv/EpisodeControl): START opens a bag under
``<output_dir>/bags/<episode_id>/`` and subscribes (raw CDR, no deserialisation) to the configured
topics; subscriptions are kept across episodes and messages between episodes are ignored. STOP closes
the bag and writes metadata.json; ABORT closes it and marks it aborted (kept on disk). By default it
records the robot's state topics, the executor's primitive events and, per camera, the compressed
colour and depth streams, intrinsics and extrinsics of the camera contract
(``llm_trainer.sensors.cameras``). Datasets are made from the bags by ``llm-trainer export``
(``llm_trainer.datasets``), so any recorded run, also from the lab robot, can be exported again.
All logic lives in ``llm_trainer.recording``; this node only adapts ROS to it.
"""

from __future__ import annotations

import importlib
import threading
import time
from pathlib import Path

from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from llm_trainer.recording import (
    EpisodeRecorder,
    RecorderError,
    get_ros2_typestore,
    header_stamp_ns,
    parse_metadata_json,
)
from llm_trainer.ros.listener import SideNode
from llm_trainer.ros.node_runner import run_node
from llm_trainer.sensors.cameras import TOPIC_ROOT, camera_topics
from llm_trainer_interfaces.srv import EpisodeControl

CAMERAS = ("front", "left", "right")
STATE_TOPICS = [
    "/joint_states",
    "/joint_commands",
    "/ee_pose",
    "/scene/ground_truth",
    "/clock",
    "/executor/primitive_events",
]


def default_topics(cameras=CAMERAS) -> list[str]:
    return STATE_TOPICS + [t for cam in cameras for t in camera_topics(cam).recorded()]


RESOLVE_PERIOD_S = 0.25


def _message_class(msgtype: str) -> type:
    """'sensor_msgs/msg/Image' -> the generated Python class (rosidl_runtime_py is not available here)."""
    pkg, kind, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{pkg}.{kind}"), name)


class DemoRecorderNode(Node):
    """Raw-CDR topic recorder driven by the ``~/episode`` service."""

    def __init__(self, **kwargs) -> None:
        super().__init__("demo_recorder", **kwargs)
        self.declare_parameter("output_dir", "data/episodes")
        self.declare_parameter("cameras", list(CAMERAS))
        self.declare_parameter("topics", [""])  # [""]: the state topics plus the cameras' contract topics
        # START waits (at most this long) until its subscriptions have matched the publishers already
        # advertised, so the first messages of an episode are not lost to DDS discovery.
        self.declare_parameter("start_match_timeout_s", 5.0)
        # STOP keeps recording this long first, so messages already in flight (published just before
        # the STOP request, still queued in DDS or the executor) make it into the bag.
        self.declare_parameter("stop_drain_s", 0.1)
        # STOP metadata may carry "record_until" (seconds of header-stamp time, e.g. the stamp of the
        # final success check): STOP then waits until `sync_topic` has been recorded up to that time, at
        # most stop_sync_timeout_s. A busy recorder lags the graph; without this the tail is cut off.
        self.declare_parameter("sync_topic", "/joint_states")
        self.declare_parameter("stop_sync_timeout_s", 5.0)
        # Reader queue depths: the backlog DDS keeps while this Python process lags (busy or starved of
        # CPU). Measured with `llm-trainer generate` on a loaded 2-core machine: depths 100/10 lost up to
        # 1 s runs of joint states; 1000/30 lost at most single messages and a few camera frames; three
        # cameras at 15 Hz (scripts/benchmark_recording.py) lost 5 % of frames at 30 and none at 150
        # (compressed frames: about 10 MB of backlog at most).
        self.declare_parameter("state_qos_depth", 1000)
        self.declare_parameter("camera_qos_depth", 150)

        self._output_dir = Path(self.get_parameter("output_dir").value).expanduser()
        topics = [str(t) for t in self.get_parameter("topics").value if str(t)]
        self._topics = topics or default_topics([str(c) for c in self.get_parameter("cameras").value])
        self._match_timeout_s = float(self.get_parameter("start_match_timeout_s").value)
        self._stop_drain_s = float(self.get_parameter("stop_drain_s").value)
        self._sync_topic = str(self.get_parameter("sync_topic").value)
        self._sync_timeout_s = float(self.get_parameter("stop_sync_timeout_s").value)
        self._state_depth = int(self.get_parameter("state_qos_depth").value)
        self._camera_depth = int(self.get_parameter("camera_qos_depth").value)

        self._typestore = get_ros2_typestore()
        self._recorder = EpisodeRecorder(self._output_dir, typestore=self._typestore)
        # Subscriptions are created by the service and the resolve timer and kept until the node ends.
        self._subs_lock = threading.Lock()
        self._subs: dict[str, object] = {}
        self._pending: list[str] = []

        # Recorded topics are read on a side node (its own executor and thread: rclpy's executor walk
        # per wake-up, not the callbacks, took this node's whole core at 20x real time); control
        # (service + timer) is serialised on this one.
        self._data = SideNode(self, "data")
        self._control_group = MutuallyExclusiveCallbackGroup()
        self.create_service(EpisodeControl, "~/episode", self._on_episode, callback_group=self._control_group)
        self._resolve_timer = self.create_timer(
            RESOLVE_PERIOD_S, self._resolve_pending, callback_group=self._control_group
        )
        self._resolve_timer.cancel()
        self.get_logger().info(f"demo_recorder ready: {len(self._topics)} topics -> {self._output_dir}")

    # ------------------------------------------------------------------ accessors (tests, diagnostics)
    @property
    def recorder(self) -> EpisodeRecorder:
        return self._recorder

    def subscribed_topics(self) -> list[str]:
        with self._subs_lock:
            return sorted(self._subs)

    def unmatched_topics(self) -> list[str]:
        """Subscribed topics whose reader has not yet matched every publisher the graph shows."""
        with self._subs_lock:
            subs = dict(self._subs)
        return sorted(t for t, sub in subs.items() if sub.get_publisher_count() < self.count_publishers(t))

    # ------------------------------------------------------------------ service
    def _on_episode(self, request: EpisodeControl.Request, response: EpisodeControl.Response):
        response.ok = False
        try:
            if request.command == EpisodeControl.Request.START:
                self._start(request, response)
            elif request.command == EpisodeControl.Request.STOP:
                self._finish(request, response, abort=False)
            elif request.command == EpisodeControl.Request.ABORT:
                self._finish(request, response, abort=True)
            else:
                response.message = f"unknown command {request.command} (START=0, STOP=1, ABORT=2)"
        except RecorderError as exc:
            response.ok = False
            response.message = str(exc)
        except Exception as exc:  # noqa: BLE001 - a service must answer, never take the node down
            self.get_logger().error(f"episode command {request.command} failed: {exc!r}")
            response.ok = False
            response.message = f"internal error: {type(exc).__name__}: {exc}"
        if not response.ok:
            self.get_logger().warning(f"episode command {request.command} refused: {response.message}")
        return response

    def _start(self, request, response) -> None:
        metadata = parse_metadata_json(request.metadata_json, "START metadata_json")
        bag_path = self._recorder.start(request.episode_id, metadata)
        # Subscriptions outlive episodes (messages between episodes are ignored): a new reader would
        # need DDS discovery again and could miss the first samples of every episode.
        with self._subs_lock:
            self._pending = [t for t in self._topics if t not in self._subs]
        self._resolve_pending()
        if self._pending:
            # Topics not advertised yet (simulator still starting, cameras enabled later) are retried.
            self._resolve_timer.reset()
        # Discovery is one-sided for a moment: a publisher may already send to a new reader that has
        # not matched it yet, and a volatile reader drops those samples. Wait for our side to match.
        deadline = time.monotonic() + self._match_timeout_s
        unmatched = self.unmatched_topics()
        while unmatched and time.monotonic() < deadline:
            time.sleep(0.01)
            unmatched = self.unmatched_topics()
        response.ok = True
        response.episode_id = bag_path.name
        response.bag_path = str(bag_path)
        notes = [f"waiting for {', '.join(self._pending)}"] if self._pending else []
        if unmatched:
            notes.append(f"not yet matched: {', '.join(unmatched)}")
        response.message = "; ".join([f"recording {len(self._subs)} topics", *notes])
        self.get_logger().info(f"START {bag_path.name}: {response.message}")

    def _finish(self, request, response, *, abort: bool) -> None:
        metadata = parse_metadata_json(request.metadata_json, "STOP metadata_json")
        notes: list[str] = []
        if self._recorder.active and (not request.episode_id or request.episode_id == self._recorder.episode_id):
            # Message callbacks run on other executor threads meanwhile.
            if self._stop_drain_s > 0:
                time.sleep(self._stop_drain_s)
            if "record_until" in metadata:
                reached = self._wait_recorded_until(metadata["record_until"])
                metadata["record_until_reached"] = reached
                if not reached:
                    notes.append(f"{self._sync_topic} not recorded up to record_until={metadata['record_until']}")
            if "record_counts" in metadata:
                # Sparse topics (the executor's primitive events) can trail the last joint state: wait
                # until as many messages as the client knows were sent have been recorded.
                short = self._wait_counts(metadata["record_counts"])
                metadata["record_counts_reached"] = not short
                if short:
                    notes.append(f"fewer messages than sent on {', '.join(short)}")
        if abort:
            summary = self._recorder.abort(request.episode_id, metadata)
        else:
            summary = self._recorder.stop(request.episode_id, metadata, success=request.task_success)
        self._pending = []
        self._resolve_timer.cancel()
        response.episode_id = summary.episode_id
        response.bag_path = str(summary.bag_path)
        response.message_count = summary.message_count
        response.ok = True
        response.message = "; ".join([f"{summary.status}: {summary.message_count} messages", *notes])
        self.get_logger().info(f"{'ABORT' if abort else 'STOP'} {summary.episode_id}: {response.message}")

    def _wait_counts(self, wanted: object) -> list[str]:
        """Wait (at most stop_sync_timeout_s) until each topic has at least its count; the topics short."""
        if not isinstance(wanted, dict) or not all(isinstance(v, int) for v in wanted.values()):
            raise RecorderError(f"record_counts must map topics to message counts, got {wanted!r}")
        deadline = time.monotonic() + self._sync_timeout_s
        while True:
            counts = self._recorder.counts()
            short = [t for t, n in wanted.items() if counts.get(t, 0) < n]
            if not short or time.monotonic() >= deadline:
                return short
            time.sleep(0.01)

    def _wait_recorded_until(self, until: object) -> bool:
        if isinstance(until, bool) or not isinstance(until, (int, float)):
            raise RecorderError(f"record_until must be a number of seconds, got {until!r}")
        target_ns = int(round(float(until) * 1e9))
        deadline = time.monotonic() + self._sync_timeout_s
        while True:
            latest = self._recorder.latest_ns(self._sync_topic)
            if latest is not None and latest >= target_ns:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)

    # ------------------------------------------------------------------ subscriptions
    def _resolve_pending(self) -> None:
        if not self._recorder.active:
            self._pending = []
        if not self._pending:
            self._resolve_timer.cancel()
            return
        advertised = dict(self.get_topic_names_and_types())
        still: list[str] = []
        for topic in self._pending:
            types = advertised.get(topic)
            if not types:
                still.append(topic)
                continue
            if len(types) > 1:
                self.get_logger().warning(f"{topic} is advertised with several types {types}; recording {types[0]}")
            try:
                self._subscribe(topic, types[0])
            except Exception as exc:  # noqa: BLE001 - one bad topic must not stop the others
                self.get_logger().error(f"cannot record {topic} ({types[0]}): {exc}")
        self._pending = still

    def _qos_for(self, topic: str) -> QoSProfile:
        # Reliable unless a publisher only offers best effort (a reliable reader would never match it).
        infos = self.get_publishers_info_by_topic(topic)
        best_effort = any(i.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT for i in infos)
        depth = self._camera_depth if topic.startswith(TOPIC_ROOT + "/") else self._state_depth
        return QoSProfile(
            history=HistoryPolicy.KEEP_LAST,
            depth=depth,
            reliability=ReliabilityPolicy.BEST_EFFORT if best_effort else ReliabilityPolicy.RELIABLE,
            durability=DurabilityPolicy.VOLATILE,
        )

    def _subscribe(self, topic: str, msgtype: str) -> None:
        if msgtype not in self._typestore.fielddefs:
            raise ValueError(f"type {msgtype} is unknown to the bag typestore")
        msg_class = _message_class(msgtype)
        recorder, clock = self._recorder, self.get_clock()

        def on_message(data: bytes) -> None:
            # Header stamps are simulation time; messages without one get this node's clock
            # (simulation time too when use_sim_time is set).
            t_ns = header_stamp_ns(data, msgtype, self._typestore)
            if t_ns is None:
                t_ns = clock.now().nanoseconds
            try:
                recorder.write(topic, msgtype, data, t_ns)
            except Exception as exc:  # noqa: BLE001 - keep recording the other topics
                self.get_logger().error(f"dropping a message on {topic}: {exc}", throttle_duration_sec=5.0)

        sub = self._data.subscribe(msg_class, topic, on_message, self._qos_for(topic), raw=True)
        with self._subs_lock:
            self._subs[topic] = sub

    def destroy_node(self) -> None:
        # Close an episode in flight so its bag gets an index and metadata.yaml.
        data = getattr(self, "_data", None)
        if data is not None:
            data.close()  # no message callback writes while the bag is closed
        try:
            summary = self._recorder.shutdown()
            if summary is not None:
                self.get_logger().warning(f"closed episode {summary.episode_id} as interrupted")
        except Exception as exc:  # noqa: BLE001
            self.get_logger().error(f"closing the open episode failed: {exc!r}")
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    return run_node(
        DemoRecorderNode,
        name="recorder_node",
        args=args,
        # Closing an open episode indexes its bag: give it time.
        cleanup_timeout_s=30.0,
    )


if __name__ == "__main__":
    raise SystemExit(main())
