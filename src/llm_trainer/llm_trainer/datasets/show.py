"""``llm-trainer show``: look at a run without writing code (OpenCV for pictures, PyAV for video).

Writes, under ``RUN_DIR/show/`` (or ``--out``):

- ``<episode>_sheet.png``: a contact sheet: camera frames over time (one row per camera), the
  end-effector path over the scene seen from above (objects at the start), and the gripper opening
  over time;
- ``<episode>_<camera>.mp4``: each camera's colour stream;
- ``summary.json``: episodes, success per task, episode lengths, failure kinds (from ``episodes.jsonl``);
- ``<episode>.rrd`` with ``--rerun``: a Rerun recording (needs ``rerun-sdk``).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from llm_trainer.datasets.bag_episode import episode_from_bag
from llm_trainer.datasets.episode_data import EpisodeData
from llm_trainer.datasets.export import episode_bags

COLUMNS = 6
PANEL = 240  # [px] side of the top-down and gripper panels


def _label(img: np.ndarray, text: str, color=(255, 255, 255)) -> np.ndarray:
    out = img.copy()
    cv2.putText(out, text, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, color, 1, cv2.LINE_AA)
    return out


def _top_down(ep: EpisodeData, scene: dict[str, Any]) -> np.ndarray:
    """End-effector path (blue -> red over time) over the objects' footprints, x up, y left (robot view)."""
    img = np.full((PANEL, PANEL, 3), 235, np.uint8)
    x0, x1, y0, y1 = 0.15, 0.8, -0.45, 0.45
    scale = (PANEL - 20) / max(x1 - x0, y1 - y0)

    def px(x: float, y: float) -> tuple[int, int]:
        return int(10 + (y1 - y) * scale), int(PANEL - 10 - (x - x0) * scale)

    for obj in scene.get("objects", []):
        cx, cy, _ = obj["position"]
        length, width, _ = obj["size"]
        yaw = obj.get("yaw", 0.0)
        c, s = np.cos(yaw), np.sin(yaw)
        half = ((length / 2, width / 2), (-length / 2, width / 2), (-length / 2, -width / 2), (length / 2, -width / 2))
        corners = [(cx + c * a - s * b, cy + s * a + c * b) for a, b in half]
        cv2.polylines(img, [np.array([px(*p) for p in corners], np.int32)], True, (90, 90, 90), 1)
    path = ep.obs["ee_pos"]
    n = len(path)
    for i in range(1, n):
        t = i / max(n - 1, 1)
        color = (int(255 * (1 - t)), 40, int(255 * t))  # BGR order is irrelevant here: we write RGB
        cv2.line(img, px(*path[i - 1][:2]), px(*path[i][:2]), color[::-1], 2)
    return _label(img, "end effector from above", (40, 40, 40))


def _gripper_plot(ep: EpisodeData) -> np.ndarray:
    img = np.full((PANEL, PANEL, 3), 245, np.uint8)
    width = ep.obs["gripper_width"][:, 0]
    n = len(width)
    pts = [
        (int(10 + (PANEL - 20) * i / max(n - 1, 1)), int(PANEL - 20 - (PANEL - 40) * w / 0.08))
        for i, w in enumerate(width)
    ]
    cv2.polylines(img, [np.array(pts, np.int32)], False, (30, 120, 30), 2)
    return _label(img, "gripper opening (0-8 cm)", (40, 40, 40))


def contact_sheet(ep: EpisodeData) -> np.ndarray:
    """The contact sheet as an RGB image."""
    rows = []
    n = ep.num_samples
    picks = np.linspace(0, n - 1, COLUMNS).round().astype(int)
    for cam, frames in sorted(ep.images.items()):
        tiles = [_label(frames[i], f"{cam} t={ep.timestamps[i]:.1f}s") for i in picks]
        rows.append(np.concatenate(tiles, axis=1))
    panels = np.concatenate([_top_down(ep, ep.record.get("scene", {})), _gripper_plot(ep)], axis=1)
    width = max([r.shape[1] for r in rows] + [panels.shape[1]])
    pad = lambda img: np.pad(img, ((0, 0), (0, width - img.shape[1]), (0, 0)), constant_values=255)  # noqa: E731
    return np.concatenate([pad(r) for r in rows] + [pad(panels)], axis=0)


def write_mp4(frames: np.ndarray, path: Path, fps: float) -> str:
    """Encode (N, H, W, 3) RGB frames; returns the codec used."""
    import av

    for codec in ("libx264", "h264", "mpeg4"):
        try:
            with av.open(str(path), "w") as container:
                stream = container.add_stream(codec, rate=int(round(fps)))
                stream.width, stream.height = frames.shape[2] // 2 * 2, frames.shape[1] // 2 * 2
                stream.pix_fmt = "yuv420p"
                for f in frames:
                    frame = av.VideoFrame.from_ndarray(
                        np.ascontiguousarray(f[: stream.height, : stream.width]), format="rgb24"
                    )
                    container.mux(stream.encode(frame))
                container.mux(stream.encode())
            return codec
        except (av.FFmpegError, ValueError):
            path.unlink(missing_ok=True)
    raise RuntimeError("PyAV has none of the encoders libx264, h264, mpeg4")


def run_summary(run_dir: Path) -> dict[str, Any]:
    from llm_trainer.episodes import EpisodeRecord

    log = run_dir / "episodes.jsonl"
    records = [EpisodeRecord.from_json(x) for x in log.read_text().splitlines() if x.strip()] if log.exists() else []
    per_task: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for r in records:
        per_task[r.task][0] += r.success
        per_task[r.task][1] += 1
    sims = [r.timing.get("sim_time", 0.0) for r in records]
    return {
        "episodes": len(records),
        "successes": sum(r.success for r in records),
        "success_per_task": {t: f"{s}/{n}" for t, (s, n) in sorted(per_task.items())},
        "failure_kinds": dict(Counter(r.outcome.kind.value for r in records if not r.success)),
        "episode_sim_seconds": {"min": min(sims), "median": float(np.median(sims)), "max": max(sims)} if sims else {},
    }


def show_run(run_dir: Path, *, episode: str | None = None, out: Path | None = None, videos: bool = True,
             rerun: bool = False) -> dict[str, Any]:  # fmt: skip
    if not run_dir.is_dir():
        raise FileNotFoundError(f"no run directory {run_dir}")
    out = out or run_dir / "show"
    out.mkdir(parents=True, exist_ok=True)
    summary = run_summary(run_dir)
    bags = episode_bags(run_dir)
    if episode:
        bags = [b for b in bags if b.name == episode]
        if not bags:
            raise FileNotFoundError(f"no complete episode {episode!r} under {run_dir / 'bags'}")
    written: list[str] = []
    if bags:
        ep = episode_from_bag(bags[0], 10.0, images=True)
        sheet = out / f"{ep.episode_id}_sheet.png"
        cv2.imwrite(str(sheet), contact_sheet(ep)[:, :, ::-1])
        written.append(str(sheet))
        for cam, frames in sorted(ep.images.items()) if videos else []:
            path = out / f"{ep.episode_id}_{cam}.mp4"
            write_mp4(frames, path, ep.fps)
            written.append(str(path))
        if rerun:
            written.append(str(_rerun(ep, out)))
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return {**summary, "written": written + [str(out / "summary.json")]}


def _rerun(ep: EpisodeData, out: Path) -> Path:
    try:
        import rerun as rr
    except ImportError:
        raise RuntimeError("--rerun needs rerun-sdk: pip install rerun-sdk") from None
    path = out / f"{ep.episode_id}.rrd"
    rr.init(f"llm_trainer/{ep.episode_id}")
    for i, t in enumerate(ep.timestamps):
        rr.set_time("sim_time", duration=float(t))
        rr.log("world/ee", rr.Points3D([ep.obs["ee_pos"][i]]))
        for cam, frames in ep.images.items():
            rr.log(f"cameras/{cam}", rr.Image(frames[i]))
    rr.save(str(path))
    return path
