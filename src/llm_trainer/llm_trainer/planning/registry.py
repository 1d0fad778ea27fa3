"""Planner backends by name, configured from ``config/planner.yaml``.

oracle        scripted plans from the true scene (the reference)
transformers  a local model in this process (HF folder, GGUF, or the packaged SmolLM2; LoRA optional)
openai        any OpenAI-compatible server (vLLM, llama.cpp, Ollama, `llm-trainer serve-llm`)
replay        recorded answers from a file (regression)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from llm_trainer.config import config_dir, load_section
from llm_trainer.planning.base import Planner
from llm_trainer.planning.llm import LLMOptions
from llm_trainer.planning.openai_backend import OpenAIConfig
from llm_trainer.planning.oracle import OracleConfig, OraclePlanner
from llm_trainer.planning.replay import ReplayConfig
from llm_trainer.planning.transformers_backend import TransformersConfig
from llm_trainer.planning.validation import ValidationConfig

BACKENDS = ("oracle", "transformers", "openai", "replay")


@dataclass
class PlannerConfig:
    backend: str = "oracle"
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    oracle: OracleConfig = field(default_factory=OracleConfig)
    llm: LLMOptions = field(default_factory=LLMOptions)
    transformers: TransformersConfig = field(default_factory=TransformersConfig)
    openai: OpenAIConfig = field(default_factory=OpenAIConfig)
    replay: ReplayConfig = field(default_factory=ReplayConfig)

    def validate(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"unknown planner backend {self.backend!r} (available: {', '.join(BACKENDS)})")


def load_planner_config(path: Path | str | None = None) -> PlannerConfig:
    return load_section(PlannerConfig, path or config_dir() / "planner.yaml", "planner")


def make_planner(backend: str, config: PlannerConfig | None = None) -> Planner:
    """A planner for ``backend``; models load lazily, on the first request."""
    config = config or PlannerConfig()
    if backend not in BACKENDS:
        raise ValueError(f"unknown planner backend {backend!r} (available: {', '.join(BACKENDS)})")
    if backend == "oracle":
        planner: Planner = OraclePlanner(config.oracle)
        planner.validation = config.validation
        return planner
    from llm_trainer.planning.llm import LLMPlanner

    return LLMPlanner(make_generator(backend, config), config.llm, validation=config.validation)


def make_generator(backend: str, config: PlannerConfig | None = None):
    """The text generator of a language-model backend (what planners and annotators ask)."""
    config = config or PlannerConfig()
    if backend == "transformers":
        from llm_trainer.planning.transformers_backend import TransformersGenerator

        generator = TransformersGenerator(config.transformers)
    elif backend == "openai":
        from llm_trainer.planning.openai_backend import OpenAIGenerator

        generator = OpenAIGenerator(config.openai)
    elif backend == "replay":
        from llm_trainer.planning.replay import ReplayGenerator

        generator = ReplayGenerator(config.replay)
    else:
        raise ValueError(f"unknown language-model backend {backend!r} (available: transformers, openai, replay)")
    return generator
