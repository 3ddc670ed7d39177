"""Delivery of daily briefings: files written atomically, webhooks signed and retried.

Webhooks go to a real HTTP receiver on 127.0.0.1 that checks signatures on its own.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from briefing.config import Settings
from briefing.daily.delivery import (
    DirDelivery,
    WebhookDelivery,
    deliver_dir,
    deliver_webhook,
    delivery_id,
)
from briefing.errors import DeliveryError
from briefing.pipeline.build import build_briefing_sync, load_sources
from briefing.pipeline.render import to_markdown
from briefing.schema import Briefing

ROOT = Path(__file__).resolve().parent.parent
RUN_DATE = date(2026, 3, 29)
SECRET = "whsec-test-0123456789abcdef"
SECRET_ENV = "BRIEFING_TEST_WEBHOOK_SECRET"


@pytest.fixture(scope="module")
def briefing() -> Briefing:
    """A real extractive briefing of the seed articles."""
    settings = Settings(model="extractive", check_method="offline", log_calls=False)
    return build_briefing_sync(load_sources(sorted((ROOT / "seeds").glob("*.txt"))), settings)


@pytest.fixture(autouse=True)
def _no_briefing_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("BRIEFING_"):
            monkeypatch.delenv(name)


def fast_settings(**overrides: Any) -> Settings:
    """Settings for tests: loopback allowed, three attempts, millisecond backoff."""
    values: dict[str, Any] = {
        "fetch_allow_private": True,
        "delivery_max_attempts": 3,
        "delivery_backoff_s": 0.001,
        "delivery_backoff_max_s": 1.0,
        **overrides,
    }
    return Settings(**values)


def listing(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


# --- dir --------------------------------------------------------------------------------------


def test_dir_delivery_writes_dated_files_of_the_briefing(
    briefing: Briefing, tmp_path: Path
) -> None:
    spec = DirDelivery(path="out/daily", formats=["md", "json"])
    paths = deliver_dir(
        briefing, spec, schedule_name="russia-us", run_date=RUN_DATE, base_dir=tmp_path
    )
    folder = tmp_path / "out" / "daily"
    assert paths == [folder / "russia-us-2026-03-29.md", folder / "russia-us-2026-03-29.json"]
    assert listing(folder) == ["russia-us-2026-03-29.json", "russia-us-2026-03-29.md"]
    assert paths[0].read_text(encoding="utf-8") == to_markdown(briefing)
    assert json.loads(paths[1].read_text(encoding="utf-8")) == briefing.model_dump(mode="json")
    if os.name == "posix":
        assert paths[0].stat().st_mode & 0o777 == 0o644


def test_an_absolute_folder_ignores_the_base_dir(briefing: Briefing, tmp_path: Path) -> None:
    target = tmp_path / "abs"
    paths = deliver_dir(
        briefing,
        DirDelivery(path=str(target)),
        schedule_name="daily",
        run_date=RUN_DATE,
        base_dir=tmp_path / "elsewhere",
    )
    assert paths == [target / "daily-2026-03-29.md"]
    assert not (tmp_path / "elsewhere").exists()


def test_a_second_delivery_of_the_date_replaces_the_files_atomically(
    briefing: Briefing, tmp_path: Path
) -> None:
    spec = DirDelivery(path="out", formats=["md", "json"])
    (md, _) = deliver_dir(briefing, spec, schedule_name="s", run_date=RUN_DATE, base_dir=tmp_path)
    old = md.read_bytes()
    second = briefing.model_copy(update={"title": "A second run of the day"})
    with md.open("rb") as reader:  # a reader of the old file, mid-way through
        start = reader.read(10)
        deliver_dir(second, spec, schedule_name="s", run_date=RUN_DATE, base_dir=tmp_path)
        # The reader still sees the whole old file, never a mix: the new one replaced it.
        assert start + reader.read() == old
    assert md.read_text(encoding="utf-8") == to_markdown(second)
    assert listing(tmp_path / "out") == ["s-2026-03-29.json", "s-2026-03-29.md"]


def _unwritable(briefing: Briefing) -> Briefing:
    # A lone surrogate (as decoding with surrogateescape leaves) has no UTF-8 form.
    claim = briefing.key_points[0].model_copy(update={"text": "broken \udc80 text"})
    return briefing.model_copy(update={"key_points": [claim, *briefing.key_points[1:]]})


@pytest.mark.parametrize("formats", [["md"], ["json"], ["md", "json"]])
def test_a_briefing_that_cannot_be_serialised_leaves_the_old_files(
    briefing: Briefing, tmp_path: Path, formats: list[str]
) -> None:
    spec = DirDelivery.model_validate({"path": "out", "formats": formats})
    paths = deliver_dir(briefing, spec, schedule_name="s", run_date=RUN_DATE, base_dir=tmp_path)
    before = {p: p.read_bytes() for p in paths}
    with pytest.raises(DeliveryError, match="cannot be written") as caught:
        deliver_dir(
            _unwritable(briefing), spec, schedule_name="s", run_date=RUN_DATE, base_dir=tmp_path
        )
    assert caught.value.retryable is False
    assert {p: p.read_bytes() for p in paths} == before
    assert listing(tmp_path / "out") == sorted(p.name for p in paths)


@pytest.mark.skipif(sys.platform == "win32", reason="needs RLIMIT_FSIZE")
def test_a_failed_write_leaves_the_old_files_and_no_temporary_ones(
    briefing: Briefing, tmp_path: Path
) -> None:
    import resource

    spec = DirDelivery(path="out", formats=["md", "json"])
    paths = deliver_dir(briefing, spec, schedule_name="s", run_date=RUN_DATE, base_dir=tmp_path)
    before = {p: p.read_bytes() for p in paths}
    second = briefing.model_copy(update={"title": "Never written"})
    # A real write failure that root cannot override: files may not grow past 1 KiB, so
    # writing the new briefing fails with EFBIG (Python ignores SIGXFSZ).
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1024, hard))
    try:
        with pytest.raises(DeliveryError, match="cannot write to") as caught:
            deliver_dir(second, spec, schedule_name="s", run_date=RUN_DATE, base_dir=tmp_path)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert caught.value.retryable is True
    assert caught.value.target == str(tmp_path / "out")
    assert {p: p.read_bytes() for p in paths} == before
    assert listing(tmp_path / "out") == ["s-2026-03-29.json", "s-2026-03-29.md"]


def test_a_schedule_name_cannot_escape_the_folder(briefing: Briefing, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot name a file"):
        deliver_dir(
            briefing,
            DirDelivery(path="out"),
            schedule_name="../x",
            run_date=RUN_DATE,
            base_dir=tmp_path,
        )


# --- webhook ----------------------------------------------------------------------------------


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    at: float
    signature_valid: bool | None


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


@dataclass
class Receiver:
    """A webhook receiver on 127.0.0.1: replies from `script` in turn, then 200."""

    url: str
    secret: bytes | None
    script: list[Reply]
    requests: list[Received]


@pytest.fixture
def receiver() -> Iterator[Callable[..., Receiver]]:
    servers: list[ThreadingHTTPServer] = []

    def start(*replies: Reply, secret: str | None = None, path: str = "/hook") -> Receiver:
        state = Receiver(
            url="",
            secret=secret.encode() if secret is not None else None,
            script=list(replies),
            requests=[],
        )

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                valid = None
                if state.secret is not None:
                    # Verified here, from the documented scheme, not with the package's code.
                    timestamp = self.headers.get("X-Briefing-Timestamp", "")
                    expected = hmac.new(
                        state.secret, timestamp.encode() + b"." + body, hashlib.sha256
                    ).hexdigest()
                    given = self.headers.get("X-Briefing-Signature", "")
                    valid = hmac.compare_digest(given, f"sha256={expected}")
                state.requests.append(
                    Received(dict(self.headers.items()), body, time.monotonic(), valid)
                )
                reply = state.script.pop(0) if state.script else Reply()
                if valid is False:
                    reply = Reply(401)
                time.sleep(reply.delay_s)
                try:
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:
                    pass  # the client gave up waiting (the timeout test)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        servers.append(server)
        threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True).start()
        state.url = f"http://127.0.0.1:{server.server_address[1]}{path}"
        return state

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def deliver(briefing: Briefing, spec: WebhookDelivery, settings: Settings | None = None) -> Any:
    return deliver_webhook(
        briefing,
        spec,
        schedule_name="russia-us",
        run_date=RUN_DATE,
        settings=settings or fast_settings(),
    )


def test_a_signed_delivery_is_verified_by_the_receiver(
    briefing: Briefing, receiver: Callable[..., Receiver], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    hook = receiver(secret=SECRET)
    spec = WebhookDelivery.model_validate(
        {"url": hook.url, "secret_env": SECRET_ENV, "headers": {"X-Team": "news"}}
    )
    receipt = deliver(briefing, spec)
    (request,) = hook.requests
    assert request.signature_valid is True
    assert json.loads(request.body) == briefing.model_dump(mode="json")
    headers = {k.lower(): v for k, v in request.headers.items()}
    assert headers["content-type"] == "application/json"
    assert headers["x-briefing-schedule"] == "russia-us"
    assert headers["x-briefing-date"] == "2026-03-29"
    assert headers["idempotency-key"] == headers["x-briefing-delivery"] == receipt.delivery_id
    assert receipt.delivery_id == delivery_id("russia-us", RUN_DATE, briefing.id)
    assert headers["x-team"] == "news"
    assert abs(int(headers["x-briefing-timestamp"]) - time.time()) < 60
    assert (receipt.status_code, receipt.attempts) == (200, 1)
    assert receipt.url == hook.url


def test_a_wrong_secret_is_rejected_and_not_retried(
    briefing: Briefing, receiver: Callable[..., Receiver], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_ENV, "not-the-receivers-secret")
    hook = receiver(secret=SECRET)
    spec = WebhookDelivery.model_validate({"url": hook.url, "secret_env": SECRET_ENV})
    with pytest.raises(DeliveryError, match="HTTP 401 Unauthorized, after 1 attempt") as caught:
        deliver(briefing, spec)
    assert [r.signature_valid for r in hook.requests] == [False]
    assert caught.value.status_code == 401
    assert "not-the-receivers-secret" not in str(caught.value)


def test_an_unsigned_delivery_has_no_signature(
    briefing: Briefing, receiver: Callable[..., Receiver]
) -> None:
    hook = receiver()
    deliver(briefing, WebhookDelivery.model_validate({"url": hook.url}))
    (request,) = hook.requests
    names = {k.lower() for k in request.headers}
    assert "x-briefing-signature" not in names
    assert "x-briefing-timestamp" not in names


def test_503_twice_is_retried_honouring_retry_after(
    briefing: Briefing,
    receiver: Callable[..., Receiver],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    hook = receiver(
        Reply(503, {"Retry-After": "0.2"}), Reply(503, {"Retry-After": "0.2"}), secret=SECRET
    )
    spec = WebhookDelivery.model_validate({"url": hook.url, "secret_env": SECRET_ENV})
    with caplog.at_level(logging.WARNING, logger="briefing.delivery"):
        receipt = deliver(briefing, spec)
    assert (receipt.status_code, receipt.attempts) == (200, 3)
    assert len(hook.requests) == 3
    assert all(r.signature_valid for r in hook.requests)
    # One delivery: the same id on every attempt, so the receiver can drop repeats.
    assert len({r.headers["Idempotency-Key"] for r in hook.requests}) == 1
    # The backoff is a millisecond; the pauses are the receiver's Retry-After.
    gaps = [b.at - a.at for a, b in zip(hook.requests, hook.requests[1:], strict=False)]
    assert all(gap >= 0.19 for gap in gaps), gaps
    assert "HTTP 503 Service Unavailable; retrying in 0.20 s (attempt 2 of 3)" in caplog.text
    assert SECRET not in caplog.text


def test_429_without_retry_after_backs_off_and_retries(
    briefing: Briefing, receiver: Callable[..., Receiver]
) -> None:
    hook = receiver(Reply(429))
    receipt = deliver(briefing, WebhookDelivery.model_validate({"url": hook.url}))
    assert (receipt.status_code, receipt.attempts) == (200, 2)


def test_a_400_is_not_retried(briefing: Briefing, receiver: Callable[..., Receiver]) -> None:
    hook = receiver(Reply(400))
    with pytest.raises(DeliveryError) as caught:
        deliver(briefing, WebhookDelivery.model_validate({"url": hook.url}))
    assert len(hook.requests) == 1
    error = caught.value
    assert (error.status_code, error.attempts, error.retryable) == (400, 1, False)
    assert str(error) == f"webhook {hook.url}: HTTP 400 Bad Request, after 1 attempt(s)"


def test_a_redirect_is_not_followed(briefing: Briefing, receiver: Callable[..., Receiver]) -> None:
    hook = receiver(Reply(302, {"Location": "http://127.0.0.1:9/elsewhere"}))
    with pytest.raises(DeliveryError, match="do not follow redirects") as caught:
        deliver(briefing, WebhookDelivery.model_validate({"url": hook.url}))
    assert len(hook.requests) == 1
    assert caught.value.retryable is False


def test_the_final_failure_names_the_url_but_no_secret(
    briefing: Briefing,
    receiver: Callable[..., Receiver],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    hook = receiver(*[Reply(503)] * 5, secret=SECRET)
    spec = WebhookDelivery.model_validate(
        {"url": hook.url + "?token=q-secret-123", "secret_env": SECRET_ENV}
    )
    with caplog.at_level(logging.DEBUG), pytest.raises(DeliveryError) as caught:
        deliver(briefing, spec)
    error = caught.value
    assert len(hook.requests) == 3
    assert (error.status_code, error.attempts, error.retryable) == (503, 3, True)
    # The token's name stays, to tell the URL apart; its value does not.
    shown = hook.url + "?token=***"
    assert error.target == shown
    assert str(error) == f"webhook {shown}: HTTP 503 Service Unavailable, after 3 attempt(s)"
    for text in (str(error), repr(error), caplog.text):
        assert SECRET not in text
        assert "q-secret-123" not in text


def test_a_retry_after_beyond_the_limit_is_not_waited_for(
    briefing: Briefing, receiver: Callable[..., Receiver]
) -> None:
    hook = receiver(Reply(503, {"Retry-After": "120"}))
    started = time.monotonic()
    with pytest.raises(DeliveryError, match=r"asked to retry after 120 s\), after 1 attempt"):
        deliver(briefing, WebhookDelivery.model_validate({"url": hook.url}))
    assert time.monotonic() - started < 5
    assert len(hook.requests) == 1


def test_a_slow_receiver_times_out_and_is_retried(
    briefing: Briefing, receiver: Callable[..., Receiver]
) -> None:
    hook = receiver(Reply(200, delay_s=1.0), Reply(200, delay_s=1.0))
    spec = WebhookDelivery.model_validate({"url": hook.url, "timeout_s": 0.1})
    with pytest.raises(DeliveryError, match=r"no answer within 0.1 s, after 2 attempt") as caught:
        deliver(briefing, spec, fast_settings(delivery_max_attempts=2))
    assert caught.value.retryable is True


def test_a_refused_connection_is_retried(briefing: Briefing) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    spec = WebhookDelivery.model_validate({"url": f"http://127.0.0.1:{port}/hook"})
    with pytest.raises(DeliveryError, match=r"connection failed \(ConnectError\), after 3") as e:
        deliver(briefing, spec)
    assert e.value.status_code is None


def test_a_loopback_receiver_is_refused_unless_allowed(
    briefing: Briefing, receiver: Callable[..., Receiver]
) -> None:
    hook = receiver()
    spec = WebhookDelivery.model_validate({"url": hook.url})
    with pytest.raises(DeliveryError, match="a loopback address") as caught:
        deliver(briefing, spec, fast_settings(fetch_allow_private=False))
    assert "BRIEFING_FETCH_ALLOW_PRIVATE" in str(caught.value)
    assert caught.value.retryable is False
    assert hook.requests == []
    allowed = fast_settings(fetch_allow_private=False, fetch_allowed_networks="127.0.0.0/8")
    assert deliver(briefing, spec, allowed).status_code == 200


def test_a_missing_secret_sends_nothing(
    briefing: Briefing, receiver: Callable[..., Receiver]
) -> None:
    hook = receiver()
    spec = WebhookDelivery.model_validate({"url": hook.url, "secret_env": SECRET_ENV})
    with pytest.raises(DeliveryError, match=f"environment variable {SECRET_ENV}.*is not set"):
        deliver(briefing, spec)
    assert hook.requests == []
