"""Helpers for the ROS 2 launch files (imported only there: launch/launch_ros exist on full installs)."""

from __future__ import annotations

import re
from typing import Any

from llm_trainer.bringup.graph import NodeSpec

_ARG = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def launch_parameters(node: NodeSpec, launch_configuration) -> dict[str, Any]:
    """A node's parameters with each ``${arg}`` turned into a launch substitution.

    ``launch_configuration`` is ``launch.substitutions.LaunchConfiguration`` (passed in so that this
    module imports without ``launch``). Mixed strings become a list of text and substitutions, which
    launch concatenates.
    """
    out: dict[str, Any] = {}
    for key, value in node.parameters.items():
        if not isinstance(value, str) or not _ARG.search(value):
            out[key] = value
            continue
        parts: list[Any] = []
        pos = 0
        for match in _ARG.finditer(value):
            if match.start() > pos:
                parts.append(value[pos : match.start()])
            parts.append(launch_configuration(match.group(1)))
            pos = match.end()
        if pos < len(value):
            parts.append(value[pos:])
        out[key] = parts[0] if len(parts) == 1 else parts
    return out
