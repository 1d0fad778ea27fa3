"""The learning agent of LLM-iTeach (and of its behaviour-cloning baseline): a small torch MLP on state.

Input: ``policies.features.state_features`` of the scene API's dict (the hand and the task's objects
in goal-role order, relative to the hand). Output: the translational step and the turn (scaled by the
servo limits) and the gripper command as a logit. Training minimises a per-sample weighted loss
(squared error on motion plus binary cross-entropy on the gripper): uniform weights for behaviour
cloning, ``feedback.loss_weights`` for LLM-iTeach.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from llm_trainer.policies.features import role_names, state_features


@dataclass
class AgentConfig:
    hidden: int = 256
    layers: int = 2
    lr: float = 1e-3
    batch: int = 256
    roles: int = 3  # objects per state, by goal role

    def validate(self) -> None:
        if self.hidden < 8 or self.layers < 1 or self.lr <= 0 or self.batch < 1 or self.roles < 1:
            raise ValueError("agent: hidden >= 8, layers >= 1, lr > 0, batch >= 1, roles >= 1")


def features(scene: dict, roles: int) -> np.ndarray:
    names = list(scene["objects"])
    order = role_names(scene["goal"], names)[:roles]
    if len(order) < roles:
        raise ValueError(f"the task's goal names {len(order)} object(s); the agent is configured for {roles}")
    objs = [(*scene["objects"][n]["position"], scene["objects"][n]["yaw"]) for n in order]
    hand = scene["hand"]
    return state_features(hand["position"], hand["yaw"], hand["gripper_width"], objs)


class Agent:
    def __init__(self, inputs: int, config: AgentConfig, *, max_move: float, max_turn: float, seed: int = 0):
        import torch
        import torch.nn as nn

        config.validate()
        self.config = config
        self.max_move, self.max_turn = max_move, max_turn
        torch.manual_seed(seed)
        self.generator = torch.Generator().manual_seed(seed)
        layers, width = [], inputs
        for _ in range(config.layers):
            layers += [nn.Linear(width, config.hidden), nn.ReLU()]
            width = config.hidden
        layers.append(nn.Linear(width, 5))
        self.net = nn.Sequential(*layers)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=config.lr)
        self.x_mean = np.zeros(inputs, np.float32)
        self.x_std = np.ones(inputs, np.float32)
        self._normalised = False

    def act(self, x: np.ndarray) -> tuple[np.ndarray, float, bool]:
        import torch

        with torch.no_grad():
            y = self.net(torch.from_numpy(((x - self.x_mean) / self.x_std)[None].astype(np.float32)))[0].numpy()
        move = np.clip(y[:3], -1.5, 1.5) * self.max_move
        return move, float(np.clip(y[3], -1.5, 1.5) * self.max_turn), bool(y[4] > 0.0)

    def targets(self, actions: np.ndarray) -> np.ndarray:
        """[move(3) m, turn rad, closed 0/1] -> the network's scaled targets."""
        t = np.array(actions, np.float32)
        t[:, :3] /= self.max_move
        t[:, 3] /= self.max_turn
        return t

    def fit(self, x: np.ndarray, actions: np.ndarray, weights: np.ndarray, updates: int) -> float:
        """``updates`` minibatch steps of the weighted loss; returns the mean loss of the last 10."""
        import torch
        import torch.nn.functional as F

        if len(x) == 0 or updates <= 0:
            return float("nan")
        if not self._normalised:
            # Fixed at the first fit: an agent trained on a growing buffer keeps the input scale its
            # weights were learned for (re-normalising every episode would shift every input).
            self.x_mean = x.mean(0)
            self.x_std = x.std(0) + 1e-3
            self._normalised = True
        xn = torch.from_numpy(((x - self.x_mean) / self.x_std).astype(np.float32))
        y = torch.from_numpy(self.targets(actions))
        w = torch.from_numpy(np.asarray(weights, np.float32))
        self.net.train()
        losses = []
        for _ in range(updates):
            b = torch.randint(0, len(xn), (min(self.config.batch, len(xn)),), generator=self.generator)
            out = self.net(xn[b])
            per = ((out[:, :4] - y[b, :4]) ** 2).sum(1) + F.binary_cross_entropy_with_logits(
                out[:, 4], y[b, 4], reduction="none"
            )
            loss = (per * w[b]).sum() / w[b].sum().clamp_min(1e-6)
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
            losses.append(float(loss.detach()))
        self.net.eval()
        return float(np.mean(losses[-10:]))

    def save(self, path: Path | str) -> None:
        import torch

        Path(path).parent.mkdir(parents=True, exist_ok=True)
        torch.save({"state_dict": self.net.state_dict(), "x_mean": self.x_mean, "x_std": self.x_std,
                    "config": asdict(self.config), "max_move": self.max_move, "max_turn": self.max_turn},
                   path)  # fmt: skip
