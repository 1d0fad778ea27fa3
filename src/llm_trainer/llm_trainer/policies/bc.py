"""Behaviour cloning on state (torch): an MLP from ``features.state_features`` to the hand's next
step (position change, yaw change) and the gripper command, trained on a robomimic HDF5 export of
generated demos (its ``datagen_info`` holds the commanded hand targets the executor tracked).

    llm-trainer train-bc --data runs/augment-stack/dataset.hdf5 --out runs/bc/policy.pt
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from llm_trainer.policies.features import role_names, state_features, wrap, yaw_of_quat_xyzw


@dataclass
class BCConfig:
    hidden: int = 256
    layers: int = 2
    epochs: int = 200
    lr: float = 1e-3
    batch: int = 256
    seed: int = 0
    roles: int = 3  # objects per state, by role

    def validate(self) -> None:
        if self.hidden < 8 or self.layers < 1 or self.epochs < 1 or self.lr <= 0 or self.batch < 1 or self.roles < 1:
            raise ValueError("bc: hidden >= 8, layers >= 1, epochs >= 1, lr > 0, batch >= 1, roles >= 1")


def load_samples(path: Path | str, roles: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(features, actions, demos) from the successful demos of a robomimic HDF5."""
    import h5py

    xs, ys, demos = [], [], 0
    with h5py.File(path, "r") as f:
        for key in f["data"]:
            g = f["data"][key]
            if not bool(g.attrs.get("success", True)):
                continue
            names = json.loads(g.attrs["object_names"])
            record = json.loads(g.attrs["record_json"])
            order = role_names(record.get("goal", {}), names)[:roles]
            if len(order) < roles:
                continue
            idx = [names.index(n) for n in order]
            obj = g["obs/object"][:].reshape(len(g["obs/ee_pos"]), -1, 4)[:, idx]
            ee, quat, width = g["obs/ee_pos"][:], g["obs/ee_quat"][:], g["obs/gripper_width"][:, 0]
            tpos, tquat = g["datagen_info/target_ee_pos"][:], g["datagen_info/target_ee_quat"][:]
            grip = g["datagen_info/gripper_command"][:, 0]
            for t in range(len(ee) - 1):
                yaw = yaw_of_quat_xyzw(quat[t])
                xs.append(state_features(ee[t], yaw, width[t], obj[t]))
                dyaw = wrap(yaw_of_quat_xyzw(tquat[t + 1]) - yaw)
                ys.append([*(tpos[t + 1] - ee[t]), dyaw, 1.0 if grip[t + 1] < 0.04 else 0.0])
            demos += 1
    if not xs:
        raise ValueError(f"{path}: no successful demo with {roles} objects in its task goal")
    return np.asarray(xs, np.float32), np.asarray(ys, np.float32), demos


class BCPolicy:
    """The trained network with its normalisation; ``act(features) -> (dpos, dyaw, p_closed)``."""

    def __init__(self, net, stats: dict, config: BCConfig):
        self.net, self.stats, self.config = net, stats, config

    def act(self, features: np.ndarray) -> tuple[np.ndarray, float, float]:
        import torch

        x = (features - self.stats["x_mean"]) / self.stats["x_std"]
        with torch.no_grad():
            y = self.net(torch.from_numpy(x[None].astype(np.float32)))[0].numpy()
        motion = y[:4] * self.stats["y_std"] + self.stats["y_mean"]
        return motion[:3], float(motion[3]), float(1 / (1 + np.exp(-y[4])))

    def save(self, path: Path | str) -> None:
        import torch

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"state_dict": self.net.state_dict(), "stats": self.stats, "config": asdict(self.config)}, path)


def _net(inputs: int, config: BCConfig):
    import torch.nn as nn

    layers, width = [], inputs
    for _ in range(config.layers):
        layers += [nn.Linear(width, config.hidden), nn.ReLU()]
        width = config.hidden
    layers.append(nn.Linear(width, 5))
    return nn.Sequential(*layers)


def load_policy(path: Path | str) -> BCPolicy:
    import torch

    blob = torch.load(path, weights_only=False)
    config = BCConfig(**blob["config"])
    stats = {k: np.asarray(v, np.float32) for k, v in blob["stats"].items()}
    net = _net(len(stats["x_mean"]), config)
    net.load_state_dict(blob["state_dict"])
    net.eval()
    return BCPolicy(net, stats, config)


def train_bc(data: Path | str, out: Path | str, config: BCConfig | None = None, log=print) -> dict:
    import torch

    config = config or BCConfig()
    config.validate()
    torch.manual_seed(config.seed)
    x, y, demos = load_samples(data, config.roles)
    stats = {"x_mean": x.mean(0), "x_std": x.std(0) + 1e-6, "y_mean": y[:, :4].mean(0), "y_std": y[:, :4].std(0) + 1e-6}
    xn = torch.from_numpy((x - stats["x_mean"]) / stats["x_std"])
    ym = torch.from_numpy((y[:, :4] - stats["y_mean"]) / stats["y_std"])
    yg = torch.from_numpy(y[:, 4])
    net = _net(x.shape[1], config)
    opt = torch.optim.Adam(net.parameters(), lr=config.lr)
    t0 = time.perf_counter()
    losses = []
    for _ in range(config.epochs):
        perm = torch.randperm(len(xn))
        total = 0.0
        for i in range(0, len(xn), config.batch):
            b = perm[i : i + config.batch]
            pred = net(xn[b])
            loss = torch.nn.functional.mse_loss(
                pred[:, :4], ym[b]
            ) + torch.nn.functional.binary_cross_entropy_with_logits(pred[:, 4], yg[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(b)
        losses.append(total / len(xn))
    net.eval()
    policy = BCPolicy(net, stats, config)
    policy.save(out)
    summary = {"out": str(out), "demos": demos, "samples": int(len(x)), "epochs": config.epochs,
               "loss_first": round(losses[0], 4), "loss_last": round(losses[-1], 4),
               "wall_time_s": round(time.perf_counter() - t0, 1)}  # fmt: skip
    Path(out).with_suffix(".json").write_text(json.dumps({**summary, "config": asdict(config)}, indent=2) + "\n")
    return summary
