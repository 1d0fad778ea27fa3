"""Annotations of a source demo: which samples are keyposes and which object each one follows.

An annotation is what the LLM Trainer's stage 2 returns (keyposes, the objects each depends on);
the hand-engineered annotator is the MimicGen-style baseline (segments cut at gripper events, each
segment following its object: the one grasped before a close, the one placed on before an open)
and the default without an LLM. Its variants are the bandit's first arms. Any annotation, from a
model or a file, passes ``validate_annotation`` before use: a malformed one is refused with reasons.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from llm_trainer.augment.demo import SourceDemo
from llm_trainer.augment.retarget import WORLD


class AnnotationError(ValueError):
    """The annotation does not fit the demo; the message lists every reason."""


@dataclass(frozen=True)
class Keypose:
    index: int  # sample of the demo
    reference: str  # the object it moves with, or "world"


@dataclass
class Annotation:
    name: str
    keyposes: list[Keypose]
    source: str = "hand-engineered"
    notes: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "source": self.source,
                "keyposes": [{"index": k.index, "reference": k.reference} for k in self.keyposes]}  # fmt: skip

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Annotation:
        return cls(str(d["name"]), [Keypose(int(k["index"]), str(k["reference"])) for k in d["keyposes"]],
                   str(d.get("source", "file")))  # fmt: skip


def _xy(a, b) -> float:
    return float(np.hypot(a.x - b.x, a.y - b.y))


def _descent_start(demo: SourceDemo, index: int, tol: float = 0.005) -> int:
    """The approach pose above ``index``: where the vertical motion down to it begins (the hand
    moves straight down to grasp or release, so going back from the event, the first sample more
    than ``tol`` away in x-y ends it)."""
    i = index
    while i > 0 and _xy(demo.poses[i - 1], demo.poses[index]) < tol:
        i -= 1
    return i


def _ascent_end(demo: SourceDemo, index: int, tol: float = 0.005) -> int:
    """The retreat pose above ``index``: where the vertical motion up from it ends."""
    last = len(demo.poses) - 1
    i = index
    while i < last and _xy(demo.poses[i + 1], demo.poses[index]) < tol:
        i += 1
    return i


def placement_target(demo: SourceDemo, index: int, held: str) -> str:
    """The object the held one is put on at ``index`` (nearest in x-y, below the hand), or world."""
    hand = demo.poses[index]
    best, best_d = WORLD, 0.1
    for o in demo.scene.objects:
        if o.name == held or o.position[2] > hand.z:
            continue
        d = float(np.hypot(o.position[0] - hand.x, o.position[1] - hand.y))
        if d < best_d:
            best, best_d = o.name, d
    return best


def hand_engineered(demo: SourceDemo, variant: str = "events+approach") -> Annotation:
    """MimicGen-style keyposes from the gripper events. Variants:
    ``events``           the close and open poses only;
    ``events+approach``  also the approach above each event and the retreat after it (the default);
    ``place-in-world``   as events+approach, but placements stay where the demo put things."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r} (known: {', '.join(VARIANTS)})")
    keys: dict[int, str] = {}
    held = ""
    for event in demo.events:
        if event.kind == "close":
            held = event.object_name
            ref = held or WORLD
        else:
            ref = WORLD if variant == "place-in-world" else placement_target(demo, event.index, held)
        keys[event.index] = ref
        if variant != "events":
            keys.setdefault(_descent_start(demo, event.index), ref)
            keys.setdefault(_ascent_end(demo, event.index), ref)
    ordered = [Keypose(i, keys[i]) for i in sorted(keys)]
    return Annotation(f"hand:{variant}", ordered, "hand-engineered")


VARIANTS = ("events+approach", "events", "place-in-world")  # the first is the default


def validate_annotation(data: Any, demo: SourceDemo, name: str = "llm") -> Annotation:
    """An annotation from untrusted JSON (a model's answer): every problem is listed, none is fixed up."""
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except json.JSONDecodeError as exc:
            raise AnnotationError(f"not JSON: {exc.msg} at line {exc.lineno}") from None
    if not isinstance(data, dict) or not isinstance(data.get("keyposes"), list):
        raise AnnotationError('expected {"keyposes": [{"index": int, "reference": name}, ...]}')
    objects = {o.name for o in demo.scene.objects} | {WORLD}
    problems, keys = [], []
    for n, k in enumerate(data["keyposes"]):
        if not isinstance(k, dict):
            problems.append(f"keypose {n}: not an object")
            continue
        index, ref = k.get("index"), k.get("reference")
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(demo.poses):
            problems.append(f"keypose {n}: index {index!r} is not a sample of the demo (0..{len(demo.poses) - 1})")
            continue
        if ref not in objects:
            problems.append(
                f"keypose {n}: reference {ref!r} is not an object of the scene ({', '.join(sorted(objects))})"
            )
            continue
        keys.append(Keypose(index, ref))
    indices = [k.index for k in keys]
    if len(set(indices)) != len(indices):
        problems.append("two keyposes share one index")
    if not problems and not keys:
        problems.append("no keyposes")
    event_indices = {e.index for e in demo.events}
    if keys and not event_indices <= set(indices):
        missing = sorted(event_indices - set(indices))
        problems.append(f"the gripper events at samples {missing} must be keyposes (the hand acts there)")
    if problems:
        raise AnnotationError("; ".join(problems))
    return Annotation(name, sorted(keys, key=lambda k: k.index), "llm")
