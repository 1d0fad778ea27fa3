"""The ASMR subcommands, registered on ``llm-trainer``'s argparse subparsers by ``add_parsers(sub)``.

    llm-trainer augment-language --data SFT.jsonl|RUN_DIR --per-episode 4 --out AUG.jsonl [--backend openai]
    llm-trainer check-paraphrase --original "put the red block in the bin" --paraphrase "drop the red cube in the bin"
    llm-trainer augment-images --data RUN_DIR --out DIR [--method photometric,depth,diffusion --model FOLDER]

Each handler returns its exit code; bad input raises ``ValueError``/``ConfigError``/``FileNotFoundError``,
which ``llm-trainer``'s ``main`` turns into one error line and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _config(args: argparse.Namespace):
    from llm_trainer.asmr.config import load_asmr_config

    return load_asmr_config(args.config)


def _overrides(config, values: dict, where: str = "asmr"):
    from llm_trainer.config import with_overrides

    return with_overrides(config, {k: v for k, v in values.items() if v is not None}, where)


def _planner_overrides(backend: str, items: list[str] | None) -> dict:
    if not items:
        return {}
    if not backend:
        raise ValueError("--set is for the language-model backend; give --backend too")
    from llm_trainer.evaluation.planners import parse_planner_spec

    return parse_planner_spec(f"{backend}:{','.join(items)}").overrides()


def cmd_augment_language(args: argparse.Namespace) -> int:
    from llm_trainer.asmr.language import AugmentLanguageOptions, augment_language

    if args.per_episode is not None and args.per_episode < 0:
        raise ValueError("--per-episode must be 0 or more")
    writer = args.writer or ("llm" if args.backend else None)
    if writer == "llm" and not args.backend:
        raise ValueError("--writer llm needs --backend transformers|openai|replay")
    config = _overrides(
        _config(args),
        {
            "seed": args.seed,
            "language.writer": writer,
            "language.per_episode": args.per_episode,
            "language.dialogues_per_episode": args.dialogues,
            "language.include_originals": False if args.no_originals else None,
        },
    )
    options = AugmentLanguageOptions(
        data=Path(args.data),
        out=Path(args.out),
        config=config,
        backend=args.backend or "",
        planner_overrides=_planner_overrides(args.backend or "", args.set),
        force=args.force,
    )
    summary = augment_language(options, log=lambda line: print(line, file=sys.stderr, flush=True))
    print(json.dumps({k: v for k, v in summary.items() if k != "config"}), flush=True)
    return 0


def cmd_check_paraphrase(args: argparse.Namespace) -> int:
    from llm_trainer.asmr.attributes import check_paraphrase, extract

    verdict = check_paraphrase(args.original, args.paraphrase)
    print(verdict, flush=True)
    if args.explain:
        explained = {"original": extract(args.original).summary(), "paraphrase": extract(args.paraphrase).summary()}
        print(json.dumps(explained, indent=2), flush=True)
    return 0 if verdict.kept else 2


def cmd_augment_images(args: argparse.Namespace) -> int:
    from types import SimpleNamespace

    from llm_trainer.asmr.images import augment_images

    methods = [m.strip() for m in args.method.split(",") if m.strip()] if args.method else None
    config = _overrides(
        _config(args),
        {
            "seed": args.seed,
            "images.methods": methods,
            "images.per_frame": args.per_frame,
            "images.every": args.every,
            "diffusion.model": args.model,
            "diffusion.steps": args.steps,
            "diffusion.device": args.device,
        },
    )
    cameras = [c.strip() for c in args.cameras.split(",") if c.strip()] if args.cameras else None
    options = SimpleNamespace(
        data=Path(args.data), out=Path(args.out), config=config, cameras=cameras, force=args.force
    )
    summary = augment_images(options, log=lambda line: print(line, file=sys.stderr, flush=True))
    print(json.dumps({k: v for k, v in summary.items() if k != "config"}), flush=True)
    return 0


def add_parsers(sub) -> None:
    """Add ``augment-language``, ``check-paraphrase`` and ``augment-images`` to ``sub`` (argparse subparsers)."""
    al = sub.add_parser(
        "augment-language",
        help="ASMR: paraphrases and dialogues of each sample's instruction, attribute-checked, same verified plan",
    )
    al.add_argument("--data", required=True, help="an SFT JSONL (llm-trainer export --format sft-jsonl) or a run dir")
    al.add_argument(
        "--out", required=True, help="augmented SFT JSONL to write (also OUT.rejected.jsonl, OUT.summary.json)"
    )
    al.add_argument("--per-episode", type=int, default=None, help="paraphrases kept per sample (config: 4)")
    al.add_argument("--dialogues", type=int, default=None, help="dialogues kept per sample (config: 1)")
    al.add_argument(
        "--writer", choices=("template", "llm"), default=None, help="default: template, or llm with --backend"
    )
    al.add_argument("--backend", choices=("transformers", "openai", "replay"), default=None,
                    help="the LLM writer's backend (config/planner.yaml's settings)")  # fmt: skip
    al.add_argument(
        "--set", action="append", metavar="KEY=VALUE", help="backend setting, e.g. base_url=... or model=..."
    )
    al.add_argument("--seed", type=int, default=None)
    al.add_argument("--no-originals", action="store_true", help="write only the augmented samples")
    al.add_argument("--config", default=None, help="ASMR config YAML (default config/asmr.yaml)")
    al.add_argument("--force", action="store_true", help="replace an existing OUT")
    al.set_defaults(func=cmd_augment_language)

    cp = sub.add_parser(
        "check-paraphrase", help="the attribute filter on one rewording: kept, or rejected: <attribute>"
    )
    cp.add_argument("--original", required=True)
    cp.add_argument("--paraphrase", required=True)
    cp.add_argument("--explain", action="store_true", help="also print what the filter read from both texts (JSON)")
    cp.set_defaults(func=cmd_check_paraphrase)

    ai = sub.add_parser(
        "augment-images",
        help="ASMR: photometric, RealSense-like depth and (optional) diffusion copies of recorded frames",
    )
    ai.add_argument("--data", required=True, help="a run directory with bags/ (recorded with cameras), or one bag")
    ai.add_argument("--out", required=True, help="new folder for the images, augmented_images.jsonl and summary.json")
    ai.add_argument(
        "--method", default=None, help="comma list of photometric, depth, diffusion (config: photometric,depth)"
    )
    ai.add_argument("--per-frame", type=int, default=None, help="augmented copies per source frame (config: 2)")
    ai.add_argument("--every", type=int, default=None, help="one source frame every N grid samples (config: 10)")
    ai.add_argument("--cameras", default=None, help="comma list of cameras (default: all recorded)")
    ai.add_argument("--model", default=None, help="diffusion: a local diffusers inpainting folder, or tiny-random")
    ai.add_argument("--steps", type=int, default=None, help="diffusion steps (config: 20)")
    ai.add_argument("--device", default=None, help="diffusion device: cpu, cuda, cuda:N")
    ai.add_argument("--seed", type=int, default=None)
    ai.add_argument("--config", default=None, help="ASMR config YAML (default config/asmr.yaml)")
    ai.add_argument("--force", action="store_true", help="write into a non-empty OUT")
    ai.set_defaults(func=cmd_augment_images)
