"""Planner backends by name, configured from ``config/planner.yaml``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from llm_trainer.config import config_dir, load_section
from llm_trainer.planning.base import Planner
from llm_trainer.planning.oracle import OracleConfig, OraclePlanner

BACKENDS = ("oracle",)


@dataclass
class PlannerConfig:
    backend: str = "oracle"
    oracle: OracleConfig = field(default_factory=OracleConfig)

    def validate(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"unknown planner backend {self.backend!r} (available: {', '.join(BACKENDS)})")


def load_planner_config(path: Path | str | None = None) -> PlannerConfig:
    return load_section(PlannerConfig, path or config_dir() / "planner.yaml", "planner")


def make_planner(backend: str, config: PlannerConfig | None = None) -> Planner:
    config = config or PlannerConfig()
    if backend == "oracle":
        return OraclePlanner(config.oracle)
    raise ValueError(f"unknown planner backend {backend!r} (available: {', '.join(BACKENDS)})")
