"""Bag player node: an MCAP bag's camera-contract messages back onto their topics, for regression replay.

    ros2 launch llm_trainer replay.launch.py bag:=runs/scenes/put_block_3
    llm-trainer bringup replay --arg bag=runs/scenes/put_block_3

What ``ros2 bag play`` does on a full install, for the topics perception reads (colour, depth,
CameraInfo, the latched extrinsics): the recorded CDR bytes unchanged, at the recorded pace times
``rate`` (0: as fast as the subscribers take them), ``loop`` to repeat, stamps as recorded. The
extrinsics go out once, latched (transient local), as the simulator and the RealSense node send them.
``cameras`` limits playback to some cameras (a missing camera, for degradation tests). Playback starts
once every topic has a subscriber (or after ``wait_for_subscribers_s``). A loop repeats the recorded
stamps, so a node that processes each stamp once (perception) answers the first pass only.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy

from llm_trainer.config import ConfigError
from llm_trainer.ros.conversions import message_class
from llm_trainer.ros.node_runner import run_node
from llm_trainer.ros.qos import EXTRINSICS_QOS
from llm_trainer.sensors.cameras import camera_of_topic

MATCH_SETTLE_S = 2.0  # [s]


class BagPlayerNode(Node):
    def __init__(self) -> None:
        super().__init__("bag_player")
        self.declare_parameter("bag", "")
        self.declare_parameter("rate", 1.0)  # x recorded pace; 0: as fast as possible
        self.declare_parameter("loop", False)
        self.declare_parameter("cameras", "")  # "": every camera in the bag
        self.declare_parameter("wait_for_subscribers_s", 30.0)  # play once every topic has a subscriber, or after this
        from llm_trainer.recording.bag_reader import read_raw_messages

        bag = Path(self.get_parameter("bag").value)
        if not str(bag) or not bag.exists():
            raise ConfigError(f"bag_player: no bag at {str(bag)!r} (parameter bag:=PATH)")
        rate = float(self.get_parameter("rate").value)
        if rate < 0:
            raise ConfigError(f"bag_player: rate must be >= 0, got {rate}")
        wanted = {c for c in str(self.get_parameter("cameras").value).split(",") if c}
        messages = [m for m in read_raw_messages(bag) if camera_of_topic(m[1])]
        if wanted:
            messages = [m for m in messages if camera_of_topic(m[1])[0] in wanted]
        if not messages:
            raise ConfigError(f"bag_player: {bag} has no camera-contract messages to play")
        self.messages = sorted(messages, key=lambda m: m[0])
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        latched = EXTRINSICS_QOS
        self.pubs = {}
        for _, topic, msgtype, _ in self.messages:
            if topic not in self.pubs:
                kind = message_class(msgtype)
                qos = latched if topic.endswith("/extrinsics") else reliable
                self.pubs[topic] = self.create_publisher(kind, topic, qos)
        self.rate, self.loop = rate, bool(self.get_parameter("loop").value)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._play, daemon=True)
        self._thread.start()
        cams = sorted({camera_of_topic(m[1])[0] for m in self.messages})
        self.get_logger().info(f"playing {len(self.messages)} messages of {', '.join(cams)} from {bag} at x{rate:g}")

    def _play(self) -> None:
        # As `ros2 bag play` waits for its readers: what is played before a subscriber has matched is lost.
        deadline = time.monotonic() + float(self.get_parameter("wait_for_subscribers_s").value)
        while any(p.get_subscription_count() == 0 for p in self.pubs.values()) and time.monotonic() < deadline:
            if self._stop.wait(0.1):
                return
        # The publisher sees a subscriber before the subscriber sees the publisher; what is sent in between
        # is lost (volatile topics), so the match gets time to settle on both sides.
        if self._stop.wait(MATCH_SETTLE_S):
            return
        latched_sent: set[str] = set()
        while not self._stop.is_set():
            t0_bag, t0 = self.messages[0][0], time.monotonic()
            for stamp_ns, topic, _, raw in self.messages:
                if topic.endswith("/extrinsics"):
                    if topic in latched_sent:
                        continue
                    latched_sent.add(topic)
                elif self.rate > 0:
                    due = t0 + (stamp_ns - t0_bag) * 1e-9 / self.rate
                    if self._stop.wait(max(0.0, due - time.monotonic())):
                        return
                self.pubs[topic].publish(raw)
            if not self.loop:
                self.get_logger().info("bag played to the end")
                return

    def destroy_node(self) -> None:
        self._stop.set()
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    return run_node(BagPlayerNode, name="bag_player_node", args=args, startup_errors=(ConfigError, OSError, ValueError))


if __name__ == "__main__":
    raise SystemExit(main())
