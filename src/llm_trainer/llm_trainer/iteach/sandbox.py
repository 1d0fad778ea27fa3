"""Running LLM-written CodePolicies safely: a static check first, then a separate, limited process.

``check_source`` refuses, before anything runs, what a CodePolicy never needs: imports other than
``math``, names like ``open``/``eval``/``__import__``, any attribute outside a small allow-list (so no
walk to ``__subclasses__``, ``__globals__``, ``__builtins__``, ``gi_frame``, ``format``...), classes,
``global``, generators, ``async``. ``Sandbox`` then runs the code in ``sandbox_worker.py``: its own
process, in an empty temporary folder that is removed afterwards, with CPU-time, wall-time and
memory limits, no file or socket it can open and JSON as the only thing crossing the boundary.

Every refusal is a ``SandboxError`` with a one-line reason and a ``kind`` (``static``, ``load``,
``runtime``, ``timeout``, ``memory``, ``crash``); the caller decides what goes on (the training run
falls back to another CodePolicy; the CLI prints ``rejected: <reason>`` and exits 2).
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

WORKER = Path(__file__).with_name("sandbox_worker.py")
LOAD_WALL_S = 10.0  # [s] start-up and loading of the module, on a loaded machine

ALLOWED_IMPORTS = ("math",)
#: Attributes a CodePolicy may read: the math module's functions and constants, and the plain-data
#: methods of the dicts, lists and strings the scene API hands it. Everything else is refused.
ALLOWED_ATTRIBUTES = frozenset(
    "pi tau e inf sqrt hypot atan2 atan asin acos sin cos tan radians degrees floor ceil fabs copysign fmod "
    "isclose isfinite exp log dist remainder "
    "get items keys values append extend insert pop index count copy lower upper startswith endswith".split()
)
FORBIDDEN_NAMES = frozenset(
    "open eval exec compile getattr setattr delattr globals locals vars breakpoint input memoryview super "
    "classmethod staticmethod property exit quit".split()
)
FORBIDDEN_NODES: dict[type, str] = {
    ast.ClassDef: "class definitions",
    ast.Global: "global statements",
    ast.Nonlocal: "nonlocal statements",
    ast.Yield: "generators (yield)",
    ast.YieldFrom: "generators (yield from)",
    ast.AsyncFunctionDef: "async functions",
    ast.Await: "await",
    ast.AsyncFor: "async for",
    ast.AsyncWith: "async with",
    ast.With: "with statements",
    ast.Try: "try statements (errors are reported, not hidden)",
    ast.Delete: "del statements",
}
if hasattr(ast, "TryStar"):
    FORBIDDEN_NODES[ast.TryStar] = "try statements"


class SandboxError(RuntimeError):
    def __init__(self, kind: str, reason: str):
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


def check_source(source: str, *, max_chars: int = 50_000) -> list[str]:
    """Refuse statically what a CodePolicy never needs; returns the STEPS names when it passes."""
    if len(source) > max_chars:
        raise SandboxError("static", f"the code is {len(source)} characters long (at most {max_chars})")
    try:
        tree = ast.parse(source, "<codepolicy>")
    except SyntaxError as exc:
        raise SandboxError("static", f"does not compile: {exc.msg} (line {exc.lineno})") from None
    nodes = list(ast.walk(tree))
    # Imports and names first: their reasons say more than an attribute of what they return.
    for node in sorted(nodes, key=lambda n: not isinstance(n, (ast.Import, ast.ImportFrom, ast.Name))):
        line = getattr(node, "lineno", "?")
        for bad, what in FORBIDDEN_NODES.items():
            if isinstance(node, bad):
                raise SandboxError("static", f"{what} are not allowed (line {line})")
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name not in ALLOWED_IMPORTS:
                    raise SandboxError("static", f"import of {alias.name!r} is not allowed (line {line})")
        elif isinstance(node, ast.ImportFrom):
            if node.module not in ALLOWED_IMPORTS or node.level:
                raise SandboxError("static", f"import from {node.module!r} is not allowed (line {line})")
        elif isinstance(node, ast.Attribute):
            if node.attr not in ALLOWED_ATTRIBUTES:
                raise SandboxError("static", f"attribute .{node.attr} is not allowed (line {line})")
        elif isinstance(node, ast.Name):
            if node.id.startswith("__") or node.id in FORBIDDEN_NAMES:
                raise SandboxError("static", f"name {node.id!r} is not allowed (line {line})")
        elif isinstance(node, (ast.FunctionDef, ast.arg, ast.alias)):
            name = getattr(node, "name", None) or getattr(node, "arg", None) or ""
            if name.startswith("__"):
                raise SandboxError("static", f"name {name!r} is not allowed (line {line})")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and "__" in node.value:
            # Dunder names in strings only serve lookups by name (there is no getattr to hand them to).
            raise SandboxError("static", f"the string {node.value[:40]!r} is not allowed (line {line})")
    steps = _steps_literal(tree)
    defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    for step in steps:
        for fn in (f"{step}_action", f"{step}_done"):
            if fn not in defined:
                raise SandboxError("static", f"step {step!r} has no function {fn}(scene)")
    return steps


def _steps_literal(tree: ast.Module) -> list[str]:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "STEPS" for t in node.targets):
            try:
                steps = ast.literal_eval(node.value)
            except ValueError:
                raise SandboxError("static", "STEPS must be a literal list of step names") from None
            if not (isinstance(steps, list) and steps and all(isinstance(s, str) and s.isidentifier() for s in steps)):
                raise SandboxError("static", "STEPS must be a non-empty list of identifier strings")
            if len(set(steps)) != len(steps):
                raise SandboxError("static", "STEPS names a step twice")
            return steps
    raise SandboxError("static", "no STEPS = [...] list of step names at the top level")


@dataclass
class SandboxLimits:
    cpu_s: int = 60  # CPU seconds for the worker's whole life
    wall_s: float = 2.0  # per call (load or one function call)
    memory_mb: int = 256  # address space


class Sandbox:
    """One worker process holding one CodePolicy; ``call(fn, scene)`` -> the function's JSON answer."""

    def __init__(self, source: str, limits: SandboxLimits | None = None):
        self.limits = limits or SandboxLimits()
        self.steps = check_source(source)
        self._dir = tempfile.mkdtemp(prefix="llm-trainer-sandbox-")
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
        self._proc = subprocess.Popen(
            [sys.executable, "-I", "-S", str(WORKER), str(self.limits.cpu_s), str(self.limits.memory_mb)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            cwd=self._dir,
            env=env,
            text=True,
            start_new_session=True,
        )
        try:
            # Starting the interpreter is not the policy's time: the load gets at least LOAD_WALL_S.
            answer = self._request({"op": "load", "source": source}, max(LOAD_WALL_S, self.limits.wall_s))
        except SandboxError:
            self.close()
            raise
        if answer.get("steps") != self.steps:
            self.close()
            raise SandboxError("load", "STEPS changed while the module ran")

    def _request(self, msg: dict, wall_s: float | None = None):
        proc = self._proc
        if proc is None or proc.poll() is not None:
            raise SandboxError("crash", "the sandbox process is not running")
        try:
            proc.stdin.write(json.dumps(msg, allow_nan=False) + "\n")
            proc.stdin.flush()
        except (BrokenPipeError, OSError):
            self._kill()
            raise SandboxError("crash", "the sandbox process died") from None
        wall_s = self.limits.wall_s if wall_s is None else wall_s
        line = self._readline(wall_s)
        if line is None:
            self._kill()
            raise SandboxError("timeout", f"time limit ({wall_s:g} s per call) exceeded")
        if not line:
            code = self._kill()
            if code is not None and code in (-24, 152):  # SIGXCPU
                raise SandboxError("timeout", f"CPU-time limit ({self.limits.cpu_s} s) exceeded")
            raise SandboxError("crash", f"the sandbox process died (exit {code})")
        reply = json.loads(line)
        if not reply.get("ok"):
            if reply.get("kind") == "memory":
                self._kill()  # a worker that ran out of memory is not trusted with the next call
            raise SandboxError(reply.get("kind", "runtime"), reply.get("reason", "failed"))
        return reply.get("value", reply)

    def _readline(self, timeout: float) -> str | None:
        import selectors

        with selectors.DefaultSelector() as sel:
            sel.register(self._proc.stdout, selectors.EVENT_READ)
            deadline = time.monotonic() + timeout
            while True:
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    return None
                return self._proc.stdout.readline()

    def call(self, fn: str, scene: dict):
        return self._request({"op": "call", "fn": fn, "scene": scene})

    def _kill(self) -> int | None:
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.kill()
        try:
            return proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            return None

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def close(self) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            try:
                proc.stdin.close()
                proc.wait(timeout=2)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self._kill()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass
