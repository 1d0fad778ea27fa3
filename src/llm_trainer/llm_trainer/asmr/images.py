"""Photometric and sensor augmentation of recorded frames (OpenCV + numpy, always available).

* ``photometric``: colour jitter in HSV (brightness, contrast, saturation, a small hue shift),
  Gaussian blur, Gaussian sensor noise and a JPEG round trip, each drawn per sample from the
  configured ranges; the drawn values are returned for the provenance.
* ``realsense_depth``: what a D435i's stereo depth does to a clean simulated depth image: axial
  noise growing with the square of the range, holes beside depth steps (stereo occlusion), random
  dropout blobs, and invalid (0) outside the sensor's range. Depth is uint16 millimetres, 0 = no data.
* ``object_masks``: each task object's pixels, from depth, the camera model and the scene's
  object boxes (no segmentation needed): a pixel belongs to an object when its 3-D point lies in
  the object's box (grown by a margin). ``foreground`` adds everything above the table (the robot).
* ``colour_preserved``: the check that keeps image augmentation from corrupting an instruction: an
  object named by a colour (``red_block``) must still read as that colour (its median hue nearest
  the named one among the task colours) after augmentation.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from llm_trainer.asmr.config import DepthConfig, PhotometricConfig


def _uniform(rng: np.random.Generator, lo_hi) -> float:
    lo, hi = lo_hi
    return float(rng.uniform(lo, hi)) if hi > lo else float(lo)


def _check_rgb(image: np.ndarray) -> None:
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an RGB uint8 image (H, W, 3), got {image.dtype} {image.shape}")


def photometric(image: np.ndarray, config: PhotometricConfig, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """One photometric variant of an RGB uint8 image and the parameters drawn for it."""
    _check_rgb(image)
    params: dict[str, Any] = {
        "brightness": round(_uniform(rng, config.brightness), 3),
        "contrast": round(_uniform(rng, config.contrast), 4),
        "saturation": round(_uniform(rng, config.saturation), 4),
        "hue_deg": round(_uniform(rng, config.hue), 3),
    }
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV_FULL).astype(np.float32)  # H in 0-255 for a full turn
    hsv[..., 0] = np.mod(hsv[..., 0] + params["hue_deg"] * 256.0 / 360.0, 256.0)
    hsv[..., 1] = np.clip(hsv[..., 1] * params["saturation"], 0, 255)
    hsv[..., 2] = np.clip(hsv[..., 2] + params["brightness"], 0, 255)
    out = cv2.cvtColor(np.round(hsv).astype(np.uint8), cv2.COLOR_HSV2RGB_FULL).astype(np.float32)
    mean = out.mean()
    out = (out - mean) * params["contrast"] + mean
    if rng.random() < config.blur_probability:
        params["blur_sigma"] = round(_uniform(rng, config.blur_sigma), 3)
        if params["blur_sigma"] > 0:
            out = cv2.GaussianBlur(out, (0, 0), params["blur_sigma"])
    params["noise_std"] = round(_uniform(rng, config.noise_std), 3)
    if params["noise_std"] > 0:
        out = out + rng.normal(0.0, params["noise_std"], out.shape)
    out = np.clip(np.round(out), 0, 255).astype(np.uint8)
    if rng.random() < config.jpeg_probability:
        params["jpeg_quality"] = int(round(_uniform(rng, config.jpeg_quality)))
        ok, buf = cv2.imencode(
            ".jpg", cv2.cvtColor(out, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, params["jpeg_quality"]]
        )
        if ok:
            out = cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return out, params


def _depth_edges(depth_mm: np.ndarray, threshold_mm: float) -> np.ndarray:
    """Pixels beside a depth step larger than ``threshold_mm`` (or beside a hole)."""
    d = depth_mm.astype(np.float32)
    kernel = np.ones((3, 3), np.uint8)
    local_max = cv2.dilate(d, kernel)
    valid = (d > 0).astype(np.uint8)
    d_for_min = np.where(d > 0, d, np.float32(65535))
    local_min = cv2.erode(d_for_min, kernel)
    step = (local_max - np.minimum(local_min, local_max)) > threshold_mm
    beside_hole = cv2.erode(valid, kernel) == 0
    return (step | beside_hole) & (d > 0)


def realsense_depth(depth_mm: np.ndarray, config: DepthConfig, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """One RealSense-like variant of a clean uint16 depth image [mm] and the parameters drawn."""
    if depth_mm.dtype != np.uint16 or depth_mm.ndim != 2:
        raise ValueError(f"expected a uint16 depth image (H, W) in mm, got {depth_mm.dtype} {depth_mm.shape}")
    h, w = depth_mm.shape
    z = depth_mm.astype(np.float64) / 1000.0
    valid = depth_mm > 0
    s1 = _uniform(rng, config.noise_at_1m_mm)
    width = int(rng.integers(config.edge_hole_width[0], config.edge_hole_width[1] + 1))
    dropout = _uniform(rng, config.dropout_fraction)
    params = {"noise_at_1m_mm": round(s1, 4), "edge_hole_width": width, "dropout_fraction": round(dropout, 5)}
    noisy = z * 1000.0 + rng.normal(0.0, 1.0, z.shape) * s1 * z * z
    holes = np.zeros((h, w), bool)
    if width > 0:
        edges = _depth_edges(depth_mm, config.edge_threshold_mm).astype(np.uint8)
        grown = cv2.dilate(edges, np.ones((1, 2 * width + 1), np.uint8)) > 0  # stereo: along the baseline (x)
        holes |= grown & (rng.random((h, w)) < config.edge_hole_probability)
    if dropout > 0:
        blob = max(1, config.dropout_blob_px)
        coarse = rng.random((max(1, h // blob), max(1, w // blob))).astype(np.float32)
        field = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
        field = cv2.GaussianBlur(field, (0, 0), blob / 2)
        holes |= field < np.quantile(field, dropout)
    out_of_range = (z < config.min_range_m) | (z > config.max_range_m)
    out = np.clip(np.round(noisy), 1, 65535)
    out[~valid | holes | out_of_range] = 0
    params["holes_fraction"] = round(float((out == 0).mean() - (~valid).mean()), 5)
    return out.astype(np.uint16), params


# ------------------------------------------------------------------------------------------- masks
def pixel_points(depth_mm: np.ndarray, camera: dict[str, Any]) -> np.ndarray:
    """(H, W, 3) world points of every pixel (NaN where there is no depth)."""
    from llm_trainer.sensors.cameras import CameraModel

    model = CameraModel.from_dict(camera)
    h, w = depth_mm.shape
    z = depth_mm.astype(np.float64) / 1000.0
    v, u = np.mgrid[0:h, 0:w]
    fx, fy, cx, cy = model.K[0, 0], model.K[1, 1], model.K[0, 2], model.K[1, 2]
    cam = np.stack([(u - cx) * z / fx, (v - cy) * z / fy, z], axis=-1)
    world = cam @ model.rotation.T + model.position
    world[z <= 0] = np.nan
    return world


def object_masks(
    depth_mm: np.ndarray,
    camera: dict[str, Any],
    objects: list[dict[str, Any]],
    *,
    margin_m: float = 0.005,
) -> dict[str, np.ndarray]:
    """name -> (H, W) bool: the pixels whose 3-D points lie in the object's (yawed) box grown by ``margin_m``.
    ``objects`` are scene objects as the episode records hold them (name, position, yaw, size)."""
    points = pixel_points(depth_mm, camera)
    masks = {}
    for obj in objects:
        centre = np.asarray(obj["position"], float)
        half = np.asarray(obj["size"], float) / 2 + margin_m
        c, s = np.cos(obj.get("yaw", 0.0)), np.sin(obj.get("yaw", 0.0))
        d = points - centre
        local_x = c * d[..., 0] + s * d[..., 1]
        local_y = -s * d[..., 0] + c * d[..., 1]
        with np.errstate(invalid="ignore"):
            inside = (np.abs(local_x) <= half[0]) & (np.abs(local_y) <= half[1]) & (np.abs(d[..., 2]) <= half[2])
        masks[obj["name"]] = inside
    return masks


def hold_mask(
    depth_mm: np.ndarray,
    camera: dict[str, Any],
    objects: list[dict[str, Any]],
    *,
    hold: str = "foreground",
    table_height: float = 0.0,
    margin_m: float = 0.005,
) -> np.ndarray:
    """The pixels a re-rendering must keep: the task objects, plus (``foreground``) everything more
    than the margin above the table (the robot). Pixels without depth are held too (unknown)."""
    masks = object_masks(depth_mm, camera, objects, margin_m=margin_m)
    held = np.zeros(depth_mm.shape, bool)
    for m in masks.values():
        held |= m
    if hold == "foreground":
        points = pixel_points(depth_mm, camera)
        with np.errstate(invalid="ignore"):
            held |= points[..., 2] > table_height + max(margin_m, 0.004)
    held |= depth_mm == 0
    return held


# ------------------------------------------------------------------------------------ colour check
def _hue_of(rgb: tuple[float, float, float]) -> float:
    px = np.array([[[int(round(v * 255)) for v in rgb]]], np.uint8)
    return float(cv2.cvtColor(px, cv2.COLOR_RGB2HSV_FULL)[0, 0, 0]) * 360.0 / 256.0


def named_colour(pixels_rgb: np.ndarray) -> str | None:
    """The task colour nearest (in hue) to the median hue of saturated pixels; None if too few."""
    from llm_trainer.tasks.base import COLORS

    if len(pixels_rgb) < 4:
        return None
    hsv = cv2.cvtColor(pixels_rgb.reshape(-1, 1, 3).astype(np.uint8), cv2.COLOR_RGB2HSV_FULL).reshape(-1, 3)
    sat = hsv[(hsv[:, 1] > 60) & (hsv[:, 2] > 40)]
    if len(sat) < 4:
        return None
    angles = sat[:, 0].astype(np.float64) * 2 * np.pi / 256.0
    hue = float(np.degrees(np.arctan2(np.sin(angles).mean(), np.cos(angles).mean())) % 360.0)
    return min(COLORS, key=lambda c: min(abs(hue - _hue_of(COLORS[c])), 360 - abs(hue - _hue_of(COLORS[c]))))


def colour_preserved(before: np.ndarray, after: np.ndarray, masks: dict[str, np.ndarray]) -> tuple[bool, str]:
    """Each object named ``<colour>_...`` that reads as a colour before must read as the same one after."""
    from llm_trainer.tasks.base import COLORS

    for name, mask in masks.items():
        colour = name.split("_", 1)[0]
        if colour not in COLORS or mask.sum() < 4:
            continue
        was, now = named_colour(before[mask]), named_colour(after[mask])
        if was is not None and now != was:
            return False, f"{name} reads as {now or 'no colour'} after augmentation (was {was})"
    return True, ""


# ------------------------------------------------------------------------------------------ the job
MANIFEST = "augmented_images.jsonl"


def _episode_bags(data) -> list:
    from pathlib import Path

    from llm_trainer.datasets.export import episode_bags

    data = Path(data)
    if not data.is_dir():
        raise FileNotFoundError(f"{data}: no such run or bag directory")
    if (data / "metadata.json").is_file() and any(data.glob("*.mcap")):
        return [data]
    bags = episode_bags(data)
    if not bags:
        raise ValueError(f"{data}: no complete episode bags (a run directory with bags/, or one bag directory)")
    return bags


def _objects_at(ep, i: int) -> list[dict[str, Any]]:
    """The scene's objects at grid sample ``i``: sizes from the episode record, poses from the bag."""
    sizes = {o["name"]: o["size"] for o in ep.record.get("scene", {}).get("objects", []) if "size" in o}
    out = []
    poses = ep.obs.get("object_poses")
    for k, name in enumerate(ep.object_names):
        if name not in sizes or poses is None or not np.isfinite(poses[i, k]).all():
            continue
        x, y, z, yaw = (float(v) for v in poses[i, k])
        out.append({"name": name, "position": [x, y, z], "yaw": yaw, "size": sizes[name]})
    return out


def augment_images(options, *, pipeline=None, log=None) -> dict[str, Any]:
    """``augment-images``: augmented copies of recorded frames with their provenance.

    ``options``: ``data`` (a run directory or one episode bag), ``out`` (a new folder), ``config``
    (``AsmrConfig``), ``cameras`` (None: all), ``force``. Writes ``OUT/<episode>/<camera>/<sample>_<k>_rgb.png``
    (and ``_depth.png``, uint16 mm), ``OUT/augmented_images.jsonl`` (one line per sample: files, source
    bag, episode, camera, grid sample and time, methods, drawn parameters, seed), ``OUT/rejected.jsonl``
    (samples the colour check refused) and ``OUT/summary.json``. The bags are only read."""
    import json
    import time
    from pathlib import Path

    from llm_trainer.asmr.paraphrase import stable_seed
    from llm_trainer.config import to_dict
    from llm_trainer.datasets.bag_episode import episode_from_bag

    cfg = options.config
    methods = list(cfg.images.methods)
    data, out = Path(options.data).resolve(), Path(options.out).resolve()
    if out == data or data in out.parents or out in data.parents:
        raise ValueError(f"--out {options.out} overlaps the source {options.data}; sources are never written to")
    if out.exists() and any(out.iterdir()) and not options.force:
        raise FileExistsError(f"{out} is not empty; pass --force to write into it")
    bags = _episode_bags(data)
    if "diffusion" in methods and pipeline is None:
        from llm_trainer.asmr.diffusion import load_pipeline

        pipeline = load_pipeline(cfg.diffusion)
    out.mkdir(parents=True, exist_ok=True)
    rows, rejected = [], []
    t0 = time.perf_counter()
    timing = {m: 0.0 for m in methods}
    frames = 0
    for bag in bags:
        ep = episode_from_bag(bag, cfg.images.rate_hz, images=True, depth=True, cameras=options.cameras)
        if not ep.images:
            raise ValueError(f"{bag}: no colour images recorded (generate without --no-cameras)")
        table = float(ep.record.get("scene", {}).get("table_height", 0.0))
        for i in range(0, ep.num_samples, cfg.images.every):
            objects = _objects_at(ep, i)
            for cam, stack in sorted(ep.images.items()):
                rgb = stack[i]
                depth = ep.depth[cam][i] if cam in ep.depth else None
                camera = ep.cameras.get(cam)
                masks = object_masks(depth, camera, objects) if depth is not None and camera else {}
                frames += 1
                for k in range(cfg.images.per_frame):
                    seed = stable_seed(cfg.seed, ep.episode_id, cam, i, k)
                    rng = np.random.default_rng(seed)
                    image, params = rgb, {}
                    if "diffusion" in methods:
                        if depth is None or camera is None:
                            raise ValueError(f"{bag}: the diffusion backend needs depth and the camera model of {cam}")
                        from llm_trainer.asmr.diffusion import rerender

                        t = time.perf_counter()
                        held = hold_mask(depth, camera, objects, hold=cfg.diffusion.hold, table_height=table,
                                         margin_m=cfg.diffusion.mask_margin_m)  # fmt: skip
                        prompt = cfg.diffusion.prompts[int(rng.integers(len(cfg.diffusion.prompts)))]
                        image, params["diffusion"] = rerender(pipeline, image, held, prompt, seed, cfg.diffusion)
                        timing["diffusion"] += time.perf_counter() - t
                    if "photometric" in methods:
                        t = time.perf_counter()
                        image, params["photometric"] = photometric(image, cfg.photometric, rng)
                        timing["photometric"] += time.perf_counter() - t
                    source = {"bag": str(bag), "episode_id": ep.episode_id, "task": ep.task,
                              "instruction": ep.instruction, "camera": cam, "sample": i,
                              "time_s": round(float(ep.timestamps[i]), 4)}  # fmt: skip
                    if cfg.images.colour_check and masks:
                        ok, why = colour_preserved(rgb, image, masks)
                        if not ok:
                            rejected.append({"source": source, "seed": seed, "parameters": params, "reason": why})
                            continue
                    new_depth = None
                    if "depth" in methods and depth is not None:
                        t = time.perf_counter()
                        new_depth, params["depth"] = realsense_depth(depth, cfg.depth, rng)
                        timing["depth"] += time.perf_counter() - t
                    folder = out / ep.episode_id / cam
                    folder.mkdir(parents=True, exist_ok=True)
                    stem = f"{i:05d}_{k:02d}"
                    cv2.imwrite(str(folder / f"{stem}_rgb.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
                    row = {"id": f"{ep.episode_id}/{cam}/{stem}", "rgb": f"{ep.episode_id}/{cam}/{stem}_rgb.png"}
                    if new_depth is not None:
                        cv2.imwrite(str(folder / f"{stem}_depth.png"), new_depth)
                        row["depth"] = f"{ep.episode_id}/{cam}/{stem}_depth.png"
                    checked = "ok" if masks and cfg.images.colour_check else "not run"
                    used = [m for m in methods if m in params]
                    row.update(source=source, methods=used, parameters=params, seed=seed, colour_check=checked)
                    rows.append(row)
        if log:
            log(f"{ep.episode_id}: {len(rows)} augmented, {len(rejected)} refused so far")
    with open(out / MANIFEST, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    with open(out / "rejected.jsonl", "w", encoding="utf-8") as f:
        for row in rejected:
            f.write(json.dumps(row) + "\n")
    summary = {
        "out": str(out),
        "bags": len(bags),
        "source_frames": frames,
        "augmented": len(rows),
        "refused_by_colour_check": len(rejected),
        "methods": methods,
        "ms_per_sample": {m: round(1000 * v / max(1, len(rows) + len(rejected)), 2) for m, v in timing.items()},
        "seconds": round(time.perf_counter() - t0, 2),
        "config": {k: to_dict(getattr(cfg, k)) for k in ("seed", "images", "photometric", "depth", "diffusion")},
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary
