"""Thompson sampling over annotations (LLM Trainer): each annotation is an arm with a Beta
posterior over "a rollout with it succeeds"; each rollout uses the arm whose posterior sample is
highest. A new annotation is asked for only when it is worth it: the expected gain of adding an
arm drawn from what annotations usually achieve (a Beta fitted to the current arms' means) over
exploiting the best arm, times the rollouts still to go, must exceed the annotation's cost in
rollouts. Objective: fewest rollouts to reach a target number of successes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Arm:
    name: str
    alpha: float = 1.0  # 1 + successes (uniform prior)
    beta: float = 1.0  # 1 + failures

    @property
    def pulls(self) -> int:
        return int(round(self.alpha + self.beta - 2))

    @property
    def mean(self) -> float:
        return self.alpha / (self.alpha + self.beta)

    def update(self, success: bool) -> None:
        if success:
            self.alpha += 1
        else:
            self.beta += 1

    def to_dict(self) -> dict:
        return {"name": self.name, "alpha": self.alpha, "beta": self.beta, "mean": round(self.mean, 4),
                "pulls": self.pulls}  # fmt: skip


@dataclass
class ThompsonSampler:
    arms: list[Arm] = field(default_factory=list)
    seed: int = 0
    annotation_cost: float = 5.0  # [rollouts] what asking for one more annotation costs
    max_arms: int = 8

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)

    def add(self, name: str) -> Arm:
        if any(a.name == name for a in self.arms):
            raise ValueError(f"arm {name!r} exists already")
        arm = Arm(name)
        self.arms.append(arm)
        return arm

    def arm(self, name: str) -> Arm:
        return next(a for a in self.arms if a.name == name)

    def select(self) -> Arm:
        if not self.arms:
            raise ValueError("no annotations to choose from")
        draws = [self.rng.beta(a.alpha, a.beta) for a in self.arms]
        return self.arms[int(np.argmax(draws))]

    def update(self, name: str, success: bool) -> None:
        self.arm(name).update(success)

    def new_arm_prior(self) -> tuple[float, float]:
        """Beta(a, b) of a fresh annotation's success rate: moments of the current arms' means
        (uniform when fewer than two arms have been tried)."""
        means = np.array([a.mean for a in self.arms if a.pulls > 0])
        if len(means) < 2:
            return 1.0, 1.0
        m, v = float(means.mean()), float(means.var()) + 1e-3
        k = max(m * (1 - m) / v - 1, 0.5)
        return max(m * k, 0.05), max((1 - m) * k, 0.05)

    def value_of_new_arm(self, samples: int = 4000) -> float:
        """E[max(p_new, best mean)] - best mean: what one more annotation is expected to add per rollout."""
        best = max((a.mean for a in self.arms), default=0.0)
        a, b = self.new_arm_prior()
        p = self.rng.beta(a, b, samples)
        return float(np.mean(np.maximum(p, best)) - best)

    def should_request_annotation(self, rollouts_left: int) -> bool:
        if not self.arms:
            return True
        if len(self.arms) >= self.max_arms:
            return False
        return self.value_of_new_arm() * rollouts_left > self.annotation_cost

    def to_dict(self) -> dict:
        return {"arms": [a.to_dict() for a in self.arms], "annotation_cost": self.annotation_cost}
