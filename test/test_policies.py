"""The servo interface, behaviour cloning on state, and the LLM Trainer ensemble's switching."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest

from llm_trainer.policies.rollout import similarity


@pytest.fixture(scope="module")
def sim():
    from llm_trainer.sim.mujoco_sim import MujocoSimulation
    from llm_trainer.sim.sim_config import SimConfig

    s = MujocoSimulation(SimConfig(render_cameras=False))
    yield s
    s.close()


def test_the_servo_moves_in_small_safe_steps(sim) -> None:
    from llm_trainer.execution.servo import ServoController
    from llm_trainer.tasks.registry import get_task

    sim.reset(get_task("put_block"), 0)
    servo = ServoController(sim, max_step=0.02)
    start, yaw = servo.hand()
    status = servo.step(start + [0.2, 0.0, 0.0], yaw, False)  # far away: one step of at most 2 cm
    assert status.ok and 0.0 < status.position[0] - start[0] <= 0.021
    for _ in range(9):
        status = servo.step(start + [0.2, 0.0, 0.0], yaw, False)
    assert 0.09 < status.position[0] - start[0] <= 0.2  # ten steps of 2 cm (the joints lag behind)
    wide = ServoController(sim, max_step=1.0, dt=0.5)
    for _ in range(6):
        status = wide.step([0.3, -0.3, -0.2], yaw, False)  # a clear spot, commanded under the table
        assert status.ok and status.message == "held at the workspace limit"
    assert 0.005 - 0.003 <= status.position[2] < 0.02  # at the clearance, never under it
    assert not servo.step([math.nan, 0, 0], yaw, False).ok


def test_the_similarity_weighs_direction_and_magnitude() -> None:
    a = np.array([0.01, 0.0, 0.0])
    assert similarity(a, a) == pytest.approx(1.0)
    assert similarity(a, -a) == pytest.approx(-1.0)
    assert similarity(a, np.array([0.0, 0.01, 0.0])) == pytest.approx(0.0)
    assert similarity(a, a / 2) == pytest.approx(0.5)  # same way, half as far


@pytest.fixture(scope="module")
def stack_run(tmp_path_factory):
    from llm_trainer.datagen.generate import GenerateOptions, generate

    out = tmp_path_factory.mktemp("stack")
    generate(GenerateOptions(task="stack_blocks", episodes=3, out=out, runner="inprocess", render_cameras=False),
             log=lambda _l: None)  # fmt: skip
    return out


def test_bc_trains_on_a_robomimic_export_and_reloads(stack_run, tmp_path) -> None:
    pytest.importorskip("torch")
    from llm_trainer.policies.bc import BCConfig, load_policy, train_bc

    summary = train_bc(stack_run / "dataset.hdf5", tmp_path / "bc.pt", BCConfig(epochs=30, hidden=32))
    assert summary["demos"] == 3 and summary["loss_last"] < summary["loss_first"]
    policy = load_policy(tmp_path / "bc.pt")
    dpos, dyaw, p_closed = policy.act(np.zeros(len(policy.stats["x_mean"]), np.float32))
    assert dpos.shape == (3,) and math.isfinite(dyaw) and 0.0 <= p_closed <= 1.0
    assert json.loads((tmp_path / "bc.json").read_text())["samples"] == summary["samples"]


class _Contrary:
    """A feedback policy that always steps away from where the hand should go."""

    config = SimpleNamespace(roles=3)

    def act(self, _features):
        return np.array([0.0, 0.02, 0.0]), 0.0, 0.0  # always sideways, gripper open


@pytest.mark.slow
def test_the_ensemble_hands_control_to_the_plan_when_the_policy_disagrees(sim, stack_run) -> None:
    from llm_trainer.augment.annotation import hand_engineered
    from llm_trainer.augment.demo import SourceDemo
    from llm_trainer.datagen.run_store import seed_for
    from llm_trainer.policies.rollout import rollout

    (bag,) = [b for b in sorted((stack_run / "bags").iterdir())][:1]
    demo = SourceDemo.from_bag(bag)
    annotation = hand_engineered(demo)
    seed = seed_for("test", 0, 1, "stack_blocks")  # a test scene of the task, never the demo's
    ff = rollout(sim, "stack_blocks", seed, "feedforward", demo=demo, annotation=annotation)
    assert ff.success  # the warped demo, tracked through the servo
    alone = rollout(sim, "stack_blocks", seed, "bc", bc=_Contrary(), max_steps=60)
    assert not alone.success and alone.bc_steps == 60
    both = rollout(sim, "stack_blocks", seed, "ensemble", bc=_Contrary(), demo=demo, annotation=annotation)
    assert both.switches >= 1 and both.bc_steps < both.steps and both.success
