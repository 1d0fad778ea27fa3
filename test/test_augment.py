"""LLM Trainer augmentation: retargeting, warping and Thompson sampling, checked numerically."""

from __future__ import annotations

import math

import numpy as np
import pytest

from llm_trainer.augment.poses import Pose
from llm_trainer.augment.retarget import WORLD, retarget
from llm_trainer.augment.thompson import ThompsonSampler
from llm_trainer.augment.warp import warp


def _random_pose(rng) -> Pose:
    return Pose(*rng.uniform([0.3, -0.3, 0.0], [0.7, 0.3, 0.2]), float(rng.uniform(-math.pi, math.pi)))


def test_pose_algebra_is_exact() -> None:
    rng = np.random.default_rng(0)
    for _ in range(100):
        a, b = _random_pose(rng), _random_pose(rng)
        back = a.compose(b.relative_to(a))
        assert np.allclose(back.position, b.position, atol=1e-12) and math.isclose(
            math.cos(back.yaw - b.yaw), 1.0, abs_tol=1e-12
        )
        ident = a.compose(a.inverse())
        assert np.allclose([ident.x, ident.y, ident.z, math.sin(ident.yaw)], 0.0, atol=1e-12)


def test_retargeting_moves_each_keypose_rigidly_with_its_object() -> None:
    rng = np.random.default_rng(1)
    for _ in range(50):
        old = {"block": _random_pose(rng), "target": _random_pose(rng)}
        new = {"block": _random_pose(rng), "target": _random_pose(rng)}
        keys = [(_random_pose(rng), "block"), (_random_pose(rng), "target"), (_random_pose(rng), WORLD)]
        moved = retarget(keys, old, new)
        for (pose, ref), got in zip(keys, moved):
            if ref == WORLD:
                assert got == pose
                continue
            before, after = pose.relative_to(old[ref]), got.relative_to(new[ref])
            assert np.allclose(before.position, after.position, atol=1e-12)
            assert math.isclose(math.cos(before.yaw - after.yaw), 1.0, abs_tol=1e-12)
            # Distances to the reference object are preserved: a rigid move.
            assert math.isclose(pose.distance(old[ref]), got.distance(new[ref]), abs_tol=1e-12)
    with pytest.raises(KeyError, match="'mug'"):
        retarget([(Pose(0, 0, 0), "mug")], {}, {})


def test_a_square_block_turned_a_quarter_turn_does_not_spin_the_hand() -> None:
    old = {"block": Pose(0.5, 0.0, 0.025, 0.0)}
    new = {"block": Pose(0.5, 0.0, 0.025, math.pi / 2 + 0.1)}
    grasp = Pose(0.5, 0.0, 0.025, 0.0)
    (free,) = retarget([(grasp, "block")], old, new)
    (symmetric,) = retarget([(grasp, "block")], old, new, periods={"block": math.pi / 2})
    assert free.yaw == pytest.approx(math.pi / 2 + 0.1)
    assert symmetric.yaw == pytest.approx(0.1)


def _demo(n: int = 200) -> list[Pose]:
    """A pick-and-place-like path: approach, descend, lift, carry in an arc, descend."""
    t = np.linspace(0, 1, n)
    x = 0.4 + 0.2 * t
    y = 0.15 * np.sin(math.pi * t)
    z = 0.1 + 0.08 * np.cos(2 * math.pi * t)
    yaw = 0.3 * t
    return [Pose(float(a), float(b), float(c), float(d)) for a, b, c, d in zip(x, y, z, yaw)]


def test_warping_hits_the_new_keyposes_stays_continuous_and_keeps_the_shape() -> None:
    demo = _demo()
    keys = [40, 100, 170]
    new_keys = [Pose(0.45, 0.12, 0.05, 0.5), Pose(0.62, -0.05, 0.12, -0.2), Pose(0.58, -0.2, 0.05, 0.1)]
    out = warp(demo, keys, new_keys)
    for k, p in zip(keys, new_keys):
        assert out[k].distance(p) < 1e-12 and math.isclose(math.cos(out[k].yaw - p.yaw), 1.0, abs_tol=1e-12)
    assert out[0] == demo[0]  # the robot starts where it is
    steps = [a.distance(b) for a, b in zip(out, out[1:])]
    original = [a.distance(b) for a, b in zip(demo, demo[1:])]
    assert max(steps) < 4 * max(original)  # continuous: no jump anywhere
    # Both ends of a segment moved by the same rigid transform: the segment keeps its shape exactly.
    move = Pose(0.05, -0.1, 0.0, 0.4)
    same = [move.compose(demo[k]) for k in keys]
    rigid = warp(demo, keys, same)
    seg_old = np.array([p.position for p in demo[40:171]])
    seg_new = np.array([p.position for p in rigid[40:171]])
    d_old = np.linalg.norm(seg_old[:, None] - seg_old[None], axis=2)
    d_new = np.linalg.norm(seg_new[:, None] - seg_new[None], axis=2)
    assert np.allclose(d_old, d_new, atol=1e-9)
    with pytest.raises(ValueError, match="strictly increasing"):
        warp(demo, [100, 40], new_keys[:2])


def test_thompson_sampling_converges_to_the_best_annotation() -> None:
    rng = np.random.default_rng(3)
    truth = {"a": 0.2, "b": 0.5, "c": 0.8}
    sampler = ThompsonSampler(seed=4)
    for name in truth:
        sampler.add(name)
    picks = []
    for _ in range(400):
        arm = sampler.select()
        sampler.update(arm.name, bool(rng.random() < truth[arm.name]))
        picks.append(arm.name)
    assert picks[-200:].count("c") / 200 > 0.85
    assert sampler.arm("c").mean == pytest.approx(0.8, abs=0.08)


def test_a_new_annotation_is_requested_only_when_it_is_worth_it() -> None:
    sampler = ThompsonSampler(seed=0, annotation_cost=5.0)
    assert sampler.should_request_annotation(100)  # nothing to exploit yet
    poor = sampler.add("poor")
    poor.alpha, poor.beta = 2, 20  # ~9% after 20 rollouts
    assert sampler.should_request_annotation(100)  # a fresh annotation is likely better
    good = sampler.add("good")
    good.alpha, good.beta = 45, 5  # ~90%
    assert not sampler.should_request_annotation(100)
    poor_only = ThompsonSampler(seed=0)
    poor_only.add("poor").beta = 20
    assert not poor_only.should_request_annotation(0)  # nothing left to generate: not worth its cost


@pytest.fixture(scope="module")
def stack_demo(tmp_path_factory):
    """One recorded stack_blocks episode (the oracle's plan, executed and recorded in process)."""
    from llm_trainer.datagen.generate import GenerateOptions, generate

    out = tmp_path_factory.mktemp("demo")
    generate(GenerateOptions(task="stack_blocks", episodes=1, out=out, runner="inprocess", render_cameras=False),
             log=lambda _l: None)  # fmt: skip
    (bag,) = sorted((out / "bags").iterdir())
    return bag


def test_the_hand_engineered_annotation_follows_the_gripper_events(stack_demo) -> None:
    from llm_trainer.augment.annotation import hand_engineered
    from llm_trainer.augment.demo import SourceDemo

    demo = SourceDemo.from_bag(stack_demo)
    assert [e.kind for e in demo.events] == ["close", "open", "close", "open"]
    order = demo.goal["order"]
    assert [e.object_name for e in demo.events if e.kind == "close"] == order
    ann = hand_engineered(demo)
    refs = [k.reference for k in ann.keyposes]
    # approach, event, retreat per event: grasps follow the block grasped, placements the stack below.
    assert refs == [order[0]] * 3 + [demo.goal["base"]] * 3 + [order[1]] * 3 + [demo.goal["base"]] * 3
    z = [demo.poses[k.index].z for k in ann.keyposes]
    assert z[0] > z[1] + 0.05 and z[2] > z[1] + 0.05  # above, at, above the grasp


def test_malformed_annotations_are_refused_with_every_reason(stack_demo) -> None:
    from llm_trainer.augment.annotation import AnnotationError, hand_engineered, validate_annotation
    from llm_trainer.augment.demo import SourceDemo

    demo = SourceDemo.from_bag(stack_demo)
    good = hand_engineered(demo).to_dict()
    assert validate_annotation(good, demo).keyposes == hand_engineered(demo).keyposes
    bad = {"keyposes": [{"index": -3, "reference": "world"}, {"index": 5, "reference": "mug"}, "x"]}
    with pytest.raises(AnnotationError) as err:
        validate_annotation(bad, demo)
    assert "keypose 0: index -3" in str(err.value) and "'mug' is not an object" in str(err.value)
    assert "keypose 2: not an object" in str(err.value)
    with pytest.raises(AnnotationError, match="gripper events at samples"):
        validate_annotation({"keyposes": [{"index": 1, "reference": "world"}]}, demo)
    with pytest.raises(AnnotationError, match="not JSON"):
        validate_annotation("{keyposes: [", demo)


def test_augment_turns_one_demo_into_verified_episodes_and_resumes(stack_demo, tmp_path) -> None:
    import json
    import subprocess
    import sys

    out = tmp_path / "aug"
    cli = [sys.executable, "-m", "llm_trainer.cli", "augment", "--demo", str(stack_demo), "--task", "stack_blocks",
           "--out", str(out), "--no-record", "--max-attempts", "12"]  # fmt: skip
    first = subprocess.run([*cli, "--target-successes", "3"], capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-2000:]
    summary = json.loads(first.stdout.strip().splitlines()[-1])
    assert summary["successes"] == 3 and summary["attempts"] >= 3
    assert summary["annotations"]["hand:events+approach"]["attempts"] >= 1
    records = [json.loads(x) for x in (out / "episodes.jsonl").read_text().splitlines()]
    assert len({r["seed"] for r in records}) == len(records)  # a new scene every attempt
    assert all(r["provenance"]["annotation"].startswith("hand:") for r in records)
    # The same command with a higher target continues: earlier episodes are kept, not redone.
    again = subprocess.run([*cli, "--target-successes", "4"], capture_output=True, text=True, timeout=600)
    assert again.returncode == 2 and "target" in again.stderr  # a changed target is a changed configuration
    cont = subprocess.run([*cli, "--target-successes", "4", "--force"], capture_output=True, text=True, timeout=600)
    assert cont.returncode == 0, cont.stderr[-2000:]
    more = [json.loads(x) for x in (out / "episodes.jsonl").read_text().splitlines()]
    assert more[: len(records)] == records and json.loads(cont.stdout.strip().splitlines()[-1])["successes"] == 4


def test_the_llm_annotator_reasks_with_the_reason_and_its_annotation_is_validated(stack_demo, tmp_path) -> None:
    """Stage 1 keyframes, stage 2 keyposes (a recorded model: the replay backend); a stage-2 answer
    naming an object that is not in the scene is refused and asked again with that reason."""
    import json
    import subprocess
    import sys

    from llm_trainer.augment.annotate import render_demo
    from llm_trainer.augment.demo import SourceDemo

    demo = SourceDemo.from_bag(stack_demo)
    text = render_demo(demo)
    assert "<- close" in text and f"Task: {demo.instruction}" in text
    events = [e.index for e in demo.events]
    base = demo.goal["base"]
    good = {"keyposes": [{"index": i, "reference": base} for i in events]}
    bad = {"keyposes": [{"index": i, "reference": "mug"} for i in events]}
    answers = tmp_path / "answers.jsonl"
    answers.write_text("".join(json.dumps({"raw_answer": json.dumps(a)}) + "\n"
                               for a in ({"keyframes": events}, bad, good)))  # fmt: skip
    out = tmp_path / "ann.json"
    cli = [sys.executable, "-m", "llm_trainer.cli", "annotate", "--demo", str(stack_demo), "--out", str(out),
           "--planner", "replay", "--set", f"path={answers}"]  # fmt: skip
    done = subprocess.run(cli, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["requests"] == 3 and summary["refused"] == 1 and not summary["fell_back"]
    transcript = [json.loads(x) for x in out.with_suffix(".transcript.jsonl").read_text().splitlines()]
    assert "'mug' is not an object" in transcript[1]["refused"]
    assert transcript[2]["reasked_with"] == transcript[1]["refused"]
    annotation = json.loads(out.read_text())
    assert [k["index"] for k in annotation["keyposes"]] == events and annotation["source"] == "llm"
    # Every answer refused: an error with the reason, unless --fallback (the hand-engineered one).
    answers.write_text("".join(json.dumps({"raw_answer": "no json here"}) + "\n" for _ in range(3)))
    failed = subprocess.run(cli, capture_output=True, text=True, timeout=120)
    assert failed.returncode == 2 and "refused 3 times" in failed.stderr
    kept = out.with_suffix(".transcript.jsonl").read_text().splitlines()
    assert len(kept) == 3 and all("no JSON object" in json.loads(x)["refused"] for x in kept)
    fallback = subprocess.run([*cli, "--fallback"], capture_output=True, text=True, timeout=120)
    assert fallback.returncode == 0 and json.loads(fallback.stdout.strip().splitlines()[-1])["fell_back"]
