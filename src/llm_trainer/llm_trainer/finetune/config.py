"""Fine-tuning configuration (``config/finetune.yaml``): BLAZER's hyper-parameters as defaults.

BLAZER (Sec. IV-A) trains LoRA adapters with rank 64, alpha 16, learning rate 2e-5 on a cosine
schedule for 5 epochs with an effective batch of 24. Every value can be overridden on the
command line; the values a run used are saved beside its adapter (``finetune.json``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from llm_trainer.config import config_dir, load_section

METHODS = ("sft", "dpo")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@dataclass
class LoraOptions:
    rank: int = 64
    alpha: float = 16.0
    dropout: float = 0.05
    target_modules: str = "all-linear"  # peft's shorthand, or a comma-separated list (q_proj,v_proj)

    def validate(self) -> None:
        if self.rank < 1:
            raise ValueError("lora.rank must be at least 1")
        if self.alpha <= 0:
            raise ValueError("lora.alpha must be positive")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError("lora.dropout must be within [0, 1)")


@dataclass
class DpoOptions:
    beta: float = 0.1  # strength of the pull towards the reference (the SFT planner)
    loss_type: str = "sigmoid"  # trl's DPO losses: sigmoid (the DPO paper), ipo, hinge, ...

    def validate(self) -> None:
        if self.beta <= 0:
            raise ValueError("dpo.beta must be positive")


@dataclass
class FinetuneConfig:
    method: str = "sft"  # sft | dpo
    lora: LoraOptions = field(default_factory=LoraOptions)
    dpo: DpoOptions = field(default_factory=DpoOptions)
    epochs: float = 5.0
    lr: float = 2.0e-5
    scheduler: str = "cosine"
    warmup_ratio: float = 0.0
    batch: int = 24  # effective batch: micro_batch x gradient accumulation
    micro_batch: int = 1  # sequences per forward pass (memory)
    max_steps: int = -1  # optimizer steps; -1: run the epochs
    valid_fraction: float = 0.1  # held out per task (by seed) for the validation loss
    max_length: int = 4096  # [tokens] prompt + completion; longer samples are an error, not cut
    save_steps: int = 50  # checkpoint every this many optimizer steps (and at the end)
    save_total_limit: int = 2
    precision: str = "auto"  # auto: bf16 on a GPU that has it, else fp32
    gradient_checkpointing: str = "auto"  # auto (on with a GPU) | on | off
    seed: int = 0

    def validate(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.epochs <= 0 and self.max_steps <= 0:
            raise ValueError("give epochs > 0 or max_steps > 0")
        if self.lr <= 0:
            raise ValueError("lr must be positive")
        if self.micro_batch < 1 or self.batch < self.micro_batch or self.batch % self.micro_batch:
            raise ValueError(f"batch ({self.batch}) must be a positive multiple of micro_batch ({self.micro_batch})")
        if not 0.0 <= self.valid_fraction < 1.0:
            raise ValueError("valid_fraction must be within [0, 1)")
        if self.max_length < 64:
            raise ValueError("max_length must be at least 64 tokens")
        if self.save_steps < 1:
            raise ValueError("save_steps must be at least 1")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}")
        if self.gradient_checkpointing not in ("auto", "on", "off"):
            raise ValueError("gradient_checkpointing must be auto, on or off")

    @property
    def accumulation(self) -> int:
        return self.batch // self.micro_batch


def load_finetune_config(path=None) -> FinetuneConfig:
    return load_section(FinetuneConfig, path or config_dir() / "finetune.yaml", "finetune")
