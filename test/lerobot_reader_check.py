"""Reads an exported LeRobot v3.0 dataset back with lerobot's own reader and plain pyarrow.

Not a pytest file: it runs inside the lerobot side venv (``bash scripts/reader_venvs.sh lerobot``,
default ``.venv-readers/lerobot``), and the project's tests call it through ``subprocess``::

    .venv-readers/lerobot/bin/python test/lerobot_reader_check.py DATASET_DIR EXPECTED.json

EXPECTED.json::

    {"num_episodes": 2, "num_frames": 55,
     "episodes": [{"length": 30,                       # optional
                   "task": "pick up the red cube",     # optional, the instruction
                   "episode_id": "ep000",              # optional, checked in meta/llm_trainer_episodes.jsonl
                   "first_action": [...], "first_state": [...],
                   "last_action": [...],               # optional
                   "first_frame": {"front": [[[r, g, b], ...], ...]},   # optional, (H, W, 3) 0-255
                   "last_frame": {...}},               # optional
                  ...],
     "max_pixel_mae": 10.0, "atol": 1e-5}              # optional tolerances

Prints one JSON line ({"ok": bool, "checks": {...}, "errors": [...]}) and exits 1 on any mismatch,
2 when the dataset cannot be loaded at all.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import traceback
from pathlib import Path


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: lerobot_reader_check.py DATASET_DIR EXPECTED.json", file=sys.stderr)
        return 2
    root = Path(argv[1]).resolve()
    expected = json.loads(Path(argv[2]).read_text())
    # never touch the network or the user's caches
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ.setdefault("HF_HOME", tempfile.mkdtemp(prefix="lerobot_check_hf_"))
    os.environ.setdefault("HF_DATASETS_CACHE", str(Path(os.environ["HF_HOME"]) / "datasets"))

    import numpy as np
    import pyarrow.parquet as pq

    atol = float(expected.get("atol", 1e-5))
    max_mae = float(expected.get("max_pixel_mae", 10.0))
    checks: dict[str, object] = {}
    errors: list[str] = []

    def check(name: str, ok: bool, detail: object = None) -> None:
        checks[name] = detail if detail is not None else bool(ok)
        if not ok:
            errors.append(f"{name}: {detail}")

    try:
        from lerobot.datasets.lerobot_dataset import LeRobotDataset

        ds = LeRobotDataset("local/llm_trainer_check", root=root)
    except Exception as exc:  # noqa: BLE001 - report whatever the reader raised
        print(json.dumps({"ok": False, "stage": "load", "errors": [repr(exc)], "trace": traceback.format_exc()}))
        return 2

    try:
        check("num_episodes", ds.num_episodes == expected["num_episodes"], ds.num_episodes)
        check("num_frames", ds.num_frames == expected["num_frames"], ds.num_frames)
        check("len", len(ds) == expected["num_frames"], len(ds))
        item0 = ds[0]
        keys = sorted(item0)
        checks["keys"] = keys
        for k in (
            "observation.state",
            "action",
            "timestamp",
            "frame_index",
            "episode_index",
            "index",
            "task_index",
            "task",
        ):
            if k not in item0:
                errors.append(f"d[0] lacks {k}")
        if len(expected["episodes"]) > 1 and "length" in expected["episodes"][0]:
            n0 = int(expected["episodes"][0]["length"])  # first frame of the second episode
            check("d[len0].episode_index", int(ds[n0]["episode_index"]) == 1, int(ds[n0]["episode_index"]))
        video_keys = list(ds.meta.video_keys)
        checks["video_keys"] = video_keys

        start = 0
        for e, exp in enumerate(expected["episodes"]):
            length = int(exp.get("length", ds.meta.episodes[e]["length"]))
            first, last = ds[start], ds[start + length - 1]
            check(
                f"ep{e}.episode_index",
                int(first["episode_index"]) == e and int(last["episode_index"]) == e,
                [int(first["episode_index"]), int(last["episode_index"])],
            )
            check(
                f"ep{e}.frame_index",
                int(first["frame_index"]) == 0 and int(last["frame_index"]) == length - 1,
                [int(first["frame_index"]), int(last["frame_index"])],
            )
            if "task" in exp:
                check(f"ep{e}.task", first["task"] == exp["task"], first["task"])
            for name, item, key in (
                ("first_action", first, "action"),
                ("first_state", first, "observation.state"),
                ("last_action", last, "action"),
            ):
                if name in exp:
                    got = item[key].numpy()
                    want = np.asarray(exp[name], dtype=np.float32)
                    err = float(np.max(np.abs(got - want))) if got.shape == want.shape else None
                    check(f"ep{e}.{name}", err is not None and err <= atol, err if err is not None else str(got.shape))
            for name, item in (("first_frame", first), ("last_frame", last)):
                for cam, pixels in (exp.get(name) or {}).items():
                    key = f"observation.images.{cam}"
                    if key not in item:
                        check(f"ep{e}.{name}.{cam}", False, "missing")
                        continue
                    got = item[key].numpy().transpose(1, 2, 0) * 255.0  # (C, H, W) [0, 1] -> (H, W, C)
                    want = np.asarray(pixels, dtype=np.float64)
                    mae = float(np.mean(np.abs(got - want))) if got.shape == want.shape else None
                    check(
                        f"ep{e}.{name}.{cam}",
                        mae is not None and mae <= max_mae,
                        round(mae, 3) if mae is not None else str(got.shape),
                    )
            start += length

        # plain pyarrow: frames, episodes, tasks, provenance
        import pyarrow as pa

        data_files = sorted((root / "data").glob("*/*.parquet"))
        data = pa.concat_tables([pq.read_table(p) for p in data_files]).to_pydict()
        check("pyarrow.rows", len(data["index"]) == expected["num_frames"], len(data["index"]))
        index_ok = data["index"] == list(range(expected["num_frames"]))
        check("pyarrow.index", index_ok, "0..N-1" if index_ok else "not 0..N-1")
        eps = pq.read_table(sorted((root / "meta" / "episodes").glob("*/*.parquet"))[0]).to_pydict()
        check("pyarrow.episodes", len(eps["episode_index"]) == expected["num_episodes"], len(eps["episode_index"]))
        start = 0
        for e, exp in enumerate(expected["episodes"]):
            if "first_action" in exp:
                got = np.asarray(data["action"][start], dtype=np.float32)
                err = float(np.max(np.abs(got - np.asarray(exp["first_action"], dtype=np.float32))))
                check(f"pyarrow.ep{e}.first_action", err <= atol, err)
            start += int(exp.get("length", eps["length"][e]))
        prov_path = root / "meta" / "llm_trainer_episodes.jsonl"
        prov = [json.loads(line) for line in prov_path.read_text().splitlines()] if prov_path.exists() else []
        check("provenance.lines", len(prov) == expected["num_episodes"], len(prov))
        for e, exp in enumerate(expected["episodes"]):
            if "episode_id" in exp and e < len(prov):
                check(
                    f"provenance.ep{e}.episode_id",
                    prov[e].get("episode_id") == exp["episode_id"],
                    prov[e].get("episode_id"),
                )
    except Exception as exc:  # noqa: BLE001
        errors.append(f"exception: {exc!r}")
        checks["trace"] = traceback.format_exc()

    print(json.dumps({"ok": not errors, "checks": checks, "errors": errors}, default=str))
    return 0 if not errors else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
