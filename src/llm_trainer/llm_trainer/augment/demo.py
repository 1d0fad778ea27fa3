"""The source demonstration: one recorded episode, as the hand's commanded poses on a time grid,
its gripper events and the scene it started from (what every annotation and warp works on)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from llm_trainer.augment.poses import Pose
from llm_trainer.scene import SceneState


@dataclass
class GripperEvent:
    index: int  # grid sample at which the command changes
    kind: str  # close | open
    object_name: str = ""  # close: the object grasped (from the demo's own primitive, else nearest)


@dataclass
class SourceDemo:
    episode_id: str
    task: str
    seed: int
    instruction: str
    poses: list[Pose]  # the hand's commanded pose per grid sample
    closed: np.ndarray  # (N,) bool: the gripper is commanded closed
    scene: SceneState  # where the objects were when the demo began
    fps: float
    events: list[GripperEvent] = field(default_factory=list)
    goal: dict = field(default_factory=dict)  # the task's goal: which object plays which role

    @property
    def objects(self) -> dict[str, Pose]:
        return {o.name: Pose.of(o.position, o.yaw) for o in self.scene.objects}

    @classmethod
    def from_bag(cls, bag: Path | str, rate_hz: float = 20.0) -> SourceDemo:
        from llm_trainer.datasets.bag_episode import episode_from_bag

        data = episode_from_bag(bag, rate_hz)
        if "target_ee_pos" not in data.datagen:
            raise ValueError(f"{bag}: the bag has no commanded hand poses (no primitive events recorded)")
        pos = data.datagen["target_ee_pos"]
        quat = data.datagen["target_ee_quat"]  # x y z w
        poses = []
        for p, (x, y, z, w) in zip(pos, quat):
            # yaw of a hand pointing down: the hand x axis in the world, atan2(R10, R00)
            r00 = 1 - 2 * (y * y + z * z)
            r10 = 2 * (x * y + z * w)
            poses.append(Pose.of(p, math.atan2(r10, r00)))
        width = data.datagen["gripper_command"][:, 0]
        closed = width < 0.5 * float(np.max(width)) if len(width) else np.zeros(0, bool)
        record = data.record
        scene = SceneState.from_dict(record["scene"])
        plan = (record.get("planning") or {}).get("plan", [])
        names = [p.get("object", "") for p in plan if p.get("primitive") == "close_gripper"]
        demo = cls(data.episode_id, data.task, data.seed, data.instruction, poses, closed, scene, data.fps)
        demo.events = find_events(demo, names)
        demo.goal = dict(record.get("goal") or {})
        return demo


def find_events(demo: SourceDemo, close_names: list[str] | None = None) -> list[GripperEvent]:
    events = []
    names = list(close_names or [])
    for i in range(1, len(demo.closed)):
        if demo.closed[i] and not demo.closed[i - 1]:
            name = names.pop(0) if names else nearest_object(demo, demo.poses[i])
            events.append(GripperEvent(i, "close", name))
        elif demo.closed[i - 1] and not demo.closed[i]:
            events.append(GripperEvent(i, "open"))
    return events


def nearest_object(demo: SourceDemo, pose: Pose, exclude: str = "") -> str:
    from llm_trainer.grasp import distances

    # The one hand model's measure (distance to the object's box), with no reach limit: a close happened.
    d = distances(pose.position, [(o.name, o.position, o.yaw, o.size) for o in demo.scene.objects if o.name != exclude])
    return min(d, key=d.get) if d else ""


def role_map(old_goal, new_goal, old_names: set[str], new_names: set[str]) -> dict[str, str]:
    """Demo object -> the object playing its role in a new scene, read off the two task goals side by
    side (``{"base": "blue_block", "order": [...]}``): the same key or list position names the same role."""
    out: dict[str, str] = {}

    def walk(a, b) -> None:
        if isinstance(a, str) and isinstance(b, str) and a in old_names and b in new_names:
            out[a] = b
        elif isinstance(a, dict) and isinstance(b, dict):
            for k in a.keys() & b.keys():
                walk(a[k], b[k])
        elif isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) and len(a) == len(b):
            for x, y in zip(a, b):
                walk(x, y)

    walk(old_goal, new_goal)
    for name in old_names & new_names:  # fixtures keep their names (target_area, lid, ...)
        out.setdefault(name, name)
    return out
