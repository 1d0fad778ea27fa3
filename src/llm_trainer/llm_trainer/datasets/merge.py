"""Merge robomimic-layout HDF5 files (one per generation worker) into one dataset.

Demos are copied whole (datasets and attributes) and renumbered in order, episode by episode id,
so a merged file reads like one written by a single recorder; masks and totals are rebuilt.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py

from llm_trainer.datasets.robomimic_hdf5 import DatasetError, _sorted_demos, _update_index


def merge_datasets(sources: list[Path | str], destination: Path | str) -> int:
    """Append every demo of ``sources`` to ``destination``; returns how many demos were copied."""
    destination = Path(destination)
    entries = []
    for src in sources:
        with h5py.File(src, "r") as f:
            if "data" not in f:
                raise DatasetError(f"{src}: no 'data' group; not a robomimic-layout file")
            for name in _sorted_demos(f["data"]):
                entries.append((str(f["data"][name].attrs.get("episode_id", "")), str(src), name))
    entries.sort()
    destination.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(destination, "a") as out:
        data = out.require_group("data")
        start = len(_sorted_demos(data))
        for offset, (_episode_id, src, name) in enumerate(entries):
            with h5py.File(src, "r") as f:
                if "env_args" not in data.attrs and "env_args" in f["data"].attrs:
                    data.attrs["env_args"] = f["data"].attrs["env_args"]
                f.copy(f["data"][name], data, name=f"demo_{start + offset}")
        if "env_args" not in data.attrs:
            data.attrs["env_args"] = json.dumps({})
        _update_index(out)
    return len(entries)
