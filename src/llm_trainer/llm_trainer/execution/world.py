"""The world as a plan unfolds: where objects are, what the hand holds, and which contacts each move may make.

A pick-and-place plan touches objects on purpose: the fingers close around the object named by
``close_gripper``, a held object is lowered onto a surface, the fingers are still around an object
right after releasing it. The executor plans every motion before the first one runs, so it predicts
the scene along the plan (like the oracle does): a grasped object rides with the hand (attached at
its pose relative to the TCP, centred between the fingers), a released object drops onto whatever is
under it. From that, ``WorldModel.context_for_move`` gives each ``move_gripper`` its
``CollisionContext``:

- the fingers may touch the object of the next ``close_gripper`` (approach and descent) and, on
  the first move after an ``open_gripper`` (the retreat), the object it released;
- an object's *hosts* are what it rests on or sits inside (the block below it, the bin around it:
  objects under its centre that reach from below its bottom up to at most ``SUPPORT_BAND`` under
  it, or above it). The scene gives objects as bounding boxes only, and a bin's box is solid to the
  planner, so the whole hand may touch the hosts of the object it approaches, lifts or releases, and
  of the place it lowers a held object to;
- a held object may touch its hosts at the pick (the lift: the first move after the grasp) and the
  hosts of where it is put (the last move before the release), the table included;
- everything else, the table, other objects and the arm itself, is an obstacle.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from llm_trainer import grasp
from llm_trainer.grasp import GRASP_REACH
from llm_trainer.motion.collision import TABLE, Attachment, Box, CollisionContext
from llm_trainer.motion.kinematics import top_down_rotation
from llm_trainer.primitives import Primitive, PrimitiveKind
from llm_trainer.scene import SceneState
from llm_trainer.sim import panda_description as panda

#: How far (m) a surface may lie below an object's bottom and still count as what it rests on / is put on.
SUPPORT_BAND = 0.05
#: [m] where the executor's TCP may be off the planned one (its position tolerance): added to the reach.
TCP_SLACK = 0.005


@dataclass(frozen=True)
class GripperEvent:
    """The next gripper primitive after a move: ``kind`` and the object a close names (or infers)."""

    kind: PrimitiveKind | None
    object_name: str = ""


def next_gripper_events(plan: list[Primitive]) -> list[GripperEvent]:
    """For every index: the next gripper primitive after it (kind None when there is none)."""
    out: list[GripperEvent] = [GripperEvent(None)] * len(plan)
    event = GripperEvent(None)
    for i in range(len(plan) - 1, -1, -1):
        out[i] = event
        if plan[i].kind != PrimitiveKind.MOVE_GRIPPER:
            event = GripperEvent(plan[i].kind, plan[i].object_name)
    return out


class WorldModel:
    """Objects as boxes plus the gripper state, updated primitive by primitive."""

    def __init__(self, scene: SceneState | None, *, open_width: float = 2 * panda.FINGER_TRAVEL):
        self.scene = scene
        self.table_height = float(scene.table_height) if scene else 0.0
        self.boxes: dict[str, Box] = {o.name: Box.from_object(o) for o in scene.objects} if scene else {}
        self.held: Attachment | None = None
        self.pick_support: frozenset[str] = frozenset()  # hosts of the held object where it was picked
        self.just_released: frozenset[str] = frozenset()
        self.released_hosts: frozenset[str] = frozenset()
        self.open_width = open_width
        self.finger_width = scene.gripper_width if scene else open_width

    # ------------------------------------------------------------------ queries
    def object_sizes(self) -> list[tuple[str, tuple[float, float, float]]]:
        return [(n, b.size) for n, b in self.boxes.items()]

    def object_at(self, point: np.ndarray, reach: float = GRASP_REACH) -> str | None:
        """The object the closing fingers take at ``point`` (``grasp.object_at_tcp``), or None."""
        return grasp.object_at_tcp(point, self._object_boxes(), reach=reach)

    def _object_boxes(self) -> list[grasp.ObjectBox]:
        return [(n, b.position, b.yaw, b.size) for n, b in self.boxes.items()]

    def hosts(self, box: Box, exclude: str = "") -> frozenset[str]:
        """What ``box`` rests on or sits inside (see the module docstring); TABLE when near the table."""
        names = {
            n
            for n, b in self.boxes.items()
            if n not in (box.name, exclude)
            and b.contains_xy(box.position[0], box.position[1], min(box.size[0], box.size[1]) / 2)
            and b.bottom_z <= box.bottom_z + 0.01
            and b.top_z >= box.bottom_z - SUPPORT_BAND
        }
        if box.bottom_z - self.table_height <= SUPPORT_BAND:
            names.add(TABLE)
        return frozenset(names)

    def obstacles(self) -> tuple[Box, ...]:
        held = self.held.name if self.held else None
        return tuple(b for n, b in self.boxes.items() if n != held)

    # ------------------------------------------------------------------ events
    def close(self, object_name: str, tcp_position: np.ndarray, yaw: float) -> str | None:
        """The gripper closes at a TCP pose; returns the object it holds now (None: nothing there)."""
        reach = GRASP_REACH + TCP_SLACK
        name = object_name if object_name in self.boxes else self.object_at(tcp_position, reach)
        if name is None or grasp.object_at_tcp(tcp_position, self._object_boxes(), reach=reach, name=name) is None:
            # Nothing between the fingers where they close (or the named object is elsewhere).
            self.finger_width = 0.0
            self.held = None
            self.pick_support = frozenset()
            return None
        box = self.boxes[name]
        rot = top_down_rotation(yaw)
        att = Attachment.from_poses(box, tcp_position, rot)
        # The closing fingers centre the object between them (along the hand's y axis).
        att = replace(att, position=(att.position[0], 0.0, att.position[2]))
        self.held = att
        self.pick_support = self.hosts(box)
        self.finger_width = min(self.open_width, self.extent_across_fingers(box, yaw))
        self.just_released = self.released_hosts = frozenset()
        return name

    def held_at_start(self, tcp_position: np.ndarray, yaw: float) -> str | None:
        """Attach the object the fingers already hold when a plan starts (None: nothing held).

        A plan may start with an object in the hand: dynamic replanning sends one primitive per
        request, so the lift after a ``close_gripper`` is a plan of its own. The scene says so
        through the gripper width: fingers stopped short of ``open_width`` on an object at the TCP
        whose width across the fingers matches that opening (``grasp.held_by_width``). Fingers closed
        on nothing, or open around an object they just released, hold nothing.
        """
        if self.scene is None:
            return None
        tcp = np.asarray(tcp_position, float)
        name = grasp.held_by_width(tcp, yaw, self.finger_width, self.open_width, self._object_boxes(),
                                   reach=GRASP_REACH + TCP_SLACK)  # fmt: skip
        if name is None:
            return None
        width = self.finger_width
        held = self.close(name, tcp, yaw)
        self.finger_width = width  # the measured opening, not the box's nominal width
        return held

    def open(self, tcp_position: np.ndarray, yaw: float) -> str | None:
        """The gripper opens at a TCP pose: a held object drops onto what is under it."""
        self.finger_width = self.open_width
        if self.held is None:
            self.just_released = self.released_hosts = frozenset()
            return None
        box = self.held.world_box(np.asarray(tcp_position, float), top_down_rotation(yaw))
        name = box.name
        self.held = None
        tops = [
            b.top_z
            for n, b in self.boxes.items()
            if n != name and b.contains_xy(box.position[0], box.position[1]) and b.top_z <= box.bottom_z + 0.01
        ]
        rest = max(tops + [self.table_height])
        self.boxes[name] = replace(box, position=(box.position[0], box.position[1], rest + box.size[2] / 2))
        self.just_released = frozenset({name})
        self.released_hosts = self.hosts(self.boxes[name]) - {TABLE}
        return name

    @staticmethod
    def extent_across_fingers(box: Box, yaw: float) -> float:
        """Width of ``box`` along the fingers' closing axis for a top-down grasp at ``yaw``."""
        return grasp.extent_across_fingers(box.size, box.yaw, yaw)

    # ------------------------------------------------------------------ contexts
    def context_for_move(
        self,
        *,
        approach_target: str | None,
        first_after_grasp: bool,
        first_after_release: bool = False,
        place_at: tuple[np.ndarray, float] | None,
        workspace: tuple[float, float, float, float, float, float] | None,
    ) -> CollisionContext:
        """The collision context of the next move (see the module docstring for the rules)."""
        fingers: set[str] = set(self.just_released) if first_after_release else set()
        gripper: set[str] = set(self.released_hosts) if first_after_release else set()
        if self.held is None and approach_target and approach_target in self.boxes:
            fingers.add(approach_target)
            gripper |= self.hosts(self.boxes[approach_target]) - {TABLE}
        held_may: set[str] = set()
        if self.held is not None:
            if first_after_grasp:
                held_may |= self.pick_support
                gripper |= self.pick_support - {TABLE}
            if place_at is not None:
                target, yaw = place_at
                box = self.held.world_box(np.asarray(target, float), top_down_rotation(yaw))
                place_hosts = self.hosts(box, exclude=self.held.name)
                held_may |= place_hosts
                gripper |= place_hosts - {TABLE}
        return CollisionContext(
            obstacles=self.obstacles(),
            attached=self.held,
            finger_width=self.finger_width,
            fingers_may_touch=frozenset(fingers),
            gripper_may_touch=frozenset(gripper),
            held_may_touch=frozenset(held_may),
            workspace=workspace,
        )

    # ------------------------------------------------------------------ live scene
    def live_context(self, scene: SceneState, predicted: CollisionContext) -> CollisionContext:
        """The predicted context with the other objects where a live scene says they are.

        The held object keeps its predicted attachment and is never an obstacle: a scene that lags
        the arm (a topic sampled mid-motion) would otherwise put it somewhere beside the hand.
        """
        held = predicted.attached.name if predicted.attached is not None else None
        boxes = tuple(Box.from_object(o) for o in scene.objects if o.name != held)
        return replace(predicted, obstacles=boxes)
