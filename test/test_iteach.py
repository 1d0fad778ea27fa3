"""LLM-iTeach: the CodePolicy sandbox, the feedback rule and loss weights, hierarchical prompting, the loop."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from llm_trainer.iteach import sandbox as sandbox_module
from llm_trainer.iteach.feedback import CORRECTIVE, EVALUATIVE, action_angle_deg, feedback_label, loss_weights
from llm_trainer.iteach.sandbox import Sandbox, SandboxError, SandboxLimits, check_source

TAIL = "\ndef a_done(scene):\n    return False\n"


def policy(body: str, *, header: str = "") -> str:
    """A one-step CodePolicy whose action function has ``body``."""
    lines = "\n".join("    " + line for line in body.strip().splitlines())
    return f"{header}STEPS = ['a']\n\ndef a_action(scene):\n{lines}\n{TAIL}"


HOSTILE = {
    "import os": ("import os\nreturn {}", "import of 'os'"),
    "import from": ("from os import path\nreturn {}", "import from 'os'"),
    "open": ("return open('/etc/passwd').read()", "name 'open'"),
    "__import__": ("return __import__('os').listdir('/')", "name '__import__'"),
    "__subclasses__": ("return ().__class__.__base__.__subclasses__()", "attribute .__"),
    "__globals__": ("return a_action.__globals__", "attribute .__globals__"),
    "__builtins__": ("return __builtins__", "name '__builtins__'"),
    "gi_frame": ("g = (x for x in [1])\nreturn g.gi_frame.f_globals", "attribute .f_globals"),
    "format walk": ("return '{0.__class__}'.format(scene)", "attribute .format"),
    "dunder in a string": ("return {'k': '__class__'}", "the string"),
    "getattr by name": ("return getattr(scene, 'keys')", "name 'getattr'"),
    "eval": ("return eval('1 + 1')", "name 'eval'"),
    "class": ("class A(list):\n    pass\nreturn {}", "class definitions"),
    "try hides errors": ("try:\n    return {}\nexcept Exception:\n    return {}", "try statements"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_the_static_check_refuses_what_a_codepolicy_never_needs(name: str) -> None:
    body, reason = HOSTILE[name]
    with pytest.raises(SandboxError) as err:
        check_source(policy(body))
    assert err.value.kind == "static" and reason in err.value.reason


def test_the_static_check_keeps_plain_math_code_and_names_the_missing_functions() -> None:
    assert check_source(policy("import math\nreturn {'move': [math.cos(0.0) * 0.01, 0.0, 0.0]}")) == ["a"]
    with pytest.raises(SandboxError, match="step 'b' has no function b_done"):
        check_source("STEPS = ['b']\ndef b_action(scene):\n    return {}\n")
    with pytest.raises(SandboxError, match="does not compile"):
        check_source("STEPS = ['a'\n")
    with pytest.raises(SandboxError, match="no STEPS"):
        check_source("def a_action(scene):\n    return {}\n")


def _no_static_check(monkeypatch) -> None:
    """Let code past the static check, to show what the process itself contains."""
    monkeypatch.setattr(sandbox_module, "check_source", lambda source, **_kw: ["a"])


WALK = "[c for c in ().__class__.__base__.__subclasses__() if c.__name__ == '_wrap_close'][0].__init__.__globals__"


def test_the_process_contains_code_that_got_past_the_static_check(monkeypatch, tmp_path) -> None:
    _no_static_check(monkeypatch)
    target = tmp_path / "written_by_the_sandbox"
    attempts = {
        "open": f"return open({str(target)!r}, 'w').write('x')",
        "import": "import os\nreturn os.listdir('/')",
        "os.open via a class walk": f"g = {WALK}\nreturn g['open']({str(target)!r}, g['O_CREAT'] | g['O_WRONLY'])",
        "os.system via a class walk": f"g = {WALK}\nreturn g['system']('touch {target}')",
    }
    for name, body in attempts.items():
        with Sandbox(policy(body)) as box:
            try:
                value = box.call("a_action", {})
            except SandboxError as exc:
                assert exc.kind == "runtime", name
            else:
                assert name == "os.system via a class walk" and value != 0  # the shell never ran
    assert not target.exists()


def test_time_and_memory_limits_refuse_with_the_reason_and_kill_the_process() -> None:
    with Sandbox(policy("while True:\n    pass"), SandboxLimits(wall_s=0.5)) as box:
        pid = box._proc.pid
        with pytest.raises(SandboxError) as err:
            box.call("a_action", {})
        assert err.value.kind == "timeout" and "time limit" in err.value.reason
        assert not box.alive
        with pytest.raises(SandboxError, match="not running"):
            box.call("a_action", {})
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with Sandbox(policy("x = [0] * (10 ** 9)\nreturn {}"), SandboxLimits(memory_mb=200)) as box:
        with pytest.raises(SandboxError) as err:
            box.call("a_action", {})
        assert err.value.kind == "memory" and "200 MB" in err.value.reason


def test_the_sandbox_leaves_no_file_behind_and_answers_only_data() -> None:
    before = set(Path(tempfile.gettempdir()).glob("llm-trainer-sandbox-*"))
    box = Sandbox(policy("return {'move': [0.01, 0.0, 0.0], 'n': len(scene['objects'])}"))
    folder = Path(box._dir)
    assert folder.is_dir() and not any(folder.iterdir())
    assert box.call("a_action", {"objects": {"a": 1, "b": 2}}) == {"move": [0.01, 0.0, 0.0], "n": 2}
    with pytest.raises(SandboxError, match="no function"):
        box.call("b_action", {})
    box.close()
    assert not folder.exists()
    assert set(Path(tempfile.gettempdir()).glob("llm-trainer-sandbox-*")) == before
    with Sandbox(policy("return {'move': [float('nan'), 0, 0]}")) as nan_box:
        with pytest.raises(SandboxError, match="ValueError"):  # NaN is not JSON: refused, not passed on
            nan_box.call("a_action", {})


# ------------------------------------------------------------------ feedback
def _at(deg: float) -> np.ndarray:
    r = math.radians(deg)
    return np.array([math.cos(r), math.sin(r), 0.0]) * 0.02


def test_feedback_labels_follow_the_angle_rule_exactly() -> None:
    teacher = np.array([0.02, 0.0, 0.0])
    assert action_angle_deg(_at(20.0), teacher) == pytest.approx(20.0)
    assert feedback_label(_at(19.9), teacher) == EVALUATIVE
    assert feedback_label(_at(20.1), teacher) == CORRECTIVE
    assert feedback_label(_at(-25.0), teacher) == CORRECTIVE
    assert feedback_label(_at(25.0), teacher, threshold_deg=30.0) == EVALUATIVE
    assert feedback_label(-teacher, teacher, threshold_deg=179.0) == CORRECTIVE  # 180 degrees
    assert feedback_label(teacher * 0.1, teacher) == EVALUATIVE  # direction only, not length
    # Only the translation counts; a different gripper command is always corrected.
    assert feedback_label(_at(5.0), teacher, agent_closed=True, teacher_closed=False) == CORRECTIVE
    assert feedback_label(_at(5.0), teacher, agent_closed=True, teacher_closed=True) == EVALUATIVE
    assert feedback_label(_at(5.0), teacher, agent_turn=0.0, teacher_turn=0.2) == CORRECTIVE  # turns apart
    assert feedback_label(_at(5.0), teacher, agent_turn=0.18, teacher_turn=0.2) == EVALUATIVE
    still = np.zeros(3)
    assert feedback_label(still, still) == EVALUATIVE
    assert feedback_label(still, teacher) == CORRECTIVE and feedback_label(teacher, still) == CORRECTIVE


def test_loss_weights_are_inverse_corrective_frequency_and_a_fixed_evaluative_weight() -> None:
    labels = [CORRECTIVE, EVALUATIVE, EVALUATIVE, EVALUATIVE]
    assert loss_weights(labels).tolist() == [4.0, 1.0, 1.0, 1.0]  # N / N_c = 4 / 1
    assert loss_weights(labels, evaluative_weight=0.5).tolist() == [4.0, 0.5, 0.5, 0.5]
    assert loss_weights([CORRECTIVE] * 3 + [EVALUATIVE] * 2).tolist() == pytest.approx([5 / 3] * 3 + [1.0] * 2)
    assert loss_weights([EVALUATIVE] * 2).tolist() == [1.0, 1.0]
    with pytest.raises(ValueError, match="unknown feedback label"):
        loss_weights(["approved"])


def test_the_agent_loss_uses_the_sample_weights() -> None:
    from llm_trainer.iteach.agent import Agent, AgentConfig

    x = np.zeros((200, 4), np.float32)  # one state, two answers: the fit lands on their weighted mean
    actions = np.zeros((200, 5), np.float32)
    actions[:100, 0], actions[100:, 0] = 0.02, -0.02
    weights = np.r_[np.full(100, 3.0), np.full(100, 1.0)].astype(np.float32)
    agent = Agent(4, AgentConfig(hidden=16, lr=1e-2, batch=200), max_move=0.03, max_turn=0.25, seed=0)
    agent.fit(x, actions, weights, 400)
    move, _turn, _closed = agent.act(np.zeros(4, np.float32))
    assert move[0] == pytest.approx(0.01, abs=2e-3)  # (3 * 0.02 - 1 * 0.02) / 4
    uniform = Agent(4, AgentConfig(hidden=16, lr=1e-2, batch=200), max_move=0.03, max_turn=0.25, seed=0)
    uniform.fit(x, actions, np.ones(200, np.float32), 400)
    assert abs(uniform.act(np.zeros(4, np.float32))[0][0]) < 2e-3


# ------------------------------------------------------------------ CodePolicies in the simulator
def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "llm_trainer.cli", *args], capture_output=True, text=True,
                          timeout=300)  # fmt: skip


def test_codepolicy_check_and_run_answer_one_line(tmp_path) -> None:
    from llm_trainer.iteach.codepolicy import builtin_codepolicies

    hostile = tmp_path / "hostile.py"
    hostile.write_text(policy("import os\nreturn {}"))
    r = _cli("codepolicy", "check", str(hostile))
    assert r.returncode == 2 and r.stdout.strip() == "rejected: import of 'os' is not allowed (line 4)"
    assert "Traceback" not in r.stderr
    looping = tmp_path / "loop.py"
    looping.write_text(policy("while True:\n    pass"))
    r = _cli("codepolicy", "run", str(looping), "--task", "put_block", "--set", "sandbox.wall_s=0.5")
    assert r.returncode == 2 and r.stdout.startswith("rejected: timeout: time limit") and "Traceback" not in r.stderr
    wrong = tmp_path / "wrong.py"
    wrong.write_text(policy("return {'move': [0.1, 0.0]}"))
    r = _cli("codepolicy", "run", str(wrong), "--task", "put_block")
    assert r.returncode == 2 and "move must be a list of three finite numbers" in r.stdout
    for task, source in builtin_codepolicies().items():
        assert check_source(source), task
    path = tmp_path / "put_block.py"
    path.write_text(builtin_codepolicies()["put_block"])
    r = _cli("codepolicy", "run", str(path), "--task", "put_block", "--seed", "3")
    assert r.returncode == 0 and r.stdout.startswith("success: put_block seed 3"), r.stdout + r.stderr


def _replay(tmp_path, name: str, answers: list[str]):
    """The replay backend (recorded answers, in order): what a model said, without the model."""
    from llm_trainer.planning.replay import ReplayConfig, ReplayGenerator

    path = tmp_path / f"{name}.jsonl"
    path.write_text("".join(json.dumps({"raw_answer": a}) + "\n" for a in answers))
    return ReplayGenerator(ReplayConfig(str(path)))


def _scene() -> dict:
    return {"instruction": "put the red block in the target area", "goal": {"block": "red_block"},
            "objects": {"red_block": {"position": [0.5, 0.0, 0.025], "yaw": 0.0, "size": [0.05] * 3,
                                      "category": "block"}}}  # fmt: skip


def test_hierarchical_prompting_reasks_a_refused_function_with_the_reason(tmp_path) -> None:
    from llm_trainer.iteach.prompting import CodePolicyGenerationError, CodePolicyWriter

    answers = [
        '{"steps": [{"name": "go", "description": "move towards the block"}]}',
        "```python\ndef go_action(scene):\n    import os\n    return {'move': [0.0, 0.0, 0.0]}\n```",
        "```python\ndef go_action(scene):\n    p = scene['objects'][scene['goal']['block']]['position']\n"
        "    return {'move': [p[0] - scene['hand']['position'][0], 0.0, 0.0]}\n```",
        "def go_done(scene):\n    return True\n",
    ]
    result = CodePolicyWriter(_replay(tmp_path, "ok", answers), retries=1).write(_scene())
    assert result.steps == ["go"] and check_source(result.source) == ["go"]
    prompts = [t["prompt"] for t in result.transcript]
    assert "import of 'os' is not allowed" in prompts[2]  # the re-ask names the reason
    assert [t["stage"] for t in result.transcript] == ["steps", "go_action", "go_action", "go_done"]
    assert "red_block" in prompts[0] and "scene[" in prompts[1]
    with pytest.raises(CodePolicyGenerationError) as err:
        CodePolicyWriter(_replay(tmp_path, "refused", answers[:2] + [answers[1]]), retries=1).write(_scene())
    assert len(err.value.reasons) == 2 and all("import of 'os'" in r for r in err.value.reasons)
    with pytest.raises(CodePolicyGenerationError, match="snake_case"):
        bad = _replay(tmp_path, "bad", ['{"steps": [{"name": "go left", "description": "x"}]}'])
        CodePolicyWriter(bad, retries=0).write(_scene())


def test_an_iteach_run_trains_evaluates_and_goes_on_past_a_failing_codepolicy(tmp_path) -> None:
    from llm_trainer.iteach.train import ITeachConfig, iteach

    # Loads fine, then fails at run time in the second step: the run falls back to the hand-written one.
    broken = policy("return {'move': [0.0, 0.0, 0.0]}").replace("return False", "return 1 / 0 > 0")
    lines: list[str] = []
    config = ITeachConfig(task="put_block", episodes=2, eval_every=1, eval_episodes=1, updates_per_episode=5,
                          max_steps=40)  # fmt: skip
    summary = iteach(config, tmp_path, codepolicy_source=broken, log=lines.append)
    assert summary["teacher"] == "hand-written" and summary["feedback"]["teacher_errors"]
    assert "ZeroDivisionError" in summary["feedback"]["teacher_errors"][0]
    assert [r["episodes"] for r in summary["rows"]] == [1, 2]
    assert summary["feedback"]["corrective"] + summary["feedback"]["evaluative"] > 0
    assert summary["test_seeds"][0] >= 1_000_000 > summary["train_seeds"][1]
    for name in ("results.json", "table.md", "curves.png", "iteach_agent.pt", "bc_agent.pt"):
        assert (tmp_path / name).stat().st_size > 0, name
    assert json.loads((tmp_path / "results.json").read_text())["rows"] == summary["rows"]
    # A CodePolicy that does not even load is refused with the reason before any episode.
    lines.clear()
    iteach(config, tmp_path / "refused", codepolicy_source="import socket\n", log=lines.append)
    assert lines[0].startswith("rejected: import of 'socket' is not allowed")
