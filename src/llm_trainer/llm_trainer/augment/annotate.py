"""``llm-trainer annotate``: a language model annotates a source demo (LLM Trainer's offline stage).

Stage 1 sees a compact text rendering of the demo (the hand's pose every few samples in mm and
degrees, its yaw relative to the first pose, gripper open/closed, the objects' poses, the gripper
events) and picks the keyframes. Stage 2, a fresh conversation, gets the same rendering and those
keyframes and returns the keyposes and the object each one depends on (its pose follows that
object when it moves) or ``world``. Answers are JSON (schema-constrained where the backend can);
a malformed or inconsistent answer is refused with the reasons (``annotation.validate_annotation``)
and asked again with them, a bounded number of times. The hand-engineered annotation is what runs
without a model.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass

from llm_trainer.augment.annotation import Annotation, AnnotationError, hand_engineered, validate_annotation
from llm_trainer.augment.demo import SourceDemo
from llm_trainer.planning.llm import GenerationRequest
from llm_trainer.planning.prompt import Prompt

ANNOTATE_VERSION = "llm-trainer-annotate-v1"

KEYFRAMES_SCHEMA = {
    "type": "object",
    "properties": {"keyframes": {"type": "array", "items": {"type": "integer"}, "maxItems": 40}},
    "required": ["keyframes"],
}
KEYPOSES_SCHEMA = {
    "type": "object",
    "properties": {
        "keyposes": {
            "type": "array",
            "maxItems": 40,
            "items": {
                "type": "object",
                "properties": {"index": {"type": "integer"}, "reference": {"type": "string"}},
                "required": ["index", "reference"],
            },
        }
    },
    "required": ["keyposes"],
}


def render_demo(demo: SourceDemo, every: int = 5) -> str:
    """The demo as text: mm, degrees, yaw relative to the start; every ``every``-th sample and every event."""
    home = demo.poses[0]
    events = {e.index: e for e in demo.events}
    lines = [f"Task: {demo.instruction}", "Objects at the start (position mm, yaw deg, size mm):"]
    for o in demo.scene.objects:
        pos = ", ".join(f"{1000 * v:.0f}" for v in o.position)
        size = ", ".join(f"{1000 * v:.0f}" for v in o.size)
        lines.append(f"- {o.name}: [{pos}], yaw {math.degrees(o.yaw):.0f}, size [{size}]")
    lines.append(f"Gripper events: {', '.join(f'{e.index} {e.kind} {e.object_name}'.strip() for e in demo.events)}")
    lines.append("Hand poses (sample: x y z mm, yaw deg relative to the start, gripper):")
    for i in sorted(set(range(0, len(demo.poses), every)) | set(events) | {len(demo.poses) - 1}):
        p = demo.poses[i]
        state = "closed" if demo.closed[i] else "open"
        mark = f"  <- {events[i].kind}" if i in events else ""
        yaw = math.degrees(p.yaw - home.yaw)
        lines.append(f"{i}: {1000 * p.x:.0f} {1000 * p.y:.0f} {1000 * p.z:.0f}, {yaw:.0f}, {state}{mark}")
    return "\n".join(lines)


SYSTEM = (
    "You annotate one robot demonstration so that it can be replayed in new scenes. The hand of a Franka "
    "Panda points down; its poses are given every few samples. Answer with JSON only."
)


def stage1_prompt(demo_text: str) -> Prompt:
    user = (
        f"{demo_text}\n\nPick the important samples (keyframes): where the hand grasps or releases, and the "
        'poses just before and after, above the object. Answer {"keyframes": [sample, ...]}.'
    )
    return Prompt(SYSTEM, user, ANNOTATE_VERSION)


def stage2_prompt(demo_text: str, keyframes: list[int], objects: list[str]) -> Prompt:
    user = (
        f"{demo_text}\n\nKeyframes: {keyframes}.\nFor each keyframe, name the object whose pose the hand's pose "
        f"depends on there (if that object moves, this pose must move with it), one of {', '.join(objects)}, or "
        '"world" if it depends on none. Answer {"keyposes": [{"index": sample, "reference": name}, ...]}.'
    )
    return Prompt(SYSTEM, user, ANNOTATE_VERSION)


def _json(text: str):
    """The first JSON object in an answer (models wrap it in prose or code fences)."""
    match = re.search(r"\{.*\}", text, re.S)
    if not match:
        raise AnnotationError("no JSON object in the answer")
    try:
        return json.loads(match.group(0))
    except json.JSONDecodeError as exc:
        raise AnnotationError(f"not JSON: {exc.msg}") from None


@dataclass
class AnnotateResult:
    annotation: Annotation
    transcript: list[dict]  # every request and answer, with the reason when refused
    fell_back: bool = False


def annotate(
    demo: SourceDemo, generator, *, retries: int = 2, every: int = 5, fallback: bool = False
) -> AnnotateResult:
    """Run both stages with ``generator`` (a planning backend's TextGenerator)."""
    text = render_demo(demo, every)
    objects = [o.name for o in demo.scene.objects]
    schema = "json_schema" in getattr(generator, "supports", ())
    transcript: list[dict] = []

    def ask(prompt: Prompt, json_schema: dict, check) -> object:
        reason = ""
        for attempt in range(retries + 1):
            refused = f"\n\nYour last answer was refused: {reason}. Answer again." if reason else ""
            p = Prompt(prompt.system, prompt.user + refused, prompt.version)
            answer = generator.generate(
                GenerationRequest(p, json_schema=json_schema if schema else None, max_new_tokens=768)
            )
            entry = {"attempt": attempt + 1, "reasked_with": reason or None, "answer": answer.text}
            transcript.append(entry)
            try:
                return check(_json(answer.text))
            except AnnotationError as exc:
                reason = str(exc)
                entry["refused"] = reason
        raise AnnotationError(f"refused {retries + 1} times; last: {reason}")

    def check_keyframes(data) -> list[int]:
        frames = data.get("keyframes") if isinstance(data, dict) else None
        if (
            not isinstance(frames, list)
            or not frames
            or not all(isinstance(f, int) and not isinstance(f, bool) for f in frames)
        ):
            raise AnnotationError('expected {"keyframes": [sample, ...]} with integer samples')
        bad = [f for f in frames if not 0 <= f < len(demo.poses)]
        if bad:
            raise AnnotationError(f"samples {bad} are not in the demo (0..{len(demo.poses) - 1})")
        return sorted(set(frames) | {e.index for e in demo.events})

    try:
        keyframes = ask(stage1_prompt(text), KEYFRAMES_SCHEMA, check_keyframes)
        annotation = ask(
            stage2_prompt(text, keyframes, objects),
            KEYPOSES_SCHEMA,
            lambda d: validate_annotation(d, demo, name=f"llm:{generator.name}"),
        )
    except AnnotationError as exc:
        if not fallback:
            exc.transcript = transcript  # what the model said, for the caller to keep
            raise
        return AnnotateResult(hand_engineered(demo), transcript, fell_back=True)
    return AnnotateResult(annotation, transcript)
