"""Block tasks: put a block in a target area, stack blocks (BLAZER / RLBench training analogues)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from llm_trainer.scene import SceneState
from llm_trainer.tasks.base import (
    COLORS,
    ObjectSpec,
    PickPlace,
    SuccessReport,
    Task,
    TaskInstance,
    footprint_radius,
    point_in_box_xy,
    sample_positions,
)

BLOCK_SIZE = 0.05
#: A block counts as resting on a surface when its bottom is within this of the surface [m].
REST_TOLERANCE = 0.012


def block_spec(name: str, color: str, xy: tuple[float, float], yaw: float, size: float = BLOCK_SIZE) -> ObjectSpec:
    return ObjectSpec(
        name=name,
        category="block",
        size=(size, size, size),
        position=(xy[0], xy[1], size / 2),
        yaw=yaw,
        rgba=(*COLORS[color], 1.0),
        mass=0.1,
    )


def _block_yaw(rng: np.random.Generator) -> float:
    return float(rng.uniform(-math.pi / 4, math.pi / 4))


class PutBlockInTargetArea(Task):
    """Pick the named block and put it in the target area (RLBench 'put block in target area')."""

    name = "put_block"
    instruction_template = "put the {color} block in the target area"
    description = "one coloured block (plus distractors) into a flat target area"
    attributes = {"color": tuple(COLORS)}
    AREA_SIZE = (0.14, 0.14, 0.002)

    def sample(self, rng: np.random.Generator, seed: int) -> TaskInstance:
        colors = [str(c) for c in rng.choice(list(COLORS), size=3, replace=False)]
        target_color, distractors = colors[0], colors[1:]
        radii = [footprint_radius(self.AREA_SIZE), *[footprint_radius((BLOCK_SIZE,) * 3)] * 3]
        xys = sample_positions(rng, radii, self.placement_region)
        objects = [
            ObjectSpec(
                name="target_area",
                category="target_area",
                size=self.AREA_SIZE,
                position=(xys[0][0], xys[0][1], self.AREA_SIZE[2] / 2),
                yaw=0.0,
                rgba=(0.2, 0.2, 0.2, 1.0),
                movable=False,
            ),
            block_spec(f"{target_color}_block", target_color, xys[1], _block_yaw(rng)),
        ]
        for color, xy in zip(distractors, xys[2:]):
            objects.append(block_spec(f"{color}_block", color, xy, _block_yaw(rng)))
        return TaskInstance(
            task_name=self.name,
            seed=seed,
            instruction=self.instruction_template.format(color=target_color),
            goal={"block": f"{target_color}_block", "area": "target_area"},
            objects=objects,
        )

    def check_success(self, scene: SceneState, goal: dict[str, Any]) -> SuccessReport:
        block, area = scene.get(goal["block"]), scene.get(goal["area"])
        inside = point_in_box_xy(block.position, area.position, area.size, area.yaw)
        resting = abs(block.bottom_z - area.top_z) <= REST_TOLERANCE
        return SuccessReport(
            success=inside and resting,
            conditions={"block_centre_in_area": inside, "block_resting_on_area": resting},
            details={"block": block.to_dict()["position"], "area": area.to_dict()["position"]},
        )

    def oracle_subgoals(self, scene: SceneState, goal: dict[str, Any]) -> list[PickPlace]:
        area = scene.get(goal["area"])
        return [PickPlace(goal["block"], goal["area"], area.position[:2], area.top_z, None)]


class StackBlocks(Task):
    """Stack N coloured blocks, in order, on a base block (RLBench 'stack blocks' analogue)."""

    name = "stack_blocks"
    instruction_template = "stack {blocks} on top of the {base} block"
    description = "N blocks stacked in a given order on a base block, with distractors"
    attributes = {"base": tuple(COLORS)}

    def __init__(self, n_blocks: int = 2, n_distractors: int = 1):
        if not 1 <= n_blocks <= 4:
            raise ValueError("stack_blocks supports 1 to 4 blocks on the base")
        self.n_blocks = n_blocks
        self.n_distractors = n_distractors

    def sample(self, rng: np.random.Generator, seed: int) -> TaskInstance:
        n = 1 + self.n_blocks + self.n_distractors
        colors = [str(c) for c in rng.choice(list(COLORS), size=n, replace=False)]
        base, movers, distractors = colors[0], colors[1 : 1 + self.n_blocks], colors[1 + self.n_blocks :]
        xys = sample_positions(rng, [footprint_radius((BLOCK_SIZE,) * 3)] * n, self.placement_region, clearance=0.03)
        objects = [block_spec(f"{c}_block", c, xy, _block_yaw(rng)) for c, xy in zip(colors, xys)]
        blocks_text = " and then ".join(f"the {c} block" for c in movers)
        return TaskInstance(
            task_name=self.name,
            seed=seed,
            instruction=self.instruction_template.format(blocks=blocks_text, base=base),
            goal={"base": f"{base}_block", "order": [f"{c}_block" for c in movers], "distractors": distractors},
            objects=objects,
        )

    def check_success(self, scene: SceneState, goal: dict[str, Any]) -> SuccessReport:
        conditions: dict[str, bool] = {}
        below = scene.get(goal["base"])
        for name in goal["order"]:
            block = scene.get(name)
            centred = math.hypot(block.position[0] - below.position[0], block.position[1] - below.position[1]) <= (
                below.size[0] / 2
            )
            resting = abs(block.bottom_z - below.top_z) <= REST_TOLERANCE
            conditions[f"{name}_on_{below.name}"] = centred and resting
            below = block
        return SuccessReport(success=all(conditions.values()), conditions=conditions)

    def oracle_subgoals(self, scene: SceneState, goal: dict[str, Any]) -> list[PickPlace]:
        steps = []
        below = scene.get(goal["base"])
        top_z = below.top_z
        for name in goal["order"]:
            steps.append(PickPlace(name, below.name, below.position[:2], top_z, below.yaw))
            top_z += scene.get(name).size[2]
        return steps
