"""The attribute filter: what an instruction concretely asks for, and whether a rewording kept it.

ASMR (arXiv 2506.13956) rewrites instructions and dialogues with an LLM; an augmented sample is
only worth having when the rewording asks for exactly the same thing, since its completion is the
*original* verified plan. So every paraphrase passes ``check_paraphrase`` before it is kept, the
template paraphraser's included: the filter checks, it never trusts the writer.

``extract`` reads a text into noun phrases (determiner, count, adjectives, head noun from a small
lexicon of the task suite's objects, or ``one`` standing for the last noun), each with its role from
the preposition before it (``in/into/on/onto/on top of/to``: target; ``from/off/out of``: source;
``next to/beside/near/...``: landmark; otherwise: an object to move). Mentions of one thing are
merged (``the red block ... the block`` is one entity). ``compare`` then checks, in this order:

=============  =================================================================================
unverifiable   constructs the paraphrase adds that the filter cannot check: a negation
               (``not``, ``instead``), a side relative to the speaker (``my left``), ordinals
               (``second``, ``last``) or a ``first`` that is not on the first object
colour, taste, the sets of adjective values (colours with a few synonyms: ``scarlet`` is red;
side, size,    ``tart`` is sour; ``left-hand`` is left; ``your left``/``the robot's left`` is left)
shape,
relation
object         the set of head nouns (synonyms folded: cube = block, trash can = bin); an unknown
               noun after a determiner counts as an object too (``the pencil``), so an invented
               object is caught
target/source  what goes where: the descriptions of the targets, sources and landmarks
/landmark
binding        which colour/taste/... goes with which object to move
count          per role and noun: an explicit count (``two``, ``both``, ``3``), else the number of
               distinct singular entities; a bare plural agrees with any count of two or more
order          the objects to move in the order they are to be moved (text order, with
               ``A after B`` read as B then A), when the original moves two or more
action         open versus close (``close the jar`` is not ``open the jar``)
=============  =================================================================================

The filter is conservative by design: a rewording it cannot verify is rejected (a dropped
paraphrase costs nothing; a kept wrong one teaches the planner the wrong thing).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from llm_trainer.tasks.base import COLOR_NAMES

# ------------------------------------------------------------------------------------------- lexicon
#: colour words -> canonical colour (the task suite's colours, synonyms, and colours it never uses,
#: so that a paraphrase naming one is seen as changing the colour).
COLOURS: dict[str, str] = {c: c for c in COLOR_NAMES}
COLOURS.update(
    {
        "scarlet": "red",
        "crimson": "red",
        "violet": "purple",
        "turquoise": "cyan",
        "aqua": "cyan",
        "white": "white",
        "black": "black",
        "grey": "grey",
        "gray": "grey",
        "brown": "brown",
        "pink": "pink",
        "gold": "gold",
        "golden": "gold",
        "silver": "silver",
        "beige": "beige",
    }
)
TASTES = {"sweet": "sweet", "sugary": "sweet", "sour": "sour", "tart": "sour", "acidic": "sour"}
SIZES = {
    "large": "large",
    "big": "large",
    "bigger": "large",
    "larger": "large",
    "huge": "large",
    "small": "small",
    "smaller": "small",
    "little": "small",
    "tiny": "small",
}
SHAPES = {"square": "square", "round": "round", "circular": "round", "rectangular": "rectangular"}
SIDES = {"left": "left", "leftmost": "left", "right": "right", "rightmost": "right"}
RELATIONS = {
    "closest": "closest",
    "nearest": "closest",
    "farthest": "farthest",
    "furthest": "farthest",
}
ADJECTIVE_KINDS: dict[str, dict[str, str]] = {
    "colour": COLOURS,
    "taste": TASTES,
    "size": SIZES,
    "shape": SHAPES,
    "side": SIDES,
    "relation": RELATIONS,
}

#: (words...) -> (canonical noun, plural). Longest match first.
_NOUN_FORMS: dict[str, tuple[str, ...]] = {
    "block": ("block", "cube", "brick"),
    "jar": ("jar",),
    "bottle": ("bottle",),
    "cap": ("cap", "bottle cap"),
    "lid": ("lid",),
    "ball": ("ball", "basketball"),
    "hoop": ("hoop",),
    "ring": ("ring",),
    "peg": ("peg", "post"),
    "case": ("case",),
    "cup": ("cup", "mug"),
    "box": ("box",),
    "plate": ("plate", "dish"),
    "book": ("book",),
    "bin": ("bin", "dustbin", "trash can", "trash bin", "rubbish bin", "waste bin", "garbage can", "garbage bin"),
    "rubbish": ("rubbish", "trash", "garbage", "litter"),
    "container": ("container",),
    "basket": ("basket",),
    "bowl": ("bowl",),
    "fruit": ("fruit", "piece of fruit"),
    "apple": ("apple",),
    "peach": ("peach",),
    "banana": ("banana",),
    "lemon": ("lemon",),
    "lime": ("lime",),
    "meat": ("meat",),
    "chicken": ("chicken", "drumstick", "chicken drumstick", "chicken leg"),
    "steak": ("steak",),
    "grill": ("grill", "barbecue", "bbq"),
    "target area": ("target area", "goal area", "target zone", "target region", "marked area"),
    "target": ("target",),
    "table": ("table", "tabletop"),
    "thing": ("thing", "object", "item"),
}
_IRREGULAR_PLURALS = {"box": "boxes", "dish": "dishes", "peach": "peaches", "piece of fruit": "pieces of fruit"}
_UNCOUNTABLE = {"rubbish", "trash", "garbage", "litter", "meat", "chicken", "fruit"}


def _plural(word: str) -> str:
    head, _, rest = word.partition(" ")
    if word in _IRREGULAR_PLURALS:
        return _IRREGULAR_PLURALS[word]
    if rest and head == "piece":
        return "pieces " + rest
    return word + ("es" if word.endswith(("s", "x", "ch", "sh")) else "s")


NOUNS: dict[tuple[str, ...], tuple[str, bool]] = {}
for _canon, _forms in _NOUN_FORMS.items():
    for _form in _forms:
        NOUNS[tuple(_form.split())] = (_canon, False)
        if _form not in _UNCOUNTABLE:
            NOUNS[tuple(_plural(_form).split())] = (_canon, True)
_MAX_NOUN_WORDS = max(len(k) for k in NOUNS)

DETERMINERS = {
    "the", "a", "an", "this", "that", "these", "those", "your", "my", "its", "our", "their",
    "each", "every", "some", "any", "another", "other", "robot's", "same",
}  # fmt: skip
COUNTS = {
    "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10,
    "both": 2, "pair": 2, "couple": 2, "all": "all", "single": 1,
}  # fmt: skip
NEGATIONS = {"not", "no", "never", "don't", "doesn't", "isn't", "aren't", "won't", "shouldn't", "instead",
             "rather", "except", "without", "nor", "neither", "unless", "can't", "cannot", "mustn't"}  # fmt: skip
ORDINALS_LATE = {"second", "third", "fourth", "last", "lastly", "finally", "secondly", "thirdly"}
OPEN_WORDS = {"open", "opened", "opening", "uncap", "uncapped", "unscrew", "unscrewed", "unseal", "unsealed"}
CLOSE_WORDS = {"close", "closed", "closing", "shut", "seal", "sealed", "screw", "screwed"}
#: Words after a determiner that are not objects (so ``the way``, ``your help`` add no object).
NON_OBJECTS = {
    "robot", "gripper", "arm", "hand", "fingers", "way", "end", "top", "side", "middle", "centre", "center",
    "edge", "rest", "one", "ones", "task", "job", "favour", "favor", "moment", "minute", "second", "time", "help",
    "next", "first", "last", "order", "lid's", "other", "others", "same", "thing's", "problem", "request",
    "following", "plan", "idea", "sake", "bit", "lot", "while", "day", "morning", "please", "place", "spot",
    "area", "stack", "tower", "pile", "contents", "position", "left", "right", "now", "then", "there", "here",
    "wrong", "correct", "proper", "whole", "entire", "usual", "it", "them", "me", "you", "us", "him", "her",
    "what", "which", "so", "to", "of", "on", "in", "and", "or",
    "is", "are", "be", "was", "will", "can", "could", "would", "should", "shall", "must", "may", "might", "do",
    "does", "did", "has", "have", "had", "go", "goes", "put", "set", "move", "get", "let", "make",
    "take", "give", "bring", "drop", "close", "open", "remove", "empty", "pour", "leave", "pick",
    "grab", "lift", "carry", "need", "want", "like", "see", "find", "use", "tip", "shut", "seal", "throw",
    "toss", "dump", "insert", "slide", "lay", "stand", "sit", "transfer", "unscrew", "twist", "pull",
    "very", "just", "also", "too", "up", "down", "out", "off", "back", "away", "onto", "into", "over", "for",
    "at", "with", "from", "by", "as", "if", "when", "once", "after", "before", "until", "all", "both",
}  # fmt: skip

TARGET_PREPS = {("in",), ("into",), ("inside",), ("onto",), ("on",), ("to",), ("toward",), ("towards",),
                ("within",), ("on", "top", "of"), ("on", "to"), ("in", "to"), ("inside", "of"), ("atop",)}  # fmt: skip
SOURCE_PREPS = {("from",), ("off",), ("out", "of"), ("off", "of"), ("away", "from")}
LANDMARK_PREPS = {("next", "to"), ("beside",), ("near",), ("behind",), ("under",), ("below",), ("above",),
                  ("over",), ("in", "front", "of"), ("close", "to"), ("around",), ("between",), ("by",),
                  ("left", "of"), ("right", "of"), ("against",), ("underneath",), ("beneath",)}  # fmt: skip
_PREPS = sorted(
    [(p, "target") for p in TARGET_PREPS]
    + [(p, "source") for p in SOURCE_PREPS]
    + [(p, "landmark") for p in LANDMARK_PREPS],
    key=lambda item: -len(item[0]),
)
_NOT_SIDE_AFTER = {"now", "away", "there", "here", "then", "back"}
_NOT_SIDE_BEFORE = {"all", "that's", "is", "you're", "exactly", "quite"}
_SEQUENCE_VERBS = {"placing", "putting", "stacking", "moving", "setting", "you've", "you", "have", "put",
                   "placed", "stacked", "moved", "set", "i", "it's", "is", "has", "been", "done", "with"}  # fmt: skip

_TOKEN = re.compile(r"[a-z]+(?:'[a-z]+)?|\d+|[.,;:!?]")


def tokenize(text: str) -> list[str]:
    text = text.lower().replace("\u2019", "'").replace("-", " ")
    return _TOKEN.findall(text)


# ------------------------------------------------------------------------------------------ phrases
@dataclass
class Phrase:
    """One mention of a thing: its head noun (canonical; ``?word`` for an unknown one; None when
    only adjectives were said), adjectives by kind, number and role."""

    noun: str | None
    adjectives: dict[str, str] = field(default_factory=dict)
    plural: bool = False
    count: int | str | None = None
    role: str = "object"  # object (to move) | target | source | landmark
    start: int = 0  # token index

    def describe(self, number: bool = True) -> str:
        adj = " ".join(self.adjectives[k] for k in ADJECTIVE_KINDS if k in self.adjectives)
        noun = self.noun or "one"
        if number and self.plural:
            noun = f"{noun}(s)"
        count = f"{self.count} " if number and self.count not in (None, 1) else ""
        return f"{count}{adj + ' ' if adj else ''}{noun}".strip()


@dataclass
class Attributes:
    """What ``extract`` read from a text."""

    text: str
    entities: list[Phrase]
    mentions: list[Phrase]
    flags: dict[str, str]  # unverifiable constructs: kind -> the words that raised it
    actions: set[str]
    order: list[str]  # objects to move, in the order they are to be moved

    def values(self, kind: str) -> set[str]:
        return {e.adjectives[kind] for e in self.entities if kind in e.adjectives}

    def nouns(self) -> set[str]:
        return {e.noun for e in self.entities if e.noun}

    def role(self, role: str, number: bool = False) -> set[str]:
        return {e.describe(number) for e in self.entities if e.role == role}

    def quantities(self) -> dict[tuple[str, str], tuple[str, int | str]]:
        """(role, noun) -> ("explicit", count) for a stated count (``two``, ``both``, ``all``), else
        ("implied", distinct singular entities), or ("implied", "2+") for a bare plural."""
        out: dict[tuple[str, str], tuple[str, int | str]] = {}
        for role, noun in {(e.role, e.noun) for e in self.entities if e.noun}:
            group = [e for e in self.entities if e.role == role and e.noun == noun]
            explicit = [e.count for e in group if e.count is not None and e.count != 1]
            singular = sum(1 for e in group if not e.plural)
            if explicit:
                out[(role, noun)] = ("explicit", explicit[0])
            elif any(e.plural for e in group) and singular < 2:
                out[(role, noun)] = ("implied", "2+")
            else:
                out[(role, noun)] = ("implied", singular)
        return out

    def summary(self) -> dict:
        return {
            "entities": [{"role": e.role, "what": e.describe()} for e in self.entities],
            "order": self.order,
            "actions": sorted(self.actions),
            "flags": self.flags,
        }


def _noun_at(tokens: list[str], i: int) -> tuple[str, bool, int] | None:
    for n in range(min(_MAX_NOUN_WORDS, len(tokens) - i), 0, -1):
        hit = NOUNS.get(tuple(tokens[i : i + n]))
        if hit:
            return hit[0], hit[1], n
    return None


def _adjective(token: str) -> tuple[str, str] | None:
    for kind, table in ADJECTIVE_KINDS.items():
        if token in table:
            return kind, table[token]
    return None


def _is_side_word(tokens: list[str], i: int) -> bool:
    """``left``/``right`` as a side (not ``right now``, ``all right``, ``that's right``)."""
    if tokens[i] not in SIDES:
        return False
    if tokens[i] == "right":
        if i + 1 < len(tokens) and tokens[i + 1] in _NOT_SIDE_AFTER:
            return False
        if i > 0 and tokens[i - 1] in _NOT_SIDE_BEFORE:
            return False
        if i + 1 >= len(tokens) or tokens[i + 1] in {".", "!", "?", ","}:
            # "... on the right." is a side; "that is right." is not
            return i > 0 and tokens[i - 1] in DETERMINERS | {"your", "robot's", "its", "my"}
    return True


def _role_before(tokens: list[str], start: int) -> str:
    for words, role in _PREPS:
        n = len(words)
        if start - n >= 0 and tuple(tokens[start - n : start]) == words:
            return role
    return "object"


def _word_ok_as_unknown_noun(token: str) -> bool:
    return (
        token.isalpha()
        and token not in NON_OBJECTS
        and token not in DETERMINERS
        and token not in COUNTS
        and token not in NEGATIONS
        and _adjective(token) is None
        and not token.endswith("ly")
        and len(token) > 2
    )


def _parse(tokens: list[str]) -> tuple[list[Phrase], dict[str, str]]:
    phrases: list[Phrase] = []
    flags: dict[str, str] = {}
    last_noun: str | None = None
    i = 0
    n = len(tokens)
    while i < n:
        t = tokens[i]
        # "on the left", "to your right", "on the robot's left (of ...)": a side after the noun
        if t in {"on", "to", "at"} and i + 2 < n and tokens[i + 1] in {"the", "your", "my", "its", "robot's"}:
            j = i + 2
            if tokens[i + 1] == "the" and j < n and tokens[j] == "robot's":
                j += 1
            k = -1
            if j < n and tokens[j] in SIDES and _is_side_word(tokens, j):
                k = j + 1
                if k < n and tokens[k] in {"hand", "side"}:
                    k += 1
                if k < n and (_noun_at(tokens, k) or _adjective(tokens[k])) and tokens[k] != "side":
                    k = -1  # "on the left basket": a phrase with a side adjective, parsed below
            if k > 0:
                if tokens[i + 1] == "my":
                    flags["side"] = f"'my {tokens[j]}' depends on where the speaker stands"
                side = SIDES[tokens[j]]
                if k < n and tokens[k] == "of":  # "to the left of X": X is a landmark
                    phrases.append(Phrase(None, {"side": side}, role="landmark", start=i))
                    i = k + 1
                    nxt = _phrase_at(tokens, i, last_noun)
                    if nxt is not None:
                        nxt[0].role = "landmark"
                        phrases.append(nxt[0])
                        last_noun = nxt[0].noun or last_noun
                        i = nxt[1]
                    continue
                if phrases:
                    phrases[-1].adjectives.setdefault("side", side)
                else:
                    phrases.append(Phrase(None, {"side": side}, start=i))
                i = k
                continue
        found = _phrase_at(tokens, i, last_noun)
        if found is None:
            i += 1
            continue
        phrase, end = found
        if phrase.adjectives.get("side") and i > 0 and tokens[i - 1] == "my":
            flags["side"] = f"'my {phrase.adjectives['side']}' depends on where the speaker stands"
        phrase.role = _role_before(tokens, phrase.start)
        phrases.append(phrase)
        if phrase.noun:
            last_noun = phrase.noun
        i = end
    return phrases, flags


def _phrase_at(tokens: list[str], i: int, last_noun: str | None) -> tuple[Phrase, int] | None:
    """The noun phrase starting at token ``i`` (or None) and the index after it."""
    n = len(tokens)
    j = i
    had_det = False
    count: int | str | None = None
    while j < n and (tokens[j] in DETERMINERS or tokens[j] in COUNTS or tokens[j].isdigit()):
        word = tokens[j]
        if word in DETERMINERS:
            had_det = True
        elif word.isdigit():
            count = int(word)
        elif word in ("pair", "couple"):
            if j + 1 < n and tokens[j + 1] == "of":
                count = 2
                j += 1
            else:
                break
        else:
            count = COUNTS[word]
        j += 1
    # "one" as a count ("one red block") versus the pro-form ("the red one")
    if j < n and tokens[j] == "one" and j + 1 < n and (_adjective(tokens[j + 1]) or _noun_at(tokens, j + 1)):
        count = 1
        j += 1
    adjectives: dict[str, str] = {}
    while j < n:
        adj = _adjective(tokens[j])
        if adj is None or (adj[0] == "side" and not _is_side_word(tokens, j)):
            break
        adjectives.setdefault(adj[0], adj[1])
        j += 1
        if j < n and tokens[j] == "hand" and adj[0] == "side":  # left-hand
            j += 1
    noun = _noun_at(tokens, j)
    if noun is not None:
        canon, plural, length = noun
        return Phrase(canon, adjectives, plural, count, start=i), j + length
    if j < n and tokens[j] in ("one", "ones") and (adjectives or had_det or count is not None):
        return Phrase(last_noun, adjectives, tokens[j] == "ones", count, start=i), j + 1
    if adjectives:  # adjectives alone ("first red, then blue"; "the block that is red")
        return Phrase(None, adjectives, False, count, start=i), j
    if had_det and j < n and _word_ok_as_unknown_noun(tokens[j]) and j == i + 1 + (count is not None):
        word = tokens[j]
        plural = word.endswith("s") and not word.endswith("ss")
        return Phrase("?" + (word[:-1] if plural else word), {}, plural, count, start=i), j + 1
    if count is not None and count != "all" and j > i:
        return Phrase(last_noun, {}, True, count, start=i), j
    return None


def _compatible(a: Phrase, b: Phrase) -> bool:
    if a.role != b.role:
        return False
    if a.noun and b.noun and a.noun != b.noun:
        return False
    if a.plural != b.plural and a.noun and b.noun:
        return False
    if a.count is not None and b.count is not None and a.count != b.count:
        return False
    return all(a.adjectives[k] == b.adjectives[k] for k in a.adjectives.keys() & b.adjectives.keys())


def _merge(mentions: list[Phrase]) -> list[Phrase]:
    """Mentions of one thing -> one entity (the most recent compatible one absorbs a new mention).
    A bare noun merges only with an entity of the same noun; a mention without a noun (``the red
    one``, ``red``) also with an entity whose noun is known."""
    entities: list[Phrase] = []
    for m in mentions:
        target = None
        for e in reversed(entities):
            if _compatible(e, m):
                target = e
                break
        if target is None:
            entities.append(Phrase(m.noun, dict(m.adjectives), m.plural, m.count, m.role, m.start))
            continue
        target.noun = target.noun or m.noun
        for k, v in m.adjectives.items():
            target.adjectives.setdefault(k, v)
        if target.count is None:
            target.count = m.count
    return entities


def _order(tokens: list[str], mentions: list[Phrase], entities: list[Phrase]) -> tuple[list[str], str | None]:
    """The singular objects to move, in the order they are to be moved; and an unverifiable reason."""

    def entity_of(m: Phrase) -> Phrase | None:
        for e in entities:
            if _compatible(e, m) and (m.noun is None or e.noun == m.noun):
                return e
        return None

    movers = [(m, entity_of(m)) for m in mentions if m.role == "object" and not m.plural]
    seq: list[Phrase] = []
    for m, e in movers:
        if e is None or e in seq:
            continue
        # "A after (putting) B": B goes before A
        k = m.start - 1
        while k >= 0 and tokens[k] in _SEQUENCE_VERBS | DETERMINERS:
            k -= 1
        if k >= 0 and tokens[k] == "after" and seq:
            seq.insert(len(seq) - 1, e)
        else:
            seq.append(e)
    reason = None
    distinct = [e for e in seq]
    if len(distinct) >= 2:
        late = [t for t in tokens if t in ORDINALS_LATE]
        if late:
            reason = f"'{late[0]}'"
        second_start = next((m.start for m, e in movers if e is distinct[1]), None)
        for idx, t in enumerate(tokens):
            if t == "first" and second_start is not None and idx > second_start:
                reason = "'first' after the second object"
    return [e.describe() for e in seq], reason


def extract(text: str) -> Attributes:
    tokens = tokenize(text)
    mentions, flags = _parse(tokens)
    entities = _merge(mentions)
    order, order_flag = _order(tokens, mentions, entities)
    if order_flag:
        flags["order"] = order_flag
    negations = [t for t in tokens if t in NEGATIONS]
    if negations:
        flags["negation"] = f"'{negations[0]}'"
    actions = set()
    if any(t in OPEN_WORDS for t in tokens):
        actions.add("open")
    if any(t in CLOSE_WORDS for t in tokens):
        actions.add("close")
    return Attributes(text, entities, mentions, flags, actions, order)


# ---------------------------------------------------------------------------------------- the check
@dataclass
class Verdict:
    kept: bool
    attribute: str = ""  # which attribute changed (colour, object, target, count, order, ...)
    detail: str = ""

    def __str__(self) -> str:
        return "kept" if self.kept else f"rejected: {self.attribute}: {self.detail}"


def _diff(kind: str, a: set, b: set) -> Verdict | None:
    if a == b:
        return None
    lost, new = sorted(a - b), sorted(b - a)
    if lost and new:
        return Verdict(False, kind, f"{', '.join(lost)} -> {', '.join(new)}")
    if lost:
        return Verdict(False, kind, f"{', '.join(lost)} missing")
    return Verdict(False, kind, f"{', '.join(new)} added")


def _plural_agrees(kind_a: str, a, kind_b: str, b) -> bool:
    """A bare plural agrees with two or more things named one by one (not with a stated count)."""
    return a == "2+" and kind_b == "implied" and isinstance(b, int) and b >= 2


def compare(original: Attributes, paraphrase: Attributes) -> Verdict:
    """Does ``paraphrase`` ask for what ``original`` asks for? The first difference found, or kept."""
    for kind in ("negation", "side", "order"):
        if kind in paraphrase.flags and kind not in original.flags:
            return Verdict(False, kind, f"cannot be verified ({paraphrase.flags[kind]})")
    for kind in ADJECTIVE_KINDS:
        verdict = _diff(kind, original.values(kind), paraphrase.values(kind))
        if verdict:
            return verdict
    verdict = _diff("object", original.nouns(), paraphrase.nouns())
    if verdict:
        return verdict
    for role in ("target", "source", "landmark"):
        verdict = _diff(role, original.role(role), paraphrase.role(role))
        if verdict:
            return verdict
    qa, qb = original.quantities(), paraphrase.quantities()
    for key in sorted(qa.keys() | qb.keys()):
        (ka, a), (kb, b) = qa.get(key, ("implied", 0)), qb.get(key, ("implied", 0))
        if a == b or _plural_agrees(ka, a, kb, b) or _plural_agrees(kb, b, ka, a):
            continue
        return Verdict(False, "count", f"{key[1]} ({key[0]}): {a} -> {b}")
    verdict = _diff("object", original.role("object"), paraphrase.role("object"))
    if verdict:
        return verdict
    if len(original.order) >= 2 and original.order != paraphrase.order:
        return Verdict(False, "order", f"{', '.join(original.order)} -> {', '.join(paraphrase.order)}")
    verdict = _diff("action", original.actions, paraphrase.actions)
    if verdict:
        return verdict
    return Verdict(True)


_TURN = re.compile(r"^\s*(user|robot)\s*:\s*(.*)$", re.I)


def dialogue_turns(text: str) -> list[dict[str, str]] | None:
    """``User: ...`` / ``Robot: ...`` lines -> turns, or None when ``text`` is not a dialogue."""
    lines = [line for line in text.splitlines() if line.strip()]
    matches = [_TURN.match(line) for line in lines]
    if len(lines) < 2 or not all(matches):
        return None
    return [{"role": m.group(1).lower(), "text": m.group(2).strip()} for m in matches]


def check_paraphrase(original: str, paraphrase: str) -> Verdict:
    """``kept`` or ``rejected: <attribute>: <what changed>`` for one rewording of ``original``
    (a text of ``User:``/``Robot:`` lines is checked as a dialogue, ``check_dialogue``)."""
    if not original.strip():
        raise ValueError("the original text is empty")
    if not paraphrase.strip():
        return Verdict(False, "text", "the paraphrase is empty")
    turns = dialogue_turns(paraphrase)
    if turns is not None:
        return check_dialogue(original, turns)
    return compare(extract(original), extract(paraphrase))


#: What a robot may say that reads as a negation but is none ("no problem").
_ROBOT_IDIOMS = re.compile(r"\b(no problem|not a problem|no worries|why not|no trouble)\b")


def check_dialogue(original: str, turns: list[dict[str, str]]) -> Verdict:
    """A dialogue implies ``original`` when the user's turns, read together, ask for exactly it and
    the robot's turns name nothing the original does not (no other colour, object, side, ...): the
    robot may ask or confirm, but what is asked for must come from the user."""
    if not original.strip():
        raise ValueError("the original text is empty")
    user = " ".join(t["text"] for t in turns if t.get("role") == "user")
    robot = " ".join(t["text"] for t in turns if t.get("role") != "user")
    if not user.strip():
        return Verdict(False, "text", "the user says nothing")
    verdict = check_paraphrase(original, user)
    if not verdict.kept:
        return Verdict(False, verdict.attribute, f"{verdict.detail} (in the user's turns)")
    if robot.strip():
        said, orig = extract(_ROBOT_IDIOMS.sub(" ", robot.lower())), extract(original)
        if "negation" in said.flags and "negation" not in orig.flags:
            return Verdict(False, "negation", f"cannot be verified in the robot's turns ({said.flags['negation']})")
        for kind in ADJECTIVE_KINDS:
            extra = sorted(said.values(kind) - orig.values(kind))
            if extra:
                return Verdict(False, kind, f"{', '.join(extra)} added by the robot")
        extra = sorted(said.nouns() - orig.nouns())
        if extra:
            return Verdict(False, "object", f"{', '.join(extra)} added by the robot")
    return Verdict(True)
