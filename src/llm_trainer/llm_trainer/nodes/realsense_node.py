"""RealSense node: the lab's D435i cameras on the camera contract's topics, as the simulator publishes them.

Per camera (``llm_trainer.sensors.cameras``; all stamped with the node clock when the frame set is read):

    /cameras/<name>/color/image_raw/compressed       CompressedImage (JPEG or PNG, config color_format)
    /cameras/<name>/depth/image_raw/compressedDepth  CompressedImage (16UC1 [mm] PNG, aligned to colour)
    /cameras/<name>/color/camera_info                CameraInfo (the device's colour intrinsics)
    /cameras/<name>/extrinsics                       TransformStamped world -> optical frame (transient
                                                     local; from config/realsense.yaml, on each connect)
    /cameras/<name>/color/image_raw, depth/image_raw Image rgb8 / 16UC1, only while someone subscribes

Parameters: ``config_file`` (default ``config/realsense.yaml``) and ``cameras`` (a comma list of the
configured names; empty: all). The work is in ``llm_trainer.sensors.realsense``; here each camera gets a
thread that opens it, reads and publishes. A camera that is missing at start-up or unplugged later is
logged once ("camera front (serial X) disconnected; retrying every 2.0 s") and retried every
``reconnect_interval_s`` while the others keep streaming; reconnecting is logged too.
"""

from __future__ import annotations

import array
import threading

from geometry_msgs.msg import TransformStamped
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from llm_trainer.config import ConfigError
from llm_trainer.ros.node_runner import run_node
from llm_trainer.ros.qos import EXTRINSICS_QOS
from llm_trainer.sensors.cameras import COLOR_ENCODING, DEPTH_ENCODING, camera_topics
from llm_trainer.sensors.realsense import (
    CameraDisconnected,
    CameraNotFound,
    RealSenseCamera,
    RealSenseCameraConfig,
    RealSenseConfig,
    RealSenseError,
    RealSenseFrame,
    extrinsics_fields,
    frame_messages,
    load_realsense_config,
    require_pyrealsense2,
)


class _CameraWorker:
    """One camera's thread: (re)open, read, publish; never lets an error escape to the other cameras."""

    def __init__(self, node: RealSenseNode, cam: RealSenseCameraConfig, config: RealSenseConfig):
        self.node = node
        self.cam = cam
        self.config = config
        self.log = node.get_logger()
        topics = camera_topics(cam.name)
        latched = EXTRINSICS_QOS
        # Same QoS as the simulator's streams (reliable, depth 10), so the same subscribers match.
        self.color_pub = node.create_publisher(Image, topics.color, 10)
        self.depth_pub = node.create_publisher(Image, topics.depth, 10)
        self.color_compressed_pub = node.create_publisher(CompressedImage, topics.color_compressed, 10)
        self.depth_compressed_pub = node.create_publisher(CompressedImage, topics.depth_compressed, 10)
        self.info_pub = node.create_publisher(CameraInfo, topics.camera_info, 10)
        self.extrinsics_pub = node.create_publisher(TransformStamped, topics.extrinsics, latched)
        self.camera: RealSenseCamera | None = None
        self._stop = node.stop_event
        self._thread = threading.Thread(target=self._run, name=f"realsense_{cam.name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def _describe(self) -> str:
        return f"camera {self.cam.name} (serial {self.cam.serial})"

    def _run(self) -> None:
        interval = self.config.reconnect_interval_s
        ever_connected = False
        reported = False  # the current outage has been logged
        try:
            while not self._stop.is_set():
                try:
                    if self.camera is None:
                        self.camera = RealSenseCamera(self.cam, self.config)
                    if not self.camera.is_open:
                        model = self.camera.open()
                        verb = "reconnected" if ever_connected else "connected"
                        self.log.info(
                            f"{self._describe()} {verb}: {model.width}x{model.height} @ {self.config.fps} fps"
                        )
                        ever_connected, reported = True, False
                        self._publish_extrinsics()
                    frame = self.camera.read()
                    if frame is not None:
                        self._publish(frame)
                except CameraDisconnected as exc:
                    self.log.warning(f"{self._describe()} disconnected; retrying every {interval:.1f} s ({exc.reason})")
                    reported = True
                    self._stop.wait(interval)
                except CameraNotFound:
                    if not reported:
                        self.log.warning(f"{self._describe()} not connected; retrying every {interval:.1f} s")
                        reported = True
                    self._stop.wait(interval)
                except RealSenseError as exc:  # cannot stream (a size or rate the camera lacks, a busy device)
                    if not reported:
                        self.log.warning(f"{exc}; retrying every {interval:.1f} s")
                        reported = True
                    self._stop.wait(interval)
                except Exception as exc:  # noqa: BLE001 - a bad frame or a bug: keep the other cameras going
                    self.log.error(f"{self._describe()}: {type(exc).__name__}: {exc}; retrying in {interval:.1f} s")
                    if self.camera is not None:
                        self.camera.close()
                    self._stop.wait(interval)
        finally:
            if self.camera is not None:
                self.camera.close()

    # ------------------------------------------------------------------ publishing
    def _publish_extrinsics(self) -> None:
        ext = extrinsics_fields(self.camera.model)
        msg = TransformStamped()
        msg.header.stamp = self.node.get_clock().now().to_msg()
        msg.header.frame_id = ext["parent_frame"]
        msg.child_frame_id = ext["child_frame"]
        t, q = ext["translation"], ext["quaternion_xyzw"]
        msg.transform.translation.x, msg.transform.translation.y, msg.transform.translation.z = t
        msg.transform.rotation.x, msg.transform.rotation.y, msg.transform.rotation.z, msg.transform.rotation.w = q
        self.extrinsics_pub.publish(msg)

    def _publish(self, frame: RealSenseFrame) -> None:
        stamp = self.node.get_clock().now().to_msg()
        data = frame_messages(frame, self.config.color_format, self.config.jpeg_quality)
        for pub, fmt, payload in (
            (self.color_compressed_pub, data.color_format, data.color_data),
            (self.depth_compressed_pub, data.depth_format, data.depth_data),
        ):
            msg = CompressedImage(format=fmt, data=array.array("B", payload))
            msg.header.stamp, msg.header.frame_id = stamp, data.frame_id
            pub.publish(msg)
        info = CameraInfo(**data.camera_info)
        info.header.stamp, info.header.frame_id = stamp, data.frame_id
        self.info_pub.publish(info)
        # Raw images only while someone listens (image_transport's habit): they are large.
        for pub, image, encoding in (
            (self.color_pub, frame.rgb, COLOR_ENCODING),
            (self.depth_pub, frame.depth_mm, DEPTH_ENCODING),
        ):
            if pub.get_subscription_count() > 0:
                h, w = image.shape[:2]
                msg = Image(height=h, width=w, encoding=encoding, is_bigendian=0, step=image.strides[0])
                msg.data = array.array("B", image.tobytes())
                msg.header.stamp, msg.header.frame_id = stamp, data.frame_id
                pub.publish(msg)


class RealSenseNode(Node):
    def __init__(self) -> None:
        super().__init__("realsense")
        self.declare_parameter("config_file", "")
        self.declare_parameter("cameras", "")
        self.config = load_realsense_config(self.get_parameter("config_file").value or None)
        selected = self.config.select(str(self.get_parameter("cameras").value))
        require_pyrealsense2()
        self.stop_event = threading.Event()
        self.workers = [_CameraWorker(self, cam, self.config) for cam in selected]
        for worker in self.workers:
            worker.start()
        self.get_logger().info(
            f"realsense ready: cameras {', '.join(f'{c.name} (serial {c.serial})' for c in selected)}, "
            f"{self.config.width}x{self.config.height} @ {self.config.fps} fps"
            + (", hardware sync" if self.config.hardware_sync else "")
        )

    def destroy_node(self) -> None:
        self.stop_event.set()
        # A read waits at most frame_timeout_s; the runner's watchdog bounds a driver that hangs.
        for worker in self.workers:
            worker.join(timeout=self.config.frame_timeout_s + 3.0)
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    return run_node(
        RealSenseNode,
        name="realsense_node",
        args=args,
        num_threads=2,
        startup_errors=(ConfigError, RealSenseError),
        cleanup_timeout_s=10.0,
    )


if __name__ == "__main__":
    raise SystemExit(main())
