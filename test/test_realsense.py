"""RealSense cameras without a camera: ``pyrealsense2``'s ``software_device`` stands in for a D435i.

The software device has a depth sensor (z16) and a colour sensor (rgb8) with known intrinsics; frames
injected into it go through the same librealsense ``pipeline`` and ``align`` as a real camera's, into
``RealSenseCamera`` and on through the contract's encoding. Two librealsense 2.59 habits shape the
fixture (see ``SoftwareCamera``): the context must list software devices (``software_context``), and
only the devices-changed callback's device list keeps an added software device listed.

A real unplug cannot be made with a software device (it stays listed while the pipeline holds it, and
``try_wait_for_frames`` hides a vanished device as a timeout), so disconnects are driven three ways:
frames stopping (the stall detector), the devices-changed callback reporting the removal, and the
pipeline raising.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from llm_trainer.config import ConfigError
from llm_trainer.sensors import realsense as realsense_module
from llm_trainer.sensors.cameras import optical_frame
from llm_trainer.sensors.image_codec import decode_color, decode_depth
from llm_trainer.sensors.realsense import (
    SYNC_MASTER,
    SYNC_SLAVE,
    CameraDisconnected,
    CameraNotFound,
    ExtrinsicsConfig,
    RealSenseCamera,
    RealSenseCameraConfig,
    RealSenseConfig,
    RealSenseError,
    RealSenseUnavailable,
    frame_messages,
    load_realsense_config,
)

W, H, FPS = 64, 48, 30
EXTRINSICS = ExtrinsicsConfig((1.35, 0.0, 0.7), (-0.633926, -0.633926, 0.313269, 0.313269))


@pytest.fixture(scope="module")
def rs():
    return pytest.importorskip("pyrealsense2", reason="pyrealsense2 (Intel RealSense SDK bindings) is not installed")


def _intrinsics(rs, fx: float, fy: float, ppx: float, ppy: float, coeffs=(0.0,) * 5):
    i = rs.intrinsics()
    i.width, i.height, i.fx, i.fy, i.ppx, i.ppy = W, H, fx, fy, ppx, ppy
    i.model = rs.distortion.brown_conrady
    i.coeffs = list(coeffs)
    return i


def _video_stream(rs, kind, uid: int, fmt, bpp: int, intrinsics):
    vs = rs.video_stream()
    vs.type, vs.index, vs.uid = kind, 0, uid
    vs.width, vs.height, vs.fps, vs.bpp, vs.fmt = W, H, FPS, bpp, fmt
    vs.intrinsics = intrinsics
    return vs


class SoftwareCamera:
    """A software D435i: a depth sensor (z16) and a colour sensor (rgb8) registered in ``ctx``."""

    def __init__(self, rs, ctx, serial: str, *, color_intr=None, depth_intr=None, depth_units=0.001, sync=False):
        self.rs = rs
        self.depth_units = depth_units
        self.dev = rs.software_device()
        self.dev.register_info(rs.camera_info.serial_number, serial)
        self.dev.register_info(rs.camera_info.name, "Intel RealSense D435I (software)")
        self.depth_sensor = self.dev.add_sensor("Stereo Module")
        self.color_sensor = self.dev.add_sensor("RGB Camera")
        color_intr = color_intr or _intrinsics(rs, 60.5, 61.5, 31.25, 23.75)
        depth_intr = depth_intr or color_intr
        self.depth_profile = self.depth_sensor.add_video_stream(
            _video_stream(rs, rs.stream.depth, 0, rs.format.z16, 2, depth_intr), True
        ).as_video_stream_profile()
        self.color_profile = self.color_sensor.add_video_stream(
            _video_stream(rs, rs.stream.color, 1, rs.format.rgb8, 3, color_intr), True
        ).as_video_stream_profile()
        # depth_units is also what makes librealsense treat the sensor as a depth sensor.
        self.depth_sensor.add_read_only_option(rs.option.depth_units, depth_units)
        if sync:
            self.depth_sensor.add_option(rs.option.inter_cam_sync_mode, rs.option_range(0, 260, 1, 0), True)
        ext = rs.extrinsics()
        ext.rotation, ext.translation = [1, 0, 0, 0, 1, 0, 0, 0, 1], [0, 0, 0]
        self.depth_profile.register_extrinsics_to(self.color_profile, ext)
        self.dev.create_matcher(rs.matchers.default)
        # add_to leaves the device to a weak pointer: the callback's list is what keeps it listed.
        self._keep: list = []
        ctx.set_devices_changed_callback(lambda info: self._keep.append(info.get_new_devices()))
        self.dev.add_to(ctx)

    def feed(self, i: int, depth: np.ndarray, rgb: np.ndarray, t_ms: float | None = None) -> None:
        rs = self.rs
        t_ms = 1000.0 + i * 1000.0 / FPS if t_ms is None else t_ms
        for sensor, profile, pixels, bpp in (
            (self.depth_sensor, self.depth_profile, depth, 2),
            (self.color_sensor, self.color_profile, rgb, 3),
        ):
            f = rs.software_video_frame()
            f.pixels = np.ascontiguousarray(pixels)  # copied by the bindings
            f.bpp, f.stride = bpp, W * bpp
            f.timestamp, f.domain, f.frame_number = t_ms, rs.timestamp_domain.hardware_clock, i
            f.profile = profile
            if bpp == 2:
                f.depth_units = self.depth_units
            sensor.on_video_frame(f)


def _config(*serials: str, **kw) -> RealSenseConfig:
    names = ["front", "left", "right"]
    cams = [RealSenseCameraConfig(names[i], s, EXTRINSICS) for i, s in enumerate(serials)]
    base = {"width": W, "height": H, "fps": FPS, "frame_timeout_s": 1.0}
    return RealSenseConfig(cameras=cams, **{**base, **kw})


def _depth_blocks() -> np.ndarray:
    """Depth of flat patches on an empty background ([mm])."""
    d = np.zeros((H, W), np.uint16)
    d[8:24, 8:30], d[20:40, 34:60] = 650, 1234
    return d


def _smooth_rgb() -> np.ndarray:
    """A smooth colour image (JPEG keeps it within a few levels)."""
    v, u = np.mgrid[0:H, 0:W]
    return np.stack([u * 255 // (W - 1), v * 255 // (H - 1), np.full_like(u, 128)], axis=2).astype(np.uint8)


def _assert_aligned_like(aligned: np.ndarray, depth: np.ndarray) -> None:
    """``rs.align`` with identical intrinsics is the identity up to its pixel-edge rounding: it may
    spread an edge by one pixel or drop a pixel, but never invents a depth that is not in the
    neighbourhood (measured with librealsense 2.59: 67 of 1,872 block pixels moved)."""
    same = aligned == depth
    assert same[depth > 0].mean() > 0.9
    padded = np.pad(depth, 1)
    neighbours = np.stack([padded[1 + dv : 1 + dv + H, 1 + du : 1 + du + W] for dv in (-1, 0, 1) for du in (-1, 0, 1)])
    assert np.all(same | (aligned == 0) | (neighbours == aligned).any(axis=0))


@pytest.fixture
def software(rs):
    from llm_trainer.sensors.realsense import software_context

    ctx = software_context()
    return ctx, SoftwareCamera(rs, ctx, "SW0001")


# --------------------------------------------------------------------------------------------- config
def test_the_lab_config_loads_with_the_simulators_camera_names() -> None:
    import yaml

    cfg = load_realsense_config()
    sim = yaml.safe_load((Path(__file__).resolve().parents[1] / "config" / "sim.yaml").read_text())["simulator"]
    assert [c.name for c in cfg.cameras] == [c["name"] for c in sim["cameras"]] == ["front", "left", "right"]
    assert len({c.serial for c in cfg.cameras}) == 3
    for cam, sim_cam in zip(cfg.cameras, sim["cameras"]):
        assert cam.extrinsics.position == tuple(sim_cam["position"])
        # The optical z axis looks at the simulator's look_at point.
        z = cam.extrinsics.rotation()[:, 2]
        to_target = np.subtract(sim_cam["look_at"], sim_cam["position"])
        assert np.allclose(z, to_target / np.linalg.norm(to_target), atol=1e-4)
    assert (cfg.width, cfg.height, cfg.fps, cfg.hardware_sync) == (640, 480, 30, False)


CAM = "{name: %s, serial: '%s', extrinsics: {position: [1, 0, 1], quaternion_xyzw: %s}}"
UNIT_Q = "[0, 0, 0, 1]"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (f"cameras: [{CAM % ('front', 'A', UNIT_Q)}, {CAM % ('front', 'B', UNIT_Q)}]",
         "realsense: cameras[1].name: duplicate name 'front' (also cameras[0].name)"),
        (f"cameras: [{CAM % ('front', 'A', UNIT_Q)}, {CAM % ('left', 'A', UNIT_Q)}]",
         "realsense: cameras[1].serial: duplicate serial 'A' (also cameras[0].serial)"),
        (f"cameras: [{CAM % ('front', 'A', '[0, 0, 0, 2]')}]",
         "realsense.cameras[0].extrinsics: quaternion_xyzw [0.0, 0.0, 0.0, 2.0] has norm 2.0000"),
        ("cameras: [" + (CAM % ("front", "A", UNIT_Q)).replace("'A'", "123622270000") + "]",
         "realsense.cameras[0].serial: expected a string, got 123622270000"),
        (f"cameras: [{CAM % ('front', 'A', '[0, 0, 1]')}]",
         "realsense.cameras[0].extrinsics.quaternion_xyzw: expected 4"),
        (f"cameras: [{CAM % ('front-left', 'A', UNIT_Q)}]", "realsense.cameras[0]: camera name 'front-left'"),
        (f"fps: 25\n  cameras: [{CAM % ('front', 'A', UNIT_Q)}]", "realsense: fps: 25 is not a D435i rate"),
        (f"color_format: bmp\n  cameras: [{CAM % ('front', 'A', UNIT_Q)}]", "realsense: color_format: must be jpeg"),
        (f"sync: true\n  cameras: [{CAM % ('front', 'A', UNIT_Q)}]", "realsense: unknown key(s) sync"),
        ("cameras: []", "realsense: cameras: at least one camera is required"),
    ],
    ids=["dup-name", "dup-serial", "quaternion-norm", "serial-number", "quaternion-len", "name", "fps", "format",
         "unknown-key", "no-cameras"],
)  # fmt: skip
def test_config_errors_name_the_key(tmp_path: Path, body: str, expected: str) -> None:
    path = tmp_path / "realsense.yaml"
    path.write_text(f"realsense:\n  {body}\n")
    with pytest.raises(ConfigError) as err:
        load_realsense_config(path)
    assert str(err.value).startswith(f"{path}: "), err.value
    assert expected in str(err.value)


def test_camera_selection_and_sync_roles() -> None:
    cfg = _config("A", "B", "C", hardware_sync=True)
    assert [c.name for c in cfg.select("")] == ["front", "left", "right"]
    assert [c.name for c in cfg.select("right, front")] == ["right", "front"]
    with pytest.raises(ConfigError, match=r"unknown camera\(s\) top \(configured: front, left, right\)"):
        cfg.select("front,top")
    assert [cfg.sync_mode(n) for n in ("front", "left", "right")] == [SYNC_MASTER, SYNC_SLAVE, SYNC_SLAVE]
    assert _config("A", "B").sync_mode("front") == 0


def test_without_pyrealsense2_a_camera_names_the_package(monkeypatch) -> None:
    monkeypatch.setattr(realsense_module, "rs", None)
    with pytest.raises(RealSenseUnavailable, match=r"pip install 'pyrealsense2>=2.55,<3'"):
        RealSenseCamera(_config("A").cameras[0], _config("A"))


# --------------------------------------------------------------------------------------------- camera
def test_device_intrinsics_reach_the_camera_model(rs) -> None:
    from llm_trainer.sensors.realsense import software_context

    ctx = software_context()
    coeffs = (0.1, -0.05, 0.001, 0.002, 0.0)
    color = _intrinsics(rs, 61.25, 62.5, 30.75, 22.5, coeffs)
    depth = _intrinsics(rs, 45.0, 45.0, 32.0, 24.0)  # differs: the model must be the colour stream's
    sw = SoftwareCamera(rs, ctx, "SW0002", color_intr=color, depth_intr=depth)  # keep it alive
    cfg = _config("SW0002")
    with RealSenseCamera(cfg.cameras[0], cfg, context=ctx) as cam:
        model = cam.model
        # The contract and librealsense both centre pixels at integers: the device's principal point as is.
        assert np.allclose(model.K, [[61.25, 0, 30.75], [0, 62.5, 22.5], [0, 0, 1]])
        assert (model.width, model.height) == (W, H)
        assert np.allclose(model.position, EXTRINSICS.position)
        assert np.allclose(model.rotation, EXTRINSICS.rotation())
        assert cam.distortion_model == "plumb_bob"
        assert np.allclose(cam.distortion, coeffs)
    assert sw.dev.get_info(rs.camera_info.serial_number) == "SW0002"


@pytest.mark.parametrize("color_format", ["jpeg", "png"])
def test_frames_round_trip_through_the_contract_encoding(software, color_format: str) -> None:
    ctx, sw = software
    cfg = _config("SW0001")
    depth, rgb = _depth_blocks(), _smooth_rgb()
    stamps, numbers = [], []
    with RealSenseCamera(cfg.cameras[0], cfg, context=ctx) as cam:
        for i in range(4):
            sw.feed(i, depth, rgb)
            frame = cam.read()
            assert frame is not None, f"frame {i} did not arrive"
            stamps.append(frame.stamp)
            numbers.append(frame.frame_number)
        assert cam.read(timeout_s=0.05) is None  # nothing fed: a timeout, not an error
    assert frame.rgb.dtype == np.uint8 and frame.rgb.shape == (H, W, 3)
    assert frame.depth_mm.dtype == np.uint16 and frame.depth_mm.shape == (H, W)
    assert np.array_equal(frame.rgb, rgb)
    _assert_aligned_like(frame.depth_mm, depth)
    assert all(b > a for a, b in zip(stamps, stamps[1:])), stamps
    assert stamps[0] == pytest.approx(1.0) and numbers == sorted(numbers)

    msgs = frame_messages(frame, color_format, 90)
    assert msgs.frame_id == optical_frame("front") == "front_color_optical_frame"
    assert msgs.depth_format == "16UC1; compressedDepth png"
    assert np.array_equal(decode_depth(msgs.depth_format, msgs.depth_data), frame.depth_mm)
    assert msgs.color_format == f"rgb8; {color_format} compressed bgr8"
    back = decode_color(msgs.color_format, msgs.color_data)
    err = np.abs(back.astype(int) - frame.rgb.astype(int))
    assert err.max() == 0 if color_format == "png" else err.mean() < 2.0
    info = msgs.camera_info
    assert (info["width"], info["height"], info["distortion_model"]) == (W, H, "plumb_bob")
    assert info["k"] == pytest.approx([60.5, 0, 31.25, 0, 61.5, 23.75, 0, 0, 1])
    assert info["p"] == pytest.approx([60.5, 0, 31.25, 0, 0, 61.5, 23.75, 0, 0, 0, 1, 0])


def test_depth_in_other_units_becomes_millimetres(rs) -> None:
    from llm_trainer.sensors.realsense import software_context

    ctx = software_context()
    sw = SoftwareCamera(rs, ctx, "SW0003", depth_units=0.0001)  # 0.1 mm per count
    cfg = _config("SW0003")
    raw = _depth_blocks() * 10
    with RealSenseCamera(cfg.cameras[0], cfg, context=ctx) as cam:
        sw.feed(0, raw, _smooth_rgb())
        frame = cam.read()
    assert cam.depth_scale_m == pytest.approx(0.0001)
    _assert_aligned_like(frame.depth_mm, _depth_blocks())


def test_a_missing_serial_is_reported_at_once(software) -> None:
    ctx, _ = software
    cfg = _config("NOT-CONNECTED")
    cam = RealSenseCamera(cfg.cameras[0], cfg, context=ctx)
    start = time.monotonic()
    with pytest.raises(CameraNotFound, match=r"camera front \(serial NOT-CONNECTED\) is not connected"):
        cam.open()
    assert time.monotonic() - start < 2.0  # not librealsense's ~15 s wait for a device
    assert not cam.is_open


def test_frames_stopping_is_a_disconnect_and_the_camera_reopens(software) -> None:
    ctx, sw = software
    cfg = _config("SW0001", frame_timeout_s=0.05, stall_timeout_s=0.2)
    cam = RealSenseCamera(cfg.cameras[0], cfg, context=ctx)
    cam.open()
    sw.feed(0, _depth_blocks(), _smooth_rgb())
    assert cam.read(timeout_s=1.0) is not None
    deadline = time.monotonic() + 5.0
    with pytest.raises(CameraDisconnected) as err:
        while time.monotonic() < deadline:
            assert cam.read() is None
    assert err.value.reason.startswith("no frames for") and not cam.is_open
    with pytest.raises(CameraDisconnected, match="not open"):
        cam.read()
    cam.open()  # what the node does every reconnect_interval_s
    sw.feed(1, _depth_blocks(), _smooth_rgb())
    frame = cam.read(timeout_s=1.0)
    assert frame is not None and frame.frame_number == 1
    cam.close()


class _Removed:
    """A devices-changed event that reports every device removed."""

    def get_new_devices(self):
        return []

    def was_removed(self, _device) -> bool:
        return True


class _FailingPipeline:
    def __init__(self, real):
        self.real = real

    def try_wait_for_frames(self, _timeout_ms):
        raise RuntimeError("USB transfer failed (simulated unplug)")

    def stop(self):
        self.real.stop()


def test_a_removed_device_or_a_failing_pipeline_is_reported_not_raised_raw(software) -> None:
    ctx, sw = software
    cfg = _config("SW0001")
    cam = RealSenseCamera(cfg.cameras[0], cfg, context=ctx)
    cam.open()
    cam._on_devices_changed(_Removed())  # what librealsense calls on an unplug
    with pytest.raises(CameraDisconnected) as err:
        cam.read(timeout_s=0.05)
    assert err.value.reason == "device removed" and not cam.is_open
    assert "camera front (serial SW0001) disconnected: device removed" in str(err.value)

    cam.open()
    cam._pipeline = _FailingPipeline(cam._pipeline)
    with pytest.raises(CameraDisconnected, match="USB transfer failed"):
        cam.read()
    assert not cam.is_open
    cam.open()
    sw.feed(0, _depth_blocks(), _smooth_rgb())
    assert cam.read() is not None
    cam.close()


def test_hardware_sync_makes_the_first_camera_master_and_the_others_slaves(rs) -> None:
    from llm_trainer.sensors.realsense import software_context

    ctx = software_context()
    sws = [SoftwareCamera(rs, ctx, f"SYNC{i}", sync=True) for i in range(2)]
    cfg = _config("SYNC0", "SYNC1", hardware_sync=True)
    for cam_cfg, expected in zip(cfg.cameras, (SYNC_MASTER, SYNC_SLAVE)):
        with RealSenseCamera(cam_cfg, cfg, context=ctx):
            pass
        dev = next(d for d in ctx.query_devices() if d.get_info(rs.camera_info.serial_number) == cam_cfg.serial)
        assert dev.first_depth_sensor().get_option(rs.option.inter_cam_sync_mode) == expected
    # A camera without the option cannot be synced: a clear error, not a silent free-run.
    sws.append(SoftwareCamera(rs, ctx, "NOSYNC"))
    nosync = _config("NOSYNC", "X", hardware_sync=True)
    with pytest.raises(RealSenseError, match="hardware_sync needs inter_cam_sync_mode"):
        RealSenseCamera(nosync.cameras[0], nosync, context=ctx).open()


# --------------------------------------------------------------------------------------------- node
@pytest.mark.ros
def test_node_with_a_missing_camera_keeps_running_and_stops_on_sigint(rs, tmp_path: Path, ros_env) -> None:
    config = tmp_path / "realsense.yaml"
    config.write_text(
        "realsense:\n  reconnect_interval_s: 0.5\n  cameras:\n"
        "    - {name: front, serial: '999999999999',\n"
        "       extrinsics: {position: [1, 0, 1], quaternion_xyzw: [0, 0, 0, 1]}}\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "llm_trainer.nodes.realsense_node", "--ros-args", "-p", f"config_file:={config}"],
        env=ros_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60.0
        lines = []
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            lines.append(line)
            if "camera front (serial 999999999999) not connected; retrying every 0.5 s" in line:
                break
            if not line and proc.poll() is not None:
                pytest.fail(f"node exited with {proc.returncode}:\n{''.join(lines)}")
        else:
            pytest.fail(f"no missing-camera line:\n{''.join(lines)}")
        time.sleep(1.2)  # a few retries: still running, and silent about them
        assert proc.poll() is None
        proc.send_signal(signal.SIGINT)
        start = time.monotonic()
        assert proc.wait(timeout=10.0) == 0
        assert time.monotonic() - start < 10.0
        rest = proc.stdout.read()
        assert "not connected" not in rest, rest  # logged once, not on every retry
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
