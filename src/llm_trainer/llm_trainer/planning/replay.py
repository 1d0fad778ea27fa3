"""Replay recorded model answers (regression tests, re-validating old logs without a model).

The file is either
  * JSON lines, one answer per line under ``raw_answer`` (or ``answer``), optionally with the
    ``instruction`` it answered: the planner's own request log (``planner_requests.jsonl``) works
    as is; a request takes the first unused answer recorded for its instruction, or, when the lines
    carry no instructions, the next one in order;
  * any other text file: one answer, returned for every request.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path

from llm_trainer.planning.llm import CONSTRAINTS, Generation, GenerationError, GenerationRequest, TextGenerator


@dataclass
class ReplayConfig:
    path: str = ""  # JSON lines of answers (e.g. a planner_requests.jsonl) or one answer as text


def load_answers(path: Path) -> list[dict]:
    text = path.read_text(encoding="utf-8")
    if path.suffix != ".jsonl":
        return [{"raw_answer": text}]
    answers = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{n}: not a JSON line ({exc.msg})") from None
        answer = entry.get("raw_answer", entry.get("answer")) if isinstance(entry, dict) else None
        if not isinstance(answer, str):
            raise ValueError(f"{path}:{n}: no 'raw_answer' text")
        answers.append({"raw_answer": answer, "instruction": entry.get("instruction", "")})
    if not answers:
        raise ValueError(f"{path}: no answers")
    return answers


class ReplayGenerator(TextGenerator):
    name = "replay"
    supports = CONSTRAINTS  # the recorded answers are what they are; the parser judges them
    answer_format = "auto"

    def __init__(self, config: ReplayConfig | None = None):
        self.config = config or ReplayConfig()
        if not self.config.path:
            raise ValueError("the replay backend needs replay.path (a .jsonl of answers or a text file)")
        path = Path(self.config.path)
        if not path.is_file():
            raise FileNotFoundError(f"replay file {path} not found")
        self.answers = load_answers(path)
        self._single = path.suffix != ".jsonl"
        self._used = [False] * len(self.answers)
        self._lock = threading.Lock()

    def generate(self, request: GenerationRequest) -> Generation:
        if self._single:
            return Generation(self.answers[0]["raw_answer"])
        with self._lock:
            keyed = any(a["instruction"] for a in self.answers)
            for i, entry in enumerate(self.answers):
                if self._used[i] or (keyed and entry["instruction"] != request.instruction):
                    continue
                self._used[i] = True
                return Generation(entry["raw_answer"])
        raise GenerationError(f"no unused recorded answer for {request.instruction!r} in {self.config.path}")
