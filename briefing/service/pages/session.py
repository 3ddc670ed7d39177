"""The web pages' session cookie and CSRF tokens.

With API keys configured, a reader gives a key once on the login page and gets a session
cookie: the expiry and a fingerprint of the key, signed with HMAC-SHA256 under
`session_secret`. The key itself is never stored in the cookie or shown in a page, and a
session ends when its key is no longer configured. Forms carry a CSRF token that must match
the token cookie (double submit); both cookies are HttpOnly and SameSite=Strict.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Sequence

__all__ = [
    "CSRF_COOKIE",
    "CSRF_FIELD",
    "SESSION_COOKIE",
    "csrf_matches",
    "key_fingerprint",
    "new_csrf_token",
    "new_session",
    "session_valid",
]

SESSION_COOKIE = "briefing_session"
CSRF_COOKIE = "briefing_csrf"
CSRF_FIELD = "csrf_token"
_VERSION = "v1"


def key_fingerprint(key: bytes) -> str:
    """A short, one-way name of an API key: which key a session came from, not the key."""
    return hashlib.sha256(b"briefing-session-key:" + key).hexdigest()[:32]


def _mac(secret: bytes, payload: str) -> str:
    digest = hmac.new(secret, payload.encode("ascii"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def new_session(secret: bytes, key: bytes, *, hours: float, now: float | None = None) -> str:
    """The cookie value of a session opened with `key`, valid for `hours`."""
    expires = int((time.time() if now is None else now) + hours * 3600)
    payload = f"{_VERSION}.{expires}.{key_fingerprint(key)}"
    return f"{payload}.{_mac(secret, payload)}"


def session_valid(
    secret: bytes, value: str | None, keys: Sequence[bytes], *, now: float | None = None
) -> bool:
    """Whether `value` is an unexpired session signed with `secret`, from a key in `keys`."""
    if not value or len(value) > 256:
        return False
    payload, _, mac = value.rpartition(".")
    if not hmac.compare_digest(mac.encode("ascii", "replace"), _mac(secret, payload).encode()):
        return False
    version, _, rest = payload.partition(".")
    expires, _, fingerprint = rest.partition(".")
    if version != _VERSION or not expires.isdigit():
        return False
    if int(expires) < (time.time() if now is None else now):
        return False
    return any(hmac.compare_digest(fingerprint, key_fingerprint(key)) for key in keys)


def new_csrf_token() -> str:
    """A fresh random token for the CSRF cookie and the forms."""
    return secrets.token_urlsafe(32)


def csrf_matches(cookie: str | None, field: str | None) -> bool:
    """Whether a form's token is the one its browser holds in the CSRF cookie."""
    if not cookie or not field:
        return False
    return hmac.compare_digest(cookie.encode("utf-8"), field.encode("utf-8"))
