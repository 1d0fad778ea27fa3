"""A planner that answers with the source demo, retargeted to the request's scene and warped.

It plugs into the same episode loop as every other planner (``datagen.episode``): the plan it
returns is checked by the planner's validation and the executor's safety layer before any motion,
executed, and verified by the task's success predicate.
"""

from __future__ import annotations

import math

from llm_trainer.augment.annotation import Annotation
from llm_trainer.augment.demo import SourceDemo, role_map
from llm_trainer.augment.poses import Pose
from llm_trainer.augment.retarget import retarget
from llm_trainer.augment.warp import warp
from llm_trainer.planning.base import Planner, PlanRequest, PlanResult
from llm_trainer.primitives import Primitive


def _period(size) -> float:
    length, width = sorted((float(size[0]), float(size[1])), reverse=True)
    return math.pi / 2 if width > 0 and length / width < 1.15 else math.pi


def demo_to_plan(demo: SourceDemo, poses: list[Pose], keep: set[int], stride: int, min_step: float = 0.005, names=None):
    """Primitives for a (warped) demo: a move every ``stride`` samples and at every index in ``keep``,
    the gripper acting at its events; moves shorter than ``min_step`` [m] (and turns < 0.05 rad) dropped."""
    from llm_trainer.augment.annotation import _ascent_end, _descent_start

    events = {e.index: e for e in demo.events}
    # The hand goes straight down to each gripper event and straight up after it: those segments are
    # lines between their end poses, and a sample inside one would only copy the demo's jitter.
    vertical = set()
    for e in demo.events:
        vertical |= set(range(_descent_start(demo, e.index) + 1, e.index))
        vertical |= set(range(e.index + 1, _ascent_end(demo, e.index)))
    grid = {i for i in range(0, len(poses), stride) if i not in vertical}
    ends = {j for e in demo.events for j in (_descent_start(demo, e.index), _ascent_end(demo, e.index))}
    indices = sorted(grid | keep | ends | set(events) | {len(poses) - 1})
    plan = [Primitive.open()]
    last: Pose | None = None
    for i in indices:
        p = poses[i]
        near = last is not None and p.distance(last) < min_step and abs(p.yaw - last.yaw) < 0.05
        if not near or i in events:
            plan.append(Primitive.move((p.x, p.y, p.z), p.yaw))
            last = p
        if i in events:
            e = events[i]
            name = (names or {}).get(e.object_name, e.object_name)
            plan.append(Primitive.close(name) if e.kind == "close" else Primitive.open())
    return plan


class WarpedDemoPlanner(Planner):
    name = "warped_demo"

    def __init__(self, demo: SourceDemo, annotation: Annotation, stride: int = 10, validation=None):
        super().__init__(validation)
        self.demo = demo
        self.annotation = annotation
        self.stride = stride

    def propose(self, request: PlanRequest) -> PlanResult:
        old_objects = self.demo.objects
        scene = {o.name: o for o in request.scene.objects}
        roles = role_map(self.demo.goal, request.goal, set(old_objects), set(scene))
        missing = sorted({k.reference for k in self.annotation.keyposes if k.reference != "world"} - set(roles))
        if missing:
            return PlanResult(False, [], self.name, f"no object in this scene plays the role of {', '.join(missing)}")
        # The new scene's objects under the demo's names: each keypose follows its object's role.
        new_objects = {old: Pose.of(scene[new].position, scene[new].yaw) for old, new in roles.items()}
        periods = {old: _period(scene[new].size) for old, new in roles.items()}
        keys = [(self.demo.poses[k.index], k.reference) for k in self.annotation.keyposes]
        moved = retarget(keys, old_objects, new_objects, periods)
        warped = warp(self.demo.poses, [k.index for k in self.annotation.keyposes], moved)
        keep = {k.index for k in self.annotation.keyposes}
        plan = demo_to_plan(self.demo, warped, keep, self.stride, names=roles)
        return PlanResult(True, plan, self.name, message=f"annotation {self.annotation.name}")
