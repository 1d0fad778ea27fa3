"""``llm-trainer export``: a run's bags -> robomimic HDF5, LeRobot v3.0 or SFT JSONL.

Exporters read the bags (and each bag's episode record in ``metadata.json``), never the live graph,
so any recorded run, also from the lab robot, can be exported again. Only complete bags are read (a
bag marked ``incomplete`` after a crash is skipped and counted); only verified episodes are exported
unless ``include_failures``. SFT JSONL needs no bags: without them it reads ``episodes.jsonl``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llm_trainer.datasets.bag_episode import ACTION_SPACES, DatasetError, episode_from_bag
from llm_trainer.datasets.exporters import FORMATS
from llm_trainer.episodes import EpisodeRecord
from llm_trainer.recording.bag_reader import read_episode_metadata


@dataclass
class ExportOptions:
    run_dir: Path
    format: str
    out: Path
    images: bool = False
    depth: bool = False
    include_failures: bool = False
    action_space: str = "joint_pos"
    rate_hz: float = 10.0
    valid_fraction: float = 0.1
    cameras: list[str] | None = None
    skipped: dict[str, int] = field(default_factory=dict)

    def validate(self) -> None:
        if self.format not in FORMATS:
            raise ValueError(f"unknown export format {self.format!r} (known: {', '.join(FORMATS)})")
        if self.action_space not in ACTION_SPACES:
            raise ValueError(f"unknown action space {self.action_space!r} (known: {', '.join(ACTION_SPACES)})")
        if not self.rate_hz > 0:
            raise ValueError("--rate must be positive")
        if not 0.0 <= self.valid_fraction < 1.0:
            raise ValueError("--valid-fraction must be within [0, 1)")
        if not Path(self.run_dir).is_dir():
            raise FileNotFoundError(f"no run directory {self.run_dir}")


def episode_bags(run_dir: Path, options: ExportOptions | None = None) -> list[Path]:
    """The run's complete episode bags in episode order (incomplete ones are counted in ``skipped``)."""
    bags_dir = Path(run_dir) / "bags"
    out = []
    for bag in sorted(p for p in bags_dir.glob("*") if p.is_dir()) if bags_dir.is_dir() else []:
        status = read_episode_metadata(bag).get("status")
        if status != "complete":
            if options is not None:
                options.skipped[str(status)] = options.skipped.get(str(status), 0) + 1
            continue
        out.append(bag)
    return out


def run_records(run_dir: Path, options: ExportOptions | None = None) -> Iterator[EpisodeRecord]:
    """The episode records of a run: from its complete bags, else from ``episodes.jsonl`` (runs
    generated without recording)."""
    bags = episode_bags(run_dir, options)
    if bags:
        for bag in bags:
            meta = read_episode_metadata(bag)
            if isinstance(meta.get("record"), dict):
                record = EpisodeRecord.from_dict(meta["record"])
                record.bag = str(bag)
                yield record
        return
    log = Path(run_dir) / "episodes.jsonl"
    if not log.exists():
        raise FileNotFoundError(f"{run_dir} has neither bags/ nor episodes.jsonl")
    for line in log.read_text(encoding="utf-8").splitlines():
        if line.strip():
            yield EpisodeRecord.from_json(line)


def _episodes(options: ExportOptions):
    for bag in episode_bags(options.run_dir, options):
        meta = read_episode_metadata(bag)
        if not options.include_failures and not meta.get("success"):
            options.skipped["failed"] = options.skipped.get("failed", 0) + 1
            continue
        yield episode_from_bag(
            bag, options.rate_hz, images=options.images, depth=options.depth, cameras=options.cameras
        )


def export_run(options: ExportOptions) -> dict[str, Any]:
    options.validate()
    out = Path(options.out)
    if options.format == "robomimic":
        from llm_trainer.datasets.exporters.robomimic import write_robomimic

        summary = write_robomimic(
            _episodes(options),
            out,
            action_space=options.action_space,
            valid_fraction=options.valid_fraction,
            rate_hz=options.rate_hz,
        )
    elif options.format == "lerobot":
        from llm_trainer.datasets.exporters.lerobot import write_lerobot_dataset

        summary = write_lerobot_dataset(
            _episodes(options),
            out,
            fps=options.rate_hz,
            action_space=options.action_space,
            include_images=options.images,
        )
    else:
        from llm_trainer.datasets.exporters.sft_jsonl import write_sft_jsonl

        summary = write_sft_jsonl(run_records(options.run_dir, options), out, include_failures=options.include_failures)
    summary["skipped"] = dict(options.skipped)
    if summary.get("demos", summary.get("episodes", summary.get("samples", 1))) == 0:
        summary["warning"] = "nothing exported (no complete, verified episodes; see --include-failures)"
    return summary


__all__ = ["DatasetError", "ExportOptions", "episode_bags", "export_run"]
