"""Typed configuration: dataclasses filled from ``config/*.yaml`` and validated on load.

Every section of a YAML file maps onto a dataclass. Unknown keys, wrong types and values that
fail a field's ``validate`` hook are reported with the file and the dotted key, e.g.
``config/sim.yaml: simulator.cameras.rate: expected a number, got 'fast'``.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration file or value is invalid; the message names the file and key."""


def repo_root() -> Path | None:
    """The source checkout this module lives in, if any (editable installs and tests)."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "config").is_dir() and (parent / "src" / "llm_trainer").is_dir():
            return parent
    return None


def config_dir() -> Path:
    """Where the YAML files are: $LLM_TRAINER_CONFIG_DIR, the checkout's config/, or the ament share dir."""
    env = os.environ.get("LLM_TRAINER_CONFIG_DIR")
    if env:
        return Path(env)
    root = repo_root()
    if root is not None:
        return root / "config"
    try:  # installed by colcon on a full ROS 2 system
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory("llm_trainer")) / "config"
    except Exception as exc:  # noqa: BLE001 - any failure means "not found"
        raise ConfigError("cannot find the llm_trainer config directory; set LLM_TRAINER_CONFIG_DIR") from exc


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _convert(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{where}: invalid value {value!r}")
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return from_dict(tp, value, where)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ConfigError(f"{where}: expected {len(args)} items, got {len(value)}")
            return tuple(_convert(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        item_type = args[0] if args else Any
        items = [_convert(v, item_type, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        key_t, val_t = args if args else (Any, Any)
        return {_convert(k, key_t, where): _convert(v, val_t, f"{where}.{k}") for k, v in value.items()}
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    if isinstance(tp, type) and not isinstance(value, tp):
        raise ConfigError(f"{where}: expected {_type_name(tp)}, got {value!r}")
    return value


def from_dict(cls: type[T], data: dict[str, Any], where: str = "") -> T:
    """Build dataclass ``cls`` from a mapping, rejecting unknown keys; then run ``validate()``."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where or cls.__name__}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        prefix = f"{where}: " if where else ""
        raise ConfigError(f"{prefix}unknown key(s) {', '.join(unknown)} (known: {', '.join(fields)})")
    kwargs = {}
    for name, value in data.items():
        key = f"{where}.{name}" if where else name
        kwargs[name] = _convert(value, hints[name], key)
    obj = cls(**kwargs)
    validate = getattr(obj, "validate", None)
    if callable(validate):
        try:
            validate()
        except ConfigError:
            raise
        except ValueError as exc:
            raise ConfigError(f"{where or cls.__name__}: {exc}") from None
    return obj


def load_yaml(path: Path | str) -> dict[str, Any]:
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    return data


def load_section(cls: type[T], path: Path | str, section: str | None = None) -> T:
    """Load ``cls`` from a YAML file (optionally from one top-level section of it)."""
    data = load_yaml(path)
    if section is not None:
        data = data.get(section, {})
    try:
        return from_dict(cls, data, section or "")
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def to_dict(obj: Any) -> Any:
    """Dataclass (recursively) -> plain dict for YAML/JSON output."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def parse_value(text: str) -> Any:
    """A command-line value as YAML would read it (``false``, ``3``, ``0.5``), with ``2e-5`` a number too."""
    value = yaml.safe_load(text) if text.strip() else ""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def with_overrides(obj: T, overrides: dict[str, Any], where: str = "") -> T:
    """A copy of dataclass ``obj`` with dotted-key ``overrides`` (``{"llm.prompt.example": False}``),
    validated like a YAML file: an unknown key or a bad value is a ``ConfigError`` naming it."""
    data = to_dict(obj)
    for dotted, value in overrides.items():
        node = data
        parts = dotted.split(".")
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                raise ConfigError(f"{where + ': ' if where else ''}unknown key {dotted!r}")
            node = node[part]
        if parts[-1] not in node:
            raise ConfigError(f"{where + ': ' if where else ''}unknown key {dotted!r} (known: {', '.join(node)})")
        node[parts[-1]] = value
    return from_dict(type(obj), data, where)
