"""Typed configuration: the real YAML files load, and bad files fail naming the file and dotted key."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from llm_trainer.config import ConfigError, config_dir, from_dict, load_section, load_yaml, to_dict
from llm_trainer.execution.executor_config import ExecutorConfig, SafetyConfig, load_executor_config
from llm_trainer.motion.trajectory import TimingLimits
from llm_trainer.planning.oracle import OracleConfig
from llm_trainer.planning.registry import PlannerConfig, load_planner_config, make_planner
from llm_trainer.sim.sim_config import CameraConfig, SimConfig, load_sim_config


def _write(tmp_path: Path, name: str, data) -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


def _real(name: str) -> dict:
    return load_yaml(config_dir() / name)


# ------------------------------------------------------------------------------------------ real files
def test_config_dir_is_the_checkout(repo_root: Path) -> None:
    assert config_dir().resolve() == (repo_root / "config").resolve()
    names = {p.name for p in config_dir().glob("*.yaml")}
    assert {"sim.yaml", "executor.yaml", "planner.yaml"} <= names


#: Files in config/ that are lists, not config sections: ros_gz_bridge's topic entries, and the perception
#: node's objects_file (one entry per object to find).
FOREIGN_FORMATS = {"gazebo_bridge.yaml", "lab_objects.yaml"}


def test_every_yaml_in_config_dir_parses() -> None:
    for path in sorted(config_dir().glob("*.yaml")):
        if path.name in FOREIGN_FORMATS:
            assert isinstance(yaml.safe_load(path.read_text()), list), path
            continue
        assert isinstance(load_yaml(path), dict), path


def test_real_sim_yaml_loads_with_its_values() -> None:
    raw = _real("sim.yaml")["simulator"]
    cfg = load_sim_config()
    assert isinstance(cfg, SimConfig)
    assert cfg.timestep == raw["timestep"]
    assert cfg.object_friction == raw["object_friction"]
    assert [c.name for c in cfg.cameras] == [c["name"] for c in raw["cameras"]] == ["front", "left", "right"]
    for cam, raw_cam in zip(cfg.cameras, raw["cameras"]):
        assert isinstance(cam, CameraConfig)
        assert isinstance(cam.position, tuple) and cam.position == tuple(raw_cam["position"])
        assert cam.look_at == tuple(raw_cam["look_at"])
        assert (cam.width, cam.height, cam.fovy_deg) == (raw_cam["width"], raw_cam["height"], raw_cam["fovy_deg"])


def test_real_executor_yaml_loads_with_its_values() -> None:
    raw = _real("executor.yaml")["executor"]
    cfg = load_executor_config()
    assert isinstance(cfg, ExecutorConfig)
    assert isinstance(cfg.timing, TimingLimits) and isinstance(cfg.safety, SafetyConfig)
    assert cfg.grasp_force == raw["grasp_force"]
    assert cfg.timing.velocity_scaling == raw["timing"]["velocity_scaling"]
    assert cfg.safety.workspace == tuple(raw["safety"]["workspace"])
    assert all(isinstance(v, float) for v in cfg.safety.workspace)
    assert cfg.safety.gripper_force_limit == raw["safety"]["gripper_force_limit"]


def test_real_planner_yaml_loads_and_makes_a_planner() -> None:
    raw = _real("planner.yaml")["planner"]
    cfg = load_planner_config()
    assert isinstance(cfg, PlannerConfig) and isinstance(cfg.oracle, OracleConfig)
    assert cfg.backend == raw["backend"]
    assert cfg.oracle.safe_height == raw["oracle"]["safe_height"]
    assert cfg.oracle.release_height == raw["oracle"]["release_height"]
    planner = make_planner(cfg.backend, cfg)
    assert planner.name == "oracle"
    with pytest.raises(ValueError, match="unknown planner backend 'gpt'.*oracle"):
        make_planner("gpt", cfg)


def test_real_files_match_dataclass_defaults() -> None:
    """The YAML files document the defaults; if they drift apart one of them is wrong."""
    assert load_executor_config() == ExecutorConfig()
    assert load_planner_config() == PlannerConfig()
    assert load_sim_config() == SimConfig()


# ------------------------------------------------------------------------------------------ errors
def test_unknown_key_names_file_and_section(tmp_path: Path) -> None:
    path = _write(tmp_path, "sim.yaml", {"simulator": {"timestep": 0.002, "tiemstep": 0.001}})
    with pytest.raises(ConfigError) as info:
        load_sim_config(path)
    msg = str(info.value)
    assert str(path) in msg
    assert "simulator: unknown key(s) tiemstep" in msg
    assert "timestep" in msg.split("known:")[1]


def test_unknown_nested_key_names_dotted_path(tmp_path: Path) -> None:
    data = {"executor": {"safety": {"workspace": [0.2, 0.75, -0.4, 0.4, 0.0, 0.6], "speed": 3}}}
    path = _write(tmp_path, "executor.yaml", data)
    with pytest.raises(ConfigError, match=r"executor\.yaml: executor\.safety: unknown key\(s\) speed"):
        load_executor_config(path)


def test_unknown_key_in_list_item_names_index(tmp_path: Path) -> None:
    cams = [{"name": "front", "position": [1.0, 0.0, 0.5]}, {"name": "top", "position": [0.5, 0, 1], "zoom": 2}]
    path = _write(tmp_path, "sim.yaml", {"simulator": {"cameras": cams}})
    with pytest.raises(ConfigError, match=r"sim\.yaml: simulator\.cameras\[1\]: unknown key\(s\) zoom"):
        load_sim_config(path)


@pytest.mark.parametrize(
    ("data", "key", "expected"),
    [
        ({"executor": {"grasp_force": "strong"}}, "executor.grasp_force", "expected a number, got 'strong'"),
        ({"executor": {"grasp_force": True}}, "executor.grasp_force", "expected a number, got True"),
        (
            {"executor": {"timing": {"velocity_scaling": "0.3"}}},
            "executor.timing.velocity_scaling",
            "expected a number, got '0.3'",
        ),
        ({"executor": {"backend": 3}}, "executor.backend", "expected a string, got 3"),
        (
            {"executor": {"safety": {"workspace": [0.2, 0.75, -0.4, 0.4, 0.0]}}},
            "executor.safety.workspace",
            "expected 6 items, got 5",
        ),
        (
            {"executor": {"safety": {"workspace": [0.2, 0.75, "a", 0.4, 0.0, 0.6]}}},
            "executor.safety.workspace[2]",
            "expected a number",
        ),
        ({"executor": {"safety": {"workspace": 0.5}}}, "executor.safety.workspace", "expected a list"),
        ({"executor": {"timing": 0.3}}, "executor.timing", "expected a mapping"),
    ],
)
def test_wrong_types_name_file_and_dotted_key(tmp_path: Path, data: dict, key: str, expected: str) -> None:
    path = _write(tmp_path, "executor.yaml", data)
    with pytest.raises(ConfigError) as info:
        load_executor_config(path)
    assert str(info.value).startswith(f"{path}: {key}: {expected}"), str(info.value)


def test_wrong_type_in_list_item(tmp_path: Path) -> None:
    cams = [{"name": "front", "position": [1.0, 0.0, 0.5], "fovy_deg": "wide"}]
    path = _write(tmp_path, "sim.yaml", {"simulator": {"cameras": cams}})
    with pytest.raises(ConfigError, match=r"sim\.yaml: simulator\.cameras\[0\]\.fovy_deg: expected a number"):
        load_sim_config(path)
    cams = [{"name": "front", "position": [1.0, 0.0, 0.5], "width": 320.5}]
    path = _write(tmp_path, "sim.yaml", {"simulator": {"cameras": cams}})
    with pytest.raises(ConfigError, match=r"simulator\.cameras\[0\]\.width: expected an integer, got 320\.5"):
        load_sim_config(path)
    path = _write(tmp_path, "sim.yaml", {"simulator": {"render_cameras": "yes"}})
    with pytest.raises(ConfigError, match=r"simulator\.render_cameras: expected true or false"):
        load_sim_config(path)


@pytest.mark.parametrize(
    ("data", "where", "words"),
    [
        ({"simulator": {"timestep": 0.5}}, "simulator", "timestep 0.5 outside"),
        ({"simulator": {"real_time_factor": -1.0}}, "simulator", "real_time_factor must be >= 0"),
        ({"simulator": {"scene_rate_hz": 0.0}}, "simulator", "scene_rate_hz must be positive"),
        (
            {"simulator": {"cameras": [{"name": "front", "position": [1, 0, 1], "fovy_deg": 200.0}]}},
            "simulator.cameras[0]",
            "fovy_deg 200.0 outside",
        ),
        (
            {"simulator": {"cameras": [{"name": "front cam", "position": [1, 0, 1]}]}},
            "simulator.cameras[0]",
            "camera name 'front cam'",
        ),
        (
            {"simulator": {"cameras": [{"name": "a", "position": [1, 0, 1]}, {"name": "a", "position": [0, 1, 1]}]}},
            "simulator",
            "camera names must be unique",
        ),
    ],
)
def test_failing_validate_names_file_and_key(tmp_path: Path, data: dict, where: str, words: str) -> None:
    path = _write(tmp_path, "sim.yaml", data)
    with pytest.raises(ConfigError) as info:
        load_sim_config(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: {where}: "), msg
    assert words in msg


def test_failing_nested_validate_in_executor(tmp_path: Path) -> None:
    data = {"executor": {"safety": {"workspace": [0.7, 0.2, -0.4, 0.4, 0.0, 0.6]}}}
    path = _write(tmp_path, "executor.yaml", data)
    with pytest.raises(ConfigError, match=r"executor\.yaml: executor\.safety: safety\.workspace is empty"):
        load_executor_config(path)
    path = _write(tmp_path, "executor.yaml", {"executor": {"grasp_force": 100.0}})
    with pytest.raises(ConfigError, match=r"executor: grasp_force 100\.0 N exceeds safety\.gripper_force_limit"):
        load_executor_config(path)
    path = _write(tmp_path, "executor.yaml", {"executor": {"timing": {"velocity_scaling": 1.5}}})
    with pytest.raises(ConfigError, match=r"executor: timing\.velocity_scaling must be in \(0, 1\]"):
        load_executor_config(path)
    path = _write(tmp_path, "planner.yaml", {"planner": {"oracle": {"safe_height": 1.0}}})
    with pytest.raises(ConfigError, match=r"planner\.yaml: planner\.oracle: safe_height"):
        load_planner_config(path)


def test_file_level_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such config file"):
        load_sim_config(tmp_path / "missing.yaml")
    bad = _write(tmp_path, "bad.yaml", "simulator: [unclosed\n")
    with pytest.raises(ConfigError, match=f"{bad}: not valid YAML"):
        load_sim_config(bad)
    top = _write(tmp_path, "list.yaml", "- a\n- b\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_sim_config(top)
    section = _write(tmp_path, "section.yaml", "simulator: 3\n")
    with pytest.raises(ConfigError, match=f"{section}: simulator: expected a mapping"):
        load_sim_config(section)


def test_empty_file_and_missing_section_give_defaults(tmp_path: Path) -> None:
    assert load_sim_config(_write(tmp_path, "empty.yaml", "")) == SimConfig()
    assert load_executor_config(_write(tmp_path, "other.yaml", {"simulator": {}})) == ExecutorConfig()


# ------------------------------------------------------------------------------------------ from_dict
def test_from_dict_builds_nested_dataclasses_and_tuples() -> None:
    cfg = from_dict(
        ExecutorConfig,
        {
            "grasp_force": 30,  # an int where a float is declared is a number
            "timing": {"velocity_scaling": 0.5},
            "safety": {"workspace": [0, 1, -1, 1, 0, 1], "gripper_force_limit": 50},
        },
    )
    assert isinstance(cfg.timing, TimingLimits)
    assert cfg.timing.velocity_scaling == 0.5
    assert cfg.timing.max_cartesian_speed == TimingLimits().max_cartesian_speed  # untouched default
    assert isinstance(cfg.safety, SafetyConfig)
    assert cfg.safety.workspace == (0.0, 1.0, -1.0, 1.0, 0.0, 1.0)
    assert isinstance(cfg.safety.workspace, tuple) and all(type(v) is float for v in cfg.safety.workspace)
    assert type(cfg.grasp_force) is float and cfg.grasp_force == 30.0
    assert cfg.safety.primitive_timeout == SafetyConfig().primitive_timeout


def test_from_dict_list_of_dataclasses_and_round_trip() -> None:
    cfg = from_dict(
        SimConfig,
        {"cameras": [{"name": "top", "position": [0.5, 0.0, 1.2], "look_at": [0.5, 0.0, 0.0], "width": 64}]},
    )
    assert len(cfg.cameras) == 1 and isinstance(cfg.cameras[0], CameraConfig)
    assert cfg.cameras[0].position == (0.5, 0.0, 1.2) and cfg.cameras[0].width == 64
    for original in (SimConfig(), ExecutorConfig(), PlannerConfig(), cfg):
        plain = to_dict(original)
        yaml.safe_dump(plain)  # plain data only
        assert from_dict(type(original), plain) == original


@dataclass
class _Leaf:
    gain: float = 1.0
    label: str | None = None

    def validate(self) -> None:
        if self.gain < 0:
            raise ValueError("gain must be >= 0")


@dataclass
class _Root:
    leaves: dict[str, _Leaf] = field(default_factory=dict)
    counts: list[int] = field(default_factory=list)
    pair: tuple[float, str] = (0.0, "x")
    limit: int | None = None


def test_from_dict_generic_containers_and_optionals() -> None:
    root = from_dict(
        _Root,
        {"leaves": {"a": {"gain": 2}, "b": {"label": None}}, "counts": [1, 2], "pair": [3, "y"], "limit": None},
    )
    assert root.leaves["a"] == _Leaf(2.0) and root.leaves["b"] == _Leaf(1.0, None)
    assert root.counts == [1, 2] and root.pair == (3.0, "y") and root.limit is None
    with pytest.raises(ConfigError, match=r"root\.leaves\.b\.gain: expected a number"):
        from_dict(_Root, {"leaves": {"b": {"gain": "high"}}}, "root")
    with pytest.raises(ConfigError, match=r"root\.leaves\.a: gain must be >= 0"):
        from_dict(_Root, {"leaves": {"a": {"gain": -1}}}, "root")
    with pytest.raises(ConfigError, match=r"root\.counts\[1\]: expected an integer, got 2\.5"):
        from_dict(_Root, {"counts": [1, 2.5]}, "root")
    with pytest.raises(ConfigError, match=r"root\.limit: expected an integer, got 'many'"):
        from_dict(_Root, {"limit": "many"}, "root")
    with pytest.raises(ConfigError, match=r"root\.pair\[1\]: expected a string"):
        from_dict(_Root, {"pair": [1.0, 2.0]}, "root")


def test_load_section_without_section(tmp_path: Path) -> None:
    path = _write(tmp_path, "oracle.yaml", {"safe_height": 0.15})
    assert load_section(OracleConfig, path).safe_height == 0.15
    path = _write(tmp_path, "oracle.yaml", {"safe_height": 0.15, "speed": 1})
    with pytest.raises(ConfigError, match=r"oracle\.yaml: unknown key\(s\) speed"):
        load_section(OracleConfig, path)
