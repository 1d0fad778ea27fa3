"""Fruit tasks from the real-world generalisation set: the sweet or sour fruit in the bowl, a fruit in
the closest basket. Fruits are simple solids: apples, peaches and limes are spheres, a lemon and a
banana are ellipsoids lying on their side (a little flatter than round, so they do not roll)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from llm_trainer.scene import SceneState
from llm_trainer.tasks.base import (
    FIXTURE_REGION,
    ObjectSpec,
    Part,
    PickPlace,
    SuccessReport,
    Task,
    TaskInstance,
    footprint_radius,
    sample_layout,
)
from llm_trainer.tasks.shapes import (
    CONTAINER_WALL,
    WHITE,
    WICKER,
    box_container,
    compound,
    in_box_container,
    in_round_container,
    round_container,
    sphere_object,
    xy_distance,
)

#: kind -> (taste, shape, full size, colour)
FRUITS: dict[str, tuple[str, str, tuple[float, float, float], tuple[float, float, float, float]]] = {
    "apple": ("sweet", "sphere", (0.06, 0.06, 0.06), (0.75, 0.08, 0.1, 1.0)),
    "peach": ("sweet", "sphere", (0.055, 0.055, 0.055), (0.98, 0.6, 0.35, 1.0)),
    "banana": ("sweet", "ellipsoid", (0.15, 0.036, 0.03), (0.95, 0.85, 0.2, 1.0)),
    "lemon": ("sour", "ellipsoid", (0.07, 0.05, 0.044), (1.0, 0.92, 0.1, 1.0)),
    "lime": ("sour", "sphere", (0.045, 0.045, 0.045), (0.3, 0.7, 0.1, 1.0)),
}
TASTES = ("sweet", "sour")


def fruit_spec(kind: str, xy: tuple[float, float], yaw: float = 0.0, name: str | None = None) -> ObjectSpec:
    _, shape, size, rgba = FRUITS[kind]
    name = name or kind
    if shape == "sphere":
        return sphere_object(name, "fruit", size[0], xy, rgba, mass=0.1)
    # An ellipsoid touches a flat surface at one point and rocks on it for ever in the simulator;
    # a small flat patch at its bottom (hidden under it) lets it lie still, as a real fruit does.
    parts = [
        Part("ellipsoid", size, (0.0, 0.0, size[2] / 2)),
        Part("box", (0.4 * size[0], 0.4 * size[1], 0.003), (0.0, 0.0, 0.0015)),
    ]
    return compound(name, "fruit", parts, xy, yaw, rgba, movable=True, mass=0.1)


class FruitInBowl(Task):
    """Put the sweet (or the sour) fruit in the bowl (real-world 'sweet/sour fruit in bowl'): one
    fruit of the named taste, one or two of the other. Sweet: apple, peach, banana; sour: lemon, lime."""

    name = "fruit_in_bowl"
    instruction_template = "put the {taste} fruit in the bowl"
    description = "the one fruit of the named taste into a bowl"
    attributes = {"taste": TASTES}
    BOWL_RADIUS = 0.085  # inner
    BOWL_HEIGHT = 0.05

    def sample(self, rng: np.random.Generator, seed: int) -> TaskInstance:
        taste = TASTES[int(rng.integers(2))]
        mine = [k for k, v in FRUITS.items() if v[0] == taste]
        theirs = [k for k, v in FRUITS.items() if v[0] != taste]
        target = str(rng.choice(mine))
        n_other = int(rng.integers(1, 3))
        others = [str(k) for k in rng.choice(theirs, size=n_other, replace=False)]
        kinds = [target, *others]
        radii = [footprint_radius(FRUITS[k][2]) for k in kinds]
        bowl_r = self.BOWL_RADIUS + 0.012  # round: its footprint is a circle
        (bowl_xy,), xys = sample_layout(rng, [([bowl_r], FIXTURE_REGION, 0.03), (radii, self.placement_region, 0.06)])
        bowl = round_container("bowl", "bowl", self.BOWL_RADIUS, self.BOWL_HEIGHT, bowl_xy, WHITE)
        objects = [bowl] + [fruit_spec(k, xy, float(rng.uniform(-1.2, 1.2))) for k, xy in zip(kinds, xys)]
        goal = {"fruit": target, "taste": taste, "bowl": "bowl"}
        return TaskInstance(self.name, seed, self.instruction_template.format(taste=taste), goal, objects)

    def check_success(self, scene: SceneState, goal: dict[str, Any]) -> SuccessReport:
        fruit, bowl = scene.get(goal["fruit"]), scene.get(goal["bowl"])
        inside = in_round_container(fruit, bowl, self.BOWL_RADIUS)
        return SuccessReport(inside, {f"{fruit.name}_in_bowl": inside}, {"fruit": list(fruit.position)})

    def oracle_subgoals(self, scene: SceneState, goal: dict[str, Any]) -> list[PickPlace]:
        bowl = scene.get(goal["bowl"])
        return [PickPlace(goal["fruit"], bowl.name, bowl.position[:2], bowl.top_z)]


class FruitInClosestBasket(Task):
    """Put the named fruit in the basket closest to it (real-world 'fruit in the closest basket').

    Two or three baskets; the closest one (centre to centre, on the table plane) is at least
    5 cm nearer the fruit than any other, so the answer is never a coin toss.
    """

    name = "fruit_in_closest_basket"
    instruction_template = "put the {fruit} in the closest basket"
    description = "a named fruit into the basket nearest to it (of 2-3)"
    attributes = {"fruit": tuple(FRUITS)}
    BASKET_INNER = (0.155, 0.11)  # a banana (14 cm) fits along its length
    BASKET_HEIGHT = 0.05
    WALL = CONTAINER_WALL
    MARGIN = 0.05
    #: Baskets' footprints may reach further out than other fixtures' (still on the table and in view).
    BASKET_REGION = (0.26, 0.74, -0.38, 0.38)

    def sample(self, rng: np.random.Generator, seed: int) -> TaskInstance:
        target, other = (str(k) for k in rng.choice(list(FRUITS), size=2, replace=False))
        n_baskets = int(rng.integers(2, 4))
        basket_r = footprint_radius((self.BASKET_INNER[0] + 2 * self.WALL, self.BASKET_INNER[1] + 2 * self.WALL, 0))
        radii = [footprint_radius(FRUITS[k][2]) for k in (target, other)]
        for _ in range(200):
            fruit_xys, basket_xys = sample_layout(
                rng, [(radii, self.placement_region, 0.04), ([basket_r] * n_baskets, self.BASKET_REGION, 0.02)]
            )
            d = sorted(math.hypot(fruit_xys[0][0] - x, fruit_xys[0][1] - y) for x, y in basket_xys)
            if d[1] - d[0] >= self.MARGIN:
                break
        else:  # pragma: no cover - 200 layouts without a clear winner do not happen in practice
            raise RuntimeError("could not lay out baskets with a clearly closest one")
        objects: list[ObjectSpec] = [
            box_container(
                f"basket_{i + 1}",
                "basket",
                self.BASKET_INNER,
                self.BASKET_HEIGHT,
                xy,
                float(rng.uniform(-0.4, 0.4)),
                WICKER,
                wall=self.WALL,
            )
            for i, xy in enumerate(basket_xys)
        ]
        objects += [fruit_spec(k, xy, float(rng.uniform(-1.2, 1.2))) for k, xy in zip((target, other), fruit_xys)]
        closest = min(
            range(n_baskets),
            key=lambda i: math.hypot(fruit_xys[0][0] - basket_xys[i][0], fruit_xys[0][1] - basket_xys[i][1]),
        )
        goal = {"fruit": target, "basket": f"basket_{closest + 1}"}
        return TaskInstance(self.name, seed, self.instruction_template.format(fruit=target), goal, objects)

    def check_success(self, scene: SceneState, goal: dict[str, Any]) -> SuccessReport:
        fruit, basket = scene.get(goal["fruit"]), scene.get(goal["basket"])
        inside = in_box_container(fruit, basket, self.WALL)
        return SuccessReport(inside, {f"{fruit.name}_in_{basket.name}": inside}, {"fruit": list(fruit.position)})

    def oracle_subgoals(self, scene: SceneState, goal: dict[str, Any]) -> list[PickPlace]:
        basket = scene.get(goal["basket"])
        # Long fruit (a banana) goes in along the basket's length.
        return [PickPlace(goal["fruit"], basket.name, basket.position[:2], basket.top_z, basket.yaw)]


__all__ = ["FRUITS", "FruitInBowl", "FruitInClosestBasket", "fruit_spec", "xy_distance"]
