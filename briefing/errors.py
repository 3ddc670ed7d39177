"""The project's exception hierarchy.

Misuse errors (bad input, bad configuration, unknown prompt) are separate from runtime
errors (a provider that fails, a model that will not produce valid output), so callers
can tell "fix your request" from "try again later".
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from briefing.schema import Usage

__all__ = [
    "BriefingError",
    "ConfigError",
    "ConflictError",
    "DeliveryError",
    "FetchError",
    "LLMError",
    "LimitError",
    "ModelOutputError",
    "NotFoundError",
    "PromptError",
    "ProviderError",
    "SourceError",
    "StoreError",
    "UserError",
]


class BriefingError(Exception):
    """Root of every error this package raises on purpose."""


class UserError(BriefingError):
    """The caller asked for something that cannot work as asked; retrying will not help."""


class SourceError(UserError):
    """A source file or text cannot be ingested (missing, binary, empty, undecodable)."""


class PromptError(UserError):
    """A prompt template is missing, malformed, or rendered with the wrong variables."""


class ConfigError(UserError):
    """A setting is invalid or a required component (such as an extra) is not installed."""


class NotFoundError(UserError):
    """A stored resource (source, job) with the given id does not exist."""


class ConflictError(UserError):
    """The request clashes with the stored state (a source in use, a reused idempotency key)."""


class LimitError(UserError):
    """A request exceeds a configured limit; `limit` names the setting, `maximum` its value."""

    def __init__(self, message: str, *, limit: str, maximum: int) -> None:
        super().__init__(message)
        self.limit = limit
        self.maximum = maximum


class StoreError(BriefingError):
    """The database cannot be reached or its schema is not at the version this code needs."""


class FetchError(BriefingError):
    """A URL could not be fetched: refused by policy, unreachable, too slow, too large, or
    answered with an error status.

    `url` is the URL with any credentials removed (it is safe to show); `kind` says which of
    the failures it was ("url", "refused", "redirects", "timeout", "too_large", "status",
    "connect", "network", "skipped"); `status_code` is the HTTP status when there was one.
    """

    def __init__(
        self, message: str, *, url: str, kind: str, status_code: int | None = None
    ) -> None:
        super().__init__(message)
        self.url = url
        self.kind = kind
        self.status_code = status_code


class DeliveryError(BriefingError):
    """A finished briefing could not be delivered (a webhook, an output folder).

    `target` names where it was going (a URL without its query string, or a path), never a
    secret; `status_code` is the receiver's last HTTP status, if any; `attempts` how many
    tries were made; `retryable` whether trying again later may help.
    """

    def __init__(
        self,
        message: str,
        *,
        target: str,
        retryable: bool,
        attempts: int = 1,
        status_code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.target = target
        self.retryable = retryable
        self.attempts = attempts
        self.status_code = status_code


class LLMError(BriefingError):
    """A language-model call failed at run time."""


class ProviderError(LLMError):
    """The provider failed (transport, rate limit, server error, auth) after any retries.

    `retryable` says whether the failure was of a transient kind; `attempts` how many
    requests were made before giving up; `retry_after` the pause the provider asked for.
    """

    def __init__(
        self,
        message: str,
        *,
        kind: str,
        retryable: bool,
        attempts: int,
        status_code: int | None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.retryable = retryable
        self.attempts = attempts
        self.status_code = status_code
        self.retry_after = retry_after


class ModelOutputError(LLMError):
    """The model answered, but not with output that fits the required schema, even after
    its re-asks. `reason` says what was wrong with the last answer (invalid JSON, not the
    schema, truncated at max_tokens, a refusal); `call_ids` are the call log's rows."""

    def __init__(
        self,
        message: str,
        *,
        attempts: int,
        usage: Usage,
        last_output: str,
        reason: str = "",
        call_ids: list[int] | None = None,
    ) -> None:
        super().__init__(message)
        self.attempts = attempts
        self.usage = usage
        self.last_output = last_output
        self.reason = reason
        self.call_ids = call_ids or []
