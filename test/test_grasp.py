"""One model of what the hand holds (llm_trainer.grasp), used the same way by the plan check, the
executor's world model and dynamic replanning, and checked against the simulator's finger contacts."""

from __future__ import annotations

import math

import numpy as np
import pytest

from llm_trainer import grasp
from llm_trainer.grasp import GRASP_REACH, box_distance, held_by_width, object_at_tcp

CUBE = ("cube", (0.5, 0.0, 0.025), 0.0, (0.05, 0.05, 0.05))
BAR = ("bar", (0.5, 0.1, 0.02), math.pi / 2, (0.12, 0.03, 0.04))


def test_box_distance_is_zero_inside_and_euclidean_outside_a_yawed_box() -> None:
    assert box_distance((0.5, 0.0, 0.025), *CUBE[1:]) == 0.0
    assert box_distance((0.5, 0.035, 0.025), *CUBE[1:]) == pytest.approx(0.01)
    assert box_distance((0.535, 0.035, 0.025), *CUBE[1:]) == pytest.approx(math.hypot(0.01, 0.01))
    # the bar is turned 90 degrees: its 12 cm run along world y
    assert box_distance((0.5, 0.155, 0.02), *BAR[1:]) == 0.0
    assert box_distance((0.525, 0.1, 0.02), *BAR[1:]) == pytest.approx(0.01)


def test_the_closing_fingers_take_the_nearest_box_within_reach_only() -> None:
    objects = [CUBE, BAR]
    assert object_at_tcp((0.5, 0.0, 0.03), objects) == "cube"
    assert object_at_tcp((0.5, 0.0 - 0.025 - 0.014, 0.03), objects) == "cube"  # 14 mm outside: within reach
    assert object_at_tcp((0.5, 0.0 - 0.025 - 0.016, 0.03), objects) is None  # 16 mm outside: nothing
    assert object_at_tcp((0.5, 0.06, 0.03), objects) == "bar"  # 10 mm from both boxes' faces, nearer the bar
    assert object_at_tcp((0.5, 0.0, 0.03), objects, name="bar") is None  # the named one is not there
    assert object_at_tcp((0.5, 0.0, 0.03), [], name="") is None


def test_fingers_stopped_at_an_objects_width_hold_it_at_the_start_of_a_plan() -> None:
    tcp = (0.5, 0.0, 0.03)
    assert held_by_width(tcp, 0.0, 0.049, 0.08, [CUBE]) == "cube"
    assert held_by_width(tcp, 0.0, 0.08, 0.08, [CUBE]) is None  # open
    assert held_by_width(tcp, 0.0, 0.0, 0.08, [CUBE]) is None  # closed on nothing
    assert held_by_width(tcp, 0.0, 0.02, 0.08, [CUBE]) is None  # narrower than the cube
    assert held_by_width((0.5, 0.1, 0.02), 0.0, 0.12, 0.13, [BAR]) == "bar"  # long way across the fingers
    assert held_by_width((0.5, 0.1, 0.02), math.pi / 2, 0.03, 0.08, [BAR]) == "bar"


def _scene(objects, ee=(0.5, 0.0, 0.03)):
    from llm_trainer.scene import ObjectState, SceneState

    return SceneState(objects=[ObjectState(n, c, y, s, "block") for n, c, y, s in objects], ee_position=ee,
                      ee_yaw=0.0, gripper_width=0.08)  # fmt: skip


def test_plan_check_world_model_and_dynamic_replanning_agree() -> None:
    from llm_trainer.execution.world import TCP_SLACK, WorldModel
    from llm_trainer.planning.dynamic import _nearest
    from llm_trainer.primitives import PlanRejected, Primitive, validate_plan

    scene = _scene([CUBE])
    for outside, expect in ((0.010, "cube"), (0.025, None)):
        y = -(0.025 + outside)
        plan = [Primitive.move((0.5, y, 0.03), 0.0), Primitive.close(), Primitive.move((0.5, y, 0.06), 0.0),
                Primitive.move((0.5, y, 0.03), 0.0), Primitive.open()]  # fmt: skip
        if expect:
            validate_plan(plan, scene)
        else:
            with pytest.raises(PlanRejected, match="close on nothing"):
                validate_plan(plan, scene)
        assert _nearest(_scene([CUBE], ee=(0.5, y, 0.03))) == (expect or "")
        world = WorldModel(scene)
        assert world.close("", np.array([0.5, y, 0.03]), 0.0) == expect
    # The executor's world allows its own position tolerance on top, and nothing more.
    world = WorldModel(scene)
    assert world.close("cube", np.array([0.5, -(0.025 + GRASP_REACH + TCP_SLACK - 1e-4), 0.03]), 0.0) == "cube"
    assert (
        WorldModel(scene).close("cube", np.array([0.5, -(0.025 + GRASP_REACH + TCP_SLACK + 1e-3), 0.03]), 0.0) is None
    )
    assert grasp.GRASP_REACH == GRASP_REACH


@pytest.mark.parametrize("offset, held", [(0.0, True), (0.06, False)])
def test_the_model_predicts_what_the_simulators_fingers_hold(offset: float, held: bool) -> None:
    from llm_trainer.execution.servo import ServoController
    from llm_trainer.sim.mujoco_sim import MujocoSimulation
    from llm_trainer.sim.sim_config import SimConfig
    from llm_trainer.tasks.registry import get_task

    sim = MujocoSimulation(SimConfig(render_cameras=False))
    try:
        instance = sim.reset(get_task("put_block"), 2)
        block = sim.scene_state().get(instance.goal["block"])
        servo = ServoController(sim, max_step=0.03)
        target = np.array([block.position[0] + offset, block.position[1], block.position[2]])
        for z in (0.15, target[2]):
            for _ in range(40):
                servo.step([target[0], target[1], z], block.yaw, False)
        predicted = object_at_tcp(sim.tcp_pose()[0], grasp.scene_boxes(sim.scene_state()))
        for _ in range(8):
            servo.step(target, block.yaw, True)
        assert (predicted == block.name) is held
        assert (block.name in sim.objects_in_gripper()) is held
    finally:
        sim.close()
