"""Which simulator the sim node runs: the embedded MuJoCo (default), Gazebo or CoppeliaSim, all behind
``sim.base.Simulator`` so the node, the tasks' success checks and the camera contract stay the same."""

from __future__ import annotations

from llm_trainer.sim.base import Simulator
from llm_trainer.sim.sim_config import SimConfig

SIMULATORS = ("mujoco", "gazebo", "coppeliasim")


def make_simulator(name: str, config: SimConfig, bridge_config_file: str = "") -> Simulator:
    """``bridge_config_file``: CoppeliaSim's connection and scene names (default config/coppeliasim.yaml)."""
    if name == "mujoco":
        from llm_trainer.sim.mujoco_sim import MujocoSimulation

        return MujocoSimulation(config)
    if name == "gazebo":
        from llm_trainer.sim.gazebo.adaptor import GazeboSimulation

        return GazeboSimulation(config)
    if name == "coppeliasim":
        from llm_trainer.config import config_dir
        from llm_trainer.sim.coppeliasim.adaptor import CoppeliaSimulation, load_coppelia_config

        return CoppeliaSimulation(config, load_coppelia_config(bridge_config_file or config_dir() / "coppeliasim.yaml"))
    raise ValueError(f"unknown simulator {name!r} ({', '.join(SIMULATORS)})")
