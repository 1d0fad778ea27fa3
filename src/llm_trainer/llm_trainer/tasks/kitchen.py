"""Kitchen tasks from the BLAZER training set: meat off the grill, close the jar, open the bottle.

RLBench screws a jar's lid on and twists a bottle's cap off. A parallel gripper driven by
``move_gripper``/``open``/``close`` primitives cannot twist, so the nearest honest variants are
used and said so in each task: the lid is put onto the jar (no thread), the cap is lifted off
the bottle (it sits on the neck, no thread).
"""

from __future__ import annotations

import math
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
    free_spot,
    pick_colors,
    rgba_of,
    sample_layout,
)
from llm_trainer.tasks.blocks import block_spec
from llm_trainer.tasks.shapes import (
    DARK,
    MAT,
    STEEL,
    box_object,
    compound,
    cylinder_object,
    over_footprint,
    rests_on,
    xy_distance,
)

STEAK = (0.55, 0.2, 0.15, 1.0)
CHICKEN = (0.85, 0.62, 0.35, 1.0)
BONE = (0.95, 0.93, 0.85, 1.0)
GOLD = (0.85, 0.7, 0.25, 1.0)


def grill_spec(name: str, xy: tuple[float, float], yaw: float) -> ObjectSpec:
    """A grill fixed to the table: a dark box (0.26 x 0.16 x 0.05 m) with 13 bars across its top, 2 cm apart."""
    parts = [Part("box", (0.26, 0.16, 0.05), (0.0, 0.0, 0.025))]
    for k in range(13):
        parts.append(Part("box", (0.008, 0.16, 0.008), (-0.12 + 0.02 * k, 0.0, 0.054), rgba=STEEL))
    return compound(name, "grill", parts, xy, yaw, DARK)


def meat_spec(kind: str, xy: tuple[float, float], yaw: float, base_z: float) -> ObjectSpec:
    if kind == "steak":
        return box_object("steak", "meat", (0.085, 0.05, 0.018), xy, yaw, STEAK, mass=0.12, base_z=base_z)
    # A drumstick: the meat with the bone through it, sticking out at both ends.
    parts = [
        Part("box", (0.065, 0.045, 0.03), (0.0, 0.0, 0.015)),
        Part("cylinder", (0.012, 0.012, 0.09), (0.0, 0.0, 0.015), (0.0, math.pi / 2, 0.0), rgba=BONE),
    ]
    return compound("chicken", "meat", parts, xy, yaw, CHICKEN, movable=True, mass=0.12, base_z=base_z)


class MeatOffGrill(Task):
    """Take the named meat (chicken or steak) off the grill and put it in the target area (RLBench
    'meat off grill'); the other meat stays on the grill."""

    name = "meat_off_grill"
    instruction_template = "take the {meat} off the grill and put it in the target area"
    description = "chicken or steak from the grill's bars to a target area on the table"
    attributes = {"meat": ("chicken", "steak")}
    AREA_SIZE = (0.14, 0.14, 0.002)
    GRILL_TOP = 0.058

    def sample(self, rng: np.random.Generator, seed: int) -> TaskInstance:
        meat = "chicken" if rng.random() < 0.5 else "steak"
        grill_yaw = float(rng.uniform(-0.3, 0.3))
        (grill_xy,), (area_xy,) = sample_layout(
            rng,
            [([0.153], FIXTURE_REGION, 0.03), ([footprint_radius(self.AREA_SIZE)], self.placement_region, 0.03)],
        )
        objects = [
            grill_spec("grill", grill_xy, grill_yaw),
            box_object("target_area", "target_area", self.AREA_SIZE, area_xy, 0.0, MAT, movable=False),
        ]
        # The two meats lie across the bars, one on each half of the grill, long sides across its length.
        c, s = math.cos(grill_yaw), math.sin(grill_yaw)
        sides = [-1.0, 1.0] if rng.random() < 0.5 else [1.0, -1.0]
        for kind, side in zip(("chicken", "steak"), sides):
            lx = side * float(rng.uniform(0.06, 0.07))
            xy = (grill_xy[0] + c * lx, grill_xy[1] + s * lx)
            yaw = grill_yaw + math.pi / 2 + float(rng.uniform(-0.15, 0.15))
            objects.append(meat_spec(kind, xy, yaw, self.GRILL_TOP))
        goal = {"meat": meat, "grill": "grill", "area": "target_area"}
        return TaskInstance(self.name, seed, self.instruction_template.format(meat=meat), goal, objects)

    def check_success(self, scene: SceneState, goal: dict[str, Any]) -> SuccessReport:
        meat, area = scene.get(goal["meat"]), scene.get(goal["area"])
        inside = over_footprint(meat, area)
        resting = rests_on(meat, area)
        return SuccessReport(
            inside and resting,
            {f"{meat.name}_over_area": inside, f"{meat.name}_resting_on_area": resting},
            {"meat": list(meat.position)},
        )

    def oracle_subgoals(self, scene: SceneState, goal: dict[str, Any]) -> list[PickPlace]:
        area = scene.get(goal["area"])
        return [PickPlace(goal["meat"], area.name, area.position[:2], area.top_z)]


def open_jar_spec(name: str, color: str, xy: tuple[float, float]) -> ObjectSpec:
    """An open jar: a coloured glass body (6 cm wide, 7.5 cm tall) with a rim, no lid."""
    return cylinder_object(name, "jar", 0.06, 0.075, xy, 0.0, rgba_of(color, 0.85), mass=0.3)


class CloseJar(Task):
    """Close the named jar with the lid (RLBench 'close jar').

    Honest variant: the lid is put onto the jar's mouth, centred, and rests there; it is not
    screwed on (a parallel gripper moved by waypoint primitives cannot twist a thread). The other
    jar is the distractor, the lid lies on the table.
    """

    name = "close_jar"
    instruction_template = "close the {color} jar"
    description = "put the lid onto the coloured jar of two (placed on, not screwed)"
    attributes = {"color": COLOR_NAMES}
    LID = (0.066, 0.016)  # diameter, height
    #: The lid counts as on the jar when its centre is within this of the jar's axis.
    CENTRE_TOLERANCE = 0.015

    def sample(self, rng: np.random.Generator, seed: int) -> TaskInstance:
        target, other = pick_colors(rng, 2)
        (xys,) = sample_layout(rng, [([0.05, 0.05, 0.05], self.placement_region, 0.07)])
        objects = [
            open_jar_spec(f"{target}_jar", target, xys[0]),
            open_jar_spec(f"{other}_jar", other, xys[1]),
            cylinder_object("lid", "lid", self.LID[0], self.LID[1], xys[2], 0.0, GOLD, mass=0.04),
        ]
        goal = {"lid": "lid", "jar": f"{target}_jar"}
        return TaskInstance(self.name, seed, self.instruction_template.format(color=target), goal, objects)

    def check_success(self, scene: SceneState, goal: dict[str, Any]) -> SuccessReport:
        lid, jar = scene.get(goal["lid"]), scene.get(goal["jar"])
        centred = xy_distance(lid, jar) <= self.CENTRE_TOLERANCE
        on_top = rests_on(lid, jar)
        return SuccessReport(
            centred and on_top,
            {"lid_centred_on_jar": centred, "lid_resting_on_jar": on_top},
            {"lid": list(lid.position), "jar": list(jar.position)},
        )

    def oracle_subgoals(self, scene: SceneState, goal: dict[str, Any]) -> list[PickPlace]:
        jar = scene.get(goal["jar"])
        return [PickPlace(goal["lid"], jar.name, jar.position[:2], jar.top_z, release_height=0.01)]


def bottle_spec(name: str, color: str, xy: tuple[float, float]) -> ObjectSpec:
    """A wine bottle (7 cm wide, 21 cm to the top of its neck), heavy and stable."""
    parts = [
        Part("cylinder", (0.07, 0.07, 0.14), (0.0, 0.0, 0.07)),
        Part("cylinder", (0.05, 0.05, 0.02), (0.0, 0.0, 0.15)),
        Part("cylinder", (0.026, 0.026, 0.05), (0.0, 0.0, 0.185)),
    ]
    return compound(name, "bottle", parts, xy, 0.0, rgba_of(color, 0.9), movable=True, mass=0.9)


class OpenBottle(Task):
    """Remove the cap from the named bottle (RLBench 'open bottle').

    Honest variant: the cap sits on the bottle's neck without a thread, so removing it is lifting
    it off and putting it down on the table; twisting it off is beyond a parallel gripper moved by
    waypoint primitives. Two bottles of different colours stand on the table, each with its cap;
    the caps' names do not say which bottle they close (the planner must read positions).
    """

    name = "open_bottle"
    instruction_template = "remove the cap from the {color} bottle"
    description = "lift the cap off the coloured bottle of two and put it on the table (no twist)"
    attributes = {"color": COLOR_NAMES}
    CAP = (0.03, 0.03)  # diameter, height
    NECK_TOP = 0.21

    def sample(self, rng: np.random.Generator, seed: int) -> TaskInstance:
        target, other, block = pick_colors(rng, 3)
        (xys,) = sample_layout(rng, [([0.05, 0.05, 0.036], self.placement_region, 0.1)])
        caps = ["cap_1", "cap_2"] if rng.random() < 0.5 else ["cap_2", "cap_1"]
        objects = [
            bottle_spec(f"{target}_bottle", target, xys[0]),
            bottle_spec(f"{other}_bottle", other, xys[1]),
            cylinder_object(caps[0], "cap", *self.CAP, xys[0], 0.0, GOLD, mass=0.01, base_z=self.NECK_TOP),
            cylinder_object(caps[1], "cap", *self.CAP, xys[1], 0.0, GOLD, mass=0.01, base_z=self.NECK_TOP),
            block_spec(f"{block}_block", block, xys[2], float(rng.uniform(-0.7, 0.7))),
        ]
        goal = {"cap": caps[0], "bottle": f"{target}_bottle"}
        return TaskInstance(self.name, seed, self.instruction_template.format(color=target), goal, objects)

    def check_success(self, scene: SceneState, goal: dict[str, Any]) -> SuccessReport:
        cap, bottle = scene.get(goal["cap"]), scene.get(goal["bottle"])
        beside = xy_distance(cap, bottle) > (bottle.size[0] + cap.size[0]) / 2
        below_mouth = cap.bottom_z < bottle.top_z - 0.03
        removed = beside or below_mouth
        return SuccessReport(
            removed,
            {"cap_off_bottle": removed},
            {"cap": list(cap.position), "bottle": list(bottle.position)},
        )

    def oracle_subgoals(self, scene: SceneState, goal: dict[str, Any]) -> list[PickPlace]:
        bottle = scene.get(goal["bottle"])
        others = [o for o in scene.objects if o.name != goal["cap"]]
        spot = free_spot(SceneState(objects=others), self.CAP[0] / 2, near=(bottle.position[0], bottle.position[1]))
        return [PickPlace(goal["cap"], "table", spot, scene.table_height)]
