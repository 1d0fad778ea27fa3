"""Hardware motion backends (MoveIt 2, panda-py), each imported lazily and started only on confirmation.

``make_hardware_backend`` loads the backend's YAML (``config/moveit.yaml``, ``config/panda_py.yaml``),
applies overrides (the executor node's ``confirm_hardware`` / ``robot_ip`` parameters), checks the
confirmation and only then imports the library and connects.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from llm_trainer.config import ConfigError, config_dir
from llm_trainer.execution.backends.common import BackendUnavailable

HARDWARE_BACKENDS = ("moveit", "panda_py")


def load_hardware_config(name: str, path: Path | str | None = None, overrides: dict[str, Any] | None = None):
    """The backend's configuration dataclass from its YAML, with non-empty ``overrides`` applied and validated."""
    if name == "moveit":
        from llm_trainer.execution.backends.moveit_backend import load_moveit_config as load
    elif name == "panda_py":
        from llm_trainer.execution.backends.panda_py_backend import load_panda_py_config as load
    else:
        raise ConfigError(f"unknown hardware backend {name!r} (known: {', '.join(HARDWARE_BACKENDS)})")
    config = load(path)
    changes = {k: v for k, v in (overrides or {}).items() if v not in (None, "")}
    if changes:
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(config)})
        if unknown:
            raise ConfigError(f"{name}: unknown override(s) {', '.join(unknown)}")
        config = dataclasses.replace(config, **changes)
        try:
            config.validate()
        except ValueError as exc:
            raise ConfigError(f"{name}: {exc}") from None
    return config


def make_hardware_backend(
    name: str, *, node=None, path: Path | str | None = None, overrides: dict[str, Any] | None = None
):
    """Start a hardware backend; ``BackendUnavailable`` (with what is missing) when it cannot."""
    config = load_hardware_config(name, path, overrides)
    where = str(path or config_dir() / f"{name}.yaml")
    if name == "moveit":
        from llm_trainer.execution.backends.moveit_backend import MoveItBackend

        return MoveItBackend(config, node, where=where)
    from llm_trainer.execution.backends.panda_py_backend import PandaPyBackend

    return PandaPyBackend(config, where=where)


__all__ = ["HARDWARE_BACKENDS", "BackendUnavailable", "load_hardware_config", "make_hardware_backend"]
