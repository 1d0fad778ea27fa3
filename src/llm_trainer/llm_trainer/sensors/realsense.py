"""Intel RealSense D435i cameras as the camera contract's frames (ROS-free; ``pyrealsense2``).

``RealSenseCamera`` opens one camera by serial number, streams colour (``rgb8``) and depth (``z16``) at
the configured size and rate, aligns depth to colour (``rs.align``), and ``read()`` hands back a
:class:`RealSenseFrame`: RGB uint8 (H, W, 3), depth uint16 (H, W) in millimetres (the contract's
16UC1), the frame's device timestamp in seconds and a :class:`~llm_trainer.sensors.cameras.CameraModel`
built from the colour stream's intrinsics as the device reports them and the extrinsics of
``config/realsense.yaml``. :func:`frame_messages` turns a frame into the contract's message contents
(``image_transport`` format strings and bytes, CameraInfo fields), so the ROS node only copies fields.

Disconnects: ``read()`` raises :class:`CameraDisconnected` when librealsense reports the device removed
(devices-changed callback), when waiting for frames raises, or when no frame has come for
``stall_timeout_s`` (a D435i that stops streaming is restarted like an unplugged one). The camera is
closed by then; the caller logs once and calls ``open()`` again every ``reconnect_interval_s`` until it
succeeds (``open()`` raises :class:`CameraNotFound` at once while the serial is not connected).

Pixel convention: the contract uses CameraInfo's (OpenCV's) convention, pixel centres at integer
``u, v`` (``CameraModel.world_points``, the simulator's K), which is librealsense's too: the published
principal point is the device's ``ppx, ppy`` as it is, as ``realsense2_camera`` publishes it.

Hardware sync (``hardware_sync: true``): the first configured camera is the master
(``inter_cam_sync_mode`` 1), the others slaves (2), which needs the sync cable between the cameras.

Without ``pyrealsense2`` this module still imports (the configuration loads and validates); creating
a camera raises :class:`RealSenseUnavailable`, which names the package to install.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from llm_trainer.config import ConfigError, config_dir, load_section
from llm_trainer.sensors.cameras import (
    WORLD_FRAME,
    CameraModel,
    optical_frame,
    quaternion_to_rotation,
    rotation_to_quaternion,
)
from llm_trainer.sensors.image_codec import encode_color, encode_depth

#: The Intel RealSense SDK's Python bindings, imported on first use (``require_pyrealsense2``): loading the
#: SDK starts its threads, and a process that only reads this module's configuration (the CLI,
#: calibration, the workcell URDF) must not carry them (a generator exited with SIGSEGV when it did).
_UNLOADED: Any = object()
rs: Any = _UNLOADED

PACKAGE_HINT = "pip install 'pyrealsense2>=2.55,<3'"
#: Frame rates the D435i offers for both colour and depth (at suitable resolutions).
D435I_FPS = (6, 15, 30, 60, 90)
#: ``inter_cam_sync_mode`` values of the D400 series.
SYNC_DEFAULT, SYNC_MASTER, SYNC_SLAVE = 0, 1, 2
#: librealsense and the contract both centre pixels at integer coordinates (see the module doc).
PIXEL_CENTRE_OFFSET = 0.0


# ---------------------------------------------------------------------------------------- errors
class RealSenseError(RuntimeError):
    """A RealSense camera cannot be used (missing SDK, not connected, cannot stream)."""


class RealSenseUnavailable(RealSenseError):
    """``pyrealsense2`` is not installed."""


class CameraNotFound(RealSenseError):
    """No connected device has the configured serial number."""


class CameraDisconnected(RealSenseError):
    """A streaming camera went away (unplugged, removed, stopped delivering frames); ``reason`` says how."""

    def __init__(self, camera: str, reason: str):
        super().__init__(f"{camera} disconnected: {reason}")
        self.reason = reason


def require_pyrealsense2() -> Any:
    """The ``pyrealsense2`` module, or :class:`RealSenseUnavailable` naming the package."""
    global rs
    if rs is _UNLOADED:
        try:
            import pyrealsense2

            rs = pyrealsense2
        except ImportError:  # pragma: no cover - depends on the environment
            rs = None
    if rs is None:
        raise RealSenseUnavailable(
            f"the RealSense cameras need the Intel RealSense SDK's Python bindings: {PACKAGE_HINT}"
        )
    return rs


# ---------------------------------------------------------------------------------------- config
@dataclass
class ExtrinsicsConfig:
    """Pose of the camera's colour optical frame (z forward, x right, y down) in the world frame."""

    position: tuple[float, float, float]
    quaternion_xyzw: tuple[float, float, float, float]

    def validate(self) -> None:
        if not all(math.isfinite(v) for v in (*self.position, *self.quaternion_xyzw)):
            raise ValueError("extrinsics must be finite numbers")
        norm = math.sqrt(sum(v * v for v in self.quaternion_xyzw))
        if abs(norm - 1.0) > 1e-3:
            raise ValueError(
                f"quaternion_xyzw {list(self.quaternion_xyzw)} has norm {norm:.4f}; "
                "expected a unit quaternion (x, y, z, w)"
            )

    def rotation(self) -> np.ndarray:
        """world_R_optical (3, 3)."""
        return quaternion_to_rotation(self.quaternion_xyzw)


@dataclass
class RealSenseCameraConfig:
    name: str
    serial: str
    extrinsics: ExtrinsicsConfig

    def validate(self) -> None:
        if not self.name.isidentifier():
            raise ValueError(f"camera name {self.name!r} must be a plain identifier (it becomes a topic name)")
        if not self.serial.strip():
            raise ValueError(f"camera {self.name}: serial must not be empty")


@dataclass
class RealSenseConfig:
    cameras: list[RealSenseCameraConfig] = field(default_factory=list)
    width: int = 640
    height: int = 480
    fps: int = 30
    color_format: str = "jpeg"  # compressed colour topic: jpeg (lossy) | png (lossless)
    jpeg_quality: int = 90
    hardware_sync: bool = False  # true: first camera master, the others slaves (sync cable needed)
    reconnect_interval_s: float = 2.0
    frame_timeout_s: float = 1.0  # one wait for a frame set; read() returns None after it
    stall_timeout_s: float = 5.0  # no frame for this long: treated as a disconnect (pipeline restarted)

    def validate(self) -> None:
        if not self.cameras:
            raise ValueError("cameras: at least one camera is required")
        for key, values in (("name", [c.name for c in self.cameras]), ("serial", [c.serial for c in self.cameras])):
            seen: dict[str, int] = {}
            for i, v in enumerate(values):
                if v in seen:
                    raise ValueError(f"cameras[{i}].{key}: duplicate {key} {v!r} (also cameras[{seen[v]}].{key})")
                seen[v] = i
        if not (16 <= self.width <= 1920 and 16 <= self.height <= 1080):
            raise ValueError(f"width, height: image size {self.width}x{self.height} outside 16x16 .. 1920x1080")
        if self.fps not in D435I_FPS:
            raise ValueError(f"fps: {self.fps} is not a D435i rate ({', '.join(map(str, D435I_FPS))})")
        if self.color_format not in ("jpeg", "png"):
            raise ValueError(f"color_format: must be jpeg or png, got {self.color_format!r}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality: {self.jpeg_quality} outside [1, 100]")
        if self.reconnect_interval_s <= 0:
            raise ValueError("reconnect_interval_s: must be positive")
        if self.frame_timeout_s <= 0:
            raise ValueError("frame_timeout_s: must be positive")
        if self.stall_timeout_s < self.frame_timeout_s:
            raise ValueError("stall_timeout_s: must be at least frame_timeout_s")

    def camera(self, name: str) -> RealSenseCameraConfig:
        for cam in self.cameras:
            if cam.name == name:
                return cam
        raise KeyError(name)

    def sync_mode(self, name: str) -> int:
        """``inter_cam_sync_mode`` of a camera: master for the first one, slave for the rest, if synced."""
        if not self.hardware_sync:
            return SYNC_DEFAULT
        return SYNC_MASTER if self.cameras[0].name == name else SYNC_SLAVE

    def select(self, names: str | list[str] | None) -> list[RealSenseCameraConfig]:
        """The cameras named in a comma list (all when empty), in the order given."""
        if isinstance(names, str):
            names = [n.strip() for n in names.split(",") if n.strip()]
        if not names:
            return list(self.cameras)
        known = [c.name for c in self.cameras]
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ConfigError(f"cameras: unknown camera(s) {', '.join(unknown)} (configured: {', '.join(known)})")
        if len(set(names)) != len(names):
            raise ConfigError(f"cameras: a camera is named twice in {', '.join(names)}")
        return [self.camera(n) for n in names]


def load_realsense_config(path: Path | str | None = None) -> RealSenseConfig:
    return load_section(RealSenseConfig, path or config_dir() / "realsense.yaml", "realsense")


# ---------------------------------------------------------------------------------------- frames
@dataclass
class RealSenseFrame:
    """One aligned colour + depth frame set of one camera."""

    camera: str
    rgb: np.ndarray  # (H, W, 3) uint8
    depth_mm: np.ndarray  # (H, W) uint16 [mm], aligned to colour; 0: no reading
    stamp: float  # [s] the device's timestamp of the frame set (its clock domain: ``timestamp_domain``)
    frame_number: int
    model: CameraModel  # colour intrinsics (the device's) and extrinsics (the configuration's)
    distortion_model: str = "plumb_bob"
    distortion: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0, 0.0)
    timestamp_domain: str = ""

    @property
    def intrinsics(self) -> np.ndarray:
        return self.model.K


@dataclass(frozen=True)
class FrameMessages:
    """The contract's message contents for one frame (everything but the header stamp)."""

    frame_id: str
    color_format: str
    color_data: bytes
    depth_format: str
    depth_data: bytes
    camera_info: dict[str, Any]  # sensor_msgs/CameraInfo fields: width, height, distortion_model, d, k, r, p


def camera_info_fields(
    model: CameraModel, distortion_model: str = "plumb_bob", distortion: tuple[float, ...] = (0.0,) * 5
) -> dict[str, Any]:
    """``sensor_msgs/CameraInfo`` fields (row-major k, r, p) of a camera model."""
    k = np.asarray(model.K, np.float64)
    p = [k[0, 0], 0.0, k[0, 2], 0.0, 0.0, k[1, 1], k[1, 2], 0.0, 0.0, 0.0, 1.0, 0.0]
    return {
        "width": int(model.width),
        "height": int(model.height),
        "distortion_model": distortion_model,
        "d": [float(v) for v in distortion],
        "k": [float(v) for v in k.reshape(-1)],
        "r": [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
        "p": [float(v) for v in p],
    }


def extrinsics_fields(model: CameraModel) -> dict[str, Any]:
    """``geometry_msgs/TransformStamped`` contents: world -> the camera's optical frame."""
    return {
        "parent_frame": WORLD_FRAME,
        "child_frame": optical_frame(model.name),
        "translation": [float(v) for v in model.position],
        "quaternion_xyzw": rotation_to_quaternion(model.rotation),
    }


def frame_messages(frame: RealSenseFrame, color_format: str = "jpeg", jpeg_quality: int = 90) -> FrameMessages:
    """Encode a frame like the simulator does: compressed colour, lossless compressedDepth, CameraInfo."""
    cfmt, cdata = encode_color(frame.rgb, color_format, jpeg_quality)
    dfmt, ddata = encode_depth(frame.depth_mm)
    return FrameMessages(
        frame_id=optical_frame(frame.camera),
        color_format=cfmt,
        color_data=cdata,
        depth_format=dfmt,
        depth_data=ddata,
        camera_info=camera_info_fields(frame.model, frame.distortion_model, frame.distortion),
    )


def camera_model_from_intrinsics(name: str, intrinsics: Any, extrinsics: ExtrinsicsConfig) -> CameraModel:
    """A contract ``CameraModel`` from an ``rs.intrinsics`` (fx, fy, ppx, ppy) and configured extrinsics."""
    k = np.array(
        [
            [float(intrinsics.fx), 0.0, float(intrinsics.ppx) + PIXEL_CENTRE_OFFSET],
            [0.0, float(intrinsics.fy), float(intrinsics.ppy) + PIXEL_CENTRE_OFFSET],
            [0.0, 0.0, 1.0],
        ]
    )
    return CameraModel(
        name,
        int(intrinsics.width),
        int(intrinsics.height),
        k,
        np.asarray(extrinsics.position, float),
        extrinsics.rotation(),
    )


def _distortion_model(intrinsics: Any) -> str:
    rs = require_pyrealsense2()
    # As realsense2_camera: Kannala-Brandt is "equidistant", the Brown-Conrady variants "plumb_bob".
    return "equidistant" if intrinsics.model == rs.distortion.kannala_brandt4 else "plumb_bob"


def software_context() -> Any:
    """A context that lists software devices only (no USB scan): for ``software_device`` fixtures."""
    rs = require_pyrealsense2()
    try:
        settings = {"device-mask": int(rs.product_line.sw_only), "dds": False, "inherit": False}
        return rs.context(json.dumps(settings))
    except (TypeError, AttributeError):  # older bindings: no context settings
        return rs.context()


# ---------------------------------------------------------------------------------------- camera
class RealSenseCamera:
    """One D435i: open by serial, stream aligned colour + depth, ``read()`` frames, report disconnects.

    ``context``: the ``rs.context`` to find the device in (default: a new one, as each
    ``realsense2_camera`` node has). ``device``: a ``rs.software_device`` to use instead of hardware
    (tests, fixtures); it is added to a software-only context and its serial replaces the configured
    one. Not thread-safe: one thread opens, reads and closes.
    """

    def __init__(
        self,
        camera: RealSenseCameraConfig,
        config: RealSenseConfig,
        *,
        context: Any | None = None,
        device: Any | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        require_pyrealsense2()
        self.config = config
        self.camera = camera
        self.name = camera.name
        self.serial = camera.serial
        self.sync_mode = config.sync_mode(camera.name)
        self._clock = clock
        self._removed = threading.Event()
        # The devices-changed callback hands out the only owning handle to a software device's info:
        # keeping the latest list alive is what keeps such a device listed (librealsense 2.5x).
        self._added_devices: list[Any] = []
        if device is not None:
            self.serial = device.get_info(rs.camera_info.serial_number)
            self.context = context if context is not None else software_context()
            self.context.set_devices_changed_callback(self._on_devices_changed)
            device.add_to(self.context)
        else:
            self.context = context if context is not None else rs.context()
            self.context.set_devices_changed_callback(self._on_devices_changed)
        self._software_device = device  # keep the Python object (and its sensors) alive
        self._pipeline: Any | None = None
        self._device: Any | None = None
        self._align: Any | None = None
        self._last_frame_t = 0.0
        self.model: CameraModel | None = None
        self.distortion_model = "plumb_bob"
        self.distortion: tuple[float, ...] = (0.0,) * 5
        self.depth_scale_m = 0.001

    # ------------------------------------------------------------------ connection
    @property
    def is_open(self) -> bool:
        return self._pipeline is not None

    def describe(self) -> str:
        return f"camera {self.name} (serial {self.serial})"

    def _on_devices_changed(self, info: Any) -> None:
        # librealsense's thread: only record what happened.
        try:
            added = info.get_new_devices()
            if len(added):
                self._added_devices = [*self._added_devices[-7:], added]
            if self._device is not None and info.was_removed(self._device):
                self._removed.set()
        except Exception:  # noqa: BLE001 - never let an exception escape into librealsense
            pass

    def _find_device(self) -> Any:
        for dev in self.context.query_devices():
            try:
                if dev.get_info(rs.camera_info.serial_number) == self.serial:
                    return dev
            except RuntimeError:  # a device going away while listed
                continue
        raise CameraNotFound(f"{self.describe()} is not connected")

    def connected(self) -> bool:
        """Whether a device with this serial is listed now."""
        try:
            self._find_device()
            return True
        except CameraNotFound:
            return False

    def open(self) -> CameraModel:
        """Start streaming; the colour intrinsics as a CameraModel. Raises CameraNotFound / RealSenseError."""
        if self.is_open:
            return self.model
        device = self._find_device()  # fail at once: pipeline.start waits ~15 s for a missing device
        self._apply_sync_mode(device)
        cfg = rs.config()
        cfg.enable_device(self.serial)
        w, h, fps = self.config.width, self.config.height, self.config.fps
        cfg.enable_stream(rs.stream.color, w, h, rs.format.rgb8, fps)
        cfg.enable_stream(rs.stream.depth, w, h, rs.format.z16, fps)
        pipeline = rs.pipeline(self.context)
        try:
            profile = pipeline.start(cfg)
        except RuntimeError as exc:
            raise RealSenseError(f"{self.describe()}: cannot stream {w}x{h} @ {fps} fps rgb8 + z16: {exc}") from None
        try:
            color = profile.get_stream(rs.stream.color).as_video_stream_profile().get_intrinsics()
            self._device = profile.get_device()
            try:
                self.depth_scale_m = float(self._device.first_depth_sensor().get_depth_scale())
            except RuntimeError:  # no depth-units option: the D435i's default
                self.depth_scale_m = 0.001
        except RuntimeError as exc:
            _stop_quietly(pipeline)
            raise RealSenseError(f"{self.describe()}: cannot read the stream profile: {exc}") from None
        self.model = camera_model_from_intrinsics(self.name, color, self.camera.extrinsics)
        self.distortion_model = _distortion_model(color)
        self.distortion = tuple(float(v) for v in color.coeffs)
        self._align = rs.align(rs.stream.color)
        self._removed.clear()
        self._pipeline = pipeline
        self._last_frame_t = self._clock()
        return self.model

    def _apply_sync_mode(self, device: Any) -> None:
        try:
            sensor = device.first_depth_sensor()
            supported = sensor.supports(rs.option.inter_cam_sync_mode)
        except RuntimeError:
            sensor, supported = None, False
        if not supported:
            if self.sync_mode != SYNC_DEFAULT:
                raise RealSenseError(f"{self.describe()}: hardware_sync needs inter_cam_sync_mode, not supported")
            return
        try:
            sensor.set_option(rs.option.inter_cam_sync_mode, float(self.sync_mode))
        except RuntimeError as exc:
            raise RealSenseError(f"{self.describe()}: cannot set inter_cam_sync_mode {self.sync_mode}: {exc}") from None

    def close(self) -> None:
        pipeline, self._pipeline = self._pipeline, None
        self._device = None
        if pipeline is not None:
            _stop_quietly(pipeline)

    def _lost(self, reason: str) -> CameraDisconnected:
        self.close()
        return CameraDisconnected(self.describe(), reason)

    # ------------------------------------------------------------------ frames
    def read(self, timeout_s: float | None = None) -> RealSenseFrame | None:
        """The next aligned frame set, or None if none came within ``timeout_s`` (default
        ``frame_timeout_s``). Raises CameraDisconnected (and closes) when the camera is gone."""
        if not self.is_open:
            raise CameraDisconnected(self.describe(), "not open")
        if self._removed.is_set():
            raise self._lost("device removed")
        timeout_ms = int(round(1000 * (self.config.frame_timeout_s if timeout_s is None else timeout_s)))
        try:
            ok, frames = self._pipeline.try_wait_for_frames(max(1, timeout_ms))
        except RuntimeError as exc:
            raise self._lost(str(exc)) from None
        now = self._clock()
        if not ok:
            if self._removed.is_set() or not self.connected():
                raise self._lost("device removed")
            if now - self._last_frame_t >= self.config.stall_timeout_s:
                raise self._lost(f"no frames for {now - self._last_frame_t:.1f} s")
            return None
        try:
            aligned = self._align.process(frames)
            color = aligned.get_color_frame()
            depth = aligned.get_depth_frame()
            if not color or not depth:
                return None  # an incomplete set (a stream starting up): wait for the next
            rgb = np.array(np.asanyarray(color.get_data()), dtype=np.uint8, copy=True)
            z16 = np.asanyarray(depth.get_data())
            stamp = float(frames.get_timestamp()) / 1000.0
            number = int(frames.get_frame_number())
            domain = str(frames.get_frame_timestamp_domain()).rsplit(".", 1)[-1]
        except RuntimeError as exc:
            raise self._lost(str(exc)) from None
        self._last_frame_t = now
        return RealSenseFrame(
            camera=self.name,
            rgb=rgb,
            depth_mm=self._to_mm(z16),
            stamp=stamp,
            frame_number=number,
            model=self.model,
            distortion_model=self.distortion_model,
            distortion=self.distortion,
            timestamp_domain=domain,
        )

    def _to_mm(self, z16: np.ndarray) -> np.ndarray:
        if abs(self.depth_scale_m - 0.001) < 1e-9:
            return np.array(z16, dtype=np.uint16, copy=True)
        mm = np.round(z16.astype(np.float64) * (self.depth_scale_m * 1000.0))
        return np.clip(mm, 0, 65535).astype(np.uint16)

    def __enter__(self) -> RealSenseCamera:
        self.open()
        return self

    def __exit__(self, *_exc) -> None:
        self.close()


def _stop_quietly(pipeline: Any) -> None:
    try:
        pipeline.stop()
    except RuntimeError:  # already stopped, or the device is gone
        pass
