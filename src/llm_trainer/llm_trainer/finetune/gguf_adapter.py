"""A peft LoRA adapter as a llama.cpp LoRA GGUF, so ``serve-llm`` serves the fine-tuned planner at
llama.cpp's speed (plans in seconds on CPU instead of tens of seconds through transformers).

llama.cpp applies LoRA adapters at run time (``--lora_path``) from a GGUF of ``general.type =
adapter``, ``adapter.type = lora``, ``adapter.lora.alpha``, and for each adapted weight ``W`` of the
base GGUF the tensors ``<W>.lora_a`` (rank x in) and ``<W>.lora_b`` (out x rank); it scales
``B @ A`` by ``alpha / rank`` as peft does. Two facts of the format matter here:

* tensor names follow the GGUF base (``blk.N.attn_q``), mapped from Hugging Face names with the
  ``gguf`` package's own name map;
* llama.cpp stores the query and key projections of Llama models with their rows permuted (rotary
  halves interleaved per head), so ``lora_b`` of ``q_proj`` / ``k_proj`` gets the same row
  permutation, which makes ``B' @ A == permute(B @ A)``.

The adapter tensors are written as float32: a fine-tune's small weight changes would vanish in a
4-bit re-quantisation of merged weights, which is why this converts the adapter rather than merging.
Only Llama-architecture bases are converted (SmolLM2, Llama 3.x, ...); others get a clear error.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

GGUF_NAME = "llama_cpp_lora.gguf"


class AdapterConversionError(ValueError):
    """The adapter cannot be converted for this base model; the message says why."""


def _permute_rows(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's row order of a Llama q/k projection (per head: interleave the two rotary halves)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _field(reader, key: str):
    f = reader.fields.get(key)
    if f is None:
        return None
    value = f.parts[f.data[0]]
    if f.types and f.types[0].name == "STRING":
        return bytes(value).decode("utf-8")
    return value.tolist()[0] if hasattr(value, "tolist") else value


def adapter_to_gguf(adapter_dir: Path | str, base_gguf: Path | str, out: Path | str | None = None) -> Path:
    """Write the LoRA GGUF of ``adapter_dir`` for ``base_gguf``; returns its path (default
    ``<adapter_dir>/llama_cpp_lora.gguf``, rebuilt only when the adapter is newer)."""
    import gguf
    from safetensors.numpy import load_file

    adapter_dir = Path(adapter_dir)
    out = Path(out) if out else adapter_dir / GGUF_NAME
    weights_file = adapter_dir / "adapter_model.safetensors"
    config_file = adapter_dir / "adapter_config.json"
    if not weights_file.is_file() or not config_file.is_file():
        raise AdapterConversionError(
            f"{adapter_dir} is not a peft adapter (adapter_config.json, adapter_model.safetensors)"
        )
    if out.exists() and out.stat().st_mtime >= weights_file.stat().st_mtime:
        return out
    config = json.loads(config_file.read_text(encoding="utf-8"))
    if config.get("peft_type") != "LORA":
        raise AdapterConversionError(f"{adapter_dir}: only LoRA adapters convert (peft_type {config.get('peft_type')})")
    if config.get("use_rslora") or config.get("use_dora"):
        raise AdapterConversionError(f"{adapter_dir}: rsLoRA / DoRA adapters have no llama.cpp form here")
    reader = gguf.GGUFReader(str(base_gguf))
    arch = _field(reader, "general.architecture")
    if arch != "llama":
        raise AdapterConversionError(
            f"{base_gguf} is a {arch!r} model; this converter handles Llama-architecture bases "
            "(use llama.cpp's convert_lora_to_gguf.py for others)"
        )
    n_blocks = int(_field(reader, "llama.block_count"))
    n_head = int(_field(reader, "llama.attention.head_count"))
    n_head_kv = int(_field(reader, "llama.attention.head_count_kv") or n_head)
    base_shapes = {t.name: tuple(int(d) for d in t.shape) for t in reader.tensors}
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, n_blocks)
    tensors = load_file(str(weights_file))
    pairs: dict[str, dict[str, np.ndarray]] = {}
    for key, value in tensors.items():
        stem = key.removeprefix("base_model.model.")
        for part in ("lora_A", "lora_B"):
            marker = f".{part}."
            if marker in stem:
                module = stem.split(marker)[0]
                pairs.setdefault(module, {})[part] = value.astype(np.float32)
                break
        else:
            raise AdapterConversionError(f"{adapter_dir}: tensor {key} is not a LoRA A/B matrix (modules_to_save?)")
    writer = gguf.GGUFWriter(str(out.with_name(out.name + ".partial")), "llama")
    writer.add_type("adapter")
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", float(config["lora_alpha"]))
    for module in sorted(pairs):
        a, b = pairs[module].get("lora_A"), pairs[module].get("lora_B")
        if a is None or b is None:
            raise AdapterConversionError(f"{adapter_dir}: {module} lacks its lora_A or lora_B")
        base_name = names.get_name(module)
        if base_name is None or f"{base_name}.weight" not in base_shapes:
            raise AdapterConversionError(f"{adapter_dir}: {module} has no weight in {base_gguf}")
        in_features, out_features = base_shapes[f"{base_name}.weight"]  # GGUF shapes are (columns, rows)
        if a.shape[1] != in_features or b.shape[0] != out_features:
            raise AdapterConversionError(
                f"{adapter_dir}: {module} is {b.shape[0]}x{a.shape[1]}, the base has {out_features}x{in_features}"
            )
        if module.endswith("self_attn.q_proj"):
            b = _permute_rows(b, n_head)
        elif module.endswith("self_attn.k_proj"):
            b = _permute_rows(b, n_head_kv)
        writer.add_tensor(f"{base_name}.weight.lora_a", np.ascontiguousarray(a))
        writer.add_tensor(f"{base_name}.weight.lora_b", np.ascontiguousarray(b))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    out.with_name(out.name + ".partial").replace(out)
    return out
