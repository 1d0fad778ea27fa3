"""The scripted oracle: writes a plan from the true scene the way MALMM's recipe does.

For each pick-and-place step of the task (``Task.oracle_subgoals``): above the object (safe
height), down to the grasp, close, raise, above the destination, lower until the object's bottom
is ``release_height`` above the surface (for a container: its rim, so the object drops in), open,
raise. The grasp is at the object's centre (MALMM), lowered for tall objects so the hand body
stays above them and raised for flat ones so the fingertips stay off the table; a task may list
other grasps (a ring is held by one of its bars) and the oracle takes the one with the most room
for the hand and the open fingers (neighbours, container walls). The gripper yaw follows the
object's yaw, reduced by the object's symmetry to the turn nearest the neutral wrist so the wrist
never winds up. At the release the hand is lifted over whatever it would come down on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from llm_trainer.planning.base import Planner, PlanRequest, PlanResult
from llm_trainer.primitives import Primitive
from llm_trainer.scene import ObjectState
from llm_trainer.tasks.base import Grasp
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
FINGER_HALF_SPAN = 0.058  # [m] the open fingers' outer faces, from the TCP along the finger axis
FINGER_HALF_DEPTH = 0.011  # [m] half the fingers' thickness across that axis
FINGERTIP_BELOW_TCP = 0.01  # [m] the fingertips reach this far below the TCP
#: Tall objects are held this far below their top, so the hand body stays above them.
GRASP_BELOW_TOP = 0.035
#: Flat objects are held at least this far above their bottom, so the fingertips stay off the surface below.
GRASP_ABOVE_BOTTOM = FINGERTIP_BELOW_TCP + 0.006


def symmetry_period(size: tuple[float, float, float]) -> float:
    return math.pi / 2 if abs(size[0] - size[1]) < 1e-3 else math.pi


def symmetric_yaw(yaw: float, size: tuple[float, float, float], reference: float) -> float:
    """The grasp yaw equivalent to ``yaw`` under the object's footprint symmetry, nearest ``reference``."""
    period = symmetry_period(size)
    k = round((reference - yaw) / period)
    return yaw + k * period


def _corners(centre, yaw: float, half_x: float, half_y: float) -> list[tuple[float, float]]:
    c, s = math.cos(yaw), math.sin(yaw)
    return [
        (centre[0] + c * dx - s * dy, centre[1] + s * dx + c * dy)
        for dx, dy in ((half_x, half_y), (-half_x, half_y), (-half_x, -half_y), (half_x, -half_y))
    ]


def _segment_distance(p, a, b) -> float:
    ax, ay = b[0] - a[0], b[1] - a[1]
    t = ((p[0] - a[0]) * ax + (p[1] - a[1]) * ay) / max(ax * ax + ay * ay, 1e-12)
    t = min(max(t, 0.0), 1.0)
    return math.hypot(p[0] - a[0] - t * ax, p[1] - a[1] - t * ay)


def rect_clearance(centre, yaw: float, half_x: float, half_y: float, other: ObjectState) -> float:
    """Signed horizontal room between a rectangle of the hand and ``other``'s footprint [m].

    Outside ``other``: the gap between the two rectangles (negative: they overlap by that much).
    If the rectangle's centre lies inside ``other``'s footprint (a container the hand reaches into),
    the room left to its walls (negative: the hand pokes through them).
    """
    mine = _corners(centre, yaw, half_x, half_y)
    hx, hy = other.size[0] / 2, other.size[1] / 2
    theirs = _corners(other.position[:2], other.yaw, hx, hy)
    c, s = math.cos(-other.yaw), math.sin(-other.yaw)

    def local(p):
        dx, dy = p[0] - other.position[0], p[1] - other.position[1]
        return c * dx - s * dy, s * dx + c * dy

    lx, ly = local(centre)
    if abs(lx) < hx and abs(ly) < hy:
        return min(min(hx - abs(qx), hy - abs(qy)) for qx, qy in map(local, mine))
    # Separating axes of two rectangles: their four edge normals.
    overlap = math.inf
    for angle in (yaw, yaw + math.pi / 2, other.yaw, other.yaw + math.pi / 2):
        ax, ay = math.cos(angle), math.sin(angle)
        pa = [x * ax + y * ay for x, y in mine]
        pb = [x * ax + y * ay for x, y in theirs]
        gap = max(min(pb) - max(pa), min(pa) - max(pb))
        if gap >= 0:
            overlap = None
            break
        overlap = min(overlap, -gap)
    if overlap is not None:
        return -overlap
    edges_a = list(zip(mine, mine[1:] + mine[:1]))
    edges_b = list(zip(theirs, theirs[1:] + theirs[:1]))
    return min(
        min(_segment_distance(p, a, b) for p in mine for a, b in edges_b),
        min(_segment_distance(p, a, b) for p in theirs for a, b in edges_a),
    )


def hand_clearance(centre: tuple[float, float], yaw: float, hand_bottom_z: float, others: list[ObjectState]) -> float:
    """Smallest horizontal gap between the hand's footprint at a grasp and any object taller than the hand's bottom.

    The hand is 0.2 m long across its fingers: grasping a block next to a tall stack with the finger
    axis pointing at the stack drives the hand into it, so the grasp yaw is chosen to avoid that.
    """
    best = math.inf
    for o in others:
        if o.top_z <= hand_bottom_z:
            continue
        best = min(best, rect_clearance(centre, yaw, HAND_HALF_DEPTH, HAND_HALF_SPAN, o))
    return best


def finger_clearance(centre: tuple[float, float], yaw: float, tcp_z: float, others: list[ObjectState]) -> float:
    """Smallest horizontal gap between the open fingers at a grasp and the objects at their height.

    This is what decides whether the fingers fit between an object and a container's walls or a
    neighbour standing next to it.
    """
    low, high = tcp_z - FINGERTIP_BELOW_TCP, tcp_z + HAND_BOTTOM_ABOVE_TCP
    best = math.inf
    for o in others:
        if o.top_z <= low or o.bottom_z >= high:
            continue
        best = min(best, rect_clearance(centre, yaw, FINGER_HALF_DEPTH, FINGER_HALF_SPAN, o))
    return best


def grasp_room(centre: tuple[float, float], yaw: float, tcp_z: float, others: list[ObjectState]) -> float:
    """Room for the hand and fingers at a grasp; beyond 5 cm, room is room."""
    room = min(
        hand_clearance(centre, yaw, tcp_z + HAND_BOTTOM_ABOVE_TCP, others),
        finger_clearance(centre, yaw, tcp_z, others),
    )
    return round(min(room, 0.05), 3)


def release_floor(centre: tuple[float, float], yaw: float, others: list[ObjectState], margin: float = 0.008) -> float:
    """The lowest TCP height at which the open hand clears everything under it at a release pose.

    Objects under the fingers' footprint keep the fingertips ``margin`` above their tops, objects
    under the hand's footprint keep the hand body above them. This only matters where the hand
    reaches over something taller than the surface it puts the object on: the items already put
    into a small container, a tall neighbour of the target.
    """
    floor = -math.inf
    for o in others:
        if rect_clearance(centre, yaw, FINGER_HALF_DEPTH, FINGER_HALF_SPAN, o) < margin:
            floor = max(floor, o.top_z + FINGERTIP_BELOW_TCP + margin)
        if rect_clearance(centre, yaw, HAND_HALF_DEPTH, HAND_HALF_SPAN, o) < margin:
            floor = max(floor, o.top_z - HAND_BOTTOM_ABOVE_TCP + margin)
    return floor


def default_grasp_z(obj: ObjectState) -> float:
    """At the object's centre (MALMM); below the top of an object too tall for the hand to reach its
    centre; above the bottom of one so flat that the fingertips would touch what it lies on."""
    return max(obj.position[2], obj.top_z - GRASP_BELOW_TOP, obj.bottom_z + GRASP_ABOVE_BOTTOM)


def choose_grasp_yaw(obj: ObjectState, others: list[ObjectState], reference: float, z: float) -> float:
    """Of the object's symmetric grasp yaws, the one with most room for the hand (ties: nearest ``reference``)."""
    period = symmetry_period(obj.size)
    base = symmetric_yaw(obj.yaw, obj.size, reference)
    candidates = [base + k * period for k in (-1, 0, 1) if abs(base + k * period - reference) <= math.pi / 2 + 1e-9]
    return max(candidates, key=lambda y: (grasp_room(obj.position[:2], y, z, others), -abs(y - reference)))


@dataclass
class GraspChoice:
    point: tuple[float, float, float]  # where the TCP closes
    yaw: float  # the hand's yaw there
    offset: tuple[float, float]  # the grasp point from the object's centre, in the object's frame


def choose_grasp(obj: ObjectState, grasps: tuple[Grasp, ...], others: list[ObjectState], reference: float):
    """The grasp for a pick step: of the task's listed grasps (or the centre grasp), the one with most room."""
    if not grasps:
        z = default_grasp_z(obj)
        yaw = choose_grasp_yaw(obj, others, reference, z)
        return GraspChoice((obj.position[0], obj.position[1], z), yaw, (0.0, 0.0))
    c, s = math.cos(obj.yaw), math.sin(obj.yaw)
    options = []
    for g in grasps:
        dx, dy, dz = g.offset
        z = max(obj.position[2] + dz, obj.bottom_z + GRASP_ABOVE_BOTTOM)
        point = (obj.position[0] + c * dx - s * dy, obj.position[1] + s * dx + c * dy, z)
        yaw = reference + math.remainder(obj.yaw + g.yaw - reference, math.pi)
        options.append(GraspChoice(point, yaw, (dx, dy)))
    return max(options, key=lambda o: (grasp_room(o.point[:2], o.yaw, o.point[2], others), -abs(o.yaw - reference)))


class OraclePlanner(Planner):
    name = "oracle"

    def __init__(self, config: OracleConfig | None = None):
        self.config = config or OracleConfig()

    def propose(self, request: PlanRequest) -> PlanResult:
        if not request.task_name:
            return PlanResult(False, [], self.name, "the oracle needs the task name (it reads the task's goal)")
        task = get_task(request.task_name)
        if not task.oracle_solvable:
            return PlanResult(False, [], self.name, f"task {task.name!r} has no oracle solution; it is for LLM plans")
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
            grasp = choose_grasp(obj, step.grasps, others, neutral_yaw)
            x, y, z = grasp.point
            grasp_yaw = grasp.yaw
            above_bottom = z - obj.bottom_z  # the grasp's height above the object's bottom
            approach_z = z + cfg.safe_height
            plan += [
                Primitive.move((x, y, approach_z), grasp_yaw),
                Primitive.move((x, y, z), grasp_yaw),
                Primitive.close(obj.name),
            ]
            release = cfg.release_height if step.release_height is None else step.release_height
            place_z = step.place_z + release + above_bottom
            if step.place_yaw is None:
                place_yaw = grasp_yaw
            else:  # turn the held object onto the target's yaw, the short way
                place_yaw = grasp_yaw + (symmetric_yaw(step.place_yaw, obj.size, obj.yaw) - obj.yaw)
            # The gripper is symmetric under a half turn: keep the wrist within a quarter turn of neutral.
            place_yaw = math.remainder(place_yaw, math.pi)
            # The executor turns the hand the short way (mod a half turn); the object turns with it.
            placed_yaw = obj.yaw + math.remainder(place_yaw - grasp_yaw, math.pi)
            cx, cy = step.place_xy  # where the object's centre goes; the hand holds it at the grasp offset
            c, s = math.cos(placed_yaw), math.sin(placed_yaw)
            ox, oy = grasp.offset
            tx, ty = cx + c * ox - s * oy, cy + s * ox + c * oy
            place_z = max(place_z, release_floor((tx, ty), place_yaw, others))
            tallest = max([o.top_z for o in others] + [scene.table_height])
            carry_z = max(
                approach_z,
                place_z + cfg.safe_height,
                tallest + above_bottom + obj.size[2] / 2 + cfg.transport_clearance,
            )
            plan += [
                Primitive.move((x, y, carry_z), grasp_yaw),
                Primitive.move((tx, ty, carry_z), place_yaw),
                Primitive.move((tx, ty, place_z), place_yaw),
                Primitive.open(),
                Primitive.move((tx, ty, place_z + cfg.safe_height), place_yaw),
            ]
            current[obj.name] = replace(obj, position=(cx, cy, step.place_z + obj.size[2] / 2), yaw=placed_yaw)
        return PlanResult(True, plan, self.name)
