"""Closed-loop rollouts through the servo interface: the BC policy alone, the feed-forward
retargeted demo alone, and the LLM Trainer ensemble that switches between them.

The ensemble lets the feedback policy drive and watches how much it agrees with the feed-forward
plan: a magnitude-aware cosine similarity of their next position steps (cosine times the ratio of the
smaller to the larger step). Below ``low`` for ``patience`` steps in a row the plan takes over (the
policy has drifted off what the task needs); above ``high`` the policy gets control back; after any
switch the ensemble waits ``cooldown`` steps before the next (the paper's thresholds and cooldown;
our values are in ``EnsembleConfig``). The paper reports the ensemble lifting its IL controller
(Stack, 50 demos: 4.8% -> 29.6%).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from llm_trainer.policies.features import role_names, state_features, wrap


@dataclass
class EnsembleConfig:
    low: float = 0.2
    high: float = 0.6
    patience: int = 3
    cooldown: int = 10


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na < 1e-6 and nb < 1e-6:
        return 1.0
    if na < 1e-6 or nb < 1e-6:
        return 0.0
    return float(a @ b / (na * nb)) * min(na, nb) / max(na, nb)


@dataclass
class RolloutResult:
    success: bool
    steps: int
    refusals: int
    bc_steps: int = 0
    switches: int = 0
    notes: list[str] = field(default_factory=list)


class FeedForward:
    """The warped demo as a sequence of hand targets, advanced when the hand has reached the current one."""

    def __init__(self, demo, annotation, scene, goal, stride: int = 1, reach: float = 0.005):
        from llm_trainer.augment.demo import role_map
        from llm_trainer.augment.planner import _period
        from llm_trainer.augment.poses import Pose
        from llm_trainer.augment.retarget import retarget
        from llm_trainer.augment.warp import warp

        objs = {o.name: o for o in scene.objects}
        roles = role_map(demo.goal, goal, set(demo.objects), set(objs))
        new = {old: Pose.of(objs[n].position, objs[n].yaw) for old, n in roles.items()}
        periods = {old: _period(objs[n].size) for old, n in roles.items()}
        keys = [(demo.poses[k.index], k.reference) for k in annotation.keyposes]
        moved = retarget(keys, demo.objects, new, periods)
        self.poses = warp(demo.poses, [k.index for k in annotation.keyposes], moved)
        self.closed = demo.closed
        self.i = 0
        self.stride = stride
        self.hold = 0
        self.reach = reach

    @property
    def done(self) -> bool:
        return self.i >= len(self.poses) - 1 and self.hold == 0

    def target(self, hand_pos, hand_yaw):
        p = self.poses[self.i]
        reached = np.linalg.norm(np.subtract(hand_pos, p.position)) < self.reach and abs(wrap(hand_yaw - p.yaw)) < 0.05
        if self.hold:
            self.hold -= 1
        elif reached and self.i < len(self.poses) - 1:
            nxt = min(self.i + self.stride, len(self.poses) - 1)
            if self.closed[nxt] != self.closed[self.i]:
                self.hold = 10  # let the fingers close or open before moving on
            self.i = nxt
        p = self.poses[self.i]
        return p.position, p.yaw, bool(self.closed[self.i])


def rollout(sim, task: str, seed: int, mode: str, *, bc=None, demo=None, annotation=None,
            ensemble: EnsembleConfig | None = None, max_steps: int = 900) -> RolloutResult:  # fmt: skip
    """One episode of ``mode`` (bc | feedforward | ensemble) on a fresh scene; success by the task check."""
    from llm_trainer.execution.servo import ServoController
    from llm_trainer.tasks.registry import get_task

    if mode not in ("bc", "feedforward", "ensemble"):
        raise ValueError(f"unknown rollout mode {mode!r} (bc, feedforward, ensemble)")
    instance = sim.reset(get_task(task), seed)
    scene = sim.scene_state()
    servo = ServoController(sim)
    ff = FeedForward(demo, annotation, scene, instance.goal) if mode != "bc" else None
    names = [o.name for o in scene.objects]
    order = role_names(instance.goal, names)[: bc.config.roles] if bc is not None else []
    cfg = ensemble or EnsembleConfig()
    using_bc = mode in ("bc", "ensemble")
    low_run, since_switch, switches, bc_steps, refusals = 0, cfg.cooldown, 0, 0, 0
    for step in range(max_steps):
        pos, yaw = servo.hand()
        bc_action = None
        if bc is not None:
            objs = {o.name: o for o in sim.scene_state().objects}
            state = [(*objs[n].position, objs[n].yaw) for n in order]
            dpos, dyaw, p_closed = bc.act(state_features(pos, yaw, sim.gripper_width(), state))
            bc_action = (pos + dpos, yaw + dyaw, p_closed > 0.5, dpos)
        if ff is not None:
            t_pos, t_yaw, t_closed = ff.target(pos, yaw)
            if mode == "ensemble" and bc_action is not None:
                s = similarity(np.asarray(t_pos) - pos, bc_action[3])
                since_switch += 1
                if using_bc:
                    low_run = low_run + 1 if s < cfg.low else 0
                    if low_run >= cfg.patience and since_switch >= cfg.cooldown:
                        using_bc, since_switch, switches, low_run = False, 0, switches + 1, 0
                elif s > cfg.high and since_switch >= cfg.cooldown:
                    using_bc, since_switch, switches = True, 0, switches + 1
        if using_bc:
            target = bc_action
            bc_steps += 1
        else:
            target = (t_pos, t_yaw, t_closed, None)
        status = servo.step(target[0], target[1], target[2])
        refusals += not status.ok
        if step % 10 == 9 and sim.check_success().success:
            return RolloutResult(True, step + 1, refusals, bc_steps, switches)
        if ff is not None and ff.done and not using_bc:
            break
    sim.step_for(0.5)
    return RolloutResult(sim.check_success().success, max_steps, refusals, bc_steps, switches)
