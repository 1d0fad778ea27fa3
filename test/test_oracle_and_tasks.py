"""Task registry, task sampling, the scripted oracle planner and whole in-process episodes."""

from __future__ import annotations

import math

import pytest

from llm_trainer.datagen.episode import run_episode_in_process
from llm_trainer.episodes import EpisodeRecord, OutcomeKind
from llm_trainer.execution.backend import DirectSimBackend
from llm_trainer.execution.executor import PlanExecutor
from llm_trainer.planning.base import PlanRequest
from llm_trainer.planning.oracle import (
    OracleConfig,
    OraclePlanner,
    choose_grasp_yaw,
    hand_clearance,
    symmetric_yaw,
)
from llm_trainer.primitives import Primitive, PrimitiveKind, validate_plan
from llm_trainer.scene import ObjectState, SceneState
from llm_trainer.sim.mujoco_sim import MujocoSimulation
from llm_trainer.tasks.blocks import BLOCK_SIZE, StackBlocks
from llm_trainer.tasks.registry import get_task, register, task_names

TASKS = ("put_block", "stack_blocks")


@pytest.fixture(scope="module")
def sim():
    s = MujocoSimulation()
    yield s
    s.close()


def _scene_of(task_name: str, seed: int) -> tuple[SceneState, dict, str]:
    """The scene an instance spawns, without physics."""
    instance = get_task(task_name).instance(seed)
    objects = [ObjectState(o.name, o.position, o.yaw, o.size, o.category) for o in instance.objects]
    return SceneState(objects=objects), instance.goal, instance.instruction


# ------------------------------------------------------------------------------------------ registry
def test_registry_lists_builtin_tasks() -> None:
    assert {"put_block", "stack_blocks"} <= set(task_names())
    assert task_names() == sorted(task_names())
    assert get_task("put_block").name == "put_block"
    assert get_task("stack_blocks").name == "stack_blocks"


def test_unknown_task_lists_known_ones() -> None:
    with pytest.raises(KeyError) as info:
        get_task("stack_cups")
    msg = str(info.value)
    assert "unknown task 'stack_cups'" in msg
    assert all(name in msg for name in task_names())


def test_registering_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register("put_block", StackBlocks)


def test_stack_blocks_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="1 to 4"):
        StackBlocks(n_blocks=5)


@pytest.mark.parametrize("task_name", TASKS)
def test_instances_are_seeded_and_consistent(task_name: str) -> None:
    task = get_task(task_name)
    a, b = task.instance(3), task.instance(3)
    assert a == b
    assert task.instance(4) != a
    instructions = {task.instance(s).instruction for s in range(10)}
    assert len(instructions) > 1, "the sentence never changes with the seed"
    for seed in range(10):
        inst = task.instance(seed)
        names = [o.name for o in inst.objects]
        assert len(set(names)) == len(names)
        for name in [v for v in inst.goal.values() if isinstance(v, str)] + list(inst.goal.get("order", [])):
            assert name in names, f"goal names {name!r}, which is not in the scene"
            if name.endswith("_block"):
                assert name.split("_")[0] in inst.instruction
        x0, x1, y0, y1 = task.placement_region
        for o in inst.objects:
            assert x0 <= o.position[0] <= x1 and y0 <= o.position[1] <= y1


# ------------------------------------------------------------------------------------------ oracle plans
@pytest.mark.parametrize("task_name", TASKS)
def test_oracle_plans_pass_validation(task_name: str) -> None:
    planner = OraclePlanner()
    for seed in range(10):
        scene, goal, instruction = _scene_of(task_name, seed)
        result = planner.plan(PlanRequest(instruction, scene, task_name, goal))
        assert result.success, result.message
        assert result.backend == "oracle" and result.planning_time >= 0
        revalidated = validate_plan(result.plan, scene)  # raises PlanRejected with the reason if not
        assert [p.kind for p in revalidated] == [p.kind for p in result.plan]
        closes = [p for p in result.plan if p.kind == PrimitiveKind.CLOSE_GRIPPER]
        moved = [goal["block"]] if task_name == "put_block" else goal["order"]
        assert [p.object_name for p in closes] == moved
        for p in result.plan:
            if p.kind == PrimitiveKind.MOVE_GRIPPER:
                assert abs(p.yaw) <= math.pi / 2 + 1e-9, f"seed {seed}: wrist wound to {p.yaw:.2f}"


def test_oracle_put_block_follows_the_malmm_recipe() -> None:
    scene, goal, instruction = _scene_of("put_block", 0)
    cfg = OracleConfig()
    plan = OraclePlanner(cfg).plan(PlanRequest(instruction, scene, "put_block", goal)).plan
    kinds = [p.kind for p in plan]
    m, o, c = PrimitiveKind.MOVE_GRIPPER, PrimitiveKind.OPEN_GRIPPER, PrimitiveKind.CLOSE_GRIPPER
    assert kinds == [o, m, m, c, m, m, m, o, m]
    block, area = scene.get(goal["block"]), scene.get(goal["area"])
    above, grasp, lift, carry, lower, retreat = (p for p in plan if p.kind == m)
    assert grasp.position == pytest.approx(block.position)  # grasp at the object's centre
    assert above.position == pytest.approx((*block.position[:2], block.position[2] + cfg.safe_height))
    assert lift.position[:2] == pytest.approx(block.position[:2]) and lift.position[2] > above.position[2] - 1e-9
    assert carry.position[:2] == pytest.approx(area.position[:2])
    release_z = area.top_z + block.size[2] / 2 + cfg.release_height
    assert lower.position == pytest.approx((*area.position[:2], release_z))
    assert retreat.position[2] == pytest.approx(release_z + cfg.safe_height)
    # The gripper yaw matches the block's faces (a square block is symmetric under quarter turns).
    assert math.remainder(grasp.yaw - block.yaw, math.pi / 2) == pytest.approx(0.0, abs=1e-9)


def test_oracle_stack_places_each_block_on_the_previous_one() -> None:
    scene, goal, instruction = _scene_of("stack_blocks", 2)
    cfg = OracleConfig()
    plan = OraclePlanner(cfg).plan(PlanRequest(instruction, scene, "stack_blocks", goal)).plan
    base = scene.get(goal["base"])
    opens = [i for i, p in enumerate(plan) if p.kind == PrimitiveKind.OPEN_GRIPPER and i > 0]
    closes = [i for i, p in enumerate(plan) if p.kind == PrimitiveKind.CLOSE_GRIPPER]
    assert len(opens) == len(closes) == len(goal["order"])
    for level, (i_close, i_open) in enumerate(zip(closes, opens), start=1):
        grasp, release = plan[i_close - 1], plan[i_open - 1]
        assert release.position[:2] == pytest.approx(base.position[:2])
        expected_z = base.top_z + (level - 1) * BLOCK_SIZE + BLOCK_SIZE / 2 + cfg.release_height
        assert release.position[2] == pytest.approx(expected_z)
        # The held block is turned onto the base's yaw (mod the block's quarter-turn symmetry).
        block = scene.get(plan[i_close].object_name)
        placed_yaw = block.yaw + (release.yaw - grasp.yaw)
        assert math.remainder(placed_yaw - base.yaw, math.pi / 2) == pytest.approx(0.0, abs=1e-9)
    carries = [p for p in plan if p.kind == PrimitiveKind.MOVE_GRIPPER]
    tallest = base.top_z + BLOCK_SIZE * len(goal["order"])
    assert max(p.position[2] for p in carries) >= tallest


def test_oracle_failures_are_reported_not_raised() -> None:
    scene, goal, instruction = _scene_of("put_block", 0)
    planner = OraclePlanner()
    result = planner.plan(PlanRequest(instruction, scene, "", goal))
    assert not result.success and "task name" in result.message
    result = planner.plan(PlanRequest(instruction, scene, "stack_cups", goal))
    assert not result.success and "unknown task" in result.message and "put_block" in result.message
    result = planner.plan(PlanRequest(instruction, scene, "put_block", {"block": "gold_block", "area": "target_area"}))
    assert not result.success and "gold_block" in result.message
    # A scene whose target lies outside the workspace: proposed, then rejected by validation.
    far = SceneState(
        objects=[
            ObjectState("red_block", (0.5, 0.0, 0.025), 0.0, (0.05, 0.05, 0.05), "block"),
            ObjectState("target_area", (0.9, 0.0, 0.001), 0.0, (0.14, 0.14, 0.002), "target_area"),
        ]
    )
    result = planner.plan(PlanRequest("put it there", far, "put_block", {"block": "red_block", "area": "target_area"}))
    assert not result.success and result.message.startswith("rejected:") and "outside the workspace" in result.message
    assert result.plan == []


# ------------------------------------------------------------------------------------------ grasp yaw
def _tall_neighbour_scene(dx: float, dy: float) -> tuple[SceneState, dict]:
    """A block to move, a 15 cm tower right next to it, and a base far away."""
    red = ObjectState("red_block", (0.5, 0.05, 0.025), 0.0, (0.05, 0.05, 0.05), "block")
    tower = ObjectState("tower", (0.5 + dx, 0.05 + dy, 0.075), 0.0, (0.05, 0.05, 0.15), "block")
    blue = ObjectState("blue_block", (0.45, -0.2, 0.025), 0.0, (0.05, 0.05, 0.05), "block")
    return SceneState(objects=[red, tower, blue]), {"base": "blue_block", "order": ["red_block"]}


def _first_grasp_yaw(scene: SceneState, goal: dict) -> float:
    result = OraclePlanner().plan(PlanRequest("stack the red block on the blue block", scene, "stack_blocks", goal))
    assert result.success, result.message
    return next(p.yaw for p in result.plan if p.kind == PrimitiveKind.MOVE_GRIPPER)


def test_oracle_grasp_yaw_avoids_a_tall_neighbour() -> None:
    # Tower 9 cm away along y: yaw 0 closes the fingers along y, so the 0.2 m hand would hit it.
    scene, goal = _tall_neighbour_scene(0.0, 0.09)
    red, others = scene.get("red_block"), [o for o in scene.objects if o.name != "red_block"]
    assert hand_clearance(red.position[:2], 0.0, red.position[2] + 0.045, others) < 0
    assert hand_clearance(red.position[:2], math.pi / 2, red.position[2] + 0.045, others) > 0.01
    yaw = _first_grasp_yaw(scene, goal)
    assert abs(yaw) == pytest.approx(math.pi / 2), f"grasp yaw {yaw:.3f} drives the hand into the tower"
    # The same tower along x: now yaw 0 is the free one (and the neutral wrist).
    scene, goal = _tall_neighbour_scene(0.09, 0.0)
    assert _first_grasp_yaw(scene, goal) == pytest.approx(0.0)
    # Without the tower the neutral yaw is kept.
    scene, goal = _tall_neighbour_scene(0.0, 0.09)
    scene.objects = [o for o in scene.objects if o.name != "tower"]
    assert _first_grasp_yaw(scene, goal) == pytest.approx(0.0)


def test_short_neighbours_do_not_matter() -> None:
    """An object lower than the hand's bottom cannot be hit, whatever the yaw."""
    red = ObjectState("red_block", (0.5, 0.05, 0.025), 0.0, (0.05, 0.05, 0.05), "block")
    flat = ObjectState("pad", (0.5, 0.14, 0.005), 0.0, (0.05, 0.05, 0.01), "target_area")
    assert hand_clearance(red.position[:2], 0.0, red.position[2] + 0.045, [flat]) == math.inf
    assert choose_grasp_yaw(red, [flat], 0.0, red.position[2]) == pytest.approx(0.0)


def test_symmetric_yaw() -> None:
    square, oblong = (0.05, 0.05, 0.05), (0.08, 0.04, 0.04)
    assert symmetric_yaw(1.4, square, 0.0) == pytest.approx(1.4 - math.pi / 2)
    assert symmetric_yaw(1.4, oblong, 0.0) == pytest.approx(1.4)
    assert symmetric_yaw(2.0, oblong, 0.0) == pytest.approx(2.0 - math.pi)
    assert symmetric_yaw(-0.7, square, 0.0) == pytest.approx(-0.7)


def test_oracle_config_validation() -> None:
    with pytest.raises(ValueError, match="safe_height"):
        OracleConfig(safe_height=0.5).validate()
    with pytest.raises(ValueError, match="release_height"):
        OracleConfig(release_height=-0.01).validate()


# ------------------------------------------------------------------------------------------ episodes
@pytest.mark.parametrize("task_name", TASKS)
def test_oracle_episodes_succeed_in_process(sim: MujocoSimulation, task_name: str) -> None:
    planner = OraclePlanner()
    executor = PlanExecutor(DirectSimBackend(sim))
    for seed in range(5):
        record = run_episode_in_process(sim, planner, executor, task_name, seed)
        assert record.success, f"{task_name} seed {seed}: {record.outcome} {record.success_report}"
        assert record.outcome.kind == OutcomeKind.SUCCESS
        assert record.success_report["success"] and record.success_report["conditions"]["gripper_released"]
        assert record.planning.backend == "oracle" and record.planning.plan
        assert record.execution.success and record.execution.message.startswith("executed")
        meta = EpisodeRecord.from_json(record.to_json()).to_dict()  # the versioned JSON form round-trips
        assert meta["schema"] == "llm_trainer.episode" and meta["version"] == 1
        assert meta["task"] == task_name and meta["seed"] == seed and meta["instruction"]
        assert SceneState.from_dict(meta["scene"]).names() == [o.name for o in sim.instance.objects]
        assert [Primitive.from_dict(p) for p in meta["planning"]["plan"]][0] == Primitive.open()
        assert record.timing["sim_time"] > 1.0


def test_episode_without_a_plan_is_a_failure(sim: MujocoSimulation) -> None:
    class Refuser(OraclePlanner):
        name = "refuser"

        def propose(self, request):
            result = super().propose(request)
            result.plan.append(Primitive.close())  # ends closed: validation rejects it
            return result

    executor = PlanExecutor(DirectSimBackend(sim))
    record = run_episode_in_process(sim, Refuser(), executor, "put_block", 0)
    assert not record.success
    # Why it failed is typed, not a string prefix: the plan was refused before anything ran.
    assert record.outcome.kind == OutcomeKind.PLAN_REJECTED and "close on nothing" in record.outcome.reason
    assert record.planning.plan == [] and not record.planning.success
    assert record.execution is None
    assert not record.success_report["success"]
