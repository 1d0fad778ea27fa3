"""Rewordings of an instruction and short user-robot dialogues that imply it (ASMR's language side).

Two writers, one interface (``candidates`` for paraphrases, ``dialogues`` for conversations):

* ``TemplateParaphraser`` (the default, no model): reads the instruction's slots with the task's
  own instruction template (``put the {color} block in the target area`` -> color), then writes
  them into other sentence frames, with synonyms (cube for block, goal area for target area), other
  verbs and politeness wrappers; the same seed gives the same rewordings.
* ``LLMParaphraser``: asks a ``TextGenerator`` (``planning.registry.make_generator``: transformers,
  openai/llama.cpp, replay) for JSON, schema-constrained where the backend can.

Neither is trusted: ``llm_trainer.asmr.language`` keeps a candidate only when the attribute filter
(``asmr.attributes``) finds it asks for exactly what the original does.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
import re
from dataclasses import dataclass, field
from typing import Any

# ------------------------------------------------------------------------------------ what we write
WRAPPERS = (
    "{s}",
    "{S}.",
    "Please {s}.",
    "{S}, please.",
    "Could you {s}?",
    "Can you {s}?",
    "I'd like you to {s}.",
    "I need you to {s}.",
    "Would you {s}, please?",
    "Go ahead and {s}.",
    "Your job now: {s}.",
    "When you're ready, {s}.",
)
SYNONYMS: dict[str, tuple[str, ...]] = {
    "block": ("block", "cube"),
    "target area": ("target area", "goal area", "target zone"),
    "bin": ("bin", "trash can", "rubbish bin"),
    "rubbish": ("rubbish", "trash", "litter"),
    "cup": ("cup", "mug"),
    "plate": ("plate", "dish"),
    "grill": ("grill", "barbecue"),
    "large": ("large", "big"),
    "close": ("close", "shut"),
}
#: Verb frames for moving ``{o}`` to ``{t}`` with a containment (``in``) or support (``on``) preposition.
PLACE_FRAMES: dict[str, tuple[str, ...]] = {
    "in": (
        "put {o} in {t}",
        "place {o} in {t}",
        "put {o} into {t}",
        "move {o} into {t}",
        "pick up {o} and put it in {t}",
        "take {o} and drop it into {t}",
        "grab {o} and place it inside {t}",
        "get {o} into {t}",
        "lift {o} and set it down in {t}",
        "bring {o} to {t}",
    ),
    "on": (
        "put {o} on {t}",
        "place {o} onto {t}",
        "set {o} on top of {t}",
        "move {o} onto {t}",
        "pick up {o} and put it on {t}",
        "take {o} and place it on {t}",
        "grab {o} and set it down on {t}",
        "get {o} onto {t}",
    ),
}


@dataclass
class Candidate:
    """One rewording (or dialogue) and how it was made (for the provenance)."""

    text: str
    method: str  # template-paraphrase | template-dialogue | llm-paraphrase | llm-dialogue
    parameters: dict[str, Any] = field(default_factory=dict)
    turns: list[dict[str, str]] = field(default_factory=list)  # dialogues: [{"role": user|robot, "text"}]


def dialogue_text(turns: list[dict[str, str]]) -> str:
    """A dialogue as the planner's prompt shows it (and as the filter reads it)."""
    return "\n".join(f"{'User' if t['role'] == 'user' else 'Robot'}: {t['text']}" for t in turns)


def stable_seed(*parts: Any) -> int:
    """A seed from values, the same in every process (``hash()`` is salted per process)."""
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).digest()
    return int.from_bytes(digest[:8], "little")


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def _wrap(wrapper: str, s: str) -> str:
    return wrapper.replace("{S}", _cap(s)).replace("{s}", s)


# ----------------------------------------------------------------------------- slots of a template
def template_regex(template: str) -> re.Pattern:
    """``put the {color} block in the {side} basket`` -> a regex with one named group per slot."""
    parts = re.split(r"\{(\w+)\}", template)
    out = []
    for k, part in enumerate(parts):
        out.append(re.escape(part) if k % 2 == 0 else f"(?P<{part}>.+?)")
    return re.compile("^" + "".join(out) + "$")


def read_slots(task_name: str, instruction: str) -> dict[str, str] | None:
    """The slot values of ``instruction`` under its task's template, or None (unknown task, no match)."""
    from llm_trainer.tasks.registry import get_task

    try:
        task = get_task(task_name)
    except KeyError:
        return None
    match = template_regex(task.instruction_template).match(instruction.strip().lower())
    return match.groupdict() if match else None


# ------------------------------------------------------------------------------- sentence builders
def _choices(word: str) -> tuple[str, ...]:
    return SYNONYMS.get(word, (word,))


def _place_task(o: list[str], t: list[str], prep: str) -> list[tuple[str, dict]]:
    """Sentences moving one of the object descriptions ``o`` to one of the target descriptions ``t``."""
    out = []
    for f_idx, frame in enumerate(PLACE_FRAMES[prep]):
        for o_idx, obj in enumerate(o):
            for t_idx, tgt in enumerate(t):
                out.append((frame.format(o=obj, t=tgt), {"frame": f"{prep}{f_idx}", "object": o_idx, "target": t_idx}))
    return out


def _stack(movers: list[str], base: str) -> list[tuple[str, dict]]:
    out = []
    for noun in _choices("block"):
        names = [f"the {c} {noun}" for c in movers]
        base_np = f"the {base} {noun}"
        seqs = {
            "and-then": " and then ".join(names),
            "comma-then": ", then ".join(names),
        }
        for s_name, seq in seqs.items():
            out.append((f"stack {seq} on top of {base_np}", {"frame": f"stack-{s_name}", "noun": noun}))
            out.append((f"stack {seq} on {base_np}", {"frame": f"stack-on-{s_name}", "noun": noun}))
        rest = ", then ".join(names[1:])
        out.append((f"put {names[0]} on {base_np}, then {rest} on top", {"frame": "put-then", "noun": noun}))
        out.append(
            (f"first put {names[0]} on {base_np}, then {rest} on top of it", {"frame": "first-then", "noun": noun})
        )
        out.append((f"build a stack on {base_np}: first {names[0]}, then {rest}", {"frame": "build", "noun": noun}))
        if len(names) == 2:
            out.append((f"stack {names[1]} on {base_np} after {names[0]}", {"frame": "after", "noun": noun}))
    return out


def sentences(task_name: str, slots: dict[str, str]) -> list[tuple[str, dict]]:
    """Every rewording frame of a task for these slot values (lower case, no final punctuation)."""
    s = slots
    if task_name == "put_block":
        return _place_task([f"the {s['color']} {n}" for n in _choices("block")], _np("target area"), "in")
    if task_name == "stack_blocks":
        movers = re.findall(r"the (\w+) block", s["blocks"])
        return _stack(movers, s["base"]) if movers else []
    if task_name == "rubbish_in_bin":
        return _place_task(_np("rubbish"), _np("bin"), "in")
    if task_name == "empty_container":
        out = []
        for big in _choices("large"):
            for tgt in (f"the {s['color']} container", f"the {s['color']} one"):
                for k, frame in enumerate(
                    ("empty the {b} container into {t}", "empty out the {b} container into {t}",
                     "empty the contents of the {b} container into {t}", "tip the {b} container out into {t}")
                ):  # fmt: skip
                    out.append((frame.format(b=big, t=tgt), {"frame": f"empty{k}", "large": big, "target": tgt}))
        return out
    if task_name == "block_in_basket":
        side = s["side"]
        targets = [f"the {side} basket", f"the basket on the {side}", f"the basket on your {side}",
                   f"the {side} hand basket"]  # fmt: skip
        return _place_task([f"the {s['color']} {n}" for n in _choices("block")], targets, "in")
    if task_name == "jar_in_bin":
        return _place_task([f"the {s['color']} jar"], _np("bin"), "in")
    if task_name == "fruit_in_bowl":
        return _place_task([f"the {s['taste']} fruit", f"the {s['taste']} piece of fruit"], ["the bowl"], "in")
    if task_name == "fruit_in_closest_basket":
        return _place_task([f"the {s['fruit']}"], ["the closest basket", "the nearest basket"], "in")
    if task_name == "insert_in_peg":
        return _place_task(["the square ring"], [f"the {s['color']} peg"], "on")
    if task_name == "basketball_in_hoop":
        return _place_task([f"the {s['color']} ball"], ["the hoop"], "in")
    if task_name == "cup_on_object":
        return _place_task(_np("cup"), [f"the {s['color']} {k}" for k in _choices(s["kind"])], "on")
    if task_name == "case_on_target":
        return _place_task([f"the {s['color']} case"], ["the target"], "on")
    if task_name == "meat_off_grill":
        out = []
        frames = (
            "take the {m} off the {g} and put it in {t}",
            "remove the {m} from the {g} and place it in {t}",
            "lift the {m} off the {g} and set it down in {t}",
            "move the {m} from the {g} to {t}",
            "get the {m} off the {g} and into {t}",
        )
        for k, frame in enumerate(frames):
            for g in _choices("grill"):
                for t in _np("target area"):
                    out.append((frame.format(m=s["meat"], g=g, t=t), {"frame": f"grill{k}", "grill": g, "target": t}))
        return out
    if task_name == "close_jar":
        frames = ("{c} the {x} jar", "{c} up the {x} jar", "please {c} the {x} jar")
        return [
            (f.format(c=c, x=s["color"]), {"frame": f"close{k}", "verb": c})
            for k, f in enumerate(frames)
            for c in _choices("close")
        ]
    if task_name == "open_bottle":
        frames = ("remove the cap from the {x} bottle", "take the cap off the {x} bottle",
                  "take the cap off of the {x} bottle", "lift the cap off the {x} bottle",
                  "pull the cap off the {x} bottle", "get the cap off the {x} bottle")  # fmt: skip
        return [(f.format(x=s["color"]), {"frame": f"cap{k}"}) for k, f in enumerate(frames)]
    return []


def _np(word: str) -> list[str]:
    return [f"the {w}" for w in _choices(word)]


def generic_sentences(instruction: str) -> list[tuple[str, dict]]:
    """For an instruction no task template reads: synonyms swapped in, one word at a time and all."""
    base = instruction.strip().rstrip(".!").lower()
    out = [(base, {"frame": "as-is"})]
    for word, alts in SYNONYMS.items():
        if re.search(rf"\b{re.escape(word)}\b", base):
            for alt in alts[1:]:
                out.append((re.sub(rf"\b{re.escape(word)}\b", alt, base), {"frame": "synonym", "word": word}))
    return out


# ------------------------------------------------------------------------------- the template writer
@dataclass
class TemplateParaphraser:
    """Deterministic rewordings from the task templates (no model)."""

    name: str = "template"

    def _sentences(self, task: str, instruction: str) -> list[tuple[str, dict]]:
        slots = read_slots(task, instruction)
        found = sentences(task, slots) if slots else []
        return found or generic_sentences(instruction)

    def candidates(self, task: str, instruction: str, n: int, seed: int) -> list[Candidate]:
        """Up to ``n`` distinct rewordings (never the original itself), in a seeded order."""
        rng = random.Random(seed)
        options = [
            (sentence, params, w_idx)
            for (sentence, params), w_idx in itertools.product(self._sentences(task, instruction), range(len(WRAPPERS)))
        ]
        rng.shuffle(options)
        seen = {_norm(instruction)}
        out = []
        for sentence, params, w_idx in options:
            text = _wrap(WRAPPERS[w_idx], sentence)
            if _norm(text) in seen:
                continue
            seen.add(_norm(text))
            out.append(Candidate(text, "template-paraphrase", {**params, "wrapper": w_idx}))
            if len(out) >= n:
                break
        return out

    def dialogues(self, task: str, instruction: str, n: int, seed: int) -> list[Candidate]:
        """Up to ``n`` short conversations in which the user asks for the instruction."""
        rng = random.Random(seed)
        slots = read_slots(task, instruction)
        sents = self._sentences(task, instruction)
        parts = _object_and_target(task, slots) if slots else None
        built: list[tuple[list[dict[str, str]], dict]] = []
        for s_idx, (sentence, params) in enumerate(sents):
            for o_idx, (opening, reply) in enumerate(OPENINGS):
                turns = [_u(opening), _r(reply), _u(_wrap(rng.choice(WRAPPERS[2:]), sentence)), _r(rng.choice(ACKS))]
                built.append((turns, {"frame": "ask", "opening": o_idx, "sentence": s_idx, **params}))
        if parts is not None:
            obj, prep, tgt = parts
            for k, (ask, where, answer) in enumerate(SPLIT_DIALOGUES):
                turns = [_u(ask.format(o=obj, O=_cap(obj))), _r(where), _u(answer.format(p=prep, P=_cap(prep), t=tgt))]
                built.append((turns + [_r(rng.choice(ACKS))], {"frame": f"split{k}"}))
        rng.shuffle(built)
        out, seen = [], set()
        for turns, params in built:
            text = dialogue_text(turns)
            if text in seen:
                continue
            seen.add(text)
            out.append(Candidate(text, "template-dialogue", params, turns))
            if len(out) >= n:
                break
        return out


OPENINGS = (
    ("Hi, could you help me with something?", "Of course. What do you need?"),
    ("Are you free for a moment?", "Yes. What should I do?"),
    ("I have a job for you.", "Sure, what is it?"),
    ("Hello robot.", "Hello! How can I help?"),
    ("Can you do something for me?", "Happy to help. What is it?"),
)
ACKS = ("Okay, doing it now.", "Sure, on it.", "Got it.", "Alright, starting now.", "Will do.")
#: The user names the object, the robot asks where, the user names the target.
SPLIT_DIALOGUES = (
    ("I need {o} moved.", "Sure. Where should it go?", "{P} {t}, please."),
    ("Could you pick up {o}?", "Yes. Where do you want it?", "Put it {p} {t}."),
    ("{O} is in the wrong place.", "Where would you like it?", "{P} {t}."),
    ("Please grab {o} for me.", "Got it. Where should I put it?", "{P} {t}, thanks."),
)


def _object_and_target(task: str, slots: dict[str, str]) -> tuple[str, str, str] | None:
    """(object, preposition, target) of a one-object pick-and-place task, for split dialogues."""
    s = slots
    table = {
        "put_block": (f"the {s.get('color')} block", "in", "the target area"),
        "rubbish_in_bin": ("the rubbish", "in", "the bin"),
        "block_in_basket": (f"the {s.get('color')} block", "in", f"the {s.get('side')} basket"),
        "jar_in_bin": (f"the {s.get('color')} jar", "in", "the bin"),
        "fruit_in_bowl": (f"the {s.get('taste')} fruit", "in", "the bowl"),
        "fruit_in_closest_basket": (f"the {s.get('fruit')}", "in", "the closest basket"),
        "insert_in_peg": ("the square ring", "onto", f"the {s.get('color')} peg"),
        "basketball_in_hoop": (f"the {s.get('color')} ball", "into", "the hoop"),
        "cup_on_object": ("the cup", "on", f"the {s.get('color')} {s.get('kind')}"),
        "case_on_target": (f"the {s.get('color')} case", "on", "the target"),
    }
    return table.get(task)


def _u(text: str) -> dict[str, str]:
    return {"role": "user", "text": text}


def _r(text: str) -> dict[str, str]:
    return {"role": "robot", "text": text}


def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9 ]", "", text.lower()).strip()


# ------------------------------------------------------------------------------------ the LLM writer
PARAPHRASE_VERSION = "asmr-paraphrase-v1"
SYSTEM = (
    "You rewrite instructions for a robot arm that works at a table. A rewording must ask for exactly "
    "the same thing: keep every colour, object, target, number, order, side (left/right) and taste "
    "(sweet/sour); add nothing, drop nothing. Answer with JSON only."
)


def paraphrase_schema(n: int) -> dict:
    return {
        "type": "object",
        "properties": {
            "paraphrases": {
                "type": "array",
                "items": {"type": "string", "minLength": 8, "maxLength": 200},
                "minItems": 1,
                "maxItems": n,
            }
        },
        "required": ["paraphrases"],
    }


DIALOGUE_SCHEMA = {
    "type": "object",
    "properties": {
        "dialogue": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "role": {"type": "string", "enum": ["user", "robot"]},
                    "text": {"type": "string", "minLength": 2, "maxLength": 200},
                },
                "required": ["role", "text"],
            },
            "minItems": 2,
            "maxItems": 6,
        }
    },
    "required": ["dialogue"],
}


def _first_json(text: str) -> Any:
    match = re.search(r"\{.*\}", text, re.S)
    if not match:
        raise ValueError("no JSON object in the answer")
    try:
        return json.loads(match.group(0))
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg})") from None


@dataclass
class LLMParaphraser:
    """Rewordings and dialogues from a language model (``TextGenerator``); answers parsed leniently,
    schema-constrained where the backend supports it. Failures are returned, never raised, so the
    job can count them."""

    generator: Any
    temperature: float = 0.8
    max_new_tokens: int = 384
    name: str = "llm"
    failures: list[dict[str, str]] = field(default_factory=list)

    def _ask(self, user: str, schema: dict, seed: int) -> tuple[Any, float, str]:
        from llm_trainer.planning.llm import GenerationError, GenerationRequest
        from llm_trainer.planning.prompt import Prompt

        use_schema = "json_schema" in getattr(self.generator, "supports", ())
        request = GenerationRequest(
            Prompt(SYSTEM, user, PARAPHRASE_VERSION),
            json_schema=schema if use_schema else None,
            max_new_tokens=self.max_new_tokens,
            temperature=self.temperature,
            seed=seed % (2**31),
        )
        try:
            generation = self.generator.generate(request)
        except GenerationError as exc:
            return None, 0.0, f"generation failed: {exc}"
        try:
            return _first_json(generation.text), generation.seconds, generation.text
        except ValueError as exc:
            return None, generation.seconds, f"{exc}: {generation.text[:200]!r}"

    def candidates(self, task: str, instruction: str, n: int, seed: int) -> list[Candidate]:
        user = (
            f"Instruction: {instruction}\nWrite {n} different ways a person might say exactly this instruction. "
            f'Answer {{"paraphrases": ["...", ...]}}.'
        )
        data, seconds, raw = self._ask(user, paraphrase_schema(n), seed)
        items = data.get("paraphrases") if isinstance(data, dict) else None
        if not isinstance(items, list):
            self.failures.append({"kind": "paraphrase", "instruction": instruction, "reason": str(raw)[:300]})
            return []
        params = {"temperature": self.temperature, "seconds": round(seconds, 3), "prompt_version": PARAPHRASE_VERSION}
        seen = {_norm(instruction)}
        out = []
        for k, text in enumerate(items[:n]):
            if isinstance(text, str) and text.strip() and _norm(text) not in seen:
                seen.add(_norm(text))
                out.append(Candidate(text.strip(), "llm-paraphrase", {**params, "index": k}))
        return out

    def dialogues(self, task: str, instruction: str, n: int, seed: int) -> list[Candidate]:
        out = []
        for k in range(n):
            user = (
                f"Instruction: {instruction}\nWrite a short conversation (2 to 4 turns) in which a user asks the "
                "robot to do exactly this, in everyday words; the robot only asks or confirms. "
                'Answer {"dialogue": [{"role": "user", "text": "..."}, {"role": "robot", "text": "..."}, ...]}.'
            )
            data, seconds, raw = self._ask(user, DIALOGUE_SCHEMA, seed + k)
            turns = data.get("dialogue") if isinstance(data, dict) else None
            ok = isinstance(turns, list) and all(
                isinstance(t, dict) and t.get("role") in ("user", "robot") and isinstance(t.get("text"), str)
                for t in turns
            )
            if not ok or not turns or not any(t["role"] == "user" for t in turns):
                self.failures.append({"kind": "dialogue", "instruction": instruction, "reason": str(raw)[:300]})
                continue
            turns = [{"role": t["role"], "text": t["text"].strip()} for t in turns]
            params = {"temperature": self.temperature, "seconds": round(seconds, 3), "index": k}
            out.append(Candidate(dialogue_text(turns), "llm-dialogue", params, turns))
        return out
