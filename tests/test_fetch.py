"""Safe fetching, against a real HTTP server on 127.0.0.1.

Addresses outside the loopback range appear only in refusals: the guard refuses them before
any connection is tried, so no test sends a packet anywhere but to this machine.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
from news_site import NewsSite, Page
from pydantic import ValidationError

from briefing import __version__
from briefing.config import Settings
from briefing.daily.fetch import (
    USER_AGENT,
    AddressPolicy,
    Fetcher,
    system_resolver,
)
from briefing.errors import BriefingError, FetchError
from briefing.urls import canonical_url, redact_headers, redact_url, storage_key

#: Only the one address the test server listens on.
LOOPBACK_ONLY = "127.0.0.1/32"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # BRIEFING_* variables of the developer's shell must not change what a test runs with.
    for name in list(os.environ):
        if name.upper().startswith("BRIEFING_"):
            monkeypatch.delenv(name)


@pytest.fixture
def site() -> Iterator[NewsSite]:
    """The news site, serving the harbour article."""
    with NewsSite() as running:
        running.serve_fixture("/news/harbour.html", "harbour.html")
        yield running


def fetcher(
    resolver: Callable[[str, int], Sequence[str]] | None = None, **settings: Any
) -> Fetcher:
    """A Fetcher with test settings (only 127.0.0.1 reachable unless told otherwise)."""
    values: dict[str, Any] = {"fetch_allowed_networks": LOOPBACK_ONLY, **settings}
    return Fetcher(Settings(**values), resolver=resolver)


def resolving(names: dict[str, list[str]]) -> Callable[[str, int], Sequence[str]]:
    """A resolver answering `names` from the table, anything else as the system does."""

    def resolve(host: str, port: int) -> Sequence[str]:
        return names[host] if host in names else system_resolver(host, port)

    return resolve


def refusal(url: str, fetching: Fetcher) -> FetchError:
    with fetching, pytest.raises(FetchError) as raised:
        fetching.fetch(url)
    assert raised.value.kind == "refused", raised.value
    return raised.value


# ---------------------------------------------------------------- addresses


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("http://127.0.0.1:{port}/news/harbour.html", "loopback"),
        ("http://[::1]:{port}/news/harbour.html", "loopback"),
        ("http://localhost:{port}/news/harbour.html", "loopback"),
        ("http://10.20.30.40/admin", "private"),
        ("http://192.168.1.1/", "private"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://[fe80::1]/", "link-local"),
        ("http://0.0.0.0:{port}/", "unspecified"),
        ("http://224.0.0.1/", "multicast"),
        ("http://240.0.0.1/", "private"),
        ("http://[::ffff:127.0.0.1]:{port}/", "loopback"),
        ("http://100.64.0.1/", "non-public"),
    ],
)
def test_non_public_addresses_are_refused_by_default(site: NewsSite, url: str, kind: str) -> None:
    target = url.format(port=site.port)
    refused = refusal(target, fetcher(fetch_allowed_networks=None))
    assert f"{kind} address" in str(refused)
    assert str(refused).startswith(redact_url(target))
    assert "BRIEFING_FETCH_ALLOW_PRIVATE" in str(refused)
    assert site.hits == []  # refused before any connection


def test_allow_private_reaches_loopback(site: NewsSite) -> None:
    with fetcher(fetch_allowed_networks=None, fetch_allow_private=True) as fetching:
        got = fetching.fetch(site.url("/news/harbour.html"))
        by_name = fetching.fetch(f"http://localhost:{site.port}/news/harbour.html")
    assert got.status_code == 200
    assert b"Harbour reopens" in got.content
    assert got.media_type == "text/html"
    assert got.charset == "utf-8"
    assert by_name.content == got.content


def test_allowed_networks_open_only_what_they_name(site: NewsSite) -> None:
    with fetcher() as fetching:
        assert fetching.fetch(site.url("/news/harbour.html")).status_code == 200
    refused = refusal(f"http://127.0.0.2:{site.port}/news/harbour.html", fetcher())
    assert "127.0.0.2" in str(refused)


def test_every_resolved_address_is_checked(site: NewsSite) -> None:
    # The first address is allowed; the second is not: the name is refused as a whole,
    # before any connection, so a connect that falls back to the second cannot reach it.
    names = {"mixed.example": ["127.0.0.1", "10.0.0.7"]}
    refused = refusal(f"http://mixed.example:{site.port}/", fetcher(resolving(names)))
    assert "mixed.example resolves to 10.0.0.7, a private address" in str(refused)
    public_and_private = {"cdn.example": ["93.184.216.34", "127.0.0.1"]}
    refusal(
        f"http://cdn.example:{site.port}/",
        fetcher(resolving(public_and_private), fetch_allowed_networks=None),
    )
    assert site.hits == []


def test_the_connection_goes_to_the_checked_address(site: NewsSite) -> None:
    # news.example exists only in this resolver: reaching the site proves the socket was
    # opened to the address that was checked, with the name kept for the Host header.
    calls: list[str] = []

    def resolve(host: str, port: int) -> Sequence[str]:
        calls.append(host)
        return ["127.0.0.1"] if host == "news.example" else []

    with fetcher(resolve) as fetching:
        got = fetching.fetch(f"http://news.example:{site.port}/news/harbour.html")
    assert got.status_code == 200
    assert calls == ["news.example"]
    assert site.hits[0].headers["host"] == f"news.example:{site.port}"


def test_a_name_that_does_not_resolve_is_a_network_error() -> None:
    with fetcher(resolving({"nowhere.example": []})) as fetching, pytest.raises(FetchError) as e:
        fetching.fetch("http://nowhere.example/")
    assert e.value.kind == "connect"
    assert "cannot resolve nowhere.example" in str(e.value)


def test_address_policy_unwraps_embedded_ipv4() -> None:
    policy = AddressPolicy()
    assert policy.refusal("2002:7f00:1::") == "a loopback address"  # 6to4 of 127.0.0.1
    assert policy.refusal("64:ff9b::a00:1") == "a private address"  # NAT64 of 10.0.0.1
    assert policy.refusal("93.184.216.34") is None
    assert policy.refusal("2606:4700:4700::1111") is None
    assert policy.refusal("not-an-ip") == "not an IP address"
    assert AddressPolicy(allow_private=True).refusal("10.0.0.1") is None


def test_bad_allowed_networks_fail_at_start() -> None:
    with pytest.raises(ValidationError, match="not a network"):
        Settings(fetch_allowed_networks="127.0.0.1/32, intranet")


# ---------------------------------------------------------------- redirects


def test_redirects_are_followed_one_checked_hop_at_a_time(site: NewsSite) -> None:
    site.redirect("/r/1", "/r/2", status=301)
    site.redirect("/r/2", site.url("/news/harbour.html"), status=307)
    with fetcher() as fetching:
        got = fetching.fetch(site.url("/r/1"))
    assert got.status_code == 200
    assert got.url == site.url("/r/1")
    assert got.final_url == site.url("/news/harbour.html")
    assert [hit.path for hit in site.hits] == ["/r/1", "/r/2", "/news/harbour.html"]


@pytest.mark.parametrize(
    "location",
    [
        "http://127.0.0.2:{port}/news/harbour.html",
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://[::1]:{port}/news/harbour.html",
    ],
)
def test_a_redirect_to_a_non_public_address_is_refused(site: NewsSite, location: str) -> None:
    site.redirect("/out", location.format(port=site.port))
    refused = refusal(site.url("/out"), fetcher())
    assert str(refused).startswith(site.url("/out"))
    assert [hit.path for hit in site.hits] == ["/out"]


def test_redirects_are_bounded(site: NewsSite) -> None:
    site.redirect("/loop", "/loop")
    with fetcher(fetch_max_redirects=3) as fetching, pytest.raises(FetchError) as raised:
        fetching.fetch(site.url("/loop"))
    assert raised.value.kind == "redirects"
    assert "more than 3 redirects" in str(raised.value)
    assert len(site.hits_for("/loop")) == 4


def test_a_redirect_to_another_scheme_is_refused(site: NewsSite) -> None:
    site.redirect("/file", "file:///etc/passwd")
    with fetcher() as fetching, pytest.raises(FetchError) as raised:
        fetching.fetch(site.url("/file"))
    assert raised.value.kind == "redirects"
    assert "only http and https" in str(raised.value)


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/x", "file:///etc/passwd", "http:///nohost"])
def test_only_http_urls_are_fetched(url: str) -> None:
    with fetcher() as fetching, pytest.raises(FetchError) as raised:
        fetching.fetch(url)
    assert raised.value.kind == "url"


# ---------------------------------------------------------------- limits


def test_a_declared_length_over_the_cap_is_refused_unread(site: NewsSite) -> None:
    site.serve("/big", Page(body=b"x" * 100, declared_length=50_000_000))
    with fetcher(fetch_max_bytes=10_000) as fetching, pytest.raises(FetchError) as raised:
        fetching.fetch(site.url("/big"))
    assert raised.value.kind == "too_large"
    assert "10000-byte cap" in str(raised.value)
    assert "fetch_max_bytes" in str(raised.value)


def test_a_streamed_body_stops_at_the_cap(site: NewsSite) -> None:
    # Chunked: no length announced, so only counting the bytes as they arrive can stop it.
    site.serve("/stream", Page(body=b"y" * 200_000, chunked=True, chunk_size=4096))
    with fetcher(fetch_max_bytes=20_000) as fetching, pytest.raises(FetchError) as raised:
        fetching.fetch(site.url("/stream"))
    assert raised.value.kind == "too_large"
    site.serve("/small", Page(body=b"z" * 15_000, chunked=True, chunk_size=4096))
    with fetcher(fetch_max_bytes=20_000) as fetching:
        assert len(fetching.fetch(site.url("/small")).content) == 15_000


def test_a_slow_server_times_out(site: NewsSite) -> None:
    site.serve("/slow", Page(body=b"late", delay_s=5))
    started = time.monotonic()
    with fetcher(fetch_timeout_s=0.5) as fetching, pytest.raises(FetchError) as raised:
        fetching.fetch(site.url("/slow"))
    assert time.monotonic() - started < 3
    assert raised.value.kind == "timeout"
    assert "within 0.5 s" in str(raised.value)


def test_a_trickling_body_hits_the_total_deadline(site: NewsSite) -> None:
    # Each chunk arrives well within a read timeout; only the total deadline stops it.
    site.serve("/trickle", Page(body=b"t" * 100, chunked=True, chunk_size=1, chunk_delay_s=0.1))
    started = time.monotonic()
    with fetcher(fetch_timeout_s=1.0) as fetching, pytest.raises(FetchError) as raised:
        fetching.fetch(site.url("/trickle"))
    assert time.monotonic() - started < 4
    assert raised.value.kind == "timeout"


def test_an_unreachable_port_is_a_network_error() -> None:
    with socket.socket() as probe:  # a port that was free a moment ago, and is closed now
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with fetcher() as fetching, pytest.raises(FetchError) as raised:
        fetching.fetch(f"http://127.0.0.1:{port}/")
    assert raised.value.kind == "connect"
    assert "cannot connect" in str(raised.value)


# ---------------------------------------------------------------- answers


def test_conditional_request_with_etag(site: NewsSite) -> None:
    site.serve_fixture("/etag.html", "ferry.html", etag='"v1"')
    with fetcher() as fetching:
        first = fetching.fetch(site.url("/etag.html"))
        again = fetching.fetch(site.url("/etag.html"), etag=first.etag)
    assert first.etag == '"v1"'
    assert not first.not_modified
    assert again.not_modified
    assert again.content == b""
    assert again.etag == '"v1"'
    hits = site.hits_for("/etag.html")
    assert "if-none-match" not in hits[0].headers
    assert hits[1].headers["if-none-match"] == '"v1"'


def test_conditional_request_with_last_modified(site: NewsSite) -> None:
    stamp = "Fri, 13 Mar 2026 16:05:00 GMT"
    site.serve_fixture("/lm.html", "ferry.html", last_modified=stamp)
    with fetcher() as fetching:
        first = fetching.fetch(site.url("/lm.html"))
        again = fetching.fetch(site.url("/lm.html"), last_modified=first.last_modified)
    assert first.last_modified == stamp
    assert again.not_modified
    assert again.last_modified == stamp
    assert site.hits_for("/lm.html")[1].headers["if-modified-since"] == stamp


def test_an_error_status_is_a_fetch_error(site: NewsSite) -> None:
    with fetcher() as fetching, pytest.raises(FetchError) as raised:
        fetching.fetch(site.url("/missing"))
    assert raised.value.kind == "status"
    assert raised.value.status_code == 404
    assert str(raised.value) == f"{site.url('/missing')}: HTTP 404 Not Found"
    assert isinstance(raised.value, BriefingError)


def test_requests_name_briefing_and_its_version(site: NewsSite) -> None:
    with fetcher() as fetching:
        fetching.fetch(site.url("/news/harbour.html"), accept="text/html")
    headers = site.hits[0].headers
    assert headers["user-agent"] == USER_AGENT
    assert f"briefing/{__version__}" in USER_AGENT
    assert headers["accept"] == "text/html"


def test_credentials_never_appear_in_errors(site: NewsSite) -> None:
    url = f"http://reader:hunter2@127.0.0.1:{site.port}/missing?api_key=s3cret&page=2"
    with fetcher() as fetching, pytest.raises(FetchError) as raised:
        fetching.fetch(url)
    message = str(raised.value)
    assert "hunter2" not in message
    assert "s3cret" not in message
    assert "reader" not in message
    assert "page=2" in message
    assert raised.value.url == f"http://127.0.0.1:{site.port}/missing?api_key=***&page=2"
    # The credentials were still used for the request itself.
    assert site.hits[0].headers["authorization"].startswith("Basic ")


def test_a_plain_text_answer_decodes_with_its_charset(site: NewsSite) -> None:
    site.serve(
        "/latin1",
        Page(body="Smörgås".encode("latin-1"), content_type="text/plain; charset=ISO-8859-1"),
    )
    with fetcher() as fetching:
        got = fetching.fetch(site.url("/latin1"))
    assert got.media_type == "text/plain"
    assert got.text() == "Smörgås"


def test_canonical_urls_are_stable_keys() -> None:
    assert canonical_url("HTTPS://User:pw@Example.ORG:443/a?b=1#top") == "https://example.org/a?b=1"
    assert canonical_url("http://example.org") == "http://example.org/"
    assert canonical_url("http://example.org:8080/x") == "http://example.org:8080/x"
    assert canonical_url("http://[::1]:80/x") == "http://[::1]/x"


def test_a_lookup_that_hangs_gives_up_after_the_dns_timeout() -> None:
    released = threading.Event()

    def hanging(host: str, port: int) -> Sequence[str]:
        released.wait(10)  # a system resolver stuck on an unanswered query
        return ["127.0.0.1"]

    try:
        with (
            fetcher(hanging, fetch_dns_timeout_s=0.2) as fetching,
            pytest.raises(FetchError) as raised,
        ):
            fetching.fetch("http://slow-dns.example/")
    finally:
        released.set()
    assert raised.value.kind == "connect"
    assert "cannot resolve slow-dns.example" in str(raised.value)
    assert "longer than 0.2 s" in str(raised.value)


def test_redaction_hides_webhook_paths_credentials_and_header_values() -> None:
    cases = {
        "https://hooks.slack.com/services/T000/B000/XXXXsecret": "https://hooks.slack.com/services/***",
        "https://discord.com/api/webhooks/123/tok-en": "https://discord.com/api/webhooks/***",
        "https://org.webhook.office.com/webhookb2/abc@def/IncomingWebhook/x/y": (
            "https://org.webhook.office.com/webhookb2/***"
        ),
        "https://u:p@news.example/2026/storm?ref=rss&api_key=k1&sig=s2": (
            "https://news.example/2026/storm?ref=rss&api_key=***&sig=***"
        ),
        "https://news.example/world/hooked-on-tea": "https://news.example/world/hooked-on-tea",
        "https://news.example/hooks/": "https://news.example/hooks/",
    }
    for url, shown in cases.items():
        assert redact_url(url) == shown
    assert redact_headers({"Authorization": "Bearer x", "X-Api-Key": "k", "Accept": "a/b"}) == {
        "Authorization": "***",
        "X-Api-Key": "***",
        "Accept": "a/b",
    }
    # Storage keys hold digests of credentials: two tokens stay two keys, neither is kept.
    one = storage_key("https://feeds.example/rss?token=alpha&lang=en")
    two = storage_key("https://feeds.example/rss?token=beta&lang=en")
    assert one != two
    assert "alpha" not in one
    assert "beta" not in two
    assert one.endswith("&lang=en")
    assert one == storage_key("HTTPS://Feeds.Example:443/rss?token=alpha&lang=en#x")
