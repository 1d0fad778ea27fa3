"""Putting one thing on another (real-world generalisation set): cup on the coloured object, case
on the target."""

from __future__ import annotations

from typing import Any

import numpy as np

from llm_trainer.scene import SceneState
from llm_trainer.tasks.base import (
    COLOR_NAMES,
    FIXTURE_REGION,
    ObjectSpec,
    Part,
    PickPlace,
    SuccessReport,
    Task,
    TaskInstance,
    footprint_radius,
    pick_colors,
    rgba_of,
    sample_layout,
)
from llm_trainer.tasks.shapes import WHITE, box_object, compound, cylinder_object, over_footprint, rests_on

#: Things a cup can stand on: full size (length, width, height) and primitive.
SUPPORTS: dict[str, tuple[tuple[float, float, float], str]] = {
    "box": ((0.09, 0.09, 0.04), "box"),
    "plate": ((0.12, 0.12, 0.015), "cylinder"),
    "book": ((0.14, 0.1, 0.025), "box"),
}
CUP = (0.06, 0.08)  # diameter, height


def cup_spec(name: str, xy: tuple[float, float]) -> ObjectSpec:
    """A cup (6 cm wide, 8 cm tall); solid, as nothing goes into it here."""
    return cylinder_object(name, "cup", *CUP, xy, 0.0, WHITE, mass=0.12)


class CupOnObject(Task):
    """Put the cup on the object of the named colour (real-world 'cup on coloured object').

    Two or three supports (box, plate, book) of different colours; the sentence names the colour
    and the kind, e.g. 'put the cup on the blue plate'.
    """

    name = "cup_on_object"
    instruction_template = "put the cup on the {color} {kind}"
    description = "a cup onto the coloured one of 2-3 boxes, plates and books"
    attributes = {
        "color": COLOR_NAMES,
        "kind": tuple(SUPPORTS),
    }

    def sample(self, rng: np.random.Generator, seed: int) -> TaskInstance:
        n = int(rng.integers(2, 4))
        colors = pick_colors(rng, n)
        kinds = [str(k) for k in rng.choice(list(SUPPORTS), size=n)]
        radii = [footprint_radius(SUPPORTS[k][0]) for k in kinds]
        xys, (cup_xy,) = sample_layout(
            rng, [(radii, FIXTURE_REGION, 0.04), ([footprint_radius((CUP[0], CUP[0], 0))], self.placement_region, 0.05)]
        )
        objects: list[ObjectSpec] = []
        for color, kind, xy in zip(colors, kinds, xys):
            size, shape = SUPPORTS[kind]
            yaw = float(rng.uniform(-0.5, 0.5))
            if shape == "cylinder":
                objects.append(cylinder_object(f"{color}_{kind}", kind, size[0], size[2], xy, yaw, rgba_of(color)))
            else:
                objects.append(box_object(f"{color}_{kind}", kind, size, xy, yaw, rgba_of(color), mass=0.3))
        objects.append(cup_spec("cup", cup_xy))
        goal = {"cup": "cup", "target": f"{colors[0]}_{kinds[0]}"}
        instruction = self.instruction_template.format(color=colors[0], kind=kinds[0])
        return TaskInstance(self.name, seed, instruction, goal, objects)

    def check_success(self, scene: SceneState, goal: dict[str, Any]) -> SuccessReport:
        cup, target = scene.get(goal["cup"]), scene.get(goal["target"])
        over = over_footprint(cup, target)
        resting = rests_on(cup, target)
        return SuccessReport(
            over and resting,
            {"cup_over_target": over, "cup_resting_on_target": resting},
            {"cup": list(cup.position), "target": list(target.position)},
        )

    def oracle_subgoals(self, scene: SceneState, goal: dict[str, Any]) -> list[PickPlace]:
        target = scene.get(goal["target"])
        return [PickPlace(goal["cup"], target.name, target.position[:2], target.top_z)]


MAT_SIDE = 0.16


def target_mat_spec(name: str, xy: tuple[float, float], yaw: float) -> ObjectSpec:
    """A flat white target mat (0.16 m square) with a red cross on it."""
    red = rgba_of("red")
    parts = [
        Part("box", (MAT_SIDE, MAT_SIDE, 0.0035), (0.0, 0.0, 0.00175)),
        Part("box", (0.14, 0.012, 0.0005), (0.0, 0.0, 0.00375), (0.0, 0.0, 0.785398), red, collide=False),
        Part("box", (0.14, 0.012, 0.0005), (0.0, 0.0, 0.00375), (0.0, 0.0, -0.785398), red, collide=False),
    ]
    return compound(name, "target_area", parts, xy, yaw, WHITE)


class CaseOnTarget(Task):
    """Put the case of the named colour on the target mat (real-world 'case on target'); the other
    case is the distractor. A case is a glasses-case-sized box (13 x 5 x 3.5 cm)."""

    name = "case_on_target"
    instruction_template = "put the {color} case on the target"
    description = "a coloured case (of two) onto a target mat"
    attributes = {"color": tuple(c for c in COLOR_NAMES if c != "red")}  # the mat's cross is red
    CASE = (0.13, 0.05, 0.035)

    def sample(self, rng: np.random.Generator, seed: int) -> TaskInstance:
        target, other = pick_colors(rng, 2, exclude=("red",))  # the mat's cross is red
        r_case = footprint_radius(self.CASE)
        (mat_xy,), xys = sample_layout(
            rng,
            [
                ([footprint_radius((MAT_SIDE, MAT_SIDE, 0))], FIXTURE_REGION, 0.03),
                ([r_case, r_case], self.placement_region, 0.04),
            ],
        )
        objects = [
            target_mat_spec("target", mat_xy, float(rng.uniform(-0.4, 0.4))),
            box_object(f"{target}_case", "case", self.CASE, xys[0], float(rng.uniform(-1.5, 1.5)), rgba_of(target)),
            box_object(f"{other}_case", "case", self.CASE, xys[1], float(rng.uniform(-1.5, 1.5)), rgba_of(other)),
        ]
        goal = {"case": f"{target}_case", "target": "target"}
        return TaskInstance(self.name, seed, self.instruction_template.format(color=target), goal, objects)

    def check_success(self, scene: SceneState, goal: dict[str, Any]) -> SuccessReport:
        case, target = scene.get(goal["case"]), scene.get(goal["target"])
        over = over_footprint(case, target)
        resting = rests_on(case, target)
        return SuccessReport(
            over and resting,
            {"case_over_target": over, "case_resting_on_target": resting},
            {"case": list(case.position), "target": list(target.position)},
        )

    def oracle_subgoals(self, scene: SceneState, goal: dict[str, Any]) -> list[PickPlace]:
        target = scene.get(goal["target"])
        return [PickPlace(goal["case"], target.name, target.position[:2], target.top_z, target.yaw)]
