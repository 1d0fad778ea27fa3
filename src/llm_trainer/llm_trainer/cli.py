"""``llm-trainer``: one subcommand per job.

    llm-trainer generate --task stack_blocks --episodes 20 --planner oracle --out runs/demo
    llm-trainer finetune --data RUN_DIR|SFT.jsonl --base smollm2 --out ADAPTER [--method dpo --adapter SFT]
    llm-trainer evaluate --planner oracle --planner sft=llama_cpp:adapter=ADAPTER --tasks T1,T2 --out DIR
    llm-trainer annotate --demo RUN/bags/stack_blocks_000000 --out ANN.json [--planner openai]
    llm-trainer augment --demo RUN/bags/stack_blocks_000000 --task stack_blocks --target-successes 50 --out DIR
    llm-trainer train-bc --data DATASET.hdf5 --out POLICY.pt; llm-trainer rollout --policy ensemble ...
    llm-trainer record-bag --task put_block --seed 3 --out BAG
    llm-trainer teleop --task stack_blocks --device keyboard|spacemouse|script:FILE --out runs/teleop
    llm-trainer perception-eval --bag BAG [--drop-camera front]
    llm-trainer export --from RUN_DIR --format robomimic|lerobot|sft-jsonl --out OUT [--images]
    llm-trainer show RUN_DIR [--episode ID]
    llm-trainer bringup sim [--arg output_dir=runs/x]; llm-trainer bringup real_panda --print
    llm-trainer task "put the red block in the target area" [--dry-run] [--picture plan.png]; llm-trainer stop
    llm-trainer tasks
    llm-trainer scene --task put_block --seed 3 [--prompt]
    llm-trainer check-plan --scene SCENE.json ANSWER.txt
    llm-trainer plan --task "stack ..." --scene SCENE.json --planner transformers
    llm-trainer serve-llm --model smollm2 [--port 8080]
    llm-trainer urdf > urdf/panda.urdf; llm-trainer urdf --workcell [--calibration CAL.yaml] > urdf/workcell.urdf
    llm-trainer augment-language --data SFT.jsonl|RUN_DIR --per-episode 4 --out AUG.jsonl [--backend openai]
    llm-trainer check-paraphrase --original TEXT --paraphrase TEXT
    llm-trainer augment-images --data RUN_DIR --out DIR [--method photometric,depth,diffusion --model FOLDER]
    llm-trainer codepolicy check|run|generate ...; llm-trainer iteach --task put_block --episodes 40 --out DIR

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
    from llm_trainer.datagen.generate import GenerateOptions, generate, markdown_table

    if bool(args.task) == bool(args.tasks):
        raise ValueError("give exactly one of --task TASK or --tasks T1,T2,...|all")
    options = GenerateOptions(
        task=args.task or "",
        tasks=[t.strip() for t in args.tasks.split(",") if t.strip()] if args.tasks else [],
        episodes=args.episodes,
        planner=args.planner,
        out=Path(args.out),
        seed=args.seed,
        workers=args.workers,
        render_cameras=not args.no_cameras,
        camera_rate_hz=args.camera_rate,
        record=not args.no_record,
        base_domain_id=args.domain_id,
        split=args.split,
        force=args.force,
        progress=sys.stderr.isatty() if args.progress is None else args.progress,
        runner=args.runner,
        ray_address=args.ray_address,
        concurrency=args.concurrency,
        planner_overrides=_planner_settings(args.planner, args.set),
        state=args.state,
    )
    options.validate()
    tasks = options.task_list()
    print(
        f"generating {args.episodes} episode(s) of {', '.join(tasks)} ({args.split} seeds) with the "
        f"{args.planner} planner on {args.workers} worker(s) -> {Path(args.out).resolve()}",
        flush=True,
    )
    summary = generate(options, log=lambda line: print(line, flush=True))
    for error in summary["errors"]:
        print(f"error: {error}", file=sys.stderr, flush=True)
    print(markdown_table(summary["tasks"]), flush=True)
    print(json.dumps(summary), flush=True)
    return 1 if summary["errors"] else 0


def _key_values(items: list[str] | None) -> dict:
    """``--set key=value`` (repeatable) -> {key: value}, values read as YAML would (numbers, booleans)."""
    from llm_trainer.config import parse_value

    out = {}
    for item in items or []:
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise ValueError(f"--set takes key=value, got {item!r}")
        out[key.strip()] = parse_value(value)
    return out


def _planner_settings(backend: str, items: list[str] | None) -> dict:
    """``--set key=value`` (repeatable) -> dotted planner-config overrides, short keys resolved
    as in ``llm-trainer evaluate``'s planner specs (``constraint=none``, ``example=false``)."""
    if not items:
        return {}
    from llm_trainer.evaluation.planners import parse_planner_spec

    return parse_planner_spec(f"{backend}:{','.join(items)}").overrides()


def _cmd_finetune(args: argparse.Namespace) -> int:
    from llm_trainer.config import with_overrides
    from llm_trainer.finetune.config import load_finetune_config
    from llm_trainer.finetune.train import FinetuneOptions, finetune

    flags = {
        "method": args.method,
        "epochs": args.epochs,
        "lr": args.lr,
        "lora.rank": args.rank,
        "lora.alpha": args.alpha,
        "batch": args.batch,
        "micro_batch": args.micro_batch,
        "max_steps": args.max_steps,
        "valid_fraction": args.valid_fraction,
        "max_length": args.max_length,
        "save_steps": args.save_steps,
        "seed": args.seed,
        "dpo.beta": args.beta,
    }
    config = with_overrides(
        load_finetune_config(args.config), {k: v for k, v in flags.items() if v is not None}, "finetune"
    )
    options = FinetuneOptions(
        data=args.data,
        base=args.base,
        out=Path(args.out),
        config=config,
        adapter=args.adapter or "",
        force=args.force,
        progress=sys.stderr.isatty() if args.progress is None else args.progress,
    )
    summary = finetune(options, log=lambda line: print(line, flush=True))
    print(json.dumps({k: v for k, v in summary.items() if k != "identity"}), flush=True)
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from llm_trainer.evaluation.evaluate import EvaluateOptions, evaluate
    from llm_trainer.evaluation.planners import parse_planner_spec
    from llm_trainer.evaluation.report import markdown

    specs = [parse_planner_spec(text) for text in args.planner]
    if args.adapter:
        llm = [s for s in specs if s.backend != "oracle"]
        if len(llm) != 1:
            raise ValueError(
                "--adapter applies to one language-model planner; with several, give adapter=... in each spec"
            )
        llm[0].settings["adapter"] = args.adapter
        llm[0].overrides()
    common = _key_values(args.set)
    options = EvaluateOptions(
        planners=specs,
        tasks=[t.strip() for t in args.tasks.split(",") if t.strip()] if args.tasks != "all" else _all_tasks(),
        episodes=args.episodes,
        out=Path(args.out),
        split=args.split,
        seed=args.seed,
        common=common,
        record=args.record,
        concurrency=args.concurrency,
        force=args.force,
        progress=sys.stderr.isatty() if args.progress is None else args.progress,
        state=args.state,
    )
    results = evaluate(options, log=lambda line: print(line, flush=True))
    print(markdown(results), flush=True)
    print(f"table: {results['table']}  chart: {results['chart']}", flush=True)
    return 0


def _cmd_data_scale(args: argparse.Namespace) -> int:
    from llm_trainer.config import with_overrides
    from llm_trainer.evaluation.data_scale import DataScaleOptions, data_scale
    from llm_trainer.finetune.config import load_finetune_config

    flags = {"epochs": args.epochs, "lr": args.lr, "batch": args.batch, "lora.rank": args.rank}
    config = with_overrides(load_finetune_config(), {k: v for k, v in flags.items() if v is not None}, "finetune")
    settings = _key_values(args.set)
    options = DataScaleOptions(
        data=args.data,
        base=args.base,
        sizes=[int(n) for n in args.sizes.split(",") if n.strip()],
        tasks=[t.strip() for t in args.tasks.split(",") if t.strip()],
        episodes=args.episodes,
        out=Path(args.out),
        config=config,
        settings=settings,
    )
    summary = data_scale(options, log=lambda line: print(line, flush=True))
    print(Path(summary["table"]).read_text(encoding="utf-8"), flush=True)
    return 0


def _cmd_record_bag(args: argparse.Namespace) -> int:
    from llm_trainer.perception.scene_bag import record_scene_bag
    from llm_trainer.recording.bag_reader import bag_summary

    get_task_or_raise(args.task)
    bag = record_scene_bag(args.task, args.seed, Path(args.out), seconds=args.seconds, camera_rate_hz=args.camera_rate)
    counts = bag_summary(bag)
    print(json.dumps({"bag": str(bag), "task": args.task, "seed": args.seed, "messages": sum(counts.values())}))
    return 0


def get_task_or_raise(name: str) -> None:
    from llm_trainer.tasks.registry import get_task

    get_task(name)  # KeyError naming the known tasks


def _cmd_perception_eval(args: argparse.Namespace) -> int:
    from llm_trainer.perception.replay_eval import EvalOptions, perception_eval, table

    settings = _key_values(args.set)
    if args.pointing:
        settings["pointing"] = args.pointing
    if args.segmentation:
        settings["segmentation"] = args.segmentation
    options = EvalOptions(Path(args.bag), drop_camera=args.drop_camera or [], settings=settings)
    result = perception_eval(options, log=lambda line: print(line, flush=True))
    print(table(result), flush=True)
    print(json.dumps({k: v for k, v in result.items() if k != "objects"}), flush=True)
    return 0


def _write_transcript(out: Path, transcript: list[dict]) -> None:
    if transcript:
        with open(out.with_suffix(".transcript.jsonl"), "w", encoding="utf-8") as f:
            for entry in transcript:
                f.write(json.dumps(entry) + "\n")


def _cmd_annotate(args: argparse.Namespace) -> int:
    from llm_trainer.augment.annotate import annotate
    from llm_trainer.augment.annotation import hand_engineered
    from llm_trainer.augment.demo import SourceDemo

    demo = SourceDemo.from_bag(Path(args.demo))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.planner == "hand":
        annotation, transcript, fell_back = hand_engineered(demo), [], False
    else:
        from llm_trainer.config import with_overrides
        from llm_trainer.planning.registry import load_planner_config, make_generator

        config = with_overrides(load_planner_config(), _planner_settings(args.planner, args.set), "planner")
        generator = make_generator(args.planner, config)
        try:
            result = annotate(demo, generator, retries=args.retries, fallback=args.fallback)
        except ValueError as exc:  # AnnotationError: keep the transcript of the refused answers
            _write_transcript(out, getattr(exc, "transcript", []))
            raise
        finally:
            generator.close()
        annotation, transcript, fell_back = result.annotation, result.transcript, result.fell_back
    out.write_text(json.dumps(annotation.to_dict(), indent=2) + "\n", encoding="utf-8")
    _write_transcript(out, transcript)
    refused = sum(1 for e in transcript if "refused" in e)
    print(json.dumps({"out": str(out), "annotation": annotation.name, "keyposes": len(annotation.keyposes),
                      "requests": len(transcript), "refused": refused, "fell_back": fell_back}))  # fmt: skip
    return 0


def _cmd_train_bc(args: argparse.Namespace) -> int:
    from llm_trainer.policies.bc import BCConfig, train_bc

    config = BCConfig(epochs=args.epochs, hidden=args.hidden, lr=args.lr, roles=args.roles, seed=args.seed)
    print(json.dumps(train_bc(Path(args.data), Path(args.out), config)), flush=True)
    return 0


def _cmd_rollout(args: argparse.Namespace) -> int:
    from llm_trainer.datagen.run_store import seed_for
    from llm_trainer.policies.rollout import rollout
    from llm_trainer.sim.mujoco_sim import MujocoSimulation
    from llm_trainer.sim.sim_config import load_sim_config

    bc = demo = annotation = None
    if args.policy in ("bc", "ensemble"):
        if not args.bc:
            raise ValueError(f"--policy {args.policy} needs --bc POLICY.pt (llm-trainer train-bc)")
        from llm_trainer.policies.bc import load_policy

        bc = load_policy(args.bc)
    if args.policy in ("feedforward", "ensemble"):
        if not args.demo:
            raise ValueError(f"--policy {args.policy} needs --demo EPISODE_DIR (the source demo)")
        from llm_trainer.augment.annotation import Annotation, hand_engineered
        from llm_trainer.augment.demo import SourceDemo

        demo = SourceDemo.from_bag(Path(args.demo))
        annotation = (
            Annotation.from_dict(json.loads(Path(args.annotation).read_text()))
            if args.annotation
            else hand_engineered(demo)
        )
    config = load_sim_config()
    config.render_cameras = False
    sim = MujocoSimulation(config)
    results = []
    try:
        for i in range(args.episodes):
            seed = seed_for(args.split, args.seed, i, args.task)
            r = rollout(sim, args.task, seed, args.policy, bc=bc, demo=demo, annotation=annotation)
            results.append({"seed": seed, **r.__dict__})
            print(f"[{i + 1}/{args.episodes}] {'ok  ' if r.success else 'FAIL'} seed {seed} ({r.steps} steps, "
                  f"{r.bc_steps} by the policy, {r.switches} switches)", flush=True)  # fmt: skip
    finally:
        sim.close()
    successes = sum(r["success"] for r in results)
    summary = {"policy": args.policy, "task": args.task, "split": args.split, "episodes": len(results),
               "successes": successes, "success_rate": round(successes / max(1, len(results)), 4)}  # fmt: skip
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({**summary, "episodes_detail": results}, indent=2) + "\n")
    print(json.dumps(summary), flush=True)
    return 0


def _cmd_augment(args: argparse.Namespace) -> int:
    from llm_trainer.augment.annotation import VARIANTS
    from llm_trainer.augment.run import AugmentOptions, augment

    options = AugmentOptions(
        demo=Path(args.demo),
        task=args.task,
        target_successes=args.target_successes,
        out=Path(args.out),
        max_attempts=args.max_attempts,
        seed=args.seed,
        annotations=[Path(a) for a in args.annotation or []],
        variants=[v.strip() for v in args.variants.split(",") if v.strip()] if args.variants else list(VARIANTS),
        record=not args.no_record,
        cameras=args.cameras,
        force=args.force,
    )
    summary = augment(options, log=lambda line: print(line, flush=True))
    print(json.dumps(summary), flush=True)
    return 0


def _all_tasks() -> list[str]:
    from llm_trainer.tasks.registry import task_names

    return task_names()


def _cmd_export(args: argparse.Namespace) -> int:
    from llm_trainer.datasets.export import ExportOptions, export_run

    options = ExportOptions(
        run_dir=Path(args.from_dir),
        format=args.format,
        out=Path(args.out),
        images=args.images,
        depth=args.depth,
        include_failures=args.include_failures,
        action_space=args.action_space,
        rate_hz=args.rate,
        valid_fraction=args.valid_fraction,
        cameras=args.cameras.split(",") if args.cameras else None,
    )
    if Path(args.out).exists() and not args.force:
        raise FileExistsError(f"{args.out} exists; choose another --out or pass --force to replace it")
    summary = export_run(options)
    print(json.dumps(summary), flush=True)
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    from llm_trainer.datasets.show import show_run

    summary = show_run(Path(args.run_dir), episode=args.episode, out=Path(args.out) if args.out else None,
                       videos=not args.no_video, rerun=args.rerun)  # fmt: skip
    print(json.dumps(summary), flush=True)
    return 0


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
    if args.print:
        from llm_trainer.bringup.graph import describe

        print(describe(graph, arguments), end="")
        return 0
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


def _cmd_task(args: argparse.Namespace) -> int:
    from llm_trainer.bringup.drive import Refused, TaskOptions, run_task
    from llm_trainer.datagen.graph_client import GraphClient, GraphError

    options = TaskOptions(
        sentence=args.sentence or "",
        reset=args.reset or "",
        cameras=[c for c in args.cameras.split(",") if c],
        scene_topic=args.scene_topic,
        picture=Path(args.picture) if args.picture else None,
        dry_run=args.dry_run,
        yes=args.yes,
        record=not args.no_record,
        backend=args.planner or "",
        timeout=args.timeout,
    )
    options.validate()
    client = GraphClient(domain_id=args.domain_id, record=not args.no_record, node_name="llm_trainer_task")
    try:
        summary = run_task(client, options)
    except Refused as exc:
        print(str(exc), flush=True)
        return 2
    except GraphError as exc:
        print(f"refused: {exc}", flush=True)
        return 2
    finally:
        client.close()
    print(json.dumps(summary), flush=True)
    if summary.get("refused"):
        return 1
    return 0 if summary.get("executor_ok") and summary.get("task_success") is not False else 1


def _cmd_stop(args: argparse.Namespace) -> int:
    from llm_trainer.datagen.graph_client import GraphClient, GraphError

    client = GraphClient(domain_id=args.domain_id, record=False, node_name="llm_trainer_stop")
    try:
        print(client.resume() if args.command == "resume" else client.stop(), flush=True)
    except GraphError as exc:
        print(f"llm-trainer: error: {exc}", file=sys.stderr)
        return 2
    finally:
        client.close()
    return 0


def _cmd_teleop(args: argparse.Namespace) -> int:
    from llm_trainer.teleop.devices import make_device
    from llm_trainer.teleop.session import TeleopOptions, record_teleop

    options = TeleopOptions(task=args.task, seed=args.seed, out=Path(args.out), rate_hz=args.rate,
                            max_steps=args.max_steps, stop_on_success=not args.keep_going,
                            episode_id=args.episode_id or "")  # fmt: skip
    options.validate()
    from llm_trainer.tasks.registry import get_task

    get_task(args.task)
    with make_device(args.device) as device:
        summary = record_teleop(options, device, log=lambda line: print(line, file=sys.stderr, flush=True))
    print(json.dumps(summary), flush=True)
    return 0


def _cmd_teach(args: argparse.Namespace) -> int:
    from llm_trainer.scene import SceneState
    from llm_trainer.teleop.devices import KeyboardDevice
    from llm_trainer.teleop.teaching import TeachOptions, connect, record_teaching

    scene_path = Path(args.scene)
    if not scene_path.is_file():
        raise FileNotFoundError(f"{args.scene}: no scene JSON (llm-trainer scene ..., or a perceived /scene/objects)")
    data = json.loads(scene_path.read_text())
    scene = SceneState.from_dict(data.get("scene", data))
    robot, gripper = connect(args.robot_ip, args.confirm_hardware)
    options = TeachOptions(task=args.task, scene=scene, instruction=args.instruction, out=Path(args.out),
                           rate_hz=args.rate)  # fmt: skip
    with KeyboardDevice() as keys:
        summary = record_teaching(robot, gripper, keys, options)
    print(json.dumps(summary), flush=True)
    return 0


def _cmd_tasks(args: argparse.Namespace) -> int:
    from llm_trainer.datagen.run_store import seed_for
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
                "first_seeds": {split: seed_for(split, 0, 0, name) for split in ("train", "test")},
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        width = max(len(r["name"]) for r in rows)
        for r in rows:
            solver = "oracle" if r["oracle_solvable"] else "LLM only"
            seeds = f"seeds {r['first_seeds']['train']}+ / test {r['first_seeds']['test']}+"
            print(f"{r['name']:<{width}}  [{solver}]  {seeds:<34}  {r['instruction_template']}")
    return 0


def _cmd_scene(args: argparse.Namespace) -> int:
    from llm_trainer.sim.mujoco_sim import MujocoSimulation
    from llm_trainer.sim.sim_config import SimConfig
    from llm_trainer.tasks.registry import get_task

    task = get_task(args.task)
    sim = MujocoSimulation(SimConfig(render_cameras=False))
    try:
        instance = sim.reset(task, args.seed)
        state = sim.scene_state()
    finally:
        sim.close()
    if args.prompt:
        from llm_trainer.planning.prompt import build_prompt
        from llm_trainer.planning.registry import load_planner_config

        options = load_planner_config(args.config).llm
        prompt = build_prompt(instance.instruction, state, options.prompt)
        print(f"[system]\n{prompt.system}\n\n[user]\n{prompt.user}")
        return 0
    header = {"task": args.task, "seed": args.seed, "instruction": instance.instruction, "goal": instance.goal}
    print(json.dumps({**header, **state.to_dict()}, indent=2))
    return 0


def _load_scene_file(path: str):
    """(scene, the file's task fields) from a JSON file such as `llm-trainer scene` prints."""
    from llm_trainer.scene import SceneState

    text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    scene = SceneState.from_json(text)
    data = json.loads(text)
    return scene, {k: data.get(k) for k in ("task", "instruction", "goal")}


def _planner_config(args: argparse.Namespace):
    from llm_trainer.planning.registry import load_planner_config

    cfg = load_planner_config(args.config)
    if getattr(args, "no_reachability", False):
        cfg.validation.reachability = False
    return cfg


def _cmd_check_plan(args: argparse.Namespace) -> int:
    from llm_trainer.planning.parser import PlanParseError, parse_answer
    from llm_trainer.planning.validation import check_plan
    from llm_trainer.primitives import PlanRejected

    scene, _ = _load_scene_file(args.scene)
    cfg = _planner_config(args)
    answer = sys.stdin.read() if args.answer == "-" else Path(args.answer).read_text(encoding="utf-8", errors="replace")
    try:
        parsed = parse_answer(answer, scene, args.format)
        plan = check_plan(parsed.primitives, scene, cfg.validation)
    except (PlanParseError, PlanRejected) as exc:
        print(f"rejected: {exc}", flush=True)
        return 2
    for p in plan:
        print(json.dumps(p.to_dict()))
    return 0


def _cmd_plan(args: argparse.Namespace) -> int:
    from llm_trainer.planning.base import PlanRequest
    from llm_trainer.planning.registry import make_planner

    scene, fields = _load_scene_file(args.scene)
    instruction = args.task or fields["instruction"]
    if not instruction:
        raise ValueError("no task sentence: give --task or a scene file with an 'instruction'")
    cfg = _planner_config(args)
    backend = args.planner or cfg.backend
    if args.model:
        cfg.transformers.model = args.model
    if args.base_url:
        cfg.openai.base_url = args.base_url
    if args.constraint:
        cfg.llm.constraint = args.constraint
    if args.grammar_level:
        cfg.llm.grammar_level = args.grammar_level
    if args.replay:
        cfg.replay.path = args.replay
    cfg.llm.validate()
    planner = make_planner(backend, cfg)
    goal = fields["goal"] if isinstance(fields["goal"], dict) else {}
    try:
        result = planner.plan(PlanRequest(instruction, scene, args.task_name or fields["task"] or "", goal))
    finally:
        planner.close()
    if args.verbose:
        print(f"[prompt]\n{result.prompt}\n\n[raw answer]\n{result.raw_answer}\n", file=sys.stderr)
    summary = {
        "backend": result.backend,
        "success": result.success,
        "attempts": result.attempts,
        "tokens": result.tokens,
        "planning_time": round(result.planning_time, 3),
    }
    print(json.dumps(summary), file=sys.stderr)
    if not result.success:
        print(result.message if result.message.startswith("rejected:") else f"rejected: {result.message}", flush=True)
        return 2
    for p in result.plan:
        print(json.dumps(p.to_dict()))
    return 0


def _cmd_serve_llm(args: argparse.Namespace) -> int:
    from llm_trainer.planning.serve import ServeOptions, serve

    opts = ServeOptions(
        args.model, args.host, args.port, args.server, args.alias, args.context, args.threads, args.adapter or ""
    )
    return serve(opts, log=lambda line: print(line, flush=True))


def _cmd_urdf(args: argparse.Namespace) -> int:
    from llm_trainer.sim.panda_description import panda_urdf

    if args.calibration and not args.workcell:
        raise ValueError("--calibration goes with --workcell (the camera frames)")
    if args.workcell:
        from llm_trainer.sim.workcell import workcell_urdf

        sys.stdout.write(workcell_urdf(args.calibration))
    else:
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
    g.add_argument("--task", default=None, help="task name (see `llm-trainer tasks`)")
    g.add_argument("--tasks", default=None, help="several tasks, comma-separated, or 'all'")
    g.add_argument("--episodes", type=int, required=True, help="number of episodes per task")
    g.add_argument("--split", choices=("train", "test"), default="train",
                   help="seed range: a test seed is never a training seed (each task has its own seeds)")  # fmt: skip
    g.add_argument("--runner", choices=("graph", "inprocess"), default="graph",
                   help="graph: the node graph over DDS (default); inprocess: the same code, no DDS")  # fmt: skip
    g.add_argument("--ray-address", default=None, metavar="local|auto|HOST:PORT",
                   help="run the episodes as Ray tasks (with --runner inprocess); local: a local cluster")  # fmt: skip
    g.add_argument("--concurrency", type=int, default=1,
                   help="planning requests in flight (--runner inprocess; for server backends)")  # fmt: skip
    g.add_argument("--force", action="store_true", help="continue a run in --out although its configuration changed")
    g.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="live progress bars per task (default: when stderr is a terminal)")  # fmt: skip
    g.add_argument("--planner", default="oracle", help="planner backend (default: oracle)")
    g.add_argument("--out", required=True, help="run directory; re-running on it continues where it stopped")
    g.add_argument(
        "--seed", type=int, default=0, help="base seed: slot i of a task uses its block's seed+i (run_store.seed_for)"
    )
    g.add_argument("--workers", type=int, default=1, help="parallel node graphs (each on its own ROS domain)")
    g.add_argument("--no-cameras", action="store_true", help="do not render or record camera images")
    g.add_argument("--camera-rate", type=float, default=5.0, help="camera rate in simulated Hz (default 5)")
    g.add_argument("--no-record", action="store_true", help="do not start the recorder (no bags, no dataset)")
    g.add_argument(
        "--domain-id",
        type=int,
        default=None,
        help="ROS domain of the (first) worker's graph; default: a random free-looking one per run",
    )
    g.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="planner setting over config/planner.yaml, e.g. example=false (inprocess)")  # fmt: skip
    g.add_argument("--state", choices=("ground_truth", "perception"), default="ground_truth",
                   help="the scene the planner sees: the simulator's, or the cameras through perception")  # fmt: skip
    g.set_defaults(func=_cmd_generate)

    f = sub.add_parser("finetune", help="LoRA SFT (or DPO) of a planner model on verified plans (trl + peft)")
    f.add_argument("--data", action="append", required=True,
                   help="SFT.jsonl, PAIRS.jsonl or a generation RUN_DIR (repeatable)")  # fmt: skip
    f.add_argument("--base", required=True, help="base model: a Hugging Face folder, a .gguf file, or smollm2")
    f.add_argument("--out", required=True, help="adapter folder; re-running continues from its checkpoints")
    f.add_argument("--method", choices=("sft", "dpo"), default=None, help="sft (default) or dpo (needs --adapter)")
    f.add_argument("--adapter", default=None, help="dpo: the SFT adapter to start from")
    f.add_argument("--config", default=None, help="a finetune YAML (default config/finetune.yaml)")
    f.add_argument("--epochs", type=float, default=None)
    f.add_argument("--lr", type=float, default=None)
    f.add_argument("--rank", type=int, default=None, help="LoRA rank")
    f.add_argument("--alpha", type=float, default=None, help="LoRA alpha")
    f.add_argument("--batch", type=int, default=None, help="effective batch (gradient accumulation)")
    f.add_argument("--micro-batch", type=int, default=None, help="sequences per forward pass")
    f.add_argument("--max-steps", type=int, default=None, help="optimizer steps (overrides --epochs)")
    f.add_argument("--valid-fraction", type=float, default=None, help="held-out share per task")
    f.add_argument("--max-length", type=int, default=None, help="longest sample in tokens")
    f.add_argument("--save-steps", type=int, default=None, help="checkpoint every N steps")
    f.add_argument("--seed", type=int, default=None)
    f.add_argument("--beta", type=float, default=None, help="dpo: beta")
    f.add_argument("--force", action="store_true", help="start again although --out holds another configuration")
    f.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None)
    f.set_defaults(func=_cmd_finetune)

    e = sub.add_parser("evaluate", help="success per task on test seeds, one row per planner (BLAZER Table I)")
    e.add_argument("--planner", action="append", required=True,
                   help="[LABEL=]BACKEND[:key=value,...], repeatable (sft=llama_cpp:adapter=DIR)")  # fmt: skip
    e.add_argument("--adapter", default=None, help="the LoRA adapter of the one language-model planner")
    e.add_argument("--tasks", required=True, help="comma-separated task names, or all")
    e.add_argument("--episodes", type=int, default=10, help="episodes per task (default 10)")
    e.add_argument("--split", choices=("train", "test"), default="test")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--out", required=True, help="evaluation folder (one run per planner inside; resumable)")
    e.add_argument("--set", action="append", metavar="KEY=VALUE", help="a setting for every LLM planner")
    e.add_argument("--state", choices=("ground_truth", "perception"), default="ground_truth")
    e.add_argument("--record", action="store_true", help="also keep a bag per episode")
    e.add_argument("--concurrency", type=int, default=1, help="planning requests in flight (server planners)")
    e.add_argument("--force", action="store_true")
    e.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None)
    e.set_defaults(func=_cmd_evaluate)

    tb = sub.add_parser("train-bc", help="behaviour cloning on state from a robomimic HDF5 of generated demos (torch)")
    tb.add_argument("--data", required=True, help="robomimic HDF5 (llm-trainer export --format robomimic)")
    tb.add_argument("--out", required=True, help="policy file to write (.pt)")
    tb.add_argument("--epochs", type=int, default=200)
    tb.add_argument("--hidden", type=int, default=256)
    tb.add_argument("--lr", type=float, default=1e-3)
    tb.add_argument("--roles", type=int, default=3, help="task objects in the state, by their role in the goal")
    tb.add_argument("--seed", type=int, default=0)
    tb.set_defaults(func=_cmd_train_bc)

    ro = sub.add_parser("rollout", help="run a policy in closed loop: bc, the feed-forward demo, or the ensemble")
    ro.add_argument("--policy", choices=("bc", "feedforward", "ensemble"), required=True)
    ro.add_argument("--task", required=True)
    ro.add_argument("--bc", default=None, help="the BC policy (.pt) for bc and ensemble")
    ro.add_argument("--demo", default=None, help="the source demo's bag directory for feedforward and ensemble")
    ro.add_argument("--annotation", default=None, help="annotation JSON (default: the hand-engineered one)")
    ro.add_argument("--episodes", type=int, default=10)
    ro.add_argument("--split", choices=("train", "test"), default="test")
    ro.add_argument("--seed", type=int, default=0)
    ro.add_argument("--out", default=None, help="JSON with every episode's result")
    ro.set_defaults(func=_cmd_rollout)

    n = sub.add_parser("annotate", help="annotate a source demo's keyposes with a language model (or by hand rules)")
    n.add_argument("--demo", required=True, help="the source episode's bag directory")
    n.add_argument("--out", required=True, help="annotation JSON to write (for augment --annotation)")
    n.add_argument("--planner", choices=("hand", "transformers", "openai", "replay"), default="hand",
                   help="hand: the MimicGen-style rules (default); else a language-model backend")  # fmt: skip
    n.add_argument("--set", action="append", metavar="KEY=VALUE", help="backend setting, e.g. base_url=... or path=...")
    n.add_argument("--retries", type=int, default=2, help="re-asks with the refusal reason (default 2)")
    n.add_argument(
        "--fallback", action="store_true", help="use the hand-engineered annotation if every answer is refused"
    )
    n.set_defaults(func=_cmd_annotate)

    a = sub.add_parser(
        "augment", help="one demo to many: retarget + warp it into new scenes, Thompson over annotations"
    )
    a.add_argument(
        "--demo", required=True, help="the source episode's bag directory (e.g. RUN/bags/stack_blocks_000000)"
    )
    a.add_argument("--task", required=True)
    a.add_argument("--target-successes", type=int, required=True)
    a.add_argument("--out", required=True, help="run directory; re-running on it continues where it stopped")
    a.add_argument("--max-attempts", type=int, default=0, help="stop after this many (default 4 x target)")
    a.add_argument("--seed", type=int, default=0, help="first scene seed (the demo's own is skipped)")
    a.add_argument("--annotation", action="append", help="an extra annotation JSON (e.g. from an LLM), repeatable")
    a.add_argument("--variants", default=None,
                   help="hand-engineered variants offered, in order (default: all, events+approach first)")  # fmt: skip
    a.add_argument("--cameras", action="store_true", help="render and record the cameras")
    a.add_argument("--no-record", action="store_true", help="records only, no bags")
    a.add_argument("--force", action="store_true")
    a.set_defaults(func=_cmd_augment)

    r = sub.add_parser("record-bag", help="record a simulated scene's camera streams and ground truth (perception)")
    r.add_argument("--task", required=True)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--out", required=True, help="the bag folder to create")
    r.add_argument("--seconds", type=float, default=1.0, help="simulated seconds to record (default 1)")
    r.add_argument("--camera-rate", type=float, default=5.0, help="frame sets per simulated second")
    r.set_defaults(func=_cmd_record_bag)

    pe = sub.add_parser("perception-eval", help="replay a scene bag through the perception node over DDS and score it")
    pe.add_argument("--bag", required=True)
    pe.add_argument("--pointing", choices=("colour", "molmo", "owlv2"), default=None)
    pe.add_argument("--segmentation", choices=("colour", "sam"), default=None)
    pe.add_argument("--drop-camera", action="append", metavar="NAME", help="replay without this camera (repeatable)")
    pe.add_argument(
        "--set", action="append", metavar="KEY=VALUE", help="perception setting, e.g. colour.max_distance=18"
    )
    pe.set_defaults(func=_cmd_perception_eval)

    d = sub.add_parser("data-scale", help="fine-tune on N samples per task for several N and evaluate each (Fig. 7)")
    d.add_argument("--data", action="append", required=True, help="SFT.jsonl or a generation RUN_DIR (repeatable)")
    d.add_argument("--base", required=True, help="base model: a Hugging Face folder, a .gguf file, or smollm2")
    d.add_argument("--sizes", required=True, help="samples per task, comma-separated (e.g. 4,8,16)")
    d.add_argument("--tasks", required=True, help="comma-separated task names to evaluate on")
    d.add_argument("--episodes", type=int, default=10, help="test episodes per task")
    d.add_argument("--out", required=True)
    d.add_argument("--set", action="append", metavar="KEY=VALUE", help="a planner setting for every student")
    d.add_argument("--epochs", type=float, default=None)
    d.add_argument("--lr", type=float, default=None)
    d.add_argument("--batch", type=int, default=None)
    d.add_argument("--rank", type=int, default=None)
    d.set_defaults(func=_cmd_data_scale)

    x = sub.add_parser("export", help="export a run's episode bags to robomimic HDF5, LeRobot v3.0 or SFT JSONL")
    x.add_argument("--from", dest="from_dir", required=True, metavar="RUN_DIR", help="a generation run directory")
    x.add_argument("--format", required=True, choices=("robomimic", "lerobot", "sft-jsonl"))
    x.add_argument("--out", required=True, help="output file (robomimic, sft-jsonl) or directory (lerobot)")
    x.add_argument("--images", action="store_true", help="include camera colour images")
    x.add_argument("--depth", action="store_true", help="include depth images (robomimic only)")
    x.add_argument("--include-failures", action="store_true", help="also export failed episodes (marked)")
    x.add_argument(
        "--action-space", default="joint_pos", choices=("joint_pos", "ee_pose_abs", "ee_pose_delta"),
        help="joint_pos (default), ee_pose_abs or ee_pose_delta (see the README for frames and units)",
    )  # fmt: skip
    x.add_argument("--rate", type=float, default=10.0, help="sample rate of the exported time grid [Hz]")
    x.add_argument("--valid-fraction", type=float, default=0.1, help="robomimic: share of demos in mask/valid")
    x.add_argument("--cameras", default=None, help="comma-separated camera names (default: all)")
    x.add_argument("--force", action="store_true", help="replace an existing --out")
    x.set_defaults(func=_cmd_export)

    w = sub.add_parser("show", help="look at a run: contact sheet PNG, MP4 per camera, summary")
    w.add_argument("run_dir", help="a generation run directory")
    w.add_argument("--episode", default=None, help="episode id (default: the first complete one)")
    w.add_argument("--out", default=None, help="where the pictures go (default RUN_DIR/show/)")
    w.add_argument("--no-video", action="store_true", help="skip the MP4s")
    w.add_argument("--rerun", action="store_true", help="also write a Rerun recording (needs rerun-sdk)")
    w.set_defaults(func=_cmd_show)

    b = sub.add_parser("bringup", help="start a node graph here (what `ros2 launch` does on full installs)")
    b.add_argument("graph", help="graph name in config/graphs/ (sim, real_panda, replay) or a YAML path")
    b.add_argument("--print", action="store_true", help="show the resolved graph (nodes, parameters, remappings)")
    b.add_argument("--arg", action="append", default=[], metavar="NAME=VALUE", help="graph argument")
    b.add_argument("--log-dir", default=None, help="where node logs go (default runs/bringup/<time>)")
    b.set_defaults(func=_cmd_bringup)

    tk = sub.add_parser("task", help="plan, show, confirm, execute, check and record one task on a running graph")
    tk.add_argument("sentence", nargs="?", default="", help='e.g. "put the red block in the target area"')
    tk.add_argument("--reset", default=None, metavar="TASK:SEED", help="simulation: reset this scene first")
    tk.add_argument("--cameras", default="front,left,right", help="cameras the start-up check requires ('' none)")
    tk.add_argument("--scene-topic", default="", help="default: /scene/objects if published, else ground truth")
    tk.add_argument("--picture", default=None, metavar="PNG", help="draw the waypoints over the first camera")
    tk.add_argument("--dry-run", action="store_true", help="stop after the executor's checks and planning")
    tk.add_argument("--yes", action="store_true", help="execute without asking")
    tk.add_argument("--no-record", action="store_true", help="do not record the episode")
    tk.add_argument("--planner", default=None, help="planner backend (default: the planner node's)")
    tk.add_argument("--timeout", type=float, default=15.0, help="[s] for the start-up check and the scene")
    tk.add_argument("--domain-id", type=int, default=None, help="ROS domain of the running graph")
    tk.set_defaults(func=_cmd_task)
    for name, what in (("stop", "cancel every goal and hold the arm (the executor's ~/stop)"),
                       ("resume", "accept goals again after a stop")):  # fmt: skip
        st = sub.add_parser(name, help=what)
        st.add_argument("--domain-id", type=int, default=None, help="ROS domain of the running graph")
        st.set_defaults(func=_cmd_stop)

    te = sub.add_parser("teleop", help="record a source demo by teleoperating the simulated Panda (servo interface)")
    te.add_argument("--task", required=True)
    te.add_argument("--seed", type=int, default=0)
    te.add_argument("--device", default="keyboard", help="keyboard | spacemouse | script:FILE (JSON lines)")
    te.add_argument("--out", default="runs/teleop", help="run folder; the bag goes to OUT/bags/<episode>")
    te.add_argument("--rate", type=float, default=10.0, help="[Hz] servo steps per second of simulation")
    te.add_argument("--max-steps", type=int, default=3000)
    te.add_argument("--keep-going", action="store_true", help="do not stop when the task's check succeeds")
    te.add_argument("--episode-id", default=None)
    te.set_defaults(func=_cmd_teleop)

    th = sub.add_parser("teach", help="record a source demo on the lab Panda in panda-py's teaching mode")
    th.add_argument("--robot-ip", required=True)
    th.add_argument("--confirm-hardware", action="store_true", help="required: this talks to the real robot")
    th.add_argument("--task", required=True)
    th.add_argument("--instruction", required=True, help="the task sentence of this demo")
    th.add_argument("--scene", required=True, help="the scene JSON the demo starts from")
    th.add_argument("--out", default="runs/teach")
    th.add_argument("--rate", type=float, default=30.0, help="[Hz] state samples")
    th.set_defaults(func=_cmd_teach)

    t = sub.add_parser("tasks", help="list the task suite with instruction templates")
    t.add_argument("--json", action="store_true", help="machine-readable output")
    t.set_defaults(func=_cmd_tasks)

    s = sub.add_parser("scene", help="print a seeded scene state exactly as the planner receives it")
    s.add_argument("--task", required=True)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--prompt", action="store_true", help="print the LLM prompt for this scene instead")
    s.add_argument("--config", default=None, help="planner YAML (default config/planner.yaml)")
    s.set_defaults(func=_cmd_scene)

    c = sub.add_parser("check-plan", help="parse and validate one model answer against a scene")
    c.add_argument("--scene", required=True, help="scene JSON (as `llm-trainer scene` prints it; - for stdin)")
    c.add_argument("answer", help="the model's answer as text (- for stdin)")
    c.add_argument("--format", choices=("auto", "code", "json"), default="auto", help="answer format (default auto)")
    c.add_argument("--config", default=None, help="planner YAML with the validation settings")
    c.add_argument("--no-reachability", action="store_true", help="skip the IK reachability check")
    c.set_defaults(func=_cmd_check_plan)

    p = sub.add_parser("plan", help="plan a task for a scene with one backend and print the primitives")
    p.add_argument("--task", default=None, help="the task sentence (default: the scene file's instruction)")
    p.add_argument("--scene", required=True, help="scene JSON (as `llm-trainer scene` prints it; - for stdin)")
    p.add_argument("--planner", default=None, help="oracle | transformers | openai | replay (default: the config's)")
    p.add_argument("--config", default=None, help="planner YAML (default config/planner.yaml)")
    p.add_argument("--model", default=None, help="transformers: local folder, .gguf or smollm2")
    p.add_argument("--base-url", default=None, help="openai: server URL, e.g. http://127.0.0.1:8080/v1")
    p.add_argument("--constraint", choices=("none", "grammar", "json_schema"), default=None)
    p.add_argument("--grammar-level", choices=("syntax", "recipe", "anchored"), default=None)
    p.add_argument("--replay", default=None, help="replay: answers file")
    p.add_argument("--task-name", default=None, help="task name for the oracle (default: the scene file's task)")
    p.add_argument("--no-reachability", action="store_true", help="skip the IK reachability check")
    p.add_argument("--verbose", action="store_true", help="also print the prompt and the raw answer (stderr)")
    p.set_defaults(func=_cmd_plan)

    v = sub.add_parser(
        "serve-llm", help="start an OpenAI-compatible server for a local model (llama.cpp or transformers)"
    )
    v.add_argument("--model", required=True, help="a .gguf file, a Hugging Face folder, or smollm2")
    v.add_argument("--host", default="127.0.0.1")
    v.add_argument("--port", type=int, default=8080)
    v.add_argument("--server", choices=("auto", "llama.cpp", "transformers"), default="auto")
    v.add_argument("--alias", default="smollm2", help="the model name clients send (default smollm2)")
    v.add_argument("--context", type=int, default=4096, help="llama.cpp context window in tokens")
    v.add_argument("--threads", type=int, default=0, help="CPU threads (0: the server's default)")
    v.add_argument("--adapter", default=None, help="a LoRA adapter folder from `llm-trainer finetune` (llama.cpp)")
    v.set_defaults(func=_cmd_serve_llm)

    u = sub.add_parser("urdf", help="print the Panda URDF generated from the published kinematics")
    u.add_argument("--workcell", action="store_true", help="the Panda on its mount, the table and the cameras")
    u.add_argument("--calibration", default=None, help="camera extrinsics YAML (default config/realsense.yaml)")
    u.set_defaults(func=_cmd_urdf)

    from llm_trainer.iteach.commands import add_parsers as add_iteach_parsers

    add_iteach_parsers(sub)
    from llm_trainer.calibration.commands import add_parsers as add_calibration_parsers

    add_calibration_parsers(sub)
    from llm_trainer.asmr.commands import add_parsers as add_asmr_parsers

    add_asmr_parsers(sub)
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
    except Exception as exc:  # noqa: BLE001 - the CLI answers one line, never a traceback
        from llm_trainer.planning.llm import GenerationError

        if not isinstance(exc, (GenerationError, OSError, RuntimeError, ImportError)):
            raise
        print(f"llm-trainer: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
