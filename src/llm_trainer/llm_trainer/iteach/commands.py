"""The LLM-iTeach subcommands of ``llm-trainer`` (registered by ``cli.build_parser``).

    llm-trainer codepolicy check FILE                       # static check: `kept`, or `rejected: <reason>` (2)
    llm-trainer codepolicy run FILE --task T --seed S       # in the sandbox on a simulated scene
    llm-trainer codepolicy generate --task T --planner openai --out FILE   # hierarchical prompting
    llm-trainer iteach --task T --episodes N --out DIR      # LLM-iTeach and the BC baseline, one run

A CodePolicy the sandbox refuses is answered ``rejected: <reason>`` on stdout with exit code 2, never
a traceback (the CLI's own errors stay ``llm-trainer: error: ...``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _read_source(path: str) -> str:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{path}: no such CodePolicy file")
    return p.read_text(encoding="utf-8", errors="replace")


def _iteach_config(args: argparse.Namespace):
    from llm_trainer.cli import _key_values
    from llm_trainer.config import with_overrides
    from llm_trainer.iteach.train import load_iteach_config

    config = load_iteach_config(args.config)
    overrides = _key_values(getattr(args, "set", None))
    for key in ("task", "episodes", "seed"):
        if getattr(args, key, None) is not None:
            overrides[key] = getattr(args, key)
    config = with_overrides(config, overrides, "iteach")
    config.validate()
    return config


def _cmd_check(args: argparse.Namespace) -> int:
    from llm_trainer.iteach.sandbox import SandboxError, check_source

    try:
        steps = check_source(_read_source(args.file))
    except SandboxError as exc:
        print(f"rejected: {exc.reason}")
        return 2
    print(f"kept: {len(steps)} steps ({', '.join(steps)})")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from llm_trainer.iteach.codepolicy import CodePolicy
    from llm_trainer.iteach.sandbox import SandboxError
    from llm_trainer.iteach.train import run_episode, task_roles
    from llm_trainer.sim.mujoco_sim import MujocoSimulation
    from llm_trainer.sim.sim_config import SimConfig
    from llm_trainer.tasks.registry import get_task

    config = _iteach_config(args)
    get_task(config.task)  # an unknown task is a usage error, before the sandbox starts
    source = _read_source(args.file)
    try:
        policy = CodePolicy(source, config.sandbox)
    except SandboxError as exc:
        print(f"rejected: {exc.reason}")
        return 2
    sim = MujocoSimulation(SimConfig(render_cameras=False))
    try:
        config.agent.roles = task_roles(config.task, args.seed)
        result = run_episode(sim, config, args.seed, "teacher", teacher=policy)
        report = sim.check_success()
    finally:
        policy.close()
        sim.close()
    if result.teacher_error:
        print(f"rejected: {result.teacher_error}")
        return 2
    verdict = "success" if result.success else "failure"
    failed = [k for k, v in report.conditions.items() if not v]
    print(f"{verdict}: {config.task} seed {args.seed} in {result.steps} steps, last step {policy.step_name}"
          + (f" (not met: {', '.join(failed)})" if failed else ""))  # fmt: skip
    return 0 if result.success else 1


def _cmd_generate(args: argparse.Namespace) -> int:
    from llm_trainer.cli import _planner_settings
    from llm_trainer.config import with_overrides
    from llm_trainer.iteach.prompting import CodePolicyGenerationError, CodePolicyWriter
    from llm_trainer.iteach.scene_api import scene_view
    from llm_trainer.planning.registry import load_planner_config, make_generator
    from llm_trainer.sim.mujoco_sim import MujocoSimulation
    from llm_trainer.sim.sim_config import SimConfig
    from llm_trainer.tasks.registry import get_task

    task = get_task(args.task)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    sim = MujocoSimulation(SimConfig(render_cameras=False))
    try:
        instance = sim.reset(task, args.seed)
        scene = scene_view(sim, instance, max_move=0.03, max_turn=0.25)
    finally:
        sim.close()
    config = with_overrides(load_planner_config(), _planner_settings(args.planner, args.set), "planner")
    generator = make_generator(args.planner, config)
    writer = CodePolicyWriter(generator, retries=args.retries)
    transcript_path = out.with_suffix(".transcript.json")
    try:
        result = writer.write(scene)
    except CodePolicyGenerationError as exc:
        transcript_path.write_text(json.dumps(exc.transcript, indent=2) + "\n")
        print(f"rejected: {exc.reasons[-1]} ({len(exc.reasons)} refusal(s); transcript: {transcript_path})")
        return 2
    finally:
        generator.close()
    out.write_text(result.source, encoding="utf-8")
    transcript_path.write_text(json.dumps(result.transcript, indent=2) + "\n")
    print(json.dumps({"out": str(out), "steps": result.steps, "requests": len(result.transcript)}))
    return 0


def _cmd_iteach(args: argparse.Namespace) -> int:
    from llm_trainer.iteach.train import iteach

    config = _iteach_config(args)
    source = _read_source(args.codepolicy) if args.codepolicy else None
    summary = iteach(config, Path(args.out), codepolicy_source=source, log=lambda line: print(line, flush=True))
    print(Path(args.out, "table.md").read_text(), end="")
    print(json.dumps({k: summary[k] for k in ("task", "teacher", "teacher_success", "rows", "wall_time_s")}))
    return 0


def add_parsers(sub) -> None:
    c = sub.add_parser("codepolicy", help="check, run or generate an LLM-iTeach CodePolicy (always sandboxed)")
    csub = c.add_subparsers(dest="codepolicy_command", required=True, metavar="ACTION")
    ck = csub.add_parser("check", help="static check: prints `kept` or `rejected: <reason>` (exit 2)")
    ck.add_argument("file")
    ck.set_defaults(func=_cmd_check)
    rn = csub.add_parser("run", help="run a CodePolicy in the sandbox on a simulated scene; success or rejected")
    rn.add_argument("file")
    rn.add_argument("--task", required=True)
    rn.add_argument("--seed", type=int, default=0)
    rn.add_argument("--config", default=None, help="iteach YAML (default config/iteach.yaml)")
    rn.add_argument("--set", action="append", metavar="KEY=VALUE", help="override an iteach setting")
    rn.set_defaults(func=_cmd_run, episodes=None)
    gn = csub.add_parser("generate", help="write a CodePolicy with a language model (hierarchical prompting)")
    gn.add_argument("--task", required=True)
    gn.add_argument("--seed", type=int, default=0, help="the scene the prompts show")
    gn.add_argument("--planner", default="openai", help="text backend (transformers, openai, ...)")
    gn.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a planner setting")
    gn.add_argument("--retries", type=int, default=2, help="re-asks per refused answer")
    gn.add_argument("--out", required=True, help="where the CodePolicy .py goes (transcript beside it)")
    gn.set_defaults(func=_cmd_generate)

    it = sub.add_parser("iteach", help="LLM-iTeach: a CodePolicy teaches an agent interactively; BC baseline beside")
    it.add_argument("--task", default=None)
    it.add_argument("--episodes", type=int, default=None, help="interactive episodes (= BC demonstrations)")
    it.add_argument("--seed", type=int, default=None)
    it.add_argument("--codepolicy", default=None, help="a CodePolicy file (default: the task's hand-written one)")
    it.add_argument("--config", default=None, help="iteach YAML (default config/iteach.yaml)")
    it.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a setting, e.g. threshold_deg=30")
    it.add_argument("--out", required=True)
    it.set_defaults(func=_cmd_iteach)


if __name__ == "__main__":  # pragma: no cover
    sys.exit("run `llm-trainer codepolicy ...` or `llm-trainer iteach ...`")
