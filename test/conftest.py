"""Session-wide test isolation for ROS 2 and MuJoCo.

The environment is set here, at import time, before any test module imports rclpy: each pytest
session gets its own ROS domain on loopback only, so parallel sessions (and other people's nodes)
never see each other. Subprocesses inherit os.environ (use the ``ros_env`` fixture to be explicit).
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from llm_trainer.ros.domains import random_domain

REPO_ROOT = Path(__file__).resolve().parents[1]


def _gl_backend() -> str:
    """The MuJoCo GL backend scripts/setup.sh found working in this venv (``egl`` if unknown)."""
    marker = Path(sys.prefix) / "llm_trainer_gl"
    try:
        return marker.read_text().strip() or "egl"
    except OSError:
        return "egl"


def _isolate_environment() -> None:
    # LLM_TRAINER_TEST_DOMAIN_ID pins the domain (e.g. to watch a test with other tools); otherwise a
    # random one per session, within 1..101: higher domains put DDS ports in Linux's ephemeral range
    # (llm_trainer.ros.domains). Tests that start graphs of their own take domain_beside(session, k).
    os.environ["ROS_DOMAIN_ID"] = os.environ.get("LLM_TRAINER_TEST_DOMAIN_ID") or str(random_domain())
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    os.environ.pop("ROS_STATIC_PEERS", None)
    # rclpy.init() needs ROS_LOG_DIR or HOME; `make test` points it into build/, else a fresh tmp dir.
    if not os.environ.get("ROS_LOG_DIR"):
        os.environ["ROS_LOG_DIR"] = tempfile.mkdtemp(prefix="llm_trainer_ros_log_")
    # An explicit MUJOCO_GL wins; otherwise what setup.sh recorded for this venv.
    os.environ.setdefault("MUJOCO_GL", _gl_backend())


_isolate_environment()


def pytest_report_header(config: pytest.Config) -> str:
    return (
        f"ROS_DOMAIN_ID={os.environ['ROS_DOMAIN_ID']} ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST "
        f"MUJOCO_GL={os.environ['MUJOCO_GL']} ROS_LOG_DIR={os.environ['ROS_LOG_DIR']}"
    )


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture
def ros_context() -> Iterator[object]:
    """An initialised rclpy Context of its own (not the global one), shut down after the test."""
    rclpy = pytest.importorskip("rclpy")
    from rclpy.context import Context

    context = Context()
    rclpy.init(context=context)
    try:
        yield context
    finally:
        if context.ok():
            rclpy.shutdown(context=context)


@pytest.fixture(scope="session")
def ros_env() -> dict[str, str]:
    """Environment for subprocesses: the session's ROS isolation, MUJOCO_GL and LD_LIBRARY_PATH."""
    env = dict(os.environ)
    for key in ("ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_LOG_DIR", "MUJOCO_GL"):
        env[key] = os.environ[key]
    # The ROS wheels' bootstrap re-executes Python with LD_LIBRARY_PATH set; children need it too.
    env["LD_LIBRARY_PATH"] = os.environ.get("LD_LIBRARY_PATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    return env
