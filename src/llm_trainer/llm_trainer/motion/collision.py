"""Collision model for motion planning: the Panda, the table and the scene's objects as MuJoCo geometry.

The arm is the same body tree the simulator uses (``llm_trainer.sim.panda_description``: capsule
links, box hand and fingers), so what the planner calls free is free in the simulator. Scene objects
are boxes (centre, yaw, full size, as in ``SceneState``) on mocap bodies, so they can move between
motions without rebuilding the model; a held object is a box fixed to the hand.

A configuration *collides* when any robot part comes closer than ``margin`` to something it must not
touch. What may touch what is the ``CollisionContext`` of one motion: the fingers may touch the object
they are about to grasp or have just released, a held object may touch the surface it was picked from
and the one it is released onto. Everything else (the table, other objects, the arm's own links) is
an obstacle.

Checks are ``mj_kinematics`` + ``mj_collision`` on a small model: about 10 us each here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import mujoco
import numpy as np

from llm_trainer.sim import panda_description as panda

TABLE = "table"

# Collision groups as MuJoCo contype/conaffinity bits; a pair is tested when (ct1 & ca2) or (ct2 & ca1).
_WORLD_CT, _WORLD_CA = 1, 0  # table and objects: every robot part, never each other
_PROX_CT, _PROX_CA = 8, 1 | 4  # link1-link3: the world and the distal group (self-collision)
_BASE_CT, _BASE_CA = 8, 4  # link0 stands on the table: only the distal group
_ELBOW_CT, _ELBOW_CA = 16, 1  # link4: the world only (it is next to both groups)
_DIST_CT, _DIST_CA = 4, 1 | 8  # link5-link7, hand, fingers, a held object: the world and the proximal group

_PROXIMAL_BODIES = ("link1", "link2", "link3")
_DISTAL_BODIES = ("link5", "link6", "link7", "hand", "finger1", "finger2")
FINGER_BODIES = ("finger1", "finger2")
GRIPPER_BODIES = ("hand", "finger1", "finger2")

#: A big slab under the table top: the arm never goes below the table plane anywhere.
_TABLE_HALF = (1.5, 1.5, 0.05)


@dataclass(frozen=True)
class Box:
    """An obstacle: centre [m], yaw about z [rad] and full length/width/height [m]."""

    name: str
    position: tuple[float, float, float]
    yaw: float
    size: tuple[float, float, float]

    @classmethod
    def from_object(cls, obj) -> Box:
        """From a ``llm_trainer.scene.ObjectState``."""
        p, s = obj.position, obj.size
        return cls(
            obj.name, (float(p[0]), float(p[1]), float(p[2])), float(obj.yaw), (float(s[0]), float(s[1]), float(s[2]))
        )

    @property
    def top_z(self) -> float:
        return self.position[2] + self.size[2] / 2

    @property
    def bottom_z(self) -> float:
        return self.position[2] - self.size[2] / 2

    def contains_xy(self, x: float, y: float, margin: float = 0.0) -> bool:
        """Whether (x, y) lies over the box's footprint (grown by ``margin``)."""
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        dx, dy = x - self.position[0], y - self.position[1]
        u, v = c * dx + s * dy, -s * dx + c * dy
        return abs(u) <= self.size[0] / 2 + margin and abs(v) <= self.size[1] / 2 + margin


@dataclass(frozen=True)
class Attachment:
    """An object held in the hand: its size and its pose in the TCP frame (position, rotation matrix)."""

    name: str
    size: tuple[float, float, float]
    position: tuple[float, float, float]
    rotation: tuple[float, ...]  # row-major 3x3

    @staticmethod
    def from_poses(box: Box, tcp_position: np.ndarray, tcp_rotation: np.ndarray) -> Attachment:
        """The attachment of ``box`` (world pose) to a TCP at the given world pose."""
        c, s = math.cos(box.yaw), math.sin(box.yaw)
        r_obj = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
        rel_p = tcp_rotation.T @ (np.asarray(box.position, float) - np.asarray(tcp_position, float))
        rel_r = tcp_rotation.T @ r_obj
        return Attachment(box.name, box.size, tuple(float(v) for v in rel_p), tuple(float(v) for v in rel_r.ravel()))

    def world_box(self, tcp_position: np.ndarray, tcp_rotation: np.ndarray) -> Box:
        """Where the object is when the TCP is at the given pose (its yaw from the rotation's x axis)."""
        p = np.asarray(tcp_position, float) + tcp_rotation @ np.asarray(self.position)
        r = tcp_rotation @ np.asarray(self.rotation).reshape(3, 3)
        return Box(self.name, (float(p[0]), float(p[1]), float(p[2])), math.atan2(r[1, 0], r[0, 0]), self.size)


@dataclass
class CollisionContext:
    """The world during one motion and what may touch what."""

    obstacles: tuple[Box, ...] = ()
    attached: Attachment | None = None
    finger_width: float = 2 * panda.FINGER_TRAVEL
    fingers_may_touch: frozenset[str] = frozenset()  # object names the fingers (and pads) may touch
    gripper_may_touch: frozenset[str] = frozenset()  # object names the whole hand may touch (containers)
    held_may_touch: frozenset[str] = frozenset()  # object names (or TABLE) the held object may touch
    workspace: tuple[float, float, float, float, float, float] | None = None  # TCP box, checked by is_free
    max_tool_tilt: float | None = None  # [rad] from pointing straight down, checked by is_free

    def describe(self) -> str:
        parts = []
        if self.attached:
            parts.append(f"holding {self.attached.name}")
        if self.fingers_may_touch:
            parts.append(f"fingers may touch {', '.join(sorted(self.fingers_may_touch))}")
        if self.gripper_may_touch:
            parts.append(f"hand may touch {', '.join(sorted(self.gripper_may_touch))}")
        if self.held_may_touch:
            parts.append(f"held object may touch {', '.join(sorted(self.held_may_touch))}")
        return "; ".join(parts) or "no contact allowed"


@dataclass(frozen=True)
class Contact:
    robot_part: str
    other: str
    distance: float  # signed [m]; negative = penetration

    def describe(self) -> str:
        if self.distance < 0:
            return f"{self.robot_part} hits {self.other} ({-self.distance * 1000:.1f} mm deep)"
        return f"{self.robot_part} comes within {self.distance * 1000:.1f} mm of {self.other}"


@dataclass
class PathCollision:
    """The first colliding configuration along a joint path."""

    fraction: float  # 0..1 along the path (by joint-space arc length)
    q: np.ndarray
    contacts: list[Contact]
    outside_workspace: bool = False

    def describe(self) -> str:
        if self.outside_workspace:
            what = "the TCP leaves the safety workspace (or the tool tilts too far)"
        else:
            what = "; ".join(c.describe() for c in self.contacts[:3])
        return f"{what} at {100 * self.fraction:.0f}% of the path"


def _fmt(v: Iterable[float]) -> str:
    return " ".join(f"{float(x):.6g}" for x in v)


class CollisionChecker:
    """Collision queries for one set of object shapes; poses and allowed contacts change per motion.

    One instance per thread (it owns a MuJoCo data buffer). ``objects`` are (name, full size) pairs.
    """

    def __init__(
        self,
        objects: Sequence[tuple[str, tuple[float, float, float]]] = (),
        *,
        table_height: float = 0.0,
        margin: float = 0.005,
        self_collision: bool = True,
    ):
        self.object_sizes = {name: tuple(float(v) for v in size) for name, size in objects}
        self.table_height = float(table_height)
        self.margin = float(margin)
        self.self_collision = self_collision
        self.model = self._build()
        self.data = mujoco.MjData(self.model)
        m = self.model
        self._qadr = np.array([m.jnt_qposadr[m.joint(n).id] for n in panda.JOINT_NAMES])
        self._fadr = np.array([m.jnt_qposadr[m.joint(n).id] for n in panda.FINGER_JOINT_NAMES])
        self._tcp = m.site("tcp").id
        self._table = m.geom("plan_table").id
        names = list(self.object_sizes)
        self._obstacle_geom = {n: m.geom(f"obstacle_{i}").id for i, n in enumerate(names)}
        self._obstacle_mocap = {n: int(m.body_mocapid[m.body(f"obstacle_body_{i}").id]) for i, n in enumerate(names)}
        self._held_geom = {n: m.geom(f"held_{i}").id for i, n in enumerate(names)}
        self._held_body = {n: m.body(f"held_body_{i}").id for i, n in enumerate(names)}
        # The bits each geom was compiled with; set_context switches geoms off (0) and back to these.
        self._bits_on = {g: (int(m.geom_contype[g]), int(m.geom_conaffinity[g])) for g in range(m.ngeom)}
        self._geom_names = self._name_geoms()
        self._finger_geoms = [g for g in range(m.ngeom) if m.body(int(m.geom_bodyid[g])).name in FINGER_BODIES]
        self._gripper_geoms = [g for g in range(m.ngeom) if m.body(int(m.geom_bodyid[g])).name in GRIPPER_BODIES]
        self.context = CollisionContext()
        self._allowed = np.zeros((m.ngeom, m.ngeom), dtype=bool)
        self.set_context(CollisionContext())

    # ------------------------------------------------------------------ model
    def _build(self) -> mujoco.MjModel:
        """The planning model: contype/conaffinity/margin are set on the spec, before compiling, because
        MuJoCo also filters by per-body bits that it computes at compile time."""
        tz = self.table_height - _TABLE_HALF[2]
        xml = f"""<mujoco model="planning_scene"><compiler angle="radian" autolimits="true"/>
        <default>{panda.panda_mjcf_defaults()}</default>
        <worldbody><geom name="plan_table" type="box" pos="0 0 {tz}" size="{_fmt(_TABLE_HALF)}"/>
        {panda.panda_mjcf_body()}</worldbody></mujoco>"""
        spec = mujoco.MjSpec.from_string(xml)
        for body in spec.bodies:
            for geom in body.geoms:
                if geom.contype == 0 and geom.conaffinity == 0:
                    continue  # visual only
                if body.name == "world":
                    ct, ca = _WORLD_CT, _WORLD_CA
                elif body.name == "link0":
                    ct, ca = _BASE_CT, _BASE_CA
                elif body.name in _PROXIMAL_BODIES:
                    ct, ca = _PROX_CT, _PROX_CA
                elif body.name == "link4":
                    ct, ca = _ELBOW_CT, _ELBOW_CA
                elif body.name in _DISTAL_BODIES:
                    ct, ca = _DIST_CT, _DIST_CA
                else:  # pragma: no cover - a body the groups do not know
                    raise RuntimeError(f"collision model: no group for body {body.name!r}")
                geom.contype, geom.conaffinity = self._bits(body.name, ct, ca)
                geom.margin = self.margin
        hand = spec.body("hand")
        world = spec.worldbody
        box = mujoco.mjtGeom.mjGEOM_BOX
        for i, size in enumerate(self.object_sizes.values()):
            half = [v / 2 for v in size]
            obstacle = world.add_body(name=f"obstacle_body_{i}", mocap=True, pos=[0.0, 0.0, -10.0])
            obstacle.add_geom(
                name=f"obstacle_{i}", type=box, size=half, contype=_WORLD_CT, conaffinity=_WORLD_CA, margin=self.margin
            )
            # A held object rides on a body of its own under the hand, moved per grasp (body_pos/quat).
            ct, ca = self._bits("held", _DIST_CT, _DIST_CA)
            held = hand.add_body(name=f"held_body_{i}", pos=[0.0, 0.0, panda.TCP_OFFSET], mass=1e-3)
            held.add_geom(name=f"held_{i}", type=box, size=half, contype=ct, conaffinity=ca, margin=self.margin)
        return spec.compile()

    def _bits(self, body: str, ct: int, ca: int) -> tuple[int, int]:
        if self.self_collision:
            return ct, ca
        if body == "link0":
            return 0, 0
        return ct, ca & _WORLD_CT  # robot parts then only meet the world

    def _name_geoms(self) -> list[str]:
        m = self.model
        names = []
        ids = {g: n for n, g in self._obstacle_geom.items()}
        held = {g: n for n, g in self._held_geom.items()}
        for g in range(m.ngeom):
            if g == self._table:
                names.append(TABLE)
            elif g in ids:
                names.append(ids[g])
            elif g in held:
                names.append(f"held {held[g]}")
            else:
                geom_name = m.geom(g).name
                names.append(geom_name if geom_name.startswith("pad") else m.body(int(m.geom_bodyid[g])).name)
        return names

    # ------------------------------------------------------------------ context
    def set_context(self, context: CollisionContext) -> None:
        m, d = self.model, self.data
        placed = {b.name: b for b in context.obstacles}
        unknown = sorted(set(placed) - set(self._obstacle_geom))
        if unknown:
            raise ValueError(f"unknown object(s) {', '.join(unknown)}; build a new CollisionChecker")
        att = context.attached
        if att is not None and att.name not in self._held_geom:
            raise ValueError(f"unknown held object {att.name!r}; build a new CollisionChecker")
        for name, g in self._obstacle_geom.items():
            mocap = self._obstacle_mocap[name]
            box = placed.get(name)
            if box is None or (att is not None and att.name == name):
                self._enable(g, False)
                d.mocap_pos[mocap] = (0.0, 0.0, -10.0)
                continue
            if not np.allclose(box.size, self.object_sizes[name], atol=1e-6):
                raise ValueError(f"object {name!r} changed size; build a new CollisionChecker")
            self._enable(g, True)
            d.mocap_pos[mocap] = box.position
            d.mocap_quat[mocap] = (math.cos(box.yaw / 2), 0.0, 0.0, math.sin(box.yaw / 2))
        for name, g in self._held_geom.items():
            holding = att is not None and att.name == name
            self._enable(g, holding)
            if holding:
                # The hand frame and the TCP frame differ by TCP_OFFSET along z, nothing else.
                body = self._held_body[name]
                m.body_pos[body] = np.asarray(att.position) + np.array([0.0, 0.0, panda.TCP_OFFSET])
                quat = np.zeros(4)
                mujoco.mju_mat2Quat(quat, np.asarray(att.rotation, float))
                m.body_quat[body] = quat
        d.qpos[self._fadr] = np.clip(context.finger_width / 2, 0.0, panda.FINGER_TRAVEL)
        allowed = np.zeros((m.ngeom, m.ngeom), dtype=bool)
        for name in context.fingers_may_touch:
            if name in self._obstacle_geom:
                allowed[self._finger_geoms, self._obstacle_geom[name]] = True
        for name in context.gripper_may_touch:
            if name in self._obstacle_geom:
                allowed[self._gripper_geoms, self._obstacle_geom[name]] = True
        if att is not None:
            held = self._held_geom[att.name]
            for name in context.held_may_touch:
                other = self._table if name == TABLE else self._obstacle_geom.get(name)
                if other is not None:
                    allowed[held, other] = True
        self._allowed = allowed | allowed.T
        self.context = context

    def _enable(self, g: int, on: bool) -> None:
        self.model.geom_contype[g], self.model.geom_conaffinity[g] = self._bits_on[g] if on else (0, 0)

    # ------------------------------------------------------------------ queries
    def _update(self, q: np.ndarray) -> None:
        self.data.qpos[self._qadr] = q
        mujoco.mj_kinematics(self.model, self.data)
        mujoco.mj_collision(self.model, self.data)

    def contacts(self, q: np.ndarray) -> list[Contact]:
        """Every disallowed contact (closer than the margin) at ``q``, deepest first."""
        self._update(q)
        return self._disallowed()

    def _disallowed(self) -> list[Contact]:
        d = self.data
        if d.ncon == 0:
            return []
        pairs = d.contact.geom[: d.ncon]
        dist = d.contact.dist[: d.ncon]
        # MuJoCo may report box pairs a little beyond the margin: only closer than the margin counts.
        bad = ~self._allowed[pairs[:, 0], pairs[:, 1]] & (dist < self.margin)
        if not bad.any():
            return []
        out: dict[tuple[str, str], float] = {}
        for (g1, g2), dd in zip(pairs[bad], dist[bad]):
            a, b = self._geom_names[g1], self._geom_names[g2]
            if self._is_world(g1) and not self._is_world(g2):
                a, b = b, a
            key = (a, b)
            out[key] = min(out.get(key, math.inf), float(dd))
        return sorted((Contact(a, b, dd) for (a, b), dd in out.items()), key=lambda c: c.distance)

    def _is_world(self, g: int) -> bool:
        return g == self._table or self._geom_names[g] in self.object_sizes

    def in_workspace(self, tcp: np.ndarray, tool_z: float = -1.0) -> bool:
        """TCP inside the context's box and the tool within its tilt limit (``tool_z``: the tool axis' z)."""
        ctx = self.context
        if ctx.max_tool_tilt is not None and tool_z > -math.cos(ctx.max_tool_tilt):
            return False
        if ctx.workspace is None:
            return True
        x0, x1, y0, y1, z0, z1 = ctx.workspace
        return x0 <= tcp[0] <= x1 and y0 <= tcp[1] <= y1 and z0 <= tcp[2] <= z1

    def _pose_ok(self) -> bool:
        return self.in_workspace(self.data.site_xpos[self._tcp], float(self.data.site_xmat[self._tcp][8]))

    def is_free(self, q: np.ndarray) -> bool:
        """No disallowed contact and the TCP inside the context's workspace box."""
        self._update(q)
        if not self._pose_ok():
            return False
        d = self.data
        if d.ncon == 0:
            return True
        pairs = d.contact.geom[: d.ncon]
        bad = ~self._allowed[pairs[:, 0], pairs[:, 1]] & (d.contact.dist[: d.ncon] < self.margin)
        return not bool(bad.any())

    def segment_free(self, q0: np.ndarray, q1: np.ndarray, resolution: float = 0.02) -> bool:
        """Whether the straight joint-space segment is free, checked every ``resolution`` rad (end included)."""
        n = max(1, math.ceil(float(np.max(np.abs(q1 - q0))) / resolution))
        for i in range(1, n + 1):
            if not self.is_free(q0 + (q1 - q0) * (i / n)):
                return False
        return True

    def first_collision(
        self, path: np.ndarray, resolution: float = 0.02, *, check_start: bool = False
    ) -> PathCollision | None:
        """The first colliding configuration along the piecewise-linear joint path, or None."""
        path = np.asarray(path, float)
        seg = np.linalg.norm(np.diff(path, axis=0), axis=1) if len(path) > 1 else np.zeros(0)
        total = float(seg.sum()) or 1.0
        done = 0.0
        if check_start:
            hit = self.collision_at(path[0], 0.0)
            if hit:
                return hit
        for i in range(len(path) - 1):
            q0, q1 = path[i], path[i + 1]
            n = max(1, math.ceil(float(np.max(np.abs(q1 - q0))) / resolution))
            for k in range(1, n + 1):
                q = q0 + (q1 - q0) * (k / n)
                if not self.is_free(q):
                    hit = self.collision_at(q, (done + seg[i] * k / n) / total)
                    if hit:
                        return hit
            done += seg[i]
        return None

    def collision_at(self, q: np.ndarray, fraction: float) -> PathCollision | None:
        self._update(q)
        if not self._pose_ok():
            return PathCollision(fraction, q.copy(), [], outside_workspace=True)
        contacts = self._disallowed()
        return PathCollision(fraction, q.copy(), contacts) if contacts else None
