"""The code style gate runs with the tests, so CI (which runs `make test`) enforces it too."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def test_ruff_is_clean(repo_root):
    ruff = Path(sys.prefix) / "bin" / "ruff"
    exe = str(ruff) if ruff.exists() else shutil.which("ruff")
    if exe is None:
        pytest.skip("ruff is not installed in this environment")
    proc = subprocess.run(
        [exe, "check", "src", "test", "scripts", "launch"], cwd=repo_root, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
