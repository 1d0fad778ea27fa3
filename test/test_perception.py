"""Multi-view perception: lifting a mask to a box, fusing views, and the classical pipeline on
rendered simulator scenes against the simulator's ground truth (all three cameras, and two)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from llm_trainer.perception.evaluation import alike_groups, score, summary, yaw_defined_names
from llm_trainer.perception.fusion import FusionConfig, fuse
from llm_trainer.perception.lifting import LiftingConfig, box_from_points
from llm_trainer.perception.views import ViewEstimate
from llm_trainer.scene import ObjectState

# Tasks whose objects the colour backend can tell apart (distinct colours, few multi-coloured parts).
TASKS = ("put_block", "stack_blocks", "close_jar", "cup_on_object", "block_in_basket", "meat_off_grill")


def _box_surface(center, yaw, size, n=4000, seed=0) -> np.ndarray:
    """Points on the top and two side faces of a box (what a camera looking down at it sees)."""
    rng = np.random.default_rng(seed)
    length, w, h = size
    top = np.column_stack([rng.uniform(-length / 2, length / 2, n), rng.uniform(-w / 2, w / 2, n), np.full(n, h / 2)])
    front = np.column_stack(
        [np.full(n // 2, length / 2), rng.uniform(-w / 2, w / 2, n // 2), rng.uniform(-h / 2, h / 2, n // 2)]
    )
    side = np.column_stack(
        [rng.uniform(-length / 2, length / 2, n // 2), np.full(n // 2, w / 2), rng.uniform(-h / 2, h / 2, n // 2)]
    )
    pts = np.vstack([top, front, side])
    c, s = math.cos(yaw), math.sin(yaw)
    rot = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    return pts @ rot.T + np.asarray(center) + rng.normal(0, 0.0005, (len(pts), 3))


def test_lifting_recovers_a_box_from_the_faces_a_camera_sees() -> None:
    centre, yaw, size = (0.5, 0.1, 0.025), 0.3, (0.08, 0.04, 0.05)
    got = box_from_points(_box_surface(centre, yaw, size), LiftingConfig())
    assert got is not None
    c, y, s = got
    assert np.linalg.norm(c - centre) < 0.002
    assert abs(y - yaw) < math.radians(2)
    assert np.allclose(s, size, atol=0.003)
    # A box resting on the table whose lowest centimetre is hidden still reaches down to the table.
    pts = _box_surface(centre, yaw, size)
    assert box_from_points(pts[pts[:, 2] > 0.01], LiftingConfig())[0][2] == pytest.approx(0.025, abs=0.002)
    assert box_from_points(pts[:5], LiftingConfig()) is None  # too few points: no box, no guess


def _view(camera, center, yaw, size=(0.08, 0.04, 0.05)) -> ViewEstimate:
    return ViewEstimate("box", camera, np.array(center, float), yaw, np.array(size, float), points=100)


def test_fusion_takes_medians_under_the_box_symmetry_and_drops_outliers() -> None:
    cfg = FusionConfig()
    views = [_view("a", (0.5, 0.1, 0.02), 0.10), _view("b", (0.502, 0.1, 0.02), 0.10 - math.pi),
             _view("c", (0.501, 0.099, 0.02), 0.12)]  # fmt: skip
    fused = fuse("box", views, 3, cfg)
    assert abs(fused.yaw - 0.10) < 0.011 and fused.num_views == 3  # a half turn is the same box
    # A square footprint: a quarter turn is the same box, and that view reports length and width swapped.
    square = [_view("a", (0.5, 0, 0.02), 0.2, (0.05, 0.049, 0.05)), _view("b", (0.5, 0, 0.02), 0.2 + math.pi / 2,
              (0.049, 0.05, 0.05)), _view("c", (0.5, 0, 0.02), 0.21, (0.05, 0.049, 0.05))]  # fmt: skip
    fused = fuse("box", square, 3, cfg)
    assert abs(fused.yaw - 0.2) < 0.011 and fused.size[0] == pytest.approx(0.05)
    # A view 10 cm off (a wrong match) is dropped; with it, confidence would fall.
    outlier = [*views[:2], _view("c", (0.6, 0.1, 0.02), 0.1)]
    fused = fuse("box", outlier, 3, cfg)
    assert fused.num_views == 2 and fused.position[0] == pytest.approx(0.501, abs=0.002)
    assert fuse("box", [], 3, cfg) is None  # unseen: missing, never invented


def test_lookalike_objects_are_matched_to_the_ground_truth_by_position() -> None:
    truth = [ObjectState("basket_1", (0.4, 0.2, 0.03), 0.0, (0.13, 0.13, 0.06)),
             ObjectState("basket_2", (0.6, -0.2, 0.03), 0.0, (0.13, 0.13, 0.06))]  # fmt: skip
    perceived = [ObjectState("basket_1", (0.601, -0.2, 0.03), 0.0, (0.13, 0.13, 0.06)),
                 ObjectState("basket_2", (0.401, 0.2, 0.03), 0.0, (0.13, 0.13, 0.06))]  # fmt: skip
    errors = score(perceived, truth, yaw_defined=set(), alike=[["basket_1", "basket_2"]])
    assert all(e.center_mm == pytest.approx(1.0, abs=0.01) for e in errors)
    assert summary(score(perceived[:1], truth, yaw_defined=set()))["detection_rate"] == 0.5


@pytest.fixture(scope="module")
def sim():
    from llm_trainer.sim.mujoco_sim import MujocoSimulation
    from llm_trainer.sim.sim_config import SimConfig

    s = MujocoSimulation(SimConfig(render_cameras=True))
    yield s
    s.close()


def _perceive_tasks(sim, cameras=None, seeds=(0, 1)):
    from llm_trainer.perception.pipeline import Perception
    from llm_trainer.perception.sim_source import queries_for, sim_views
    from llm_trainer.tasks.registry import get_task

    perception = Perception()
    errors, per_scene = [], {}
    for task in TASKS:
        for seed in seeds:
            instance = sim.reset(get_task(task), seed)
            queries = queries_for(instance)
            result = perception.perceive(sim_views(sim, cameras), queries)
            e = score(result.objects, sim.scene_state().objects, yaw_defined=yaw_defined_names(instance),
                      alike=alike_groups(queries))  # fmt: skip
            errors += e
            per_scene[(task, seed)] = (result, e)
    return errors, per_scene


def test_the_classical_pipeline_meets_its_targets_on_rendered_scenes_with_three_and_two_cameras(sim) -> None:
    errors, scenes = _perceive_tasks(sim)
    three = summary(errors)
    assert three["detection_rate"] >= 0.95, three
    assert three["median_center_error_mm"] <= 10 and three["median_size_error_mm"] <= 10, three
    assert three["median_yaw_error_deg"] <= 10, three
    # Without the front camera: every object the other two saw is still reported, errors within 2x.
    errors2, scenes2 = _perceive_tasks(sim, cameras=["left", "right"])
    two = summary(errors2)
    for key, (result, _) in scenes.items():
        seen_by_others = {v.name for v in result.views if v.camera != "front"}
        reported = {o.name for o in scenes2[key][0].objects}
        assert seen_by_others <= reported | set(scenes2[key][0].missing)
        assert {n for n in seen_by_others if n in scenes2[key][0].missing} == set(), key
        assert scenes2[key][0].cameras == ["left", "right"]
    for metric in ("median_center_error_mm", "median_size_error_mm"):
        assert two[metric] <= 2 * three[metric], (metric, three, two)


def test_a_dead_camera_degrades_fusion_and_an_object_no_view_sees_is_missing(sim) -> None:
    from llm_trainer.perception.pipeline import Perception
    from llm_trainer.perception.sim_source import queries_for, sim_views
    from llm_trainer.perception.views import ObjectQuery
    from llm_trainer.tasks.registry import get_task

    instance = sim.reset(get_task("stack_blocks"), 0)
    views = sim_views(sim)
    views[0].rgb[:] = 0  # the front camera delivers black frames without depth
    views[0].depth_m[:] = 0
    queries = [*queries_for(instance), ObjectQuery("ghost", rgb=(10, 250, 10))]
    result = Perception().perceive(views, queries)
    assert result.missing == ["ghost"]
    assert {o.name for o in result.objects} == {o.name for o in instance.objects}
    assert all(o.num_views <= 2 for o in result.objects)
    truth = {o.name: o for o in sim.scene_state().objects}
    for o in result.objects:
        assert np.linalg.norm(np.subtract(o.position, truth[o.name].position)) < 0.01


@pytest.mark.slow
def test_perception_eval_replays_a_recorded_bag_through_the_node_over_dds(tmp_path) -> None:
    """record-bag -> perception-eval: the node (its own process, real DDS) answers every frame set;
    scored against the bag's ground truth; without a camera it still reports every object."""
    import json
    import subprocess
    import sys

    from llm_trainer.perception.scene_bag import record_scene_bag, scene_frames

    bag = record_scene_bag("stack_blocks", 5, tmp_path / "stack_blocks_5", seconds=0.6)
    assert len(scene_frames(bag)) == 4  # frame sets at 0, 0.2, 0.4, 0.6 s of simulated time
    cli = [sys.executable, "-m", "llm_trainer.cli", "perception-eval", "--bag", str(bag)]
    full = subprocess.run(cli, capture_output=True, text=True, timeout=300)
    assert full.returncode == 0, full.stderr[-2000:]
    result = json.loads(full.stdout.strip().splitlines()[-1])
    assert result["frame_sets"] == 4 and result["cameras_used"] == ["front", "left", "right"]
    assert result["detection_rate"] == 1.0
    assert result["median_center_error_mm"] <= 10 and result["median_size_error_mm"] <= 10
    assert result["median_yaw_error_deg"] <= 10
    assert set(result["stage_ms_median"]) == {"pointing", "segmentation", "lifting", "fusion"}
    assert "| yellow_block | yes |" in full.stdout
    dropped = subprocess.run([*cli, "--drop-camera", "front"], capture_output=True, text=True, timeout=300)
    assert dropped.returncode == 0, dropped.stderr[-2000:]
    two = json.loads(dropped.stdout.strip().splitlines()[-1])
    assert two["cameras_used"] == ["left", "right"] and two["detection_rate"] == 1.0
    bad = subprocess.run([*cli, "--drop-camera", "top"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "the bag has cameras front, left, right" in bad.stderr


def test_evaluate_with_perceived_state_plans_on_what_the_cameras_saw(tmp_path) -> None:
    """--state perception: the oracle plans on the perceived scene (BLAZER Fig. 4 in simulation)."""
    import json

    from llm_trainer.evaluation.evaluate import EvaluateOptions, evaluate
    from llm_trainer.evaluation.planners import parse_planner_spec

    results = evaluate(
        EvaluateOptions(planners=[parse_planner_spec("oracle")], tasks=["put_block"], episodes=2,
                        out=tmp_path / "eval", state="perception"),
        log=lambda _l: None,
    )  # fmt: skip
    assert results["state"] == "perception" and results["planners"][0]["successes"] == 2
    records = [json.loads(x) for x in (tmp_path / "eval" / "oracle" / "episodes.jsonl").read_text().splitlines()]
    for record in records:
        assert record["scene"]["source"] == "perception"
        assert all(0 < o["num_views"] <= 3 for o in record["scene"]["objects"])
    with pytest.raises(ValueError, match="--state perception runs with --runner inprocess"):
        from llm_trainer.datagen.generate import GenerateOptions

        GenerateOptions(task="put_block", state="perception").validate()


def test_debug_images_draw_each_box_where_the_object_is_in_the_view(sim) -> None:
    from llm_trainer.perception.backends.colour import ColourConfig, colour_mask
    from llm_trainer.perception.debug import debug_image, project
    from llm_trainer.perception.pipeline import Perception
    from llm_trainer.perception.sim_source import queries_for, sim_views
    from llm_trainer.tasks.registry import get_task

    instance = sim.reset(get_task("stack_blocks"), 2)
    views = sim_views(sim)
    queries = queries_for(instance)
    result = Perception().perceive(views, queries)
    for view in views:
        drawn = debug_image(view, result)
        assert drawn.shape == view.rgb.shape and (drawn != view.rgb).any()
        for obj, q in zip(result.objects, queries):
            (u, v), = project(view, np.array([obj.position])).round().astype(int)  # fmt: skip
            mask = colour_mask(view, q.rgb, ColourConfig())
            assert mask[max(0, v - 2) : v + 3, max(0, u - 2) : u + 3].any(), (view.name, obj.name)
