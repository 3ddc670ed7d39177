"""Delivery of a finished daily briefing: where it goes (store, folder, webhook) and how.

Webhook signatures. When a webhook's `secret_env` names an environment variable, every
request carries

    X-Briefing-Timestamp: <unix time in whole seconds, when this attempt was sent>
    X-Briefing-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>

where the secret is the variable's value as UTF-8 and body the exact bytes of the request
body. A receiver recomputes the HMAC over the bytes it received, compares it in constant
time, and rejects timestamps too far from its clock (a few minutes) so a captured request
cannot be replayed later. Each attempt is signed afresh; `Idempotency-Key` (equal to
`X-Briefing-Delivery`) stays the same across the retries of one delivery, so a receiver can
drop a repeat it has already handled.

Webhook receivers. A receiver whose host resolves to a private, loopback, link-local or
otherwise non-public address is refused, under the collectors' policy (`AddressPolicy`:
BRIEFING_FETCH_ALLOW_PRIVATE, BRIEFING_FETCH_ALLOWED_NETWORKS). The check runs before each
attempt; the connection itself is not yet pinned to the checked address as the fetcher's
is. Proxies from the environment are not used, and redirects are not followed.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import os
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, HttpUrl, field_validator

from briefing import __version__
from briefing.config import Settings
from briefing.daily.fetch import AddressPolicy, Resolver, timed_resolver
from briefing.errors import DeliveryError
from briefing.pipeline.render import changes_json, changes_markdown, to_json, to_markdown
from briefing.retry_after import retry_after_seconds
from briefing.schema import Briefing
from briefing.urls import redact_headers, redact_url

if TYPE_CHECKING:
    from tenacity import RetryCallState

__all__ = [
    "DeliverySpec",
    "DirDelivery",
    "StoreDelivery",
    "WebhookDelivery",
    "WebhookReceipt",
    "deliver_dir",
    "deliver_webhook",
    "delivery_id",
    "spec_fingerprint",
    "stored_spec",
]

log = logging.getLogger("briefing.delivery")

#: Headers the webhook sets itself; a schedule's `headers` may not replace them.
_RESERVED_HEADERS = frozenset(
    {"content-type", "content-length", "host", "idempotency-key", "transfer-encoding"}
)
_TOKEN_CHARS = frozenset(
    "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)
_ENV_NAME_CHARS = frozenset("_0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
#: Keys the fingerprints of delivery specs (a fixed key: it makes them specific to this use,
#: not secret; a webhook token has too much entropy to be guessed from its digest).
_FINGERPRINT_KEY = b"briefing delivery spec v1"
_UUID_NAMESPACE = uuid.UUID("5b0b0b8e-6a7d-4d4e-9a55-0c6f1d3e2a10")


Format = Literal["md", "json"]
_DEFAULT_FORMATS: tuple[Format, ...] = ("md",)
#: What a delivery carries: the whole briefing (with its "What changed" section when the
#: run has one), or only what changed since the previous run.
Content = Literal["full", "changes"]
_CONTENT_HELP = (
    "'full': the whole briefing, what changed since the previous run first; 'changes': "
    "only what changed (the whole briefing on a schedule's first run)."
)


class _Spec(BaseModel):
    # A typo in a schedule file must be an error, not a silently ignored key.
    model_config = ConfigDict(extra="forbid", frozen=True)


class StoreDelivery(_Spec):
    """Keep the briefing in the store (visible through the API)."""

    kind: Literal["store"] = "store"


class DirDelivery(_Spec):
    """Write `<path>/<schedule>-<YYYY-MM-DD>.<format>`; a relative path is relative to the
    schedule file's folder."""

    kind: Literal["dir"] = "dir"
    path: str = Field(min_length=1)
    formats: list[Format] = Field(default_factory=lambda: list(_DEFAULT_FORMATS), min_length=1)
    content: Content = Field(default="full", description=_CONTENT_HELP)

    @field_validator("formats")
    @classmethod
    def _unique(cls, formats: list[Format]) -> list[Format]:
        if len(set(formats)) != len(formats):
            raise ValueError(f"formats must not repeat: {formats}")
        return formats


class WebhookDelivery(_Spec):
    """POST the Briefing JSON to a URL, signed when `secret_env` names a set variable."""

    kind: Literal["webhook"] = "webhook"
    url: HttpUrl
    secret_env: str | None = Field(
        default=None,
        description="Name of the environment variable holding the HMAC secret; the secret "
        "itself never goes in a schedule.",
    )
    headers: dict[str, str] = Field(default_factory=dict)
    timeout_s: float = Field(default=10.0, gt=0, le=300)
    content: Content = Field(default="full", description=_CONTENT_HELP)

    @field_validator("secret_env")
    @classmethod
    def _env_name(cls, name: str | None) -> str | None:
        if name is not None and (not name or name[0].isdigit() or not set(name) <= _ENV_NAME_CHARS):
            raise ValueError(
                # The value is not echoed: it may be the secret itself, put in by mistake.
                "secret_env must be the name of an environment variable (letters, digits, "
                "'_') that holds the secret, not the secret"
            )
        return name

    @field_validator("headers")
    @classmethod
    def _headers(cls, headers: dict[str, str]) -> dict[str, str]:
        for name, value in headers.items():
            if not name or not set(name) <= _TOKEN_CHARS:
                raise ValueError(f"{name!r} is not a valid header name")
            lowered = name.lower()
            if lowered in _RESERVED_HEADERS or lowered.startswith("x-briefing-"):
                raise ValueError(f"header {name!r} is set by the delivery itself")
            if any(c in value for c in "\r\n\x00"):
                # Header values are not echoed: they may hold a token.
                raise ValueError(f"the value of header {name!r} contains a line break or NUL")
        return headers


DeliverySpec = Annotated[StoreDelivery | DirDelivery | WebhookDelivery, Field(discriminator="kind")]


# --- dir ------------------------------------------------------------------------------------


def deliver_dir(
    briefing: Briefing,
    spec: DirDelivery,
    *,
    schedule_name: str,
    run_date: date,
    base_dir: Path | None,
) -> list[Path]:
    """Write the briefing's files atomically; a second delivery of a date replaces them."""
    if not schedule_name or Path(schedule_name).name != schedule_name or schedule_name[0] == ".":
        raise ValueError(f"schedule name {schedule_name!r} cannot name a file")
    folder = Path(spec.path).expanduser()
    if base_dir is not None and not folder.is_absolute():
        folder = base_dir / folder
    stem = f"{schedule_name}-{run_date.isoformat()}"
    # Everything is serialised before a file is touched, so a briefing that cannot be
    # written leaves the previous delivery of that date whole.
    contents: list[tuple[Path, bytes]] = []
    try:
        for fmt in spec.formats:
            text = _rendered(briefing, spec.content, fmt)
            contents.append((folder / f"{stem}.{fmt}", text.encode("utf-8")))
    except ValueError as exc:  # UnicodeEncodeError and pydantic's serialisation errors
        raise DeliveryError(
            f"briefing {briefing.id} cannot be written to {folder}: {exc}",
            target=str(folder),
            retryable=False,
        ) from None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _write_all(contents)
    except OSError as exc:
        where = exc.filename or folder
        raise DeliveryError(
            f"cannot write to {where}: {exc.strerror or exc}", target=str(folder), retryable=True
        ) from None
    log.info("delivered briefing %s to %s", briefing.id, ", ".join(str(p) for p, _ in contents))
    return [path for path, _ in contents]


def _rendered(briefing: Briefing, content: Content, fmt: Format) -> str:
    changes = briefing.changes
    if content == "full" or changes is None:
        return to_markdown(briefing) if fmt == "md" else to_json(briefing)
    if fmt == "md":
        return changes_markdown(changes, briefing)
    return changes_json(changes, briefing)


def _write_all(contents: list[tuple[Path, bytes]]) -> None:
    """Write every file to a temporary sibling first, then move them all into place."""
    staged: list[tuple[str, Path]] = []
    try:
        for path, data in contents:
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            staged.append((tmp, path))
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            # mkstemp makes owner-only files; a briefing is no more private than its folder.
            mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
            os.chmod(tmp, mode)
        while staged:
            tmp, path = staged[0]
            os.replace(tmp, path)
            del staged[0]
        _fsync_dir(contents[0][0].parent)
    finally:
        for tmp, _ in staged:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def _fsync_dir(folder: Path) -> None:
    # The renames are durable only once the folder itself is synced; not every platform
    # can open a folder, and there the rename is as durable as it gets.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


# --- webhook --------------------------------------------------------------------------------


@dataclass(frozen=True)
class WebhookReceipt:
    """A webhook delivery the receiver accepted."""

    url: str
    status_code: int
    attempts: int
    delivery_id: str


class _AttemptFailed(Exception):
    """One webhook request failed; tenacity decides whether another follows."""

    def __init__(
        self,
        reason: str,
        *,
        retryable: bool,
        status_code: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.status_code = status_code
        self.retry_after = retry_after


def stored_spec(spec: DeliverySpec) -> dict[str, Any]:
    """The spec as the store keeps it: a webhook's URL redacted and its header values
    hidden, with the fingerprint of the whole spec that finds it again in the schedule."""
    data = spec.model_dump(mode="json")
    if isinstance(spec, WebhookDelivery):
        data["url"] = redact_url(str(spec.url))
        data["headers"] = redact_headers(spec.headers)
    return {**data, "fingerprint": spec_fingerprint(spec)}


def spec_fingerprint(spec: DeliverySpec) -> str:
    """A digest of the whole spec, secrets included, that does not reveal them."""
    encoded = json.dumps(spec.model_dump(mode="json"), sort_keys=True).encode("utf-8")
    return hmac.new(_FINGERPRINT_KEY, encoded, hashlib.sha256).hexdigest()


def delivery_id(schedule_name: str, run_date: date, briefing_id: str) -> str:
    """The id of one briefing's delivery: the same for every retry, later ones included."""
    return str(uuid.uuid5(_UUID_NAMESPACE, f"{schedule_name}/{run_date.isoformat()}/{briefing_id}"))


def _sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """The X-Briefing-Signature value of a request (see the module docstring)."""
    digest = hmac.new(secret, timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return f"sha256={digest.hexdigest()}"


def deliver_webhook(
    briefing: Briefing,
    spec: WebhookDelivery,
    *,
    schedule_name: str,
    run_date: date,
    settings: Settings,
) -> WebhookReceipt:
    """POST the Briefing JSON, retrying transient failures; raise DeliveryError at the end."""
    from tenacity import Retrying, retry_if_exception, stop_after_attempt

    url = str(spec.url)
    shown = redact_url(url)
    secret = _secret(spec, shown)
    body = _rendered(briefing, spec.content, "json").encode("utf-8")
    the_id = delivery_id(schedule_name, run_date, briefing.id)
    base_headers = {
        **spec.headers,
        "Content-Type": "application/json",
        "Idempotency-Key": the_id,
        "X-Briefing-Delivery": the_id,
        "X-Briefing-Schedule": schedule_name,
        "X-Briefing-Date": run_date.isoformat(),
        "User-Agent": f"briefing/{__version__} (daily briefings delivery)",
    }
    timeout = httpx.Timeout(spec.timeout_s).as_dict()
    policy = AddressPolicy.from_settings(settings)
    resolver = timed_resolver(settings.fetch_dns_timeout_s)
    attempts = 0

    def attempt(transport: httpx.BaseTransport) -> int:
        nonlocal attempts
        attempts += 1
        _check_address(url, policy, resolver)
        headers = dict(base_headers)
        if secret is not None:
            timestamp = str(int(time.time()))
            headers["X-Briefing-Timestamp"] = timestamp
            headers["X-Briefing-Signature"] = _sign(secret, timestamp, body)
        request = httpx.Request(
            "POST", url, content=body, headers=headers, extensions={"timeout": timeout}
        )
        try:
            response = transport.handle_request(request)
            try:
                response.read()
            finally:
                response.close()
        except httpx.TimeoutException:
            raise _AttemptFailed(f"no answer within {spec.timeout_s:g} s", retryable=True) from None
        except httpx.TransportError as exc:
            # httpx's messages can quote the URL; only the exception's kind is shown.
            raise _AttemptFailed(
                f"connection failed ({type(exc).__name__})", retryable=True
            ) from None
        status = response.status_code
        if 200 <= status < 300:
            return status
        reason = f"HTTP {status} {response.reason_phrase}".rstrip()
        if 300 <= status < 400:
            reason += " (webhooks do not follow redirects)"
        transient = status == 429 or status >= 500
        raise _AttemptFailed(
            reason,
            retryable=transient,
            status_code=status,
            retry_after=_retry_after(response) if transient else None,
        )

    def should_retry(exc: BaseException) -> bool:
        if not isinstance(exc, _AttemptFailed) or not exc.retryable:
            return False
        # A receiver asking for a longer pause than we wait is left alone; the run's
        # recorded failure lets a later delivery attempt try again.
        return exc.retry_after is None or exc.retry_after <= settings.delivery_backoff_max_s

    def wait(state: RetryCallState) -> float:
        from tenacity import wait_random_exponential

        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _AttemptFailed) and exc.retry_after is not None:
            return exc.retry_after
        backoff = wait_random_exponential(
            multiplier=settings.delivery_backoff_s, max=settings.delivery_backoff_max_s
        )
        return float(backoff(state))

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        reason = exc.reason if isinstance(exc, _AttemptFailed) else repr(exc)
        pause = state.next_action.sleep if state.next_action else 0.0
        log.warning(
            "webhook %s: %s; retrying in %.2f s (attempt %d of %d)",
            shown,
            reason,
            pause,
            state.attempt_number + 1,
            settings.delivery_max_attempts,
        )

    retrying = Retrying(
        stop=stop_after_attempt(settings.delivery_max_attempts),
        wait=wait,
        retry=retry_if_exception(should_retry),
        before_sleep=before_sleep,
        reraise=True,
    )
    try:
        # A bare transport, not a Client: a Client logs each request's full URL (query
        # string and any token in it included) at INFO, and would use proxies from the
        # environment, which make the address check moot. Redirects are not followed.
        with httpx.HTTPTransport(retries=0) as transport:
            status = retrying(attempt, transport)
    except _AttemptFailed as exc:
        hint = ""
        if exc.retryable and exc.retry_after is not None and not should_retry(exc):
            hint = f" (asked to retry after {exc.retry_after:g} s)"
        raise DeliveryError(
            f"webhook {shown}: {exc.reason}{hint}, after {attempts} attempt(s)",
            target=shown,
            retryable=exc.retryable,
            attempts=attempts,
            status_code=exc.status_code,
        ) from None
    log.info("webhook %s accepted briefing %s (HTTP %d)", shown, briefing.id, status)
    return WebhookReceipt(url=shown, status_code=status, attempts=attempts, delivery_id=the_id)


def _secret(spec: WebhookDelivery, shown: str) -> bytes | None:
    if spec.secret_env is None:
        return None
    value = os.environ.get(spec.secret_env, "")
    if not value:
        # Sending unsigned would let the receiver accept (or drop) a request it cannot trust.
        raise DeliveryError(
            f"webhook {shown}: environment variable {spec.secret_env} (secret_env) is not set",
            target=shown,
            retryable=False,
            attempts=0,
        )
    return value.encode("utf-8")


def _check_address(url: str, policy: AddressPolicy, resolver: Resolver) -> None:
    """Refuse a receiver on a non-public address unless the settings allow it."""
    if policy.allow_private:
        return
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        addresses = resolver(host, port)
    except (OSError, UnicodeError) as exc:
        raise _AttemptFailed(
            f"cannot resolve {host} ({type(exc).__name__})", retryable=True
        ) from None
    # Every address, as the fetcher does: the one the connection ends up using must be allowed.
    for address in addresses:
        reason = policy.refusal(address)
        if reason is not None:
            raise _AttemptFailed(
                f"{host} resolves to {address}, {reason}; BRIEFING_FETCH_ALLOW_PRIVATE or "
                "BRIEFING_FETCH_ALLOWED_NETWORKS can allow it",
                retryable=False,
            )


def _retry_after(response: httpx.Response) -> float | None:
    return retry_after_seconds(response.headers.get("retry-after"))
