"""The scripted oracle: writes a plan from the true scene the way MALMM's recipe does.

For each pick-and-place step of the task: above the object (safe height), down to its centre,
close, raise, above the destination, lower to ``release_height`` above the surface, open,
raise. The gripper yaw follows the object's yaw, reduced by the object's symmetry to the turn
nearest the gripper's current yaw so the wrist never winds up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from llm_trainer.planning.base import Planner, PlanRequest, PlanResult
from llm_trainer.primitives import Primitive
from llm_trainer.scene import ObjectState
from llm_trainer.tasks.registry import get_task


@dataclass
class OracleConfig:
    safe_height: float = 0.1  # [m] above an object's centre before descending onto it (MALMM)
    release_height: float = 0.02  # [m] gap between object bottom and surface when releasing (MALMM)
    transport_clearance: float = 0.08  # [m] extra height while carrying over the scene

    def validate(self) -> None:
        if not 0.02 <= self.safe_height <= 0.3:
            raise ValueError("safe_height must be within [0.02, 0.3] m")
        if not 0.0 <= self.release_height <= 0.1:
            raise ValueError("release_height must be within [0, 0.1] m")


HAND_HALF_SPAN = 0.1  # [m] half the Franka Hand's length along the finger axis
HAND_HALF_DEPTH = 0.03  # [m] half its thickness across it
HAND_BOTTOM_ABOVE_TCP = 0.045  # [m] the hand body starts this far above the tool centre point


def symmetry_period(size: tuple[float, float, float]) -> float:
    return math.pi / 2 if abs(size[0] - size[1]) < 1e-3 else math.pi


def symmetric_yaw(yaw: float, size: tuple[float, float, float], reference: float) -> float:
    """The grasp yaw equivalent to ``yaw`` under the object's footprint symmetry, nearest ``reference``."""
    period = symmetry_period(size)
    k = round((reference - yaw) / period)
    return yaw + k * period


def hand_clearance(centre: tuple[float, float], yaw: float, hand_bottom_z: float, others: list[ObjectState]) -> float:
    """Smallest horizontal gap between the hand's footprint at a grasp and any object taller than the hand's bottom.

    The hand is 0.2 m long across its fingers: grasping a block next to a tall stack with the finger
    axis pointing at the stack drives the hand into it, so the grasp yaw is chosen to avoid that.
    """
    axis = (-math.sin(yaw), math.cos(yaw))  # the fingers close along the hand's y axis
    best = math.inf
    for o in others:
        if o.top_z <= hand_bottom_z:
            continue
        dx, dy = o.position[0] - centre[0], o.position[1] - centre[1]
        along = dx * axis[0] + dy * axis[1]
        across = -dx * axis[1] + dy * axis[0]
        gap_along = max(abs(along) - HAND_HALF_SPAN, 0.0)
        gap_across = max(abs(across) - HAND_HALF_DEPTH, 0.0)
        radius = 0.5 * math.hypot(o.size[0], o.size[1])
        best = min(best, math.hypot(gap_along, gap_across) - radius)
    return best


def choose_grasp_yaw(obj: ObjectState, others: list[ObjectState], reference: float, z: float) -> float:
    """Of the object's symmetric grasp yaws, the one with most room for the hand (ties: nearest ``reference``)."""
    period = symmetry_period(obj.size)
    base = symmetric_yaw(obj.yaw, obj.size, reference)
    candidates = [base + k * period for k in (-1, 0, 1) if abs(base + k * period - reference) <= math.pi / 2 + 1e-9]
    bottom = z + HAND_BOTTOM_ABOVE_TCP

    def score(y: float) -> tuple[float, float]:
        room = min(hand_clearance(obj.position[:2], y, bottom, others), 0.05)  # beyond 5 cm, room is room
        return (round(room, 3), -abs(y - reference))

    return max(candidates, key=score)


class OraclePlanner(Planner):
    name = "oracle"

    def __init__(self, config: OracleConfig | None = None):
        self.config = config or OracleConfig()

    def propose(self, request: PlanRequest) -> PlanResult:
        if not request.task_name:
            return PlanResult(False, [], self.name, "the oracle needs the task name (it reads the task's goal)")
        task = get_task(request.task_name)
        scene = request.scene
        steps = task.oracle_subgoals(scene, request.goal)
        cfg = self.config
        plan: list[Primitive] = [Primitive.open()]
        # Grasp yaws are picked near the neutral wrist (yaw 0, the home pose), never chained from the
        # previous grasp, so the last joint cannot wind toward its limit over a long plan.
        neutral_yaw = 0.0
        # Where each object is as the plan unfolds: later grasps must see the stacks built earlier.
        current = {o.name: o for o in scene.objects}
        for step in steps:
            obj: ObjectState = current[step.obj]
            others = [o for n, o in current.items() if n != obj.name]
            x, y, z = obj.position
            grasp_yaw = choose_grasp_yaw(obj, others, neutral_yaw, z)
            approach_z = z + cfg.safe_height
            plan += [
                Primitive.move((x, y, approach_z), grasp_yaw),
                Primitive.move((x, y, z), grasp_yaw),
                Primitive.close(obj.name),
            ]
            place_z = step.place_z + obj.size[2] / 2 + cfg.release_height
            tallest = max([o.top_z for o in others] + [scene.table_height])
            carry_z = max(approach_z, place_z + cfg.safe_height, tallest + obj.size[2] + cfg.transport_clearance)
            if step.place_yaw is None:
                place_yaw = grasp_yaw
            else:  # turn the held object onto the target's yaw, the short way
                place_yaw = grasp_yaw + (symmetric_yaw(step.place_yaw, obj.size, obj.yaw) - obj.yaw)
            # The gripper is symmetric under a half turn: keep the wrist within a quarter turn of neutral.
            place_yaw = math.remainder(place_yaw, math.pi)
            tx, ty = step.place_xy
            plan += [
                Primitive.move((x, y, carry_z), grasp_yaw),
                Primitive.move((tx, ty, carry_z), place_yaw),
                Primitive.move((tx, ty, place_z), place_yaw),
                Primitive.open(),
                Primitive.move((tx, ty, place_z + cfg.safe_height), place_yaw),
            ]
            placed_yaw = obj.yaw + (place_yaw - grasp_yaw)
            current[obj.name] = replace(obj, position=(tx, ty, step.place_z + obj.size[2] / 2), yaw=placed_yaw)
        return PlanResult(True, plan, self.name)
