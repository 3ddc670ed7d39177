"""URLs and headers as keys and as text that is safe to show: one place for both, used by
every layer (logs, errors, the store and the API).

What is hidden: a URL's user name and password; the values of query parameters whose
names look like credentials (token, key, secret, sig, auth, ...); the path after the
segment that starts a webhook's secret in the common forms (Slack's `/services/…`,
Discord's and others' `/api/webhooks/…`, `/hooks/…`, `/webhook/…`, Teams' `/webhookb2/…`);
and the value of every header but a few that never carry credentials.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from urllib.parse import unquote_plus, urlsplit, urlunsplit

__all__ = ["HIDDEN", "canonical_url", "redact_headers", "redact_url", "storage_key"]

#: What stands in for a hidden value.
HIDDEN = "***"
#: Path segments after which a webhook URL's path is its secret (lower-cased).
_WEBHOOK_SEGMENTS = frozenset({"services", "webhooks", "webhook", "webhookb2", "hooks", "hook"})
#: Header values shown as they are; every other header's value is hidden.
_PLAIN_HEADERS = frozenset(
    {"accept", "accept-language", "content-type", "user-agent", "x-request-id"}
)

_DEFAULT_PORTS = {"http": 80, "https": 443}
# Query parameters whose values are credentials often enough to be hidden in messages.
_SECRET_PARAM = re.compile(
    r"token|key|secret|pass|pwd|sig|auth|credential|session|code", re.IGNORECASE
)


def redact_url(url: str) -> str:
    """The URL safe to show: no user name or password, credential-like query values hidden."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<invalid URL>"
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{port}" if port is not None else host
    query = _query(parts.query, lambda value: HIDDEN)
    return urlunsplit((parts.scheme, netloc, _path(parts.path), query, ""))


def _query(query: str, hide: Callable[[str], str]) -> str:
    pieces = []
    for piece in query.split("&"):
        name, eq, value = piece.partition("=")
        if eq and _SECRET_PARAM.search(unquote_plus(name)):
            pieces.append(f"{name}={hide(value)}")
        else:
            pieces.append(piece)
    return "&".join(pieces)


def _path(path: str) -> str:
    """The path with what follows a webhook's secret-starting segment hidden."""
    segments = path.split("/")
    for n, segment in enumerate(segments[:-1]):
        if segment.lower() in _WEBHOOK_SEGMENTS and any(segments[n + 1 :]):
            return "/".join([*segments[: n + 1], HIDDEN])
    return path


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The headers safe to show: every value hidden but those of a few plain headers."""
    return {
        name: value if name.lower() in _PLAIN_HEADERS else HIDDEN for name, value in headers.items()
    }


def storage_key(url: str) -> str:
    """`canonical_url` with each credential-like query value replaced by a digest of it:
    a key that tells two secrets apart without holding either."""
    key = canonical_url(url)
    try:
        parts = urlsplit(key)
    except ValueError:
        return key
    query = _query(
        parts.query,
        lambda value: "sha256-" + hashlib.sha256(value.encode("utf-8")).hexdigest()[:24],
    )
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


def canonical_url(url: str) -> str:
    """The URL as a stable key: lower-case scheme and host, no default port, no credentials,
    no fragment, and "/" for an empty path."""
    try:
        parts = urlsplit(url.strip())
        host = (parts.hostname or "").lower()
        port = parts.port
    except ValueError:
        return url.strip()
    scheme = parts.scheme.lower()
    if ":" in host:
        host = f"[{host}]"
    if port is not None and port != _DEFAULT_PORTS.get(scheme):
        host = f"{host}:{port}"
    return urlunsplit((scheme, host, parts.path or "/", parts.query, ""))
