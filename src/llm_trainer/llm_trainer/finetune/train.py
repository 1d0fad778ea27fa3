"""``llm-trainer finetune``: LoRA SFT on verified plans, DPO on success/failure pairs (trl + peft).

SFT uses trl's ``SFTTrainer`` on conversational prompt-completion rows with the loss on the
completion tokens only (``completion_only_loss``): the student learns to answer, not to repeat the
prompt. DPO uses trl's ``DPOTrainer`` on top of an SFT adapter; trl keeps a frozen copy of that
adapter as the reference policy, so the preference step pulls away from failures relative to the SFT
planner rather than to the untrained base.

A run directory (``--out``) holds, when done: the adapter (``adapter_config.json``,
``adapter_model.safetensors``: what the planner backends load), ``finetune.json`` (configuration,
data summary, versions, wall time, losses, status) and ``training_log.jsonl`` (trainer log per
step). ``checkpoints/`` holds trainer checkpoints while it runs: the same command again continues
from the newest one; a changed configuration is refused with the difference named, unless
``--force``. The same code runs on a GPU (bf16 and gradient checkpointing when ``auto``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llm_trainer.config import to_dict
from llm_trainer.finetune.config import FinetuneConfig
from llm_trainer.finetune.data import DataError, TrainingData, load_training_data

RUN_FILE = "finetune.json"


@dataclass
class FinetuneOptions:
    data: list[str]
    base: str  # Hugging Face folder, .gguf, or smollm2
    out: Path
    config: FinetuneConfig = field(default_factory=FinetuneConfig)
    adapter: str = ""  # DPO: the SFT adapter to start from
    force: bool = False
    progress: bool = True

    def validate(self) -> None:
        self.config.validate()
        if self.config.method == "dpo" and not self.adapter:
            raise ValueError("--method dpo trains on top of an SFT adapter: give --adapter SFT_ADAPTER_DIR")
        if self.adapter and not (Path(self.adapter) / "adapter_config.json").is_file():
            raise ValueError(f"--adapter {self.adapter}: no adapter_config.json there")


def _fingerprint(rows: list[dict[str, Any]]) -> str:
    return hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()[:16]


def _identity(options: FinetuneOptions, data: TrainingData) -> dict[str, Any]:
    """What must match for a run to continue from its checkpoints."""
    return {
        "base": options.base,
        "adapter": str(Path(options.adapter).resolve()) if options.adapter else "",
        "config": to_dict(options.config),
        "data": {"sources": data.sources, "train": _fingerprint(data.train), "valid": _fingerprint(data.valid)},
    }


def _differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return out


def _latest_checkpoint(directory: Path) -> str | None:
    if not directory.is_dir():
        return None
    # A checkpoint is complete once the trainer wrote its state (a kill can cut one short).
    found = [
        p
        for p in directory.glob("checkpoint-*")
        if p.name.split("-")[-1].isdigit() and (p / "trainer_state.json").is_file()
    ]
    return str(max(found, key=lambda p: int(p.name.split("-")[-1]))) if found else None


def _write_json(path: Path, data: dict[str, Any]) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(partial, path)


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {}
    for name in ("torch", "transformers", "peft", "trl", "accelerate"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return out


def _check_lengths(tokenizer, rows: list[dict[str, Any]], max_length: int, answer_keys: tuple[str, ...]) -> int:
    """The longest tokenised sample; a sample over ``max_length`` is an error (trl would cut it)."""
    longest = 0
    for row in rows:
        for key in answer_keys:
            ids = tokenizer.apply_chat_template(row["prompt"] + row[key], tokenize=True, return_dict=True)["input_ids"]
            longest = max(longest, len(ids))
            if len(ids) > max_length:
                raise DataError(
                    f"a {row.get('task')} sample (seed {row.get('seed')}) is {len(ids)} tokens, over max_length "
                    f"{max_length}: raise --max-length (or shorten the prompt) rather than train on a cut answer"
                )
    return longest


def _hf_rows(rows: list[dict[str, Any]], keys: tuple[str, ...]):
    from datasets import Dataset

    return Dataset.from_list([{k: r[k] for k in keys} for r in rows])


def _precision(config: FinetuneConfig, cuda: bool) -> str:
    if config.precision != "auto":
        return config.precision
    import torch

    return "bf16" if cuda and torch.cuda.is_bf16_supported() else "fp32"


def _common_args(options: FinetuneOptions, data: TrainingData, cuda: bool) -> dict[str, Any]:
    cfg = options.config
    precision = _precision(cfg, cuda)
    checkpointing = cfg.gradient_checkpointing == "on" or (cfg.gradient_checkpointing == "auto" and cuda)
    has_valid = bool(data.valid)
    return {
        "output_dir": str(Path(options.out) / "checkpoints"),
        "num_train_epochs": cfg.epochs,
        "max_steps": cfg.max_steps,
        "learning_rate": cfg.lr,
        "lr_scheduler_type": cfg.scheduler,
        "warmup_steps": cfg.warmup_ratio,
        "per_device_train_batch_size": cfg.micro_batch,
        "per_device_eval_batch_size": cfg.micro_batch,
        "gradient_accumulation_steps": cfg.accumulation,
        **({"gradient_checkpointing": True} if checkpointing else {}),
        "bf16": precision == "bf16",
        "fp16": precision == "fp16",
        "use_cpu": not cuda,
        "logging_steps": 1,
        "save_strategy": "steps",
        "save_steps": cfg.save_steps,
        "save_total_limit": cfg.save_total_limit,
        "eval_strategy": "steps" if has_valid else "no",
        "eval_steps": cfg.save_steps if has_valid else None,
        "report_to": "none",
        "seed": cfg.seed,
        "disable_tqdm": not options.progress,
        "max_length": cfg.max_length,
        "dataloader_num_workers": 0,
    }


def _lora_config(cfg: FinetuneConfig):
    from peft import LoraConfig

    targets = cfg.lora.target_modules
    return LoraConfig(
        r=cfg.lora.rank,
        lora_alpha=cfg.lora.alpha,
        lora_dropout=cfg.lora.dropout,
        target_modules=targets if targets == "all-linear" else [t.strip() for t in targets.split(",") if t.strip()],
        task_type="CAUSAL_LM",
    )


def build_trainer(options: FinetuneOptions, data: TrainingData, log=print):
    """The trl trainer for the options (SFT or DPO), model and tokenizer loaded; nothing trained yet."""
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from trl import DPOConfig, DPOTrainer, SFTConfig, SFTTrainer
    except ImportError as exc:
        raise RuntimeError(f"fine-tuning needs torch, transformers, peft and trl ({exc})") from None
    from llm_trainer.finetune.base_model import trainable_model_dir

    cfg = options.config
    cuda = torch.cuda.is_available()
    model_dir = trainable_model_dir(options.base, log=log)
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(_precision(cfg, cuda), torch.float32)
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=dtype)
    args = _common_args(options, data, cuda)
    if cfg.method == "sft":
        longest = _check_lengths(tokenizer, data.train + data.valid, cfg.max_length, ("completion",))
        keys = ("prompt", "completion")
        trainer = SFTTrainer(
            model=model,
            args=SFTConfig(**args, completion_only_loss=True),
            train_dataset=_hf_rows(data.train, keys),
            eval_dataset=_hf_rows(data.valid, keys) if data.valid else None,
            processing_class=tokenizer,
            peft_config=_lora_config(cfg),
        )
    else:
        from peft import PeftModel

        longest = _check_lengths(tokenizer, data.train + data.valid, cfg.max_length, ("chosen", "rejected"))
        keys = ("prompt", "chosen", "rejected")
        model = PeftModel.from_pretrained(model, options.adapter, is_trainable=True)
        trainer = DPOTrainer(
            model=model,
            args=DPOConfig(**args, beta=cfg.dpo.beta, loss_type=cfg.dpo.loss_type),
            train_dataset=_hf_rows(data.train, keys),
            eval_dataset=_hf_rows(data.valid, keys) if data.valid else None,
            processing_class=tokenizer,
        )
    trainer.longest_sample_tokens = longest
    trainer.model_dir = model_dir
    return trainer


def finetune(options: FinetuneOptions, log=print) -> dict[str, Any]:
    """Train (or continue training) the adapter of ``options``; returns what ``finetune.json`` holds."""
    options.validate()
    out = Path(options.out)
    data = load_training_data(options.data, options.config.method, options.config.valid_fraction)
    identity = _identity(options, data)
    run_file = out / RUN_FILE
    if run_file.exists():
        previous = json.loads(run_file.read_text(encoding="utf-8"))
        changed = _differences(previous.get("identity", {}), identity)
        if changed and not options.force:
            raise ValueError(
                f"{out} holds a fine-tune with a different configuration ({'; '.join(changed)}): "
                "use another --out, or --force to start it again"
            )
        if changed:
            shutil.rmtree(out / "checkpoints", ignore_errors=True)
        elif previous.get("status") == "complete":
            log(f"{out}: this fine-tune is already complete")
            return previous
    out.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {
        "schema": "llm_trainer.finetune/1",
        "status": "running",
        "method": options.config.method,
        "identity": identity,
        "data": data.summary(),
        "versions": _versions(),
    }
    _write_json(run_file, summary)
    t0 = time.perf_counter()
    trainer = build_trainer(options, data, log=log)
    resume = _latest_checkpoint(out / "checkpoints")
    if resume:
        log(f"continuing from {resume}")
    result = trainer.train(resume_from_checkpoint=resume)
    metrics = dict(result.metrics)
    if data.valid:
        metrics.update(trainer.evaluate())
    trainer.model.save_pretrained(str(out), selected_adapters=["default"])
    with open(out / "training_log.jsonl.partial", "w", encoding="utf-8") as f:
        for entry in trainer.state.log_history:
            f.write(json.dumps(entry) + "\n")
    os.replace(out / "training_log.jsonl.partial", out / "training_log.jsonl")
    # The adapter and the log are what a finished run keeps; checkpoints (optimizer state, ~3x the
    # adapter) only serve to continue an interrupted one.
    shutil.rmtree(out / "checkpoints", ignore_errors=True)
    summary.update(
        status="complete",
        base_model_dir=str(trainer.model_dir),
        device=str(trainer.args.device),
        steps=trainer.state.global_step,
        epochs_done=trainer.state.epoch,
        longest_sample_tokens=trainer.longest_sample_tokens,
        resumed_from=resume,
        metrics=metrics,
        wall_time_s=round(time.perf_counter() - t0, 1),
    )
    _write_json(run_file, summary)
    return summary
