"""URLs as keys and as text that is safe to show: one place for both, used by every layer."""

from __future__ import annotations

import re
from urllib.parse import unquote_plus, urlsplit, urlunsplit

__all__ = ["canonical_url", "redact_url"]

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
    query = "&".join(
        f"{piece.split('=', 1)[0]}=***"
        if _SECRET_PARAM.search(unquote_plus(piece.split("=", 1)[0]))
        else piece
        for piece in parts.query.split("&")
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


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
