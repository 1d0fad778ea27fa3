"""The code style gate runs with the tests, so CI (which runs `make test`) enforces it too."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CHECKED = ["src", "test", "scripts", "launch"]


def _ruff() -> str:
    ruff = Path(sys.prefix) / "bin" / "ruff"
    exe = str(ruff) if ruff.exists() else shutil.which("ruff")
    if exe is None:
        pytest.skip("ruff is not installed in this environment")
    return exe


def test_ruff_is_clean(repo_root):
    proc = subprocess.run([_ruff(), "check", *CHECKED], cwd=repo_root, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ruff_format_is_clean(repo_root):
    """`ruff format` leaves every file as it is (run it before committing)."""
    proc = subprocess.run(
        [_ruff(), "format", "--check", *CHECKED], cwd=repo_root, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
