"""The one boundary over litellm: structured calls, retries, re-asks, call logging.

litellm's exceptions are translated here into ProviderError, so nothing above this module
depends on litellm's types, and litellm itself is imported only when a model is called.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import re
import time
from dataclasses import dataclass
from importlib import metadata
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from briefing.errors import ConfigError, ModelOutputError, ProviderError
from briefing.models.calllog import CallRecord, CallRecorder
from briefing.models.ratelimit import RateLimiter, local_limiter
from briefing.models.tokens import count_tokens
from briefing.retry_after import retry_after_seconds
from briefing.schema import Usage

if TYPE_CHECKING:
    from collections.abc import Mapping

    from tenacity import RetryCallState

    from briefing.config import Settings
    from briefing.models.prompts import PromptTemplate

T = TypeVar("T", bound=BaseModel)

#: Entry-point group through which packages add litellm custom providers (see local_model).
PROVIDER_ENTRY_POINTS = "briefing.providers"
#: Context window assumed when neither the settings nor litellm know the model's.
DEFAULT_CONTEXT_TOKENS = 8192
_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL)
_MAX_ERROR_CHARS = 300


@functools.cache
def litellm_module() -> Any:
    """Import litellm once, offline: its bundled cost map instead of a network fetch."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ.setdefault("LITELLM_LOG", "ERROR")
    import litellm

    litellm.suppress_debug_info = True
    litellm.telemetry = False
    return litellm


@functools.cache
def _register_provider(prefix: str) -> None:
    for entry in metadata.entry_points(group=PROVIDER_ENTRY_POINTS):
        if entry.name == prefix:
            entry.load()(litellm_module())
            return


def provider_prefix(model: str) -> str:
    """The part of a litellm model string before the first '/'."""
    return model.split("/", 1)[0] if "/" in model else ""


@dataclass
class Completion(Generic[T]):
    """A validated structured answer and what it cost."""

    value: T
    usage: Usage
    attempts: int
    raw: str


class _InvalidOutput(Exception):
    def __init__(self, reason: str, reask: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.reask = reask


class LLMClient:
    """Calls one configured model with JSON-schema output, retries and a call log."""

    def __init__(
        self,
        settings: Settings,
        call_log: CallRecorder | None = None,
        limiter: RateLimiter | None = None,
    ) -> None:
        if settings.is_extractive:
            raise ConfigError("the extractive engine calls no model; configure a model string")
        self.settings = settings
        self.model = settings.model.strip()
        self.call_log = call_log
        #: Requests and tokens per minute, and Retry-After pauses, shared with whoever
        #: else holds the same limiter (the other jobs of a process, a cluster's workers).
        self.limiter = limiter or local_limiter(settings.rate_limit_rpm, settings.rate_limit_tpm)
        self._semaphore: asyncio.Semaphore | None = None
        self._secret = settings.api_key.get_secret_value() if settings.api_key else None

    @property
    def litellm(self) -> Any:
        """The litellm module, with any plugin provider for this model registered."""
        module = litellm_module()
        _register_provider(provider_prefix(self.model))
        return module

    def check_credentials(self) -> None:
        """Fail fast, before any request, when the provider needs a key that is not set."""
        if self._secret or self.settings.api_base:
            return  # a key was given, or a custom endpoint decides for itself
        try:
            report = self.litellm.validate_environment(model=self.model)
        except Exception:
            return  # litellm cannot tell for this provider; the call will
        missing = report.get("missing_keys") or []
        if missing:
            raise ConfigError(
                f"{self.model} needs {', '.join(missing)} set in the environment (or "
                "BRIEFING_API_KEY for a key, --api-base for an endpoint); no request was sent"
            )

    def context_tokens(self) -> int:
        """The model's input window: the setting, else litellm's model info, else a default."""
        if self.settings.context_tokens:
            return self.settings.context_tokens
        try:
            info = self.litellm.get_model_info(self.model)
        except Exception:
            return DEFAULT_CONTEXT_TOKENS
        return int(info.get("max_input_tokens") or info.get("max_tokens") or DEFAULT_CONTEXT_TOKENS)

    async def structured(
        self,
        prompt: PromptTemplate,
        variables: Mapping[str, Any],
        response_model: type[T],
        *,
        schema: dict[str, Any] | None = None,
    ) -> Completion[T]:
        """Render `prompt`, call the model, and validate its JSON answer as `response_model`.

        `schema` is the JSON schema sent to a provider that enforces one (default the
        prompt's own): the prompt's schema narrowed to this request, e.g. to the claim ids
        it may cite.

        Transport failures are retried with backoff; an answer that does not validate is
        sent back with the validation error up to `settings.reasks` times. Raises
        ProviderError, or ModelOutputError naming the last answer's fault and the calls.
        """
        messages: list[dict[str, str]] = prompt.render(variables)
        usage = Usage()
        attempts = 0
        raw = ""
        call_ids: list[int] = []
        reasks = self.settings.reasks
        for reask in range(reasks + 1):
            raw, finish_reason, call_usage, requests = await self._request(
                prompt, messages, call_ids, schema
            )
            usage += call_usage
            attempts += requests
            try:
                value = _parse(raw, finish_reason, response_model)
            except _InvalidOutput as invalid:
                if reask == reasks:
                    after = (
                        f"after {reasks} re-ask{'s' * (reasks != 1)}"
                        if reasks
                        else "with no re-ask"
                    )
                    calls = f" (calls {', '.join(map(str, call_ids))})" if call_ids else ""
                    raise ModelOutputError(
                        f"{self.model} gave invalid output for {prompt.label} {after}: "
                        f"{invalid.reason}{calls}",
                        attempts=attempts,
                        usage=usage,
                        last_output=raw,
                        reason=invalid.reason,
                        call_ids=list(call_ids),
                    ) from None
                messages = [
                    *messages,
                    {"role": "assistant", "content": raw},
                    {"role": "user", "content": invalid.reask},
                ]
                continue
            return Completion(value=value, usage=usage, attempts=attempts, raw=raw)
        raise AssertionError("unreachable")  # pragma: no cover

    def _parameters(
        self, prompt: PromptTemplate, schema: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        params = dict(prompt.model_parameters)
        litellm = self.litellm
        schema_format = {
            "type": "json_schema",
            "json_schema": {
                "name": prompt.name.replace("-", "_"),
                "schema": schema if schema is not None else prompt.output_schema,
            },
        }
        choice = self.settings.response_format
        if choice == "auto":
            try:
                supports_schema = bool(litellm.supports_response_schema(model=self.model))
            except Exception:
                supports_schema = False
            choice = "json_schema" if supports_schema else "json_object"
        # Providers without JSON-schema support still get JSON mode; the prompt states the
        # shape. An OpenAI-compatible server that enforces schemas (llama.cpp's, vLLM,
        # Ollama) is asked with BRIEFING_RESPONSE_FORMAT=json_schema.
        params["response_format"] = (
            schema_format if choice == "json_schema" else {"type": "json_object"}
        )
        return params

    async def _request(
        self,
        prompt: PromptTemplate,
        messages: list[dict[str, str]],
        call_ids: list[int] | None = None,
        schema: dict[str, Any] | None = None,
    ) -> tuple[str, str | None, Usage, int]:
        from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt

        params = self._parameters(prompt, schema)
        state = {"attempt": 0}

        async def attempt() -> tuple[str, str | None, Usage]:
            state["attempt"] += 1
            return await self._send(prompt, messages, params, state["attempt"], call_ids)

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.settings.max_attempts),
            wait=self._wait,
            retry=retry_if_exception(self._should_retry),
            reraise=True,
        )
        raw: str
        finish: str | None
        usage: Usage
        try:
            raw, finish, usage = await retrying(attempt)
        except ProviderError as exc:
            exc.attempts = state["attempt"]
            raise
        return raw, finish, usage, state["attempt"]

    def _should_retry(self, exc: BaseException) -> bool:
        if not isinstance(exc, ProviderError) or not exc.retryable:
            return False
        retry_after = exc.retry_after
        # A provider that asks for a longer pause than we are willing to wait is not
        # hammered early: give up and say so.
        return retry_after is None or retry_after <= self.settings.retry_max_s

    def _wait(self, state: RetryCallState) -> float:
        from tenacity import wait_random_exponential

        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, ProviderError) and exc.retry_after is not None:
            return exc.retry_after
        backoff = wait_random_exponential(
            multiplier=self.settings.retry_initial_s, max=self.settings.retry_max_s
        )
        return float(backoff(state))

    async def _send(
        self,
        prompt: PromptTemplate,
        messages: list[dict[str, str]],
        params: dict[str, Any],
        attempt: int,
        call_ids: list[int] | None = None,
    ) -> tuple[str, str | None, Usage]:
        litellm = self.litellm
        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(self.settings.max_concurrency)
        content_logged = self.settings.log_call_content
        record = CallRecord(
            prompt=prompt.label,
            prompt_sha256=prompt.sha256,
            model=self.model,
            parameters=_loggable(params),
            attempt=attempt,
            latency_ms=0.0,
            messages=[{"role": m["role"], "content": self._redact(m["content"])} for m in messages]
            if content_logged
            else None,
        )
        error: ProviderError | None
        async with self._semaphore:
            if self.limiter is not None:
                await self.limiter.acquire(self.model, self._request_tokens(messages, params))
            started = time.perf_counter()
            try:
                response = await litellm.acompletion(
                    model=self.model,
                    messages=messages,
                    api_base=self.settings.api_base,
                    api_key=self._secret,
                    timeout=self.settings.timeout_s,
                    # Retries are ours (tenacity, with Retry-After); the SDK's would multiply them.
                    max_retries=0,
                    drop_params=True,
                    **params,
                )
            except Exception as exc:
                error = self._translate(exc)
                record.latency_ms = (time.perf_counter() - started) * 1000
                record.error = f"{error.kind}: {error}"
            else:
                error = None
                record.latency_ms = (time.perf_counter() - started) * 1000
        if error is not None:
            await self._log(record, call_ids)
            if self.limiter is not None and error.retry_after:
                # Every caller of this model waits, not only this request's retry.
                await self.limiter.pause(self.model, error.retry_after)
            raise error
        choice = response.choices[0]
        content = choice.message.content or ""
        finish_reason = choice.finish_reason
        refusal = getattr(choice.message, "refusal", None)
        if refusal and not content.strip():
            # Structured outputs: a refusal comes in its own field, with no content.
            content, finish_reason = str(refusal), "refusal"
        usage_obj = getattr(response, "usage", None)
        input_tokens = int(getattr(usage_obj, "prompt_tokens", 0) or 0)
        output_tokens = int(getattr(usage_obj, "completion_tokens", 0) or 0)
        try:
            cost: float | None = float(litellm.completion_cost(completion_response=response))
        except Exception:
            cost = None  # litellm has no price for this model
        record.input_tokens = input_tokens
        record.output_tokens = output_tokens
        record.cost_usd = cost
        record.finish_reason = finish_reason
        record.cached_tokens = _cached_tokens(usage_obj)
        if content_logged:
            record.response = self._redact(content)
        await self._log(record, call_ids)
        usage = Usage(
            calls=1, input_tokens=input_tokens, output_tokens=output_tokens, cost_usd=cost
        )
        return content, finish_reason, usage

    def _request_tokens(self, messages: list[dict[str, str]], params: dict[str, Any]) -> int:
        """What a request counts against a tokens-per-minute limit: its prompt's tokens
        (counted only when a limit needs them) plus the answer's max_tokens."""
        if self.limiter is None or not self.limiter.counts_tokens:
            return 0
        prompt = sum(count_tokens(m["content"], self.settings.encoding) for m in messages)
        return prompt + int(params.get("max_tokens") or 0)

    async def _log(self, record: CallRecord, call_ids: list[int] | None = None) -> None:
        if self.call_log is not None:
            # A commit to the SQLite log takes milliseconds; on a worker thread it does not
            # hold up the event loop, which meanwhile sends and reads the other requests.
            await asyncio.to_thread(self.call_log.record, record)
        if call_ids is not None and record.id is not None:
            call_ids.append(record.id)

    def _redact(self, text: str) -> str:
        """`text` without the API key or anything shaped like a key or bearer token."""
        if self._secret:
            text = text.replace(self._secret, "***")
        text = re.sub(r"\bsk-[A-Za-z0-9_\-]{8,}", "sk-***", text)
        return re.sub(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]{8,}", r"\1 ***", text)

    def _translate(self, exc: Exception) -> ProviderError:
        """Map a litellm (or provider SDK) exception onto ProviderError."""
        litellm = litellm_module()
        status = getattr(exc, "status_code", None)
        status = status if isinstance(status, int) else None
        kinds: list[tuple[type[BaseException], str, bool]] = [
            (litellm.Timeout, "timeout", True),
            (litellm.RateLimitError, "rate_limit", True),
            (litellm.AuthenticationError, "auth", False),
            (litellm.PermissionDeniedError, "permission", False),
            (litellm.ContextWindowExceededError, "context_window", False),
            (litellm.NotFoundError, "not_found", False),
            (litellm.BadRequestError, "bad_request", False),
            (litellm.APIConnectionError, "connection", True),
        ]
        kind, retryable = "provider", status is not None and status >= 500
        for cls, name, transient in kinds:
            if isinstance(exc, cls):
                kind, retryable = name, transient
                break
        else:
            if status is not None and status >= 500:
                kind = "server"
        detail = self._scrub(str(getattr(exc, "message", None) or exc))
        where = f" at {self.settings.api_base}" if self.settings.api_base else ""
        hint = {
            "auth": " (check the API key: BRIEFING_API_KEY or the provider's own variable)",
            "rate_limit": " (rate limited)",
            "timeout": f" (no answer within {self.settings.timeout_s:g} s)",
        }.get(kind, "")
        return ProviderError(
            f"{self.model}{where}: {kind}{hint}: {detail}",
            kind=kind,
            retryable=retryable,
            attempts=1,
            status_code=status,
            retry_after=_retry_after(exc),
        )

    def _scrub(self, text: str) -> str:
        # "litellm.RateLimitError: RateLimitError: OpenAIException - msg" -> "msg"
        text = re.sub(r"^(?:litellm\.\w+: )?(?:\w+Error: )?(?:\w+Exception - )?", "", text)
        if self._secret:
            text = text.replace(self._secret, "***")
        text = re.sub(r"\bsk-[A-Za-z0-9_\-]{8,}", "sk-***", text)
        text = " ".join(text.split())
        return text[:_MAX_ERROR_CHARS] + ("…" if len(text) > _MAX_ERROR_CHARS else "")


def _cached_tokens(usage: Any) -> int | None:
    """Prompt tokens served from the provider's cache (OpenAI's and Anthropic's fields)."""
    details = getattr(usage, "prompt_tokens_details", None)
    cached = getattr(details, "cached_tokens", None)
    if cached is None:
        cached = getattr(usage, "cache_read_input_tokens", None)
    return int(cached) if isinstance(cached, int | float) else None


def _loggable(params: dict[str, Any]) -> dict[str, Any]:
    # The schema is part of the prompt (and its hash); logging it again per call is noise.
    return {k: ("json_schema" if k == "response_format" else v) for k, v in params.items()}


def _retry_after(exc: Exception) -> float | None:
    headers = getattr(exc, "litellm_response_headers", None)
    if headers is None:
        response = getattr(exc, "response", None)
        headers = getattr(response, "headers", None)
    if not headers:
        return None
    return retry_after_seconds(headers.get("retry-after"))


def _parse(raw: str, finish_reason: str | None, model: type[T]) -> T:
    if finish_reason == "refusal":
        raise _InvalidOutput(
            f"the model refused: {' '.join(raw.split())[:200]}",
            "Please answer the task with a JSON object that matches the schema.",
        )
    if finish_reason == "content_filter":
        raise _InvalidOutput(
            "the provider's content filter stopped the answer (finish_reason=content_filter)",
            "Your answer was stopped by a content filter. Answer again with a JSON object that "
            "matches the schema, quoting only what the task needs.",
        )
    if finish_reason == "length":
        raise _InvalidOutput(
            "output truncated at the max_tokens limit (finish_reason=length)",
            "Your answer was cut off at the output token limit. Answer again with a shorter, "
            "complete JSON object that matches the schema: fewer items, shorter text.",
        )
    text = raw.strip()
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _InvalidOutput(
            f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})",
            f"Your answer was not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}. "
            "Reply again with only a JSON object that matches the schema.",
        ) from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}"
            for err in exc.errors()[:10]
        )
        raise _InvalidOutput(
            f"does not match the schema ({problems})",
            f"Your JSON did not match the required schema: {problems}. "
            "Reply again with only a JSON object that matches the schema.",
        ) from None
