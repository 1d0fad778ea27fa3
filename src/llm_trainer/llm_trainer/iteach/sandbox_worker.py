"""The process a CodePolicy runs in (started by ``iteach.sandbox.Sandbox``; standard library only).

It is started as ``python -I sandbox_worker.py CPU_S MEMORY_MB`` in an empty temporary folder, lowers
its own limits before it reads any policy code, and then speaks JSON lines on stdin/stdout:

    -> {"op": "load", "source": "..."}              <- {"ok": true, "steps": ["reach", ...]}
    -> {"op": "call", "fn": "reach_action", "scene": {...}}   <- {"ok": true, "value": ...}
    <- {"ok": false, "kind": "runtime|memory|load", "reason": "..."}   (any failure)

What contains the code, beside the static check the host ran first (``iteach.sandbox.check_source``):
- builtins are an allow-list (no ``open``, ``__import__`` beyond ``math``, ``getattr``, ``eval``...);
- only JSON crosses the pipe, so the code sees plain dicts, lists, numbers and strings, never an object
  of ours with reachable internals, and its answers are data too;
- OS limits (after dropping root to ``nobody`` where it runs as root): CPU seconds (SIGXCPU kills
  the process), address space (huge allocations fail with MemoryError), no new processes, file size 0
  (no file can be written) and no free file descriptors (no file or socket can be opened) - these
  hold even for code that got past the static check.
The host adds the wall-time limit per call (it kills the process) and runs the worker in a folder it
removes afterwards.
"""

import json
import math
import os
import resource
import sys

ALLOWED_BUILTINS = (
    "abs all any bool dict divmod enumerate float int isinstance len list max min pow range reversed "
    "round sorted str sum tuple zip True False None ValueError ZeroDivisionError KeyError IndexError"
).split()
ALLOWED_MODULES = {"math": math}
NOBODY = 65534


def _restricted_import(name, globals=None, locals=None, fromlist=(), level=0):  # noqa: A002 - the signature
    if level == 0 and name in ALLOWED_MODULES:
        return ALLOWED_MODULES[name]
    raise ImportError(f"import of {name!r} is not allowed (allowed: {', '.join(ALLOWED_MODULES)})")


def _limit(cpu_s: int, memory_mb: int) -> None:
    if os.geteuid() == 0:
        # As root the process limit does not apply and every file is writable: become nobody first.
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 1))
    resource.setrlimit(resource.RLIMIT_AS, (memory_mb << 20, memory_mb << 20))
    resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
    os.closerange(3, 1 << 16)
    resource.setrlimit(resource.RLIMIT_NOFILE, (3, 3))


def main() -> int:
    cpu_s, memory_mb = int(sys.argv[1]), int(sys.argv[2])
    reply_to = sys.stdout
    sys.stdout = sys.stderr  # whatever else is printed cannot corrupt the replies
    _limit(cpu_s, memory_mb)
    builtins = {name: __builtins__[name] if isinstance(__builtins__, dict) else getattr(__builtins__, name)
                for name in ALLOWED_BUILTINS}  # fmt: skip
    builtins["__import__"] = _restricted_import
    builtins["print"] = lambda *args, **kwargs: None  # debugging prints are harmless and go nowhere
    namespace: dict = {}

    def reply(obj) -> None:
        reply_to.write(json.dumps(obj, allow_nan=False) + "\n")
        reply_to.flush()

    for line in sys.stdin:
        try:
            msg = json.loads(line)
            if msg["op"] == "load":
                namespace = {"__builtins__": builtins, "__name__": "codepolicy"}
                exec(compile(msg["source"], "<codepolicy>", "exec"), namespace)  # noqa: S102 - sandboxed
                steps = namespace.get("STEPS")
                if not isinstance(steps, list) or not all(isinstance(s, str) for s in steps):
                    reply({"ok": False, "kind": "load", "reason": "STEPS must be a list of step names"})
                    continue
                reply({"ok": True, "steps": steps})
            elif msg["op"] == "call":
                fn = namespace.get(msg["fn"])
                if not callable(fn):
                    reply({"ok": False, "kind": "load", "reason": f"no function {msg['fn']}()"})
                    continue
                reply({"ok": True, "value": fn(msg["scene"])})
            else:
                reply({"ok": False, "kind": "runtime", "reason": f"unknown op {msg['op']!r}"})
        except MemoryError:
            namespace = {}
            reply({"ok": False, "kind": "memory", "reason": f"memory limit ({memory_mb} MB) exceeded"})
        except RecursionError:
            reply({"ok": False, "kind": "runtime", "reason": "recursion too deep"})
        except (TypeError, ValueError) as exc:
            # json.dumps of an answer that is not data, or the code's own errors.
            reply({"ok": False, "kind": "runtime", "reason": f"{type(exc).__name__}: {exc}"[:300]})
        except Exception as exc:  # noqa: BLE001 - everything the policy code raises is reported, never fatal
            reply({"ok": False, "kind": "runtime", "reason": f"{type(exc).__name__}: {exc}"[:300]})
    return 0


if __name__ == "__main__":
    sys.exit(main())
