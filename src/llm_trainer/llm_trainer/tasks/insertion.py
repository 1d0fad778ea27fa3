"""Putting things over and through things (BLAZER training analogues): the square ring onto a
coloured peg, the ball through the hoop."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from llm_trainer.scene import SceneState
from llm_trainer.tasks.base import (
    COLOR_NAMES,
    FIXTURE_REGION,
    Grasp,
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
from llm_trainer.tasks.blocks import block_spec
from llm_trainer.tasks.shapes import STEEL, WHITE, compound, ring_parts, sphere_object, xy_distance

RING_OUTER = 0.085
RING_BAR = 0.014
RING_HEIGHT = 0.025
PEG_POST = 0.024
PEG_HEIGHT = 0.1  # to the top of the post
PEG_PLATE = (0.066, 0.006)  # the base plate: square side, thickness


def square_ring_spec(name: str, xy: tuple[float, float], yaw: float, rgba) -> ObjectSpec:
    """A square ring (8.5 cm outside, 5.7 cm hole, 2.5 cm tall): four bars."""
    a, w, h = RING_OUTER, RING_BAR, RING_HEIGHT
    off = (a - w) / 2
    parts = [
        Part("box", (a, w, h), (0.0, off, h / 2)),
        Part("box", (a, w, h), (0.0, -off, h / 2)),
        Part("box", (w, a - 2 * w, h), (off, 0.0, h / 2)),
        Part("box", (w, a - 2 * w, h), (-off, 0.0, h / 2)),
    ]
    return compound(name, "ring", parts, xy, yaw, rgba, movable=True, mass=0.05)


def peg_spec(name: str, color: str, xy: tuple[float, float], yaw: float) -> ObjectSpec:
    """A square peg fixed to the table: a grey base plate and a coloured 2.4 cm post, 10 cm tall."""
    side, thick = PEG_PLATE
    parts = [
        Part("box", (side, side, thick), (0.0, 0.0, thick / 2), rgba=STEEL),
        Part("box", (PEG_POST, PEG_POST, PEG_HEIGHT - thick), (0.0, 0.0, thick + (PEG_HEIGHT - thick) / 2)),
    ]
    return compound(name, "peg", parts, xy, yaw, rgba_of(color))


class InsertInPeg(Task):
    """Put the square ring onto the peg of the named colour (RLBench 'insert onto square peg'):
    three pegs, the ring lying flat on the table.

    The ring is held by one of its bars, the fingers across it (its centre is a hole: a planner
    that grasps objects at their centre fails here, as in RLBench), then dropped over the post.
    """

    name = "insert_in_peg"
    instruction_template = "put the square ring on the {color} peg"
    description = "a square ring over the coloured one of three pegs"
    attributes = {"color": COLOR_NAMES}
    #: The ring is on the peg when its centre is this close to the post's axis (and below its top).
    CENTRE_TOLERANCE = (RING_OUTER - 2 * RING_BAR - PEG_POST) / 2 + 0.004

    def sample(self, rng: np.random.Generator, seed: int) -> TaskInstance:
        colors = pick_colors(rng, 3)
        r_peg = footprint_radius((PEG_PLATE[0], PEG_PLATE[0], 0))
        r_ring = footprint_radius((RING_OUTER, RING_OUTER, 0))
        (xys,) = sample_layout(rng, [([r_peg] * 3 + [r_ring], self.placement_region, 0.06)])
        objects = [peg_spec(f"{c}_peg", c, xy, float(rng.uniform(-0.6, 0.6))) for c, xy in zip(colors, xys)]
        objects.append(square_ring_spec("square_ring", xys[3], float(rng.uniform(-0.6, 0.6)), (0.15, 0.4, 0.6, 1.0)))
        goal = {"ring": "square_ring", "peg": f"{colors[0]}_peg"}
        return TaskInstance(self.name, seed, self.instruction_template.format(color=colors[0]), goal, objects)

    def check_success(self, scene: SceneState, goal: dict[str, Any]) -> SuccessReport:
        ring, peg = scene.get(goal["ring"]), scene.get(goal["peg"])
        around = xy_distance(ring, peg) <= self.CENTRE_TOLERANCE
        below_top = ring.position[2] < peg.top_z
        return SuccessReport(
            around and below_top,
            {"ring_around_peg": around, "ring_below_peg_top": below_top},
            {"ring": list(ring.position), "peg": list(peg.position)},
        )

    def oracle_subgoals(self, scene: SceneState, goal: dict[str, Any]) -> list[PickPlace]:
        peg = scene.get(goal["peg"])
        off = (RING_OUTER - RING_BAR) / 2
        # Any of the four bars, the fingers closing across it.
        grasps = (
            Grasp((0.0, off, 0.0), 0.0),
            Grasp((0.0, -off, 0.0), 0.0),
            Grasp((off, 0.0, 0.0), math.pi / 2),
            Grasp((-off, 0.0, 0.0), math.pi / 2),
        )
        return [PickPlace(goal["ring"], peg.name, peg.position[:2], peg.top_z, grasps=grasps)]


HOOP_RING_Z = 0.2  # height of the hoop's ring above the table
HOOP_NET_FLOOR = 0.12  # the net's bottom
HOOP_RADIUS = 0.05  # inside of the ring and the net
BALL = 0.055  # diameter
#: Nothing to pick lies within this of the hoop's axis (plus clearance): the wrist must not meet the ring.
HOOP_KEEP_OUT = 0.13


def hoop_spec(name: str, xy: tuple[float, float]) -> ObjectSpec:
    """A hoop on a stand, fixed to the table: a base disc, a pole, a closed net (a cup of white
    bars, 12 cm to 20 cm up) and an orange ring of 5 cm inner radius at its top."""
    parts = [
        Part("cylinder", (0.14, 0.14, 0.01), (0.0, 0.0, 0.005), rgba=STEEL),
        Part(
            "cylinder", (0.02, 0.02, HOOP_NET_FLOOR - 0.01), (0.0, 0.0, 0.01 + (HOOP_NET_FLOOR - 0.01) / 2), rgba=STEEL
        ),
        Part("cylinder", (2 * HOOP_RADIUS + 0.008, 2 * HOOP_RADIUS + 0.008, 0.006), (0.0, 0.0, HOOP_NET_FLOOR + 0.003)),
    ]
    net_h = HOOP_RING_Z - HOOP_NET_FLOOR - 0.006
    parts += ring_parts(HOOP_RADIUS, 0.004, net_h, HOOP_NET_FLOOR + 0.006 + net_h / 2, segments=16)
    parts += ring_parts(HOOP_RADIUS, 0.008, 0.008, HOOP_RING_Z + 0.004, segments=16, rgba=(0.95, 0.45, 0.05, 1.0))
    return compound(name, "hoop", parts, xy, 0.0, WHITE)


class BasketballInHoop(Task):
    """Put the ball of the named colour in the hoop (RLBench 'basketball in hoop').

    Honest variant: the ball is released above the ring and falls through it; the hoop's net is
    closed, so a ball that went through the ring stays in it, and success is read from the final
    state: the ball inside the net, below the ring (no ball can get there but through the ring).
    The other ball and a block are distractors.
    """

    name = "basketball_in_hoop"
    instruction_template = "put the {color} ball in the hoop"
    description = "drop the coloured ball (of two) through a hoop into its net"
    attributes = {"color": COLOR_NAMES}

    def sample(self, rng: np.random.Generator, seed: int) -> TaskInstance:
        target, other, block = pick_colors(rng, 3)
        r_ball = footprint_radius((BALL, BALL, BALL))
        (hoop_xy,), xys = sample_layout(
            rng, [([HOOP_KEEP_OUT], FIXTURE_REGION, 0.03), ([r_ball, r_ball, 0.036], self.placement_region, 0.06)]
        )
        objects = [
            hoop_spec("hoop", hoop_xy),
            sphere_object(f"{target}_ball", "ball", BALL, xys[0], rgba_of(target), mass=0.05),
            sphere_object(f"{other}_ball", "ball", BALL, xys[1], rgba_of(other), mass=0.05),
            block_spec(f"{block}_block", block, xys[2], float(rng.uniform(-0.7, 0.7))),
        ]
        goal = {"ball": f"{target}_ball", "hoop": "hoop"}
        return TaskInstance(self.name, seed, self.instruction_template.format(color=target), goal, objects)

    def check_success(self, scene: SceneState, goal: dict[str, Any]) -> SuccessReport:
        ball, hoop = scene.get(goal["ball"]), scene.get(goal["hoop"])
        within = xy_distance(ball, hoop) < HOOP_RADIUS
        ring_z = hoop.bottom_z + HOOP_RING_Z
        in_net = hoop.bottom_z + HOOP_NET_FLOOR < ball.position[2] < ring_z
        return SuccessReport(
            within and in_net,
            {"ball_within_ring": within, "ball_in_net_below_ring": in_net},
            {"ball": list(ball.position), "hoop": list(hoop.position)},
        )

    def oracle_subgoals(self, scene: SceneState, goal: dict[str, Any]) -> list[PickPlace]:
        hoop = scene.get(goal["hoop"])
        return [PickPlace(goal["ball"], hoop.name, hoop.position[:2], hoop.top_z)]
