"""The ament_python package installs like a ROS 2 package: colcon build -> share/ + lib/ + ament index.

This is what a full ROS 2 install (the lab's Jazzy image) does with src/llm_trainer; here colcon from
the venv builds it against the venv's ROS wheels.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

VENV = Path(sys.prefix)
# The venv's colcon here; the system one on a full ROS 2 install (the Jazzy image).
COLCON = VENV / "bin" / "colcon" if (VENV / "bin" / "colcon").exists() else Path(shutil.which("colcon") or "colcon")

EXPECTED = [
    "share/llm_trainer/package.xml",
    "share/llm_trainer/launch/sim.launch.py",
    "share/llm_trainer/config/sim.yaml",
    "share/ament_index/resource_index/packages/llm_trainer",
    "lib/llm_trainer/sim_node",
    "lib/llm_trainer/planner_node",
    "lib/llm_trainer/executor_node",
    "lib/llm_trainer/recorder_node",
    "lib/llm_trainer/perception_node",
    "lib/llm_trainer/realsense_node",
]


@pytest.fixture(scope="module")
def colcon_install(repo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """colcon build of src/llm_trainer into a temporary install base (once per module)."""
    if not COLCON.exists():
        pytest.skip("colcon is not installed (run scripts/setup.sh)")
    work = tmp_path_factory.mktemp("colcon")
    env = dict(os.environ)
    prefixes = [str(VENV), *filter(None, env.get("AMENT_PREFIX_PATH", "").split(os.pathsep))]
    env.update(
        AMENT_PREFIX_PATH=os.pathsep.join(prefixes),
        PATH=f"{VENV / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        COLCON_HOME=str(work / "colcon_home"),  # no user defaults/mixins leak in
    )
    cmd = [
        str(COLCON), "--log-base", str(work / "log"), "build",
        "--base-paths", str(repo_root / "src" / "llm_trainer"),
        "--build-base", str(work / "build"), "--install-base", str(work / "install"), "--merge-install",
        "--event-handlers", "console_direct+", "desktop_notification-",
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, f"colcon build failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    # The build must not write into the source tree (besides what .gitignore covers).
    assert not (repo_root / "src" / "llm_trainer" / "build").exists()
    return work / "install"


def test_colcon_install_layout(colcon_install: Path) -> None:
    missing = [rel for rel in EXPECTED if not (colcon_install / rel).exists()]
    assert not missing, f"missing from the colcon install: {missing}"
    assert os.access(colcon_install / "lib/llm_trainer/sim_node", os.X_OK)
    # The node scripts go to lib/<pkg> (ros2 run), not bin/.
    assert not (colcon_install / "bin" / "sim_node").exists()


def test_ament_index_finds_install(colcon_install: Path, ros_env: dict[str, str]) -> None:
    env = dict(ros_env, AMENT_PREFIX_PATH=str(colcon_install))
    code = "from ament_index_python.packages import get_package_share_directory as g; print(g('llm_trainer'))"
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL
    )
    assert proc.returncode == 0, proc.stderr
    share = Path(proc.stdout.strip())
    assert share == colcon_install / "share" / "llm_trainer"
    assert (share / "launch" / "sim.launch.py").is_file()
    assert (share / "config" / "sim.yaml").is_file()
