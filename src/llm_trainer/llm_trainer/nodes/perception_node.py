"""Perception node: the camera contract in, the perceived scene out.

Subscribes, per camera in ``cameras``, to the compressed colour and depth streams, the intrinsics
and the (transient-local) extrinsics of the camera contract (``sensors.cameras``), whoever
publishes them: the simulator, the RealSense node or a bag replay. When every camera has delivered
a frame with a new stamp, or ``partial_after`` seconds after the first of them did (a camera that
died or was unplugged then simply contributes no view), it runs the perception pipeline
(``perception.pipeline``, backends from ``config/perception.yaml``) and publishes:

    <output_topic> (default /scene/objects)   SceneState, source "perception": what the planner reads
    ~/report                                  std_msgs/String, JSON: cameras used, missing objects,
                                              stage timings, backends (the regression tests read it)
    ~/debug/<camera>/image/compressed         on request: drawn only while someone subscribes
                                              (boxes projected into the view, pointing pixels, names)

What to look for comes from ``objects_file``: a JSON or YAML list of ``{name, category,
description, rgb}`` (the lab's task objects; ``perception-eval`` writes one from a bag).
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import yaml
from geometry_msgs.msg import PoseStamped, TransformStamped
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage
from std_msgs.msg import String

from llm_trainer.config import ConfigError
from llm_trainer.perception.frames import FrameAssembler
from llm_trainer.perception.pipeline import Perception, load_perception_config
from llm_trainer.perception.views import ObjectQuery
from llm_trainer.ros.conversions import scene_to_msg
from llm_trainer.ros.node_runner import run_node
from llm_trainer.ros.qos import EXTRINSICS_QOS, SCENE_QOS
from llm_trainer.scene import SceneState
from llm_trainer.sensors.cameras import camera_topics
from llm_trainer_interfaces.msg import SceneState as SceneStateMsg


def load_queries(path: str) -> list[ObjectQuery]:
    if not path:
        raise ValueError("objects_file is required: a JSON/YAML list of the objects to find")
    if not Path(path).is_absolute() and not Path(path).exists():
        from llm_trainer.config import config_dir

        # "config/lab_objects.yaml" from a launch file: the package's config folder, wherever it is installed.
        beside = config_dir().parent / path
        path = str(beside) if beside.exists() else path
    try:
        items = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"objects_file {path}: {exc.strerror}") from None
    if not isinstance(items, list) or not items:
        raise ValueError(f"objects_file {path}: expected a non-empty list of objects")
    queries = []
    for item in items:
        if not isinstance(item, dict) or "name" not in item:
            raise ValueError(f"objects_file {path}: every entry needs a name, got {item!r}")
        rgb = item.get("rgb")
        colour = tuple(int(v) for v in rgb) if rgb else None
        description = str(item.get("description", ""))
        queries.append(ObjectQuery(str(item["name"]), str(item.get("category", "object")), description, colour))
    return queries


class PerceptionNode(Node):
    def __init__(self) -> None:
        super().__init__("perception")
        self.declare_parameter("config_file", "")
        self.declare_parameter("cameras", "front,left,right")
        self.declare_parameter("objects_file", "")
        self.declare_parameter("output_topic", "/scene/objects")
        self.declare_parameter("partial_after", 0.5)
        self.declare_parameter("max_skew", 0.05)
        self.cameras = [c.strip() for c in self.get_parameter("cameras").value.split(",") if c.strip()]
        if not self.cameras:
            raise ValueError("cameras: give at least one camera name")
        self.queries = load_queries(self.get_parameter("objects_file").value)
        self.perception = Perception(load_perception_config(self.get_parameter("config_file").value or None))
        self.partial_after = float(self.get_parameter("partial_after").value)
        self.assembler = FrameAssembler(max_skew=float(self.get_parameter("max_skew").value))
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._first_new: float | None = None  # wall time the first camera of a new frame set arrived
        self._done_stamp = -1.0
        self._ee = None
        self.scene_pub = self.create_publisher(SceneStateMsg, self.get_parameter("output_topic").value, SCENE_QOS)
        self.report_pub = self.create_publisher(String, "~/report", 10)
        self.debug_pubs = {
            name: self.create_publisher(CompressedImage, f"~/debug/{name}/image/compressed", 2) for name in self.cameras
        }
        latched = EXTRINSICS_QOS
        images = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
        for name in self.cameras:
            t = camera_topics(name)
            streams = (
                (t.color_compressed, CompressedImage, images),
                (t.depth_compressed, CompressedImage, images),
                (t.camera_info, CameraInfo, 10),
                (t.extrinsics, TransformStamped, latched),
            )
            for topic, kind, qos in streams:
                self.create_subscription(kind, topic, lambda msg, topic=topic: self._on_message(topic, msg), qos)
        self.create_subscription(PoseStamped, "/ee_pose", self._on_ee, 10)
        self._worker = threading.Thread(target=self._run, name="perception", daemon=True)
        self._worker.start()
        self.get_logger().info(
            f"perception ready: cameras {', '.join(self.cameras)}, {len(self.queries)} objects, "
            f"pointing {self.perception.pointer.name}, segmentation {self.perception.segmenter.name}"
        )

    def _on_ee(self, msg: PoseStamped) -> None:
        self._ee = msg

    def _on_message(self, topic: str, msg) -> None:
        with self._lock:
            self.assembler.add(topic, msg)
            ready = self.assembler.ready()
            fresh = [n for n, stamp in ready.items() if stamp > self._done_stamp]
            if fresh and self._first_new is None:
                self._first_new = time.monotonic()
        if fresh:
            self._wake.set()

    def _due(self) -> bool:
        ready = self.assembler.ready()
        fresh = {n for n, stamp in ready.items() if stamp > self._done_stamp}
        if not fresh:
            return False
        if fresh >= set(self.cameras):
            return True
        return self._first_new is not None and time.monotonic() - self._first_new >= self.partial_after

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(timeout=0.05)
            self._wake.clear()
            with self._lock:
                if not self._due():
                    continue
                views = self.assembler.frame_set()
                self._first_new = None
                if views:
                    self._done_stamp = max(v.stamp for v in views)
            if views:
                self._perceive(views)

    def _perceive(self, views) -> None:
        t0 = time.perf_counter()
        try:
            result = self.perception.perceive(views, self.queries)
        except Exception as exc:  # noqa: BLE001 - a bad frame set is reported, the node keeps running
            self.get_logger().error(f"perception failed on a frame set: {exc}")
            return
        total = time.perf_counter() - t0
        scene = SceneState(
            objects=result.objects, table_height=self.perception.config.lifting.table_z, source="perception"
        )
        if self._ee is not None:
            p = self._ee.pose.position
            scene.ee_position = (p.x, p.y, p.z)
        stamp = max(v.stamp for v in views)
        msg = scene_to_msg(scene)
        msg.header.stamp.sec = int(stamp)
        msg.header.stamp.nanosec = int(round((stamp - int(stamp)) * 1e9))
        self.scene_pub.publish(msg)
        report = {**result.to_dict(), "stamp": stamp, "total_s": round(total, 4)}
        report.pop("views", None)
        self.report_pub.publish(String(data=json.dumps(report)))
        self._publish_debug(views, result, msg.header)

    def _publish_debug(self, views, result, header) -> None:
        wanted = [v for v in views if v.name in self.debug_pubs and self.debug_pubs[v.name].get_subscription_count()]
        if not wanted:
            return
        from llm_trainer.perception.debug import debug_image
        from llm_trainer.sensors.image_codec import encode_color

        for view in wanted:
            fmt, data = encode_color(debug_image(view, result))
            msg = CompressedImage(format=fmt, data=data)
            msg.header.stamp = header.stamp
            msg.header.frame_id = view.name + "_color_optical_frame"
            self.debug_pubs[view.name].publish(msg)

    def destroy_node(self) -> None:
        self._stop.set()
        self._wake.set()
        self._worker.join(timeout=5.0)
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    return run_node(
        PerceptionNode,
        name="perception_node",
        args=args,
        num_threads=2,
        startup_errors=(ConfigError, ValueError),
        cleanup_timeout_s=10.0,
    )


if __name__ == "__main__":
    raise SystemExit(main())
