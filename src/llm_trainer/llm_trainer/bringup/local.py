"""Start a node graph as local processes: the stand-in for ``ros2 launch`` on machines without it.

Each node runs as ``python -m <module> --ros-args ...`` with its log in ``<log_dir>/<node>.log``.
``LocalGraph`` is a context manager: leaving it stops the nodes (SIGINT, then SIGTERM, then
SIGKILL, reported in ``escalated``), so a crashed generator does not leave simulators running.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from llm_trainer.bringup.graph import GraphSpec, ros_args
from llm_trainer.config import config_dir


def default_gl_backend() -> str:
    """MuJoCo's headless GL backend: $MUJOCO_GL, else what set-up found working, else EGL."""
    if os.environ.get("MUJOCO_GL"):
        return os.environ["MUJOCO_GL"]
    stamp = Path(sys.prefix) / "llm_trainer_gl"
    if stamp.exists():
        return stamp.read_text().strip() or "egl"
    return "egl"


def follow_parent() -> None:
    """In the child, before exec: get SIGTERM when the parent dies (even by SIGKILL), so that nodes
    never outlive the generator that started them. Linux only (prctl PR_SET_PDEATHSIG); elsewhere a
    no-op. The signal comes when the *thread* that started the node ends: LocalGraph's owner."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    except (OSError, AttributeError):
        pass


class LocalGraph:
    def __init__(
        self,
        graph: GraphSpec,
        arguments: dict[str, Any] | None = None,
        *,
        log_dir: Path | str,
        domain_id: int | None = None,
        extra_env: dict[str, str] | None = None,
    ):
        self.graph = graph
        self.arguments = arguments or {}
        self.log_dir = Path(log_dir)
        self.domain_id = domain_id
        self.extra_env = extra_env or {}
        self.processes: dict[str, subprocess.Popen] = {}
        self.escalated: dict[str, str] = {}  # node -> the signal that ended it, when SIGINT did not
        self._logs: list = []

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.setdefault("MUJOCO_GL", default_gl_backend())
        env.setdefault("ROS_LOG_DIR", str(self.log_dir / "ros"))
        # Large shared-memory segments so small messages are not dropped behind camera images.
        profile = config_dir() / "fastdds.xml"
        if profile.exists():
            env.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(profile))
        if self.domain_id is not None:
            env["ROS_DOMAIN_ID"] = str(self.domain_id)
        env.update(self.extra_env)
        return env

    def start(self) -> LocalGraph:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        env = self.env()
        for node in self.graph.nodes:
            params = self.graph.resolved_parameters(node, self.arguments)
            cmd = [sys.executable, "-m", node.module, *ros_args(node, params)]
            log = open(self.log_dir / f"{node.name}.log", "w", encoding="utf-8")  # noqa: SIM115 - closed in stop()
            self._logs.append(log)
            log.write("$ " + " ".join(cmd) + "\n")
            log.flush()
            self.processes[node.name] = subprocess.Popen(
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
                preexec_fn=follow_parent,
            )
        return self

    def check_alive(self) -> None:
        """Raise with the node's log tail if any node has exited."""
        for name, proc in self.processes.items():
            code = proc.poll()
            if code is not None:
                tail = (self.log_dir / f"{name}.log").read_text(errors="replace").splitlines()[-15:]
                raise RuntimeError(f"node {name!r} exited with code {code}:\n" + "\n".join(tail))

    def stop(self, timeout: float = 10.0) -> dict[str, str]:
        """Stop every node: SIGINT, then SIGTERM, then SIGKILL, each after ``timeout`` s.

        Returns (and keeps in ``escalated``) the nodes that did not stop on SIGINT, with the signal
        that finally ended them; each gets a line at the end of its log. A node that needs SIGKILL
        skipped its clean-up (an open bag, a robot connection): callers should say so.
        """
        names = {p.pid: n for n, p in self.processes.items()}
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
            alive = [p for p in self.processes.values() if p.poll() is None]
            if not alive:
                break
            if sig != signal.SIGINT:
                for p in alive:
                    self.escalated[names[p.pid]] = sig.name
            for p in alive:
                try:
                    os.killpg(p.pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + timeout
            for p in alive:
                try:
                    p.wait(max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    pass
        for log in self._logs:
            log.close()
        self._logs.clear()
        for name, sig_name in self.escalated.items():
            with open(self.log_dir / f"{name}.log", "a", encoding="utf-8") as f:
                f.write(
                    f"[llm_trainer bringup] {name} did not stop on SIGINT within {timeout:g} s; ended with {sig_name}\n"
                )
        return dict(self.escalated)

    def __enter__(self) -> LocalGraph:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
