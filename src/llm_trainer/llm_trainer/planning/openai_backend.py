"""Any OpenAI-compatible chat server: a 70B model behind the lab's vLLM, llama.cpp's server, Ollama,
``transformers serve``, or ``llm-trainer serve-llm``.

Timeouts and retries come from the config (the ``openai`` client retries connection errors, 408,
409, 429 and 5xx with exponential back-off). Structured output, where the server supports it:

* ``grammar`` + ``grammar_field: grammar``: llama.cpp (and llama-cpp-python's server) take a GBNF
  grammar in the request body;
* ``grammar`` + ``grammar_field: guided_grammar``: vLLM's guided decoding field;
* ``json_schema`` + ``schema_style: openai``: ``response_format: {type: json_schema, ...}`` (OpenAI,
  vLLM, recent llama.cpp); ``schema_style: llama_cpp``: ``{type: json_object, schema: ...}``
  (llama-cpp-python's server rejects the OpenAI form).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from llm_trainer.planning.llm import Generation, GenerationError, GenerationRequest, TextGenerator


@dataclass
class OpenAIConfig:
    base_url: str = "http://127.0.0.1:8080/v1"
    model: str = "smollm2"  # the model name the server expects (llama.cpp accepts any; vLLM: the served name)
    api_key_env: str = "OPENAI_API_KEY"  # environment variable with the key; local servers need none
    timeout: float = 120.0  # [s] per request
    max_retries: int = 2
    grammar_field: str = "grammar"  # grammar | guided_grammar
    schema_style: str = "openai"  # openai | llama_cpp

    def validate(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"openai.base_url must be an http(s) URL, got {self.base_url!r}")
        if self.timeout <= 0:
            raise ValueError("openai.timeout must be positive")
        if not 0 <= self.max_retries <= 10:
            raise ValueError("openai.max_retries must be within [0, 10]")
        if self.grammar_field not in ("grammar", "guided_grammar"):
            raise ValueError("openai.grammar_field must be grammar (llama.cpp) or guided_grammar (vLLM)")
        if self.schema_style not in ("openai", "llama_cpp"):
            raise ValueError("openai.schema_style must be openai or llama_cpp")


class OpenAIGenerator(TextGenerator):
    name = "openai"
    supports = ("none", "grammar", "json_schema")

    def __init__(self, config: OpenAIConfig | None = None):
        self.config = config or OpenAIConfig()
        self._client = None

    def client(self):
        if self._client is None:
            try:
                import openai
            except ImportError:
                raise GenerationError("the openai backend needs the openai package (pip install openai)") from None
            cfg = self.config
            key = os.environ.get(cfg.api_key_env, "") or "not-needed"  # local servers accept any key
            self._client = openai.OpenAI(
                base_url=cfg.base_url, api_key=key, timeout=cfg.timeout, max_retries=cfg.max_retries
            )
        return self._client

    def request_arguments(self, request: GenerationRequest) -> dict:
        """The keyword arguments of ``chat.completions.create`` for a request (also used by tests)."""
        cfg = self.config
        kwargs: dict = {
            "model": cfg.model,
            "messages": request.prompt.messages,
            "max_tokens": request.max_new_tokens,
            "temperature": request.temperature,
            "seed": request.seed,
        }
        extra: dict = {}
        if request.grammar is not None:
            extra[cfg.grammar_field] = request.grammar
        if request.json_schema is not None:
            if cfg.schema_style == "llama_cpp":
                kwargs["response_format"] = {"type": "json_object", "schema": request.json_schema}
            else:
                kwargs["response_format"] = {
                    "type": "json_schema",
                    "json_schema": {"name": "plan", "schema": request.json_schema, "strict": True},
                }
        if extra:
            kwargs["extra_body"] = extra
        return kwargs

    def generate(self, request: GenerationRequest) -> Generation:
        import openai

        t0 = time.perf_counter()
        try:
            response = self.client().chat.completions.create(**self.request_arguments(request))
        except openai.APITimeoutError:
            raise GenerationError(f"{self.config.base_url}: no answer within {self.config.timeout} s") from None
        except openai.APIConnectionError as exc:
            raise GenerationError(f"cannot reach {self.config.base_url}: {exc}") from None
        except openai.APIStatusError as exc:
            raise GenerationError(f"{self.config.base_url} answered HTTP {exc.status_code}: {str(exc)[:300]}") from None
        seconds = time.perf_counter() - t0
        if not response.choices:
            raise GenerationError(f"{self.config.base_url} returned no choices")
        text = response.choices[0].message.content or ""
        tokens = response.usage.completion_tokens if response.usage else 0
        constraint = "grammar" if request.grammar else "json_schema" if request.json_schema else "none"
        return Generation(text, tokens, seconds, constraint)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
