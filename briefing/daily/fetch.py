"""Fetching URLs for the collectors, safely: bounded in time and size, public addresses only.

Every connection goes through one guard: the host is resolved here, *every* address it
resolves to must be public (unless the settings allow more), and the socket is then opened
to one of those checked addresses, never to a name resolved again later. That pins the
address that was checked, so DNS rebinding (a name that answers a public address to the
check and a private one to the connect) cannot slip past. The guard sits in the network
layer, so redirects, which are followed here one hop at a time, are checked the same way.
Proxies from the environment are not used: through a proxy the guard would check the
proxy's address, not the target's.

Limits: the whole fetch (connecting, redirects, reading) has one deadline; a read that is
already waiting when it passes can overrun it by at most that read's timeout. Name
resolution uses the system resolver, which has no timeout of its own: a lookup runs on a
small pool of threads and is given up after BRIEFING_FETCH_DNS_TIMEOUT_S (its thread ends
when the system's own lookup does).
"""

from __future__ import annotations

import codecs
import logging
import socket
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address
from types import TracebackType
from typing import Any

import httpcore
import httpx

from briefing import __version__
from briefing.config import Settings
from briefing.errors import FetchError
from briefing.urls import redact_url

__all__ = [
    "USER_AGENT",
    "AddressPolicy",
    "Fetched",
    "Fetcher",
    "Resolver",
    "system_resolver",
    "timed_resolver",
]

USER_AGENT = f"briefing/{__version__} (daily briefings collector)"

#: A resolver: (host, port) -> the IP addresses to connect to, as strings.
Resolver = Callable[[str, int], Sequence[str]]

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_SCHEMES = ("http", "https")
# The well-known NAT64 prefix: its addresses reach the IPv4 address in their last 32 bits.
_NAT64 = IPv6Network("64:ff9b::/96")

Address = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network


# ---------------------------------------------------------------- addresses


class _RedactedUrls(logging.Filter):
    """httpx logs each request's URL whole ("HTTP Request: GET <url> ..."): its URL
    arguments are redacted before any handler sees them."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                redact_url(str(arg)) if isinstance(arg, httpx.URL) else arg for arg in record.args
            )
        return True


logging.getLogger("httpx").addFilter(_RedactedUrls())


def system_resolver(host: str, port: int) -> list[str]:
    """The addresses the operating system resolves `host` to, in its order."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


#: Lookups that may hang at once; a lookup past its timeout still holds its thread.
_LOOKUPS = ThreadPoolExecutor(max_workers=8, thread_name_prefix="dns")


def timed_resolver(timeout_s: float, resolver: Resolver = system_resolver) -> Resolver:
    """`resolver` bounded in time: a lookup that takes longer than `timeout_s` raises
    TimeoutError (an OSError, so callers treat it as a failed connection)."""

    def resolve(host: str, port: int) -> Sequence[str]:
        future = _LOOKUPS.submit(resolver, host, port)
        try:
            return future.result(timeout=timeout_s)
        except FutureTimeout:
            future.cancel()
            raise TimeoutError(f"looking up {host} took longer than {timeout_s:g} s") from None

    return resolve


def _embedded_ipv4(address: IPv6Address) -> IPv4Address | None:
    # Addresses that carry an IPv4 address reach it: judge them by that address.
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64:
        return IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _non_public(address: Address) -> str | None:
    """What kind of non-public address this is, or None for a public one."""
    if isinstance(address, IPv6Address) and (inner := _embedded_ipv4(address)) is not None:
        return _non_public(inner)
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if address.is_private:
        return "private"
    if address.is_reserved:
        return "reserved"
    if not address.is_global:
        return "non-public"
    return None


@dataclass(frozen=True)
class AddressPolicy:
    """Which addresses fetches may connect to: public ones, plus what the settings allow."""

    allow_private: bool = False
    allowed_networks: tuple[Network, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings) -> AddressPolicy:
        """The policy of `fetch_allow_private` and `fetch_allowed_networks`."""
        return cls(settings.fetch_allow_private, tuple(settings.fetch_network_list))

    def refusal(self, address: str) -> str | None:
        """Why `address` may not be reached (e.g. "a loopback address"), or None if it may."""
        try:
            parsed = ip_address(address.split("%", 1)[0])  # an IPv6 zone is no part of it
        except ValueError:
            return "not an IP address"
        kind = _non_public(parsed)
        if kind is None or self.allow_private:
            return None
        if any(parsed.version == net.version and parsed in net for net in self.allowed_networks):
            return None
        return f"{'an' if kind[0] in 'aeiou' else 'a'} {kind} address"


class _RefusedAddress(Exception):
    """Raised inside the network layer; Fetcher turns it into a FetchError."""

    def __init__(self, host: str, address: str, reason: str) -> None:
        super().__init__(f"{host} resolves to {address}, {reason}")
        self.host = host
        self.address = address
        self.reason = reason


class _GuardedBackend(httpcore.SyncBackend):
    """Resolves, checks every address, and connects to a checked one (the pin)."""

    def __init__(self, policy: AddressPolicy, resolver: Resolver) -> None:
        self._policy = policy
        self._resolver = resolver

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        """Open a TCP connection to a checked address of `host`."""
        try:
            addresses = list(self._resolver(host, port))
        except (OSError, UnicodeError) as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        if not addresses:
            raise httpcore.ConnectError(f"cannot resolve {host}: no addresses")
        # Every address, not just the first: the one the connect ends up using must be safe.
        for address in addresses:
            if (reason := self._policy.refusal(address)) is not None:
                raise _RefusedAddress(host, address, reason)
        deadline = None if timeout is None else time.monotonic() + timeout
        failure: httpcore.ConnectError | None = None
        for address in addresses:
            left = None if deadline is None else max(0.001, deadline - time.monotonic())
            try:
                return super().connect_tcp(address, port, left, local_address, socket_options)
            except httpcore.ConnectError as exc:
                failure = exc
            if deadline is not None and time.monotonic() >= deadline:
                raise httpcore.ConnectTimeout(f"connecting to {host} timed out")
        assert failure is not None
        raise failure


# httpcore's errors as httpx's, most specific first (the transport contract of httpx).
_MAPPED_ERRORS: tuple[tuple[type[Exception], type[httpx.TransportError]], ...] = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.ProtocolError, httpx.ProtocolError),
)


@contextmanager
def _httpx_errors(request: httpx.Request) -> Iterator[None]:
    try:
        yield
    except httpcore.ProxyError as exc:  # no proxies are configured; kept for completeness
        raise httpx.ProxyError(str(exc), request=request) from exc
    except Exception as exc:
        for source, target in _MAPPED_ERRORS:
            if isinstance(exc, source):
                raise target(str(exc), request=request) from exc
        raise


class _Body(httpx.SyncByteStream):
    def __init__(self, stream: Iterable[bytes], request: httpx.Request) -> None:
        self._stream = stream
        self._request = request

    def __iter__(self) -> Iterator[bytes]:
        with _httpx_errors(self._request):
            yield from self._stream

    def close(self) -> None:
        close = getattr(self._stream, "close", None)
        if close is not None:
            close()


class _PinnedTransport(httpx.BaseTransport):
    """httpx's default transport, but over the guarded network backend."""

    def __init__(self, policy: AddressPolicy, resolver: Resolver) -> None:
        # httpx.HTTPTransport takes no network backend, so this builds the pool itself.
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=10,
            keepalive_expiry=5.0,
            network_backend=_GuardedBackend(policy, resolver),
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send `request` through the guarded pool."""
        assert isinstance(request.stream, httpx.SyncByteStream)
        core = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with _httpx_errors(request):
            response = self._pool.handle_request(core)
        assert isinstance(response.stream, Iterable)
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_Body(response.stream, request),
            extensions=response.extensions,
        )

    def close(self) -> None:
        """Close every pooled connection."""
        self._pool.close()


# ---------------------------------------------------------------- fetching


@dataclass(frozen=True)
class Fetched:
    """What a fetch brought back; `not_modified` (HTTP 304) comes with no content."""

    url: str
    final_url: str
    status_code: int
    content: bytes = b""
    media_type: str | None = None
    charset: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def not_modified(self) -> bool:
        """True when the server said the content is unchanged since the conditional request."""
        return self.status_code == 304

    def text(self) -> str:
        """The content decoded with its declared charset, else UTF-8; bad bytes replaced."""
        return self.content.decode(self.charset or "utf-8-sig", errors="replace")


class Fetcher:
    """Fetches URLs within the settings' limits; reuses connections until closed."""

    def __init__(self, settings: Settings, *, resolver: Resolver | None = None) -> None:
        self.settings = settings
        self._client = httpx.Client(
            transport=_PinnedTransport(
                AddressPolicy.from_settings(settings),
                timed_resolver(settings.fetch_dns_timeout_s, resolver or system_resolver),
            ),
            follow_redirects=False,  # followed below, one checked hop at a time
            trust_env=False,
            headers={"User-Agent": USER_AGENT},
        )

    def close(self) -> None:
        """Close the connections."""
        self._client.close()

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def fetch(
        self,
        url: str,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        accept: str | None = None,
    ) -> Fetched:
        """GET `url` (conditionally, given `etag` or `last_modified`); FetchError on failure.

        2xx answers come back with their content, a 304 as not_modified; anything else,
        a refused address, too many redirects, a timeout or a body over the size cap is a
        FetchError whose message names the URL (without credentials) and the reason.
        """
        shown = redact_url(url)
        limit_s = self.settings.fetch_timeout_s
        deadline = time.monotonic() + limit_s
        current = _checked_url(url, shown)
        headers = {"Accept": accept or "*/*"}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        redirects = 0
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise _timeout(shown, limit_s)
            request = self._client.build_request(
                "GET", current, headers=headers, timeout=httpx.Timeout(left)
            )
            try:
                response = self._client.send(request, stream=True)
                try:
                    if response.status_code in _REDIRECTS:
                        redirects += 1
                        if redirects > self.settings.fetch_max_redirects:
                            raise FetchError(
                                f"{shown}: more than {self.settings.fetch_max_redirects} "
                                "redirects (fetch_max_redirects)",
                                url=shown,
                                kind="redirects",
                                status_code=response.status_code,
                            )
                        current = _redirect_target(response, current, shown)
                        continue
                    return self._answer(response, url, current, etag, last_modified, deadline)
                finally:
                    response.close()
            except _RefusedAddress as refused:
                raise FetchError(
                    f"{shown}: refused to connect: {refused}; set BRIEFING_FETCH_ALLOW_PRIVATE "
                    "or BRIEFING_FETCH_ALLOWED_NETWORKS to allow it",
                    url=shown,
                    kind="refused",
                ) from None
            except httpx.TimeoutException:
                raise _timeout(shown, limit_s) from None
            except httpx.HTTPError as exc:
                # "connect": nothing answered at all; "network": the exchange broke down.
                kind = "connect" if isinstance(exc, httpx.ConnectError) else "network"
                raise FetchError(f"{shown}: {_network_reason(exc)}", url=shown, kind=kind) from None

    def _answer(
        self,
        response: httpx.Response,
        url: str,
        final: httpx.URL,
        etag: str | None,
        last_modified: str | None,
        deadline: float,
    ) -> Fetched:
        shown = redact_url(url)
        status = response.status_code
        if status == 304 and (etag or last_modified):
            return Fetched(
                url=url,
                final_url=str(final),
                status_code=304,
                # A 304 may omit the validators: the ones sent are still the current ones.
                etag=response.headers.get("etag") or etag,
                last_modified=response.headers.get("last-modified") or last_modified,
                headers=dict(response.headers),
            )
        if not 200 <= status < 300:
            raise FetchError(
                f"{shown}: HTTP {status} {response.reason_phrase}".rstrip(),
                url=shown,
                kind="status",
                status_code=status,
            )
        content = self._read_capped(response, shown, deadline)
        media_type = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        return Fetched(
            url=url,
            final_url=str(final),
            status_code=status,
            content=content,
            media_type=media_type or None,
            charset=_known_charset(response.charset_encoding),
            etag=response.headers.get("etag"),
            last_modified=response.headers.get("last-modified"),
            headers=dict(response.headers),
        )

    def _read_capped(self, response: httpx.Response, shown: str, deadline: float) -> bytes:
        cap = self.settings.fetch_max_bytes
        too_large = FetchError(
            f"{shown}: response larger than the {cap}-byte cap (fetch_max_bytes)",
            url=shown,
            kind="too_large",
            status_code=response.status_code,
        )
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > cap:
            raise too_large
        chunks: list[bytes] = []
        total = 0
        # Decoded bytes count, so a small compressed body cannot unpack past the cap.
        for chunk in response.iter_bytes():
            total += len(chunk)
            if total > cap:
                raise too_large
            if time.monotonic() > deadline:
                raise _timeout(shown, self.settings.fetch_timeout_s)
            chunks.append(chunk)
        return b"".join(chunks)


def _checked_url(url: str, shown: str) -> httpx.URL:
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise FetchError(f"{shown}: not a valid URL ({exc})", url=shown, kind="url") from None
    if parsed.scheme not in _SCHEMES:
        raise FetchError(
            f"{shown}: only http and https URLs can be fetched, not {parsed.scheme or 'none'!r}",
            url=shown,
            kind="url",
        )
    if not parsed.host:
        raise FetchError(f"{shown}: the URL names no host", url=shown, kind="url")
    return parsed


def _redirect_target(response: httpx.Response, current: httpx.URL, shown: str) -> httpx.URL:
    location = response.headers.get("location", "").strip()
    if not location:
        raise FetchError(
            f"{shown}: HTTP {response.status_code} redirect without a Location header",
            url=shown,
            kind="redirects",
            status_code=response.status_code,
        )
    try:
        target = current.join(location)
    except (httpx.InvalidURL, ValueError) as exc:
        raise FetchError(
            f"{shown}: redirected to an invalid URL ({exc})", url=shown, kind="redirects"
        ) from None
    target_shown = redact_url(str(target))
    if target.scheme not in _SCHEMES:
        raise FetchError(
            f"{shown}: redirected to {target_shown}; only http and https can be fetched",
            url=shown,
            kind="redirects",
        )
    return target


def _timeout(shown: str, limit_s: float) -> FetchError:
    return FetchError(
        f"{shown}: no complete answer within {limit_s:g} s (fetch_timeout_s)",
        url=shown,
        kind="timeout",
    )


def _network_reason(exc: httpx.HTTPError) -> str:
    detail = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
    what = {
        httpx.ConnectError: "cannot connect",
        httpx.RemoteProtocolError: "the server broke the HTTP protocol",
        httpx.DecodingError: "the response cannot be decoded",
        httpx.UnsupportedProtocol: "unsupported protocol",
    }
    label = next((text for kind, text in what.items() if isinstance(exc, kind)), "network error")
    return f"{label} ({detail})" if detail else label


def _known_charset(name: str | None) -> str | None:
    if not name:
        return None
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None
