"""``llm-trainer``: one subcommand per job.

    llm-trainer generate --task stack_blocks --episodes 20 --planner oracle --out runs/demo
    llm-trainer bringup sim [--arg output_dir=runs/x]
    llm-trainer tasks
    llm-trainer scene --task put_block --seed 3
    llm-trainer urdf > urdf/panda.urdf

Bad input is answered with one ``llm-trainer: error: ...`` line and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

from llm_trainer import __version__
from llm_trainer.config import ConfigError


def _cmd_generate(args: argparse.Namespace) -> int:
    from llm_trainer.datagen.generate import GenerateOptions, generate

    options = GenerateOptions(
        task=args.task,
        episodes=args.episodes,
        planner=args.planner,
        out=Path(args.out),
        seed=args.seed,
        workers=args.workers,
        render_cameras=not args.no_cameras,
        camera_rate_hz=args.camera_rate,
        record=not args.no_record,
    )
    options.validate()
    print(
        f"generating {args.episodes} episode(s) of {args.task} with the {args.planner} planner "
        f"on {args.workers} worker(s) -> {Path(args.out).resolve()}",
        flush=True,
    )
    summary = generate(options, log=lambda line: print(line, flush=True))
    for error in summary["errors"]:
        print(f"error: {error}", file=sys.stderr, flush=True)
    print(json.dumps(summary), flush=True)
    return 1 if summary["errors"] else 0


def _parse_graph_args(pairs: list[str]) -> dict:
    import yaml

    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--arg expects NAME=VALUE, got {pair!r}")
        out[key] = yaml.safe_load(value) if value else ""
    return out


def _cmd_bringup(args: argparse.Namespace) -> int:
    from llm_trainer.bringup.graph import load_graph
    from llm_trainer.bringup.local import LocalGraph

    graph = load_graph(args.graph)
    arguments = _parse_graph_args(args.arg)
    log_dir = Path(args.log_dir or Path("runs") / "bringup" / time.strftime("%Y%m%d-%H%M%S"))
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    with LocalGraph(graph, arguments, log_dir=log_dir) as local:
        print(f"graph {graph.name}: {', '.join(n.name for n in graph.nodes)} (logs in {log_dir}); Ctrl-C stops")
        try:
            while not stop["now"]:
                local.check_alive()
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
    return 0


def _cmd_tasks(args: argparse.Namespace) -> int:
    from llm_trainer.tasks.registry import get_task, task_names

    rows = []
    for name in task_names():
        task = get_task(name)
        rows.append(
            {
                "name": name,
                "instruction_template": task.instruction_template,
                "oracle_solvable": task.oracle_solvable,
                "description": task.description,
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        width = max(len(r["name"]) for r in rows)
        for r in rows:
            solver = "oracle" if r["oracle_solvable"] else "LLM only"
            print(f"{r['name']:<{width}}  [{solver}]  {r['instruction_template']}")
    return 0


def _cmd_scene(args: argparse.Namespace) -> int:
    from llm_trainer.sim.mujoco_sim import MujocoSimulation
    from llm_trainer.sim.sim_config import SimConfig
    from llm_trainer.tasks.registry import get_task

    task = get_task(args.task)
    sim = MujocoSimulation(SimConfig(render_cameras=False))
    try:
        instance = sim.reset(task, args.seed)
        scene = sim.scene_state().to_dict()
    finally:
        sim.close()
    print(json.dumps({"task": args.task, "seed": args.seed, "instruction": instance.instruction, **scene}, indent=2))
    return 0


def _cmd_urdf(_args: argparse.Namespace) -> int:
    from llm_trainer.sim.panda_description import panda_urdf

    sys.stdout.write(panda_urdf())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llm-trainer",
        description="LLM plans and a few demonstrations -> verified Franka Panda demonstration datasets.",
    )
    parser.add_argument("--version", action="version", version=f"llm_trainer {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    g = sub.add_parser("generate", help="generate verified demonstrations through the node graph")
    g.add_argument("--task", required=True, help="task name (see `llm-trainer tasks`)")
    g.add_argument("--episodes", type=int, required=True, help="number of episodes")
    g.add_argument("--planner", default="oracle", help="planner backend (default: oracle)")
    g.add_argument("--out", required=True, help="output directory (bags, dataset.hdf5, episodes.jsonl)")
    g.add_argument("--seed", type=int, default=0, help="seed of the first episode; episode i uses seed+i")
    g.add_argument("--workers", type=int, default=1, help="parallel node graphs (each on its own ROS domain)")
    g.add_argument("--no-cameras", action="store_true", help="do not render or record camera images")
    g.add_argument("--camera-rate", type=float, default=5.0, help="camera rate in simulated Hz (default 5)")
    g.add_argument("--no-record", action="store_true", help="do not start the recorder (no bags, no dataset)")
    g.set_defaults(func=_cmd_generate)

    b = sub.add_parser("bringup", help="start a node graph here (what `ros2 launch` does on full installs)")
    b.add_argument("graph", help="graph name in config/graphs/ (e.g. sim) or a YAML path")
    b.add_argument("--arg", action="append", default=[], metavar="NAME=VALUE", help="graph argument")
    b.add_argument("--log-dir", default=None, help="where node logs go (default runs/bringup/<time>)")
    b.set_defaults(func=_cmd_bringup)

    t = sub.add_parser("tasks", help="list the task suite with instruction templates")
    t.add_argument("--json", action="store_true", help="machine-readable output")
    t.set_defaults(func=_cmd_tasks)

    s = sub.add_parser("scene", help="print a seeded scene state exactly as the planner receives it")
    s.add_argument("--task", required=True)
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=_cmd_scene)

    u = sub.add_parser("urdf", help="print the Panda URDF generated from the published kinematics")
    u.set_defaults(func=_cmd_urdf)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from llm_trainer.bringup.local import default_gl_backend

    os.environ.setdefault("MUJOCO_GL", default_gl_backend())
    try:
        return args.func(args)
    except (ConfigError, ValueError, FileNotFoundError, FileExistsError) as exc:
        print(f"llm-trainer: error: {exc}", file=sys.stderr)
        return 2
    except KeyError as exc:
        print(f"llm-trainer: error: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
