"""The LLM planner: prompt -> text generator -> parser, with the constraint and retries from the config.

Every text backend (in-process ``transformers``, any OpenAI-compatible server, ``replay``)
implements ``TextGenerator.generate``; ``LLMPlanner`` is the same for all of them:

1. build the MALMM-style prompt (``planning.prompt``) for the request's scene;
2. ask the generator, with a grammar or JSON schema for the scene when decoding is constrained
   (``planning.grammar``);
3. parse the answer (``planning.parser``: ``ast``/``json``, never ``exec``);
4. ``Planner.plan`` then validates it (``validate_plan`` + IK reachability). A refused answer is
   retried up to ``retries`` times with the reason fed back to the model.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from llm_trainer.planning.base import Planner, PlanRequest, PlanResult
from llm_trainer.planning.grammar import LEVELS, code_grammar, plan_json_schema
from llm_trainer.planning.parser import PlanParseError, parse_answer
from llm_trainer.planning.prompt import Prompt, PromptConfig, build_prompt

CONSTRAINTS = ("none", "grammar", "json_schema")


@dataclass
class Generation:
    text: str
    tokens: int = 0  # generated tokens (0 when the backend does not say)
    seconds: float = 0.0
    constraint: str = "none"


@dataclass
class GenerationRequest:
    prompt: Prompt
    grammar: str | None = None  # GBNF
    json_schema: dict | None = None
    max_new_tokens: int = 1024
    temperature: float = 0.0
    seed: int = 0
    # What the request is about (replay matches on these); generators that talk to models ignore them.
    instruction: str = ""
    task_name: str = ""


class GenerationError(RuntimeError):
    """The backend could not produce an answer (server down, timeout, model missing); the message says why."""


class TextGenerator(ABC):
    name = "text"
    #: The constraints this backend can enforce (others are refused at configuration time).
    supports: tuple[str, ...] = ("none",)
    #: Fixed answer format for the parser (``auto``: detect), or ``None``: what the options ask for.
    answer_format: str | None = None

    @abstractmethod
    def generate(self, request: GenerationRequest) -> Generation: ...

    def close(self) -> None:  # noqa: B027 - optional hook
        pass


@dataclass
class LLMOptions:
    """Options shared by every text backend (``planner.llm`` in ``config/planner.yaml``)."""

    constraint: str = "grammar"  # none | grammar (GBNF, code answers) | json_schema (JSON answers)
    grammar_level: str = "anchored"  # syntax | recipe | anchored (see planning.grammar); small models: anchored

    max_new_tokens: int = 1024
    temperature: float = 0.0  # 0: greedy
    seed: int = 0
    retries: int = 0  # re-ask with the rejection reason this many times (sequential mode)
    prompt: PromptConfig = field(default_factory=PromptConfig)

    def validate(self) -> None:
        if self.constraint not in CONSTRAINTS:
            raise ValueError(f"llm.constraint must be one of {', '.join(CONSTRAINTS)}, got {self.constraint!r}")
        if self.grammar_level not in LEVELS:
            raise ValueError(f"llm.grammar_level must be one of {', '.join(LEVELS)}, got {self.grammar_level!r}")
        if not 16 <= self.max_new_tokens <= 8192:
            raise ValueError("llm.max_new_tokens must be within [16, 8192]")
        if not 0.0 <= self.temperature <= 2.0:
            raise ValueError("llm.temperature must be within [0, 2]")
        if not 0 <= self.retries <= 5:
            raise ValueError("llm.retries must be within [0, 5]")

    def answer_format(self) -> str:
        """The answer format the prompt asks for: JSON under a schema constraint, else the configured one."""
        return "json" if self.constraint == "json_schema" else self.prompt.format


class LLMPlanner(Planner):
    """A planner backed by a language model (or a replay of its answers)."""

    def __init__(
        self, generator: TextGenerator, options: LLMOptions | None = None, *, name: str | None = None, validation=None
    ):
        super().__init__(validation)
        self.generator = generator
        self.options = options or LLMOptions()
        self.name = name or generator.name
        if self.options.constraint not in generator.supports:
            raise ValueError(
                f"the {self.name} backend cannot enforce constraint {self.options.constraint!r} "
                f"(it supports: {', '.join(generator.supports)})"
            )

    # ------------------------------------------------------------ one request
    def generation_request(self, request: PlanRequest, feedback: str = "") -> GenerationRequest:
        opts = self.options
        prompt_cfg = opts.prompt
        fmt = opts.answer_format()
        if fmt != prompt_cfg.format:
            prompt_cfg = PromptConfig(**{**prompt_cfg.__dict__, "format": fmt})
        dynamic = request.mode == "dynamic"
        prompt = build_prompt(
            request.instruction,
            request.scene,
            prompt_cfg,
            mode=request.mode,
            history=request.history,
            feedback=feedback,
        )
        grammar = schema = None
        if opts.constraint == "grammar":
            grammar = code_grammar(request.scene, opts.grammar_level, dynamic=dynamic)
        elif opts.constraint == "json_schema":
            schema = plan_json_schema(request.scene, dynamic=dynamic)
        return GenerationRequest(
            prompt,
            grammar,
            schema,
            opts.max_new_tokens,
            opts.temperature,
            opts.seed,
            request.instruction,
            request.task_name,
        )

    def propose(self, request: PlanRequest, feedback: str = "") -> PlanResult:
        gen_request = self.generation_request(request, feedback)
        prompt_text = gen_request.prompt.text
        messages = gen_request.prompt.messages
        try:
            generation = self.generator.generate(gen_request)
        except GenerationError as exc:
            return PlanResult(False, [], self.name, f"generation failed: {exc}", prompt_text, prompt_messages=messages)
        result = PlanResult(False, [], self.name, "", prompt_text, generation.text, prompt_messages=messages)
        result.tokens = generation.tokens
        result.generation_time = generation.seconds
        try:
            fmt = self.generator.answer_format or self.options.answer_format()
            parsed = parse_answer(generation.text, request.scene, fmt, allow_only_completed=request.mode == "dynamic")
        except PlanParseError as exc:
            result.message = f"rejected: {exc}"
            return result
        result.success = True
        result.plan = parsed.primitives
        result.completed = parsed.completed
        return result

    def plan(self, request: PlanRequest) -> PlanResult:
        """Propose and validate; on refusal, retry with the reason up to ``retries`` times."""
        t0 = time.perf_counter()
        feedback = ""
        rejections: list[str] = []
        tokens = 0
        generation_time = 0.0
        result = PlanResult(False, [], self.name, "no attempt")
        for _attempt in range(self.options.retries + 1):
            result = self._propose_and_check(request, feedback)
            tokens += result.tokens
            generation_time += result.generation_time
            if result.success:
                break
            rejections.append(result.message)
            if result.message.startswith("generation failed"):
                break  # the server is down or the model missing: asking again now does not help
            feedback = result.message.removeprefix("rejected: ")
        result.rejections = rejections
        result.attempts = len(rejections) + (1 if result.success else 0)
        result.tokens = tokens
        result.generation_time = generation_time
        result.planning_time = time.perf_counter() - t0
        return result

    def close(self) -> None:
        self.generator.close()
