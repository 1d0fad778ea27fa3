"""Which planners an evaluation compares: ``[LABEL=]BACKEND[:key=value,...]``.

    oracle                                      the scripted teacher
    base=llama_cpp                              SmolLM2 served by llama.cpp (started for the run)
    sft=llama_cpp:adapter=runs/sft,constraint=none
    sft-hf=transformers:adapter=runs/sft        the same adapter in process (slower on CPU)
    vllm=openai:base_url=http://gpu:8000/v1,model=llama-8b

Keys are the backend's own settings in ``config/planner.yaml`` (``transformers.adapter``,
``openai.base_url``), then the language-model options (``llm.constraint``, ``llm.grammar_level``,
``llm.temperature``) and the prompt's (``llm.prompt.example``); a dotted key is taken as it is.
``llama_cpp`` is the fast path on CPU: ``serve-llm`` (llama.cpp) is started with the model
(``model``, default smollm2) and the LoRA adapter converted for it (``adapter``), and the planner
talks to it as ``openai``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from llm_trainer.config import parse_value, to_dict
from llm_trainer.planning.registry import BACKENDS, PlannerConfig

SPEC_BACKENDS = (*BACKENDS, "llama_cpp")
SERVER_KEYS = ("model", "adapter", "threads", "context")  # llama_cpp: what the server is started with


@dataclass
class PlannerSpec:
    label: str
    backend: str  # oracle | transformers | openai | replay | llama_cpp
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def planner_backend(self) -> str:
        return "openai" if self.backend == "llama_cpp" else self.backend

    def server_settings(self) -> dict[str, Any]:
        return {k: v for k, v in self.settings.items() if self.backend == "llama_cpp" and k in SERVER_KEYS}

    def overrides(self) -> dict[str, Any]:
        """Dotted planner-config keys for this planner (the server's base_url is added when it starts)."""
        config = to_dict(PlannerConfig())
        section = "openai" if self.backend == "llama_cpp" else self.backend
        out: dict[str, Any] = {}
        for key, value in self.settings.items():
            if self.backend == "llama_cpp" and key in SERVER_KEYS:
                continue
            if "." in key:
                out[key] = value
            elif key in config.get(section, {}):
                out[f"{section}.{key}"] = value
            elif key in config["llm"]:
                out[f"llm.{key}"] = value
            elif key in config["llm"]["prompt"]:
                out[f"llm.prompt.{key}"] = value
            else:
                raise ValueError(f"planner {self.label!r}: unknown setting {key!r} for the {self.backend} backend")
        return out

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def parse_planner_spec(text: str) -> PlannerSpec:
    """``[LABEL=]BACKEND[:key=value,...]`` -> PlannerSpec; a malformed spec is a ValueError saying why."""
    head, _, tail = text.partition(":")
    label, eq, backend = head.partition("=")
    if not eq:
        label, backend = head, head
    label, backend = label.strip(), backend.strip()
    if backend not in SPEC_BACKENDS:
        raise ValueError(f"planner {text!r}: unknown backend {backend!r} (one of {', '.join(SPEC_BACKENDS)})")
    if not label or "/" in label or label.startswith("."):
        raise ValueError(f"planner {text!r}: the label must be a plain name (it names a folder)")
    settings: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in tail.split(","))):
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise ValueError(f"planner {text!r}: settings are key=value, got {item!r}")
        settings[key.strip()] = value.strip() if key.strip() in ("adapter", "model", "base_url") else parse_value(value)
    if backend == "oracle" and settings:
        raise ValueError(f"planner {text!r}: the oracle takes no settings")
    spec = PlannerSpec(label, backend, settings)
    spec.overrides()  # unknown keys fail here, before anything runs
    return spec
