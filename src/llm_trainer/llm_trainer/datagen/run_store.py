"""A generation run on disk: its configuration, its episode slots, and where it stopped (ROS-free).

A run directory holds ``run.json`` (the configuration it was started with), ``episodes.jsonl``
(one final episode record per slot, appended as each finishes), ``bags/`` and ``attempts/``.
Re-running the same command on the same directory continues where it stopped (Ctrl-C, SIGKILL,
a reboot): slots with a record are done; a bag without a record (the episode was cut off) is set
aside under ``attempts/`` marked incomplete and the slot runs again, so the run ends with exactly one
verdict per slot and no duplicate seed. A changed configuration is refused with the difference named,
unless forced.

Seeds: each task owns a block of ``TASK_SEED_STRIDE`` seeds (``tasks.registry.seed_block``: the
built-in tasks in registration order, put_block first). Slot ``i`` of a task uses seed
``block * TASK_SEED_STRIDE + seed + i`` in the ``train`` split and ``... + TEST_SEED_OFFSET + i`` in
``test``, so no two tasks share a seed and a test seed is never a training seed (for fewer than
``TEST_SEED_OFFSET`` episodes and a base ``seed`` below ``TASK_SEED_STRIDE - 2 * TEST_SEED_OFFSET``;
put_block's block is 0, so its seeds are the plain ``seed + i``). Runs started before seeds were per
task (``run.json`` without ``"seeds": "per_task"``) are refused with that difference. Episode ids name
the task and the slot, ``<task>_<i:06d>`` (e.g. ``stack_blocks_000007``): stable when ``--episodes``
grows or ``--tasks`` changes, so a forced continuation never gives one id two meanings.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llm_trainer.episodes import EpisodeRecord

RUN_FILE = "run.json"
EPISODES_FILE = "episodes.jsonl"
TEST_SEED_OFFSET = 1_000_000
TASK_SEED_STRIDE = 10_000_000
MAX_BASE_SEED = TASK_SEED_STRIDE - 2 * TEST_SEED_OFFSET
SEED_SCHEME = "per_task"
SPLITS = ("train", "test")
#: What must match for a run to be continued (workers, domains and output paths may change).
RESUME_KEYS = (
    "tasks", "episodes", "seed", "seeds", "split", "planner", "graph", "render_cameras", "camera_rate_hz", "record"
)  # fmt: skip
#: Also matched when a run sets them (left out at their defaults, so older runs continue as before).
OPTIONAL_RESUME_KEYS = ("planner_overrides", "state", "augment")


@dataclass(frozen=True)
class Slot:
    """One episode a run owes: its id, its global index, task and seed."""

    episode_id: str
    index: int  # the slot within its task (seed_for(split, base, index, task))
    task: str
    seed: int
    task_index: int


def seed_for(split: str, base: int, i: int, task: str) -> int:
    """Slot ``i``'s seed of ``task`` in ``split`` (see the module's docstring)."""
    from llm_trainer.tasks.registry import seed_block

    if split not in SPLITS:
        raise ValueError(f"--split must be one of {', '.join(SPLITS)}, got {split!r}")
    if not 0 <= base <= MAX_BASE_SEED:
        raise ValueError(f"--seed must be within [0, {MAX_BASE_SEED}] (each task owns {TASK_SEED_STRIDE} seeds)")
    if not 0 <= i < TEST_SEED_OFFSET:
        raise ValueError(f"slot {i} is outside [0, {TEST_SEED_OFFSET}) (test seeds start there)")
    return seed_block(task) * TASK_SEED_STRIDE + base + i + (TEST_SEED_OFFSET if split == "test" else 0)


def slots(tasks: list[str], episodes: int, seed: int, split: str) -> list[Slot]:
    out = []
    for t, task in enumerate(tasks):
        for i in range(episodes):
            out.append(Slot(episode_id(task, i), i, task, seed_for(split, seed, i, task), t))
    return out


def episode_id(task: str, i: int) -> str:
    return f"{task}_{i:06d}"


class RunStore:
    def __init__(self, out: Path, config: dict[str, Any]):
        self.out = Path(out)
        self.config = {k: config[k] for k in RESUME_KEYS}
        self.config.update({k: config[k] for k in OPTIONAL_RESUME_KEYS if k in config})
        self.episodes_log = self.out / EPISODES_FILE

    def open(self, *, force: bool = False) -> dict[str, EpisodeRecord]:
        """Create or continue the run; returns the records already done, by episode id."""
        run_file = self.out / RUN_FILE
        if run_file.exists():
            old = json.loads(run_file.read_text(encoding="utf-8")).get("config", {})
            keys = [*RESUME_KEYS, *(k for k in OPTIONAL_RESUME_KEYS if k in old or k in self.config)]
            diff = {k: (old.get(k), self.config.get(k)) for k in keys if old.get(k) != self.config.get(k)}
            if diff and not force:
                named = "; ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in diff.items())
                raise ValueError(f"{self.out} holds a run with another configuration ({named}); "
                                 "use a new --out, or --force to continue it with this one")  # fmt: skip
        elif any((self.out / p).exists() for p in (EPISODES_FILE, "dataset.hdf5", "bags", "workers")):
            raise FileExistsError(f"{self.out} already holds a generation run without {RUN_FILE}; choose a new --out")
        self.out.mkdir(parents=True, exist_ok=True)
        tmp = run_file.with_name(RUN_FILE + ".tmp")
        tmp.write_text(json.dumps({"version": 1, "config": self.config}, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, run_file)
        return self._done()

    def _done(self) -> dict[str, EpisodeRecord]:
        """Records in episodes.jsonl (the last per id wins); a line cut off by a crash is dropped."""
        done: dict[str, EpisodeRecord] = {}
        if not self.episodes_log.exists():
            return done
        lines = self.episodes_log.read_text(encoding="utf-8").splitlines()
        kept = []
        for line in lines:
            try:
                record = EpisodeRecord.from_json(line)
            except (ValueError, KeyError, TypeError):
                continue
            done[record.episode_id] = record
            kept.append(line)
        if len(kept) != len(lines):
            tmp = self.episodes_log.with_name(EPISODES_FILE + ".tmp")
            tmp.write_text("".join(x + "\n" for x in kept), encoding="utf-8")
            os.replace(tmp, self.episodes_log)
        return done

    def set_aside_orphans(self, done: dict[str, EpisodeRecord]) -> list[Path]:
        """Bags with no final record (the run stopped during their episode): to ``attempts/``, marked."""
        bags = self.out / "bags"
        names = [b.name for b in sorted(bags.iterdir()) if b.is_dir()] if bags.is_dir() else []
        reason = "the run stopped during this episode (no verdict was recorded); it was run again"
        moved = [self.set_aside(n, "interrupted", reason) for n in names if not n.startswith(".") and n not in done]
        return [m for m in moved if m is not None]

    def set_aside(
        self, episode_id: str, label: str, reason: str, *, record: dict[str, Any] | None = None, start: int = 1
    ) -> Path | None:
        """Move ``bags/<episode_id>`` to ``attempts/<episode_id>.<label><n>`` (the first free n from
        ``start``: a resumed run may have set aside attempts of the same episode already) and mark it
        incomplete with the reason; a bag its recorder never closed is rebuilt first. ``bags/`` then
        only ever holds one bag per episode: its final attempt."""
        from llm_trainer.recording.recovery import mark_incomplete

        bag = self.out / "bags" / episode_id
        if not bag.exists():
            return None
        n = start
        while (dest := self.out / "attempts" / f"{episode_id}.{label}{n}").exists():
            n += 1
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(bag, dest)
        mark_incomplete(dest, reason, record=record)
        return dest

    def append(self, record: EpisodeRecord) -> None:
        # One write of one line: a crash leaves at most a cut-off last line, which open() drops.
        with open(self.episodes_log, "a", encoding="utf-8") as f:
            f.write(record.to_json() + "\n")
            f.flush()
            os.fsync(f.fileno())
