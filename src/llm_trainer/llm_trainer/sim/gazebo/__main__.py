"""Write the Gazebo world of an episode or the bridge configuration:

python -m llm_trainer.sim.gazebo world --task put_block --seed 0 --out runs/gz/world.sdf
python -m llm_trainer.sim.gazebo bridge --out config/gazebo_bridge.yaml
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from llm_trainer.config import ConfigError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m llm_trainer.sim.gazebo", description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("world", "bridge"))
    parser.add_argument("--out", type=Path, help="file to write (default: standard output)")
    parser.add_argument("--config", type=Path, help="simulator config (default: config/sim.yaml)")
    parser.add_argument("--task", default="put_block")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        from llm_trainer.sim.gazebo.bridge import bridge_yaml
        from llm_trainer.sim.gazebo.world import build_world_sdf
        from llm_trainer.sim.sim_config import load_sim_config
        from llm_trainer.tasks.registry import get_task

        config = load_sim_config(args.config)
        config.validate()
        if args.what == "bridge":
            text = bridge_yaml(config)
        else:
            text = build_world_sdf(get_task(args.task).instance(args.seed), config)
    except (ConfigError, KeyError, ValueError, FileNotFoundError, OSError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"error: {msg}", file=sys.stderr)
        return 2
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        print(f"wrote {args.out}")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
