"""Run one node until SIGINT or SIGTERM, and always exit.

Every node's ``main()`` goes through :func:`run_node`, so all of them stop the same way.

Why not ``executor.spin()`` with rclpy's own signal handlers: rclpy wakes a blocked executor
through a guard condition from its signal handler, and under load that wake-up gets lost. We
measured a planner node still blocked in ``rcl_wait`` 20 s after SIGTERM in about one run in
ten with both cores of the test machine busy (the same race as ros2/ros2cli#885). Here a
signal only sets a flag and the executor spins in short slices, so a stop request is seen
within one slice whatever the middleware does. Clean-up (closing an episode, stopping the
arm) then gets a bounded time before the process exits regardless, so a launch file or
``llm-trainer bringup`` never has to escalate to SIGKILL.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

#: A directory: the node traces its Python allocations (tracemalloc) and writes a snapshot there on
#: SIGUSR1, for a soak's leak hunt (``scripts/soak_generation.py --tracemalloc DIR``). Unset: no tracing.
TRACEMALLOC_ENV = "LLM_TRAINER_TRACEMALLOC_DIR"
#: Comma-separated node names (``executor_node``) to trace; unset: every node. Tracing slows a node
#: several times over (every allocation records its traceback), so a soak traces the suspect only.
TRACEMALLOC_NODES_ENV = "LLM_TRAINER_TRACEMALLOC_NODES"

#: Exit code when the node could not start (bad configuration, missing backend).
EXIT_STARTUP_ERROR = 2
#: Exit code when the process had to be cut short because clean-up hung.
EXIT_CLEANUP_TIMEOUT = 3


def run_node(
    make_node: Callable[[], Node],
    *,
    name: str,
    args: list[str] | None = None,
    num_threads: int | None = None,
    startup_errors: tuple[type[BaseException], ...] = (),
    spin_slice_s: float = 0.1,
    cleanup_timeout_s: float = 10.0,
) -> int:
    """Build the node, spin it until a stop signal, clean up; return the process exit code.

    ``startup_errors`` raised by ``make_node`` are printed as one line prefixed with ``name``
    and give exit code 2, never a traceback. A stop signal before the node is built (a large
    model still loading) interrupts the build at once. ``num_threads=None`` is rclpy's default.
    """
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    traced = os.environ.get(TRACEMALLOC_NODES_ENV)
    if os.environ.get(TRACEMALLOC_ENV) and (not traced or name in traced.split(",")):
        _trace_allocations(name, Path(os.environ[TRACEMALLOC_ENV]))
    stop = threading.Event()
    spinning = threading.Event()

    def on_signal(signum: int, _frame) -> None:
        stop.set()
        if not spinning.is_set():
            # Still building the node (e.g. loading weights): leave now.
            raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    node: Node | None = None
    executor: MultiThreadedExecutor | None = None
    code = 0
    try:
        try:
            node = make_node()
        except startup_errors as exc:
            print(f"{name}: {exc}", file=sys.stderr, flush=True)
            return EXIT_STARTUP_ERROR
        executor = MultiThreadedExecutor(num_threads=num_threads)
        executor.add_node(node)
        spinning.set()
        while not stop.is_set() and rclpy.ok():
            executor.spin_once(timeout_sec=spin_slice_s)
    except KeyboardInterrupt:
        pass
    except ExternalShutdownException:
        code = 1
    finally:
        spinning.set()  # a second signal during clean-up must not interrupt it
        watchdog = threading.Timer(cleanup_timeout_s, _exit_now, args=(name, cleanup_timeout_s))
        watchdog.daemon = True
        watchdog.start()
        try:
            if executor is not None:
                executor.shutdown(timeout_sec=cleanup_timeout_s / 2)
            if node is not None:
                node.destroy_node()
        finally:
            rclpy.try_shutdown()
            watchdog.cancel()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    return code


def _trace_allocations(name: str, directory: Path) -> None:
    """Start tracemalloc; each SIGUSR1 writes ``<name>-<pid>-<n>.tracemalloc`` into ``directory``."""
    import tracemalloc

    directory.mkdir(parents=True, exist_ok=True)
    tracemalloc.start(8)
    taken = {"n": 0}

    def on_usr1(_signum: int, _frame) -> None:
        path = directory / f"{name}-{os.getpid()}-{taken['n']:03d}.tracemalloc"
        taken["n"] += 1
        snapshot = tracemalloc.take_snapshot()
        tmp = path.with_suffix(".part")
        snapshot.dump(str(tmp))
        tmp.rename(path)  # a reader never sees half a snapshot

    signal.signal(signal.SIGUSR1, on_usr1)


def _exit_now(name: str, timeout_s: float) -> None:
    print(f"{name}: clean-up did not finish within {timeout_s:.0f} s; exiting anyway", file=sys.stderr, flush=True)
    os._exit(EXIT_CLEANUP_TIMEOUT)
