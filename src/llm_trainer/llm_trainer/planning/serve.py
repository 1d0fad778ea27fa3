"""``llm-trainer serve-llm``: an OpenAI-compatible server for a local model, so several robots (or
data-generation workers) share one planner model. Nothing here is an HTTP server of our own: it
starts an existing one.

* ``llama.cpp`` (``python -m llama_cpp.server`` from ``llama-cpp-python[server]``): GGUF weights,
  ~6x faster than transformers on CPU here, and it enforces a GBNF ``grammar`` sent with a
  request, so constrained decoding works across the network (``planner.llm.constraint: grammar``).
* ``--adapter DIR``: a LoRA adapter from ``llm-trainer finetune``, converted once to llama.cpp's LoRA
  GGUF (``finetune.gguf_adapter``) and applied by the server (``--lora_path``) on the GGUF base.
* ``transformers`` (``transformers serve``): Hugging Face folders (and GGUF); slower, and it
  ignores grammars and response formats, so only unconstrained requests make sense against it.

``auto`` picks llama.cpp for GGUF weights when it is installed, else transformers.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from dataclasses import dataclass

from llm_trainer.planning.models import resolve_model

SERVERS = ("auto", "llama.cpp", "transformers")


@dataclass
class ServeOptions:
    model: str
    host: str = "127.0.0.1"
    port: int = 8080
    server: str = "auto"
    alias: str = "smollm2"  # the model name clients send (planner.openai.model)
    context: int = 4096  # llama.cpp context window [tokens]
    threads: int = 0  # 0: the server's default
    adapter: str = ""  # a peft LoRA folder (llm-trainer finetune): llama.cpp applies it, converted to GGUF once

    def validate(self) -> None:
        if self.server not in SERVERS:
            raise ValueError(f"unknown server {self.server!r} ({', '.join(SERVERS)})")
        if not 0 < self.port < 65536:
            raise ValueError(f"port must be within 1..65535, got {self.port}")
        if self.context < 512:
            raise ValueError("context must be at least 512 tokens")


def llama_cpp_available() -> bool:
    return importlib.util.find_spec("llama_cpp") is not None


def server_command(opts: ServeOptions) -> tuple[str, list[str]]:
    """(server name, argv) for the options; ``ValueError`` naming what is missing."""
    opts.validate()
    location = resolve_model(opts.model)
    server = opts.server
    if server == "auto":
        server = "llama.cpp" if location.is_gguf and llama_cpp_available() else "transformers"
    if server == "llama.cpp":
        if not location.is_gguf:
            raise ValueError(
                f"llama.cpp serves GGUF files; {location.path} is a Hugging Face folder (use --server transformers)"
            )
        if not llama_cpp_available():
            raise ValueError(
                "llama-cpp-python is not installed (pip install 'llama-cpp-python[server]'; scripts/setup.sh does)"
            )
        argv = [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(location.path),
            "--model_alias",
            opts.alias,
            "--host",
            opts.host,
            "--port",
            str(opts.port),
            "--n_ctx",
            str(opts.context),
        ]
        if opts.threads:
            argv += ["--n_threads", str(opts.threads), "--n_threads_batch", str(opts.threads)]
        if opts.adapter:
            from llm_trainer.finetune.gguf_adapter import adapter_to_gguf

            argv += ["--lora_path", str(adapter_to_gguf(opts.adapter, location.path))]
        return server, argv
    if opts.adapter:
        raise ValueError(
            "transformers serve does not load LoRA adapters: serve a GGUF with llama.cpp, or plan in process "
            "(planner.backend: transformers, transformers.adapter)"
        )
    exe = shutil.which("transformers", path=os.path.dirname(sys.executable)) or shutil.which("transformers")
    if exe is None or importlib.util.find_spec("fastapi") is None or importlib.util.find_spec("uvicorn") is None:
        raise ValueError("transformers serve needs transformers[serving] (fastapi, uvicorn) installed")
    model = f"{location.directory}:{location.gguf_file}" if location.is_gguf else str(location.directory)
    return server, [exe, "serve", "--host", opts.host, "--port", str(opts.port), model]


def serve(opts: ServeOptions, log=print) -> int:
    """Become the server: this process is replaced by it (``exec``), so signals such as SIGTERM from a
    supervisor reach the server itself and nothing is left running behind."""
    server, argv = server_command(opts)
    log(
        f"serving {opts.model} with {server} at http://{opts.host}:{opts.port}/v1 (model name {opts.alias!r}); "
        f"planner.openai.base_url must point there. Ctrl-C stops."
    )
    sys.stdout.flush()
    sys.stderr.flush()
    env = dict(os.environ)
    env.setdefault("HF_HUB_OFFLINE", "1")
    os.execve(argv[0], argv, env)
    return 0  # pragma: no cover - execve does not return


class ServerProcess:
    """``serve-llm`` as a child process for the length of a ``with`` block (evaluation, benchmarks):
    started, waited for until it answers ``/v1/models``, and stopped (SIGTERM, then SIGKILL) on exit.
    The child also dies with this process (PR_SET_PDEATHSIG), so nothing is left serving."""

    def __init__(self, opts: ServeOptions, log_path: str | os.PathLike, startup_timeout: float = 180.0):
        self.opts = opts
        self.log_path = log_path
        self.startup_timeout = startup_timeout
        self.process = None
        self.base_url = f"http://{opts.host}:{opts.port}/v1"

    def __enter__(self) -> ServerProcess:
        import subprocess
        import time
        import urllib.request

        from llm_trainer.bringup.local import follow_parent

        _, argv = server_command(self.opts)
        env = dict(os.environ)
        env.setdefault("HF_HUB_OFFLINE", "1")
        self._log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            argv, stdout=self._log, stderr=subprocess.STDOUT, env=env, preexec_fn=follow_parent
        )
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self._log.close()
                tail = open(self.log_path, "rb").read()[-1500:].decode(errors="replace")
                raise RuntimeError(f"serve-llm exited with {self.process.returncode} while starting:\n{tail}")
            try:
                with urllib.request.urlopen(self.base_url + "/models", timeout=2) as reply:
                    if reply.status == 200:
                        return self
            except OSError:
                time.sleep(0.5)
        self.__exit__(None, None, None)
        raise RuntimeError(f"serve-llm did not answer at {self.base_url} within {self.startup_timeout:.0f} s")

    def __exit__(self, *exc) -> None:
        import subprocess

        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
