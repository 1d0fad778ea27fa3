"""Putting things into containers: rubbish in bin, empty container (BLAZER training analogues),
block in left/right basket and jar in bin (the real-world generalisation set).

Containers are open boxes fixed to the table. An object is *in* a container when its centre is
inside the walls and below the rim (``shapes.in_box_container``). The oracle releases objects
just above the rim, so they drop in, as a person would drop rubbish into a bin.
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
    pick_colors,
    rgba_of,
    sample_layout,
)
from llm_trainer.tasks.blocks import BLOCK_SIZE, block_spec
from llm_trainer.tasks.shapes import (
    CONTAINER_WALL,
    DARK,
    STEEL,
    WHITE,
    WICKER,
    box_container,
    box_object,
    compound,
    cylinder_object,
    in_box_container,
    sphere_object,
)

WALL = CONTAINER_WALL  # wall thickness of every box container here [m]

TOMATO = (0.8, 0.12, 0.08, 1.0)
PAPER = (0.88, 0.86, 0.8, 1.0)


class RubbishInBin(Task):
    """Put the rubbish in the bin (RLBench 'rubbish in bin'): a crumpled paper ball, two tomatoes
    as distractors, and a bin fixed to the table."""

    name = "rubbish_in_bin"
    instruction_template = "put the rubbish in the bin"
    description = "a paper ball into a bin, with tomatoes as distractors"
    BIN_INNER = (0.16, 0.16)
    BIN_HEIGHT = 0.08

    def sample(self, rng: np.random.Generator, seed: int) -> TaskInstance:
        bin_r = footprint_radius((self.BIN_INNER[0] + 2 * WALL, self.BIN_INNER[1] + 2 * WALL, 0))
        (bin_xy,), xys = sample_layout(
            rng, [([bin_r], FIXTURE_REGION, 0.03), ([0.03, 0.03, 0.03], self.placement_region, 0.05)]
        )
        bin_spec = box_container(
            "bin", "bin", self.BIN_INNER, self.BIN_HEIGHT, bin_xy, float(rng.uniform(-0.4, 0.4)), DARK, wall=WALL
        )
        objects = [
            bin_spec,
            sphere_object("rubbish", "rubbish", 0.045, xys[0], PAPER, mass=0.03),
            sphere_object("tomato_1", "tomato", 0.05, xys[1], TOMATO, mass=0.08),
            sphere_object("tomato_2", "tomato", 0.05, xys[2], TOMATO, mass=0.08),
        ]
        return TaskInstance(self.name, seed, self.instruction_template, {"object": "rubbish", "bin": "bin"}, objects)

    def check_success(self, scene: SceneState, goal: dict[str, Any]) -> SuccessReport:
        obj, bin_ = scene.get(goal["object"]), scene.get(goal["bin"])
        inside = in_box_container(obj, bin_, WALL)
        return SuccessReport(inside, {f"{obj.name}_in_{bin_.name}": inside}, {"object": list(obj.position)})

    def oracle_subgoals(self, scene: SceneState, goal: dict[str, Any]) -> list[PickPlace]:
        bin_ = scene.get(goal["bin"])
        return [PickPlace(goal["object"], bin_.name, bin_.position[:2], bin_.top_z)]


class EmptyContainer(Task):
    """Move every object out of the large container into the named coloured one (RLBench 'empty
    container'). Two or three small objects lie in a row across the large container; a small
    container of another colour is the distractor."""

    name = "empty_container"
    instruction_template = "empty the large container into the {color} container"
    description = "2-3 objects from a large container into the coloured one of two small containers"
    attributes = {"color": COLOR_NAMES}
    LARGE_INNER = (0.22, 0.17)
    SMALL_INNER = (0.12, 0.12)
    HEIGHT = 0.045
    ITEM = 0.04
    #: Where dropped items land in the target container (its frame), one spot per item.
    DROP_SPOTS = ((-0.03, -0.03), (0.03, 0.03), (-0.03, 0.03))

    def sample(self, rng: np.random.Generator, seed: int) -> TaskInstance:
        target, other = pick_colors(rng, 2)
        n_items = int(rng.integers(2, 4))
        item_colors = pick_colors(rng, n_items)
        side = 1.0 if rng.random() < 0.5 else -1.0  # the large container on the left or the right
        large_yaw = float(rng.uniform(-0.2, 0.2))
        large_xy = (float(rng.uniform(0.46, 0.54)), side * float(rng.uniform(0.17, 0.19)))
        small_xy = [
            (float(rng.uniform(0.37, 0.40)), -side * float(rng.uniform(0.13, 0.2))),
            (float(rng.uniform(0.60, 0.63)), -side * float(rng.uniform(0.13, 0.2))),
        ]
        order = rng.permutation(2)
        objects = [
            box_container("large_container", "container", self.LARGE_INNER, self.HEIGHT, large_xy, large_yaw, STEEL),
        ]
        for color, k in zip((target, other), order):
            objects.append(
                box_container(
                    f"{color}_container",
                    "container",
                    self.SMALL_INNER,
                    self.HEIGHT,
                    small_xy[k],
                    float(rng.uniform(-0.3, 0.3)),
                    rgba_of(color),
                )
            )
        # Items in a row across the large container (its y), jittered along it: the fingers close
        # along its length, where there is room for them.
        c, s = math.cos(large_yaw), math.sin(large_yaw)
        items = []
        for i, color in enumerate(item_colors):
            ly = (i - (n_items - 1) / 2) * 0.052
            lx = float(rng.uniform(-0.04, 0.04))
            xy = (large_xy[0] + c * lx - s * ly, large_xy[1] + s * lx + c * ly)
            yaw = large_yaw + float(rng.uniform(-0.15, 0.15))
            if rng.random() < 0.5:
                spec = box_object(f"{color}_cube", "cube", (self.ITEM,) * 3, xy, yaw, rgba_of(color), base_z=0.008)
            else:
                spec = cylinder_object(
                    f"{color}_cylinder", "cylinder", self.ITEM, 0.05, xy, yaw, rgba_of(color), base_z=0.008
                )
            items.append(spec.name)
            objects.append(spec)
        goal = {"items": items, "source": "large_container", "target": f"{target}_container"}
        return TaskInstance(self.name, seed, self.instruction_template.format(color=target), goal, objects)

    def check_success(self, scene: SceneState, goal: dict[str, Any]) -> SuccessReport:
        target = scene.get(goal["target"])
        conditions = {f"{n}_in_{target.name}": in_box_container(scene.get(n), target, WALL) for n in goal["items"]}
        return SuccessReport(all(conditions.values()), conditions)

    def oracle_subgoals(self, scene: SceneState, goal: dict[str, Any]) -> list[PickPlace]:
        target = scene.get(goal["target"])
        c, s = math.cos(target.yaw), math.sin(target.yaw)
        steps = []
        for name, (dx, dy) in zip(goal["items"], self.DROP_SPOTS):
            xy = (target.position[0] + c * dx - s * dy, target.position[1] + s * dx + c * dy)
            steps.append(PickPlace(name, target.name, xy, target.top_z))
        return steps


class BlockInBasket(Task):
    """Put the named block in the basket on the left or the right (real-world generalisation task).

    Left and right are the robot's: it stands at the origin looking along +x, so its left is +y.
    The baskets' names do not say which side they are on; the planner must read their positions.
    """

    name = "block_in_basket"
    instruction_template = "put the {color} block in the {side} basket"
    description = "a coloured block into the left or right basket (left = +y, the robot's left)"
    attributes = {
        "color": COLOR_NAMES,
        "side": ("left", "right"),
    }
    BASKET_INNER = (0.12, 0.12)
    BASKET_HEIGHT = 0.06

    def sample(self, rng: np.random.Generator, seed: int) -> TaskInstance:
        side = "left" if rng.random() < 0.5 else "right"
        names = ["basket_1", "basket_2"] if rng.random() < 0.5 else ["basket_2", "basket_1"]  # [left, right]
        n_blocks = int(rng.integers(2, 4))
        colors = pick_colors(rng, n_blocks)
        rb = footprint_radius((self.BASKET_INNER[0] + 2 * WALL, self.BASKET_INNER[1] + 2 * WALL, 0))
        r = footprint_radius((BLOCK_SIZE,) * 3)
        # Basket centres at x 0.42-0.62 and |y| 0.17-0.24: one clearly on each side.
        left_region = (0.42 - rb, 0.62 + rb, 0.17 - rb, 0.24 + rb)
        right_region = (0.42 - rb, 0.62 + rb, -0.24 - rb, -0.17 + rb)
        (left_xy,), (right_xy,), xys = sample_layout(
            rng,
            [([rb], left_region, 0.03), ([rb], right_region, 0.03), ([r] * n_blocks, self.placement_region, 0.03)],
        )
        objects: list[ObjectSpec] = [
            box_container(
                name, "basket", self.BASKET_INNER, self.BASKET_HEIGHT, xy, float(rng.uniform(-0.3, 0.3)), WICKER
            )
            for name, xy in zip(names, (left_xy, right_xy))
        ]
        for color, xy in zip(colors, xys):
            objects.append(block_spec(f"{color}_block", color, xy, float(rng.uniform(-math.pi / 4, math.pi / 4))))
        basket = names[0] if side == "left" else names[1]
        goal = {"block": f"{colors[0]}_block", "basket": basket, "side": side}
        return TaskInstance(
            self.name, seed, self.instruction_template.format(color=colors[0], side=side), goal, objects
        )

    def check_success(self, scene: SceneState, goal: dict[str, Any]) -> SuccessReport:
        block, basket = scene.get(goal["block"]), scene.get(goal["basket"])
        inside = in_box_container(block, basket, WALL)
        return SuccessReport(inside, {f"{block.name}_in_{basket.name}": inside})

    def oracle_subgoals(self, scene: SceneState, goal: dict[str, Any]) -> list[PickPlace]:
        basket = scene.get(goal["basket"])
        return [PickPlace(goal["block"], basket.name, basket.position[:2], basket.top_z)]


def jar_spec(name: str, color: str, xy: tuple[float, float], *, base_z: float = 0.0) -> ObjectSpec:
    """A closed jar: a coloured body with a white lid, one rigid object (6 cm wide, 9 cm tall)."""
    parts = [
        Part("cylinder", (0.06, 0.06, 0.075), (0.0, 0.0, 0.0375)),
        Part("cylinder", (0.064, 0.064, 0.015), (0.0, 0.0, 0.0825), rgba=WHITE),
    ]
    return compound(name, "jar", parts, xy, 0.0, rgba_of(color), movable=True, mass=0.25, base_z=base_z)


class JarInBin(Task):
    """Put the named jar in the bin (real-world generalisation task); the other jar and a block
    are distractors."""

    name = "jar_in_bin"
    instruction_template = "put the {color} jar in the bin"
    description = "a coloured jar (of two) into a bin"
    attributes = {"color": COLOR_NAMES}
    BIN_INNER = (0.17, 0.17)
    BIN_HEIGHT = 0.07

    def sample(self, rng: np.random.Generator, seed: int) -> TaskInstance:
        target, other, block = pick_colors(rng, 3)
        bin_r = footprint_radius((self.BIN_INNER[0] + 2 * WALL, self.BIN_INNER[1] + 2 * WALL, 0))
        (bin_xy,), xys = sample_layout(
            rng, [([bin_r], FIXTURE_REGION, 0.03), ([0.045, 0.045, 0.036], self.placement_region, 0.06)]
        )
        objects = [
            box_container("bin", "bin", self.BIN_INNER, self.BIN_HEIGHT, bin_xy, float(rng.uniform(-0.4, 0.4)), DARK)
        ]
        objects += [
            jar_spec(f"{target}_jar", target, xys[0]),
            jar_spec(f"{other}_jar", other, xys[1]),
            block_spec(f"{block}_block", block, xys[2], float(rng.uniform(-0.7, 0.7))),
        ]
        goal = {"jar": f"{target}_jar", "bin": "bin"}
        return TaskInstance(self.name, seed, self.instruction_template.format(color=target), goal, objects)

    def check_success(self, scene: SceneState, goal: dict[str, Any]) -> SuccessReport:
        jar, bin_ = scene.get(goal["jar"]), scene.get(goal["bin"])
        inside = in_box_container(jar, bin_, WALL)
        return SuccessReport(inside, {f"{jar.name}_in_{bin_.name}": inside}, {"jar": list(jar.position)})

    def oracle_subgoals(self, scene: SceneState, goal: dict[str, Any]) -> list[PickPlace]:
        bin_ = scene.get(goal["bin"])
        return [PickPlace(goal["jar"], bin_.name, bin_.position[:2], bin_.top_z)]
