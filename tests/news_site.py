"""A small news site on 127.0.0.1 for the fetch and collector tests.

It serves the articles and feeds of tests/fixtures/news ({{BASE}} in them becomes the site's
own address), honours conditional requests for pages given an ETag or Last-Modified, and
can answer slowly, trickle a body, redirect, or send more than a fetch may read. It records
every request it receives. Waits end when the site stops, so no test outlives it.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

FIXTURES = Path(__file__).parent / "fixtures" / "news"
#: No scripted wait lasts longer than this, whatever a test asks.
MAX_DELAY_S = 10.0


@dataclass
class Page:
    """One scripted answer."""

    body: bytes = b""
    content_type: str | None = "text/html; charset=utf-8"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    etag: str | None = None
    last_modified: str | None = None
    #: Seconds before the status line is sent.
    delay_s: float = 0.0
    #: Send the body in chunked encoding (no Content-Length), `chunk_size` bytes at a time,
    #: pausing `chunk_delay_s` between chunks.
    chunked: bool = False
    chunk_size: int = 1024
    chunk_delay_s: float = 0.0
    #: A Content-Length to announce instead of the body's (to test early refusal).
    declared_length: int | None = None


@dataclass
class Hit:
    """A request the site received."""

    path: str
    headers: dict[str, str]


class NewsSite:
    """Serves scripted pages until stopped; use as a context manager."""

    def __init__(self) -> None:
        self.pages: dict[str, Page] = {}
        self.hits: list[Hit] = []
        #: Requests being answered now, and the most there were at once.
        self.in_flight = 0
        self.most_in_flight = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def port(self) -> int:
        """The port the site listens on."""
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """http://127.0.0.1:PORT"""
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        """The absolute URL of `path` on this site."""
        return f"{self.base_url}{path}"

    def fixture(self, name: str) -> bytes:
        """A fixture file with {{BASE}} replaced by this site's address."""
        text = (FIXTURES / name).read_text(encoding="utf-8")
        return text.replace("{{BASE}}", self.base_url).encode("utf-8")

    def serve(self, path: str, page: Page) -> Page:
        """Answer GET `path` with `page` from now on."""
        with self._lock:
            self.pages[path] = page
        return page

    def serve_fixture(self, path: str, name: str, **options: Any) -> Page:
        """Serve a fixture file; HTML unless `content_type` says otherwise."""
        return self.serve(path, Page(body=self.fixture(name), **options))

    def redirect(self, path: str, location: str, status: int = 302) -> None:
        """Answer GET `path` with a redirect to `location`."""
        self.serve(path, Page(status=status, headers={"Location": location}, content_type=None))

    def hits_for(self, path: str) -> list[Hit]:
        """The requests received for `path`, oldest first."""
        with self._lock:
            return [hit for hit in self.hits if hit.path == path]

    def start(self) -> NewsSite:
        """Start serving in a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; scripted waits end at once."""
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> NewsSite:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _wait(self, seconds: float) -> None:
        self._stopping.wait(min(seconds, MAX_DELAY_S))

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        site = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                path = urlsplit(self.path).path
                headers = {key.lower(): value for key, value in self.headers.items()}
                with site._lock:
                    site.hits.append(Hit(path, headers))
                    page = site.pages.get(path)
                    site.in_flight += 1
                    site.most_in_flight = max(site.most_in_flight, site.in_flight)
                if page is None:
                    page = Page(body=b"not found", content_type="text/plain", status=404)
                # The client may give up (a cap or timeout test): nothing more to say then.
                try:
                    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                        self._answer(page, headers)
                finally:
                    with site._lock:
                        site.in_flight -= 1

            def _answer(self, page: Page, headers: dict[str, str]) -> None:
                if page.delay_s:
                    site._wait(page.delay_s)
                if _unchanged(page, headers):
                    self.send_response(304)
                    if page.etag:
                        self.send_header("ETag", page.etag)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(page.status)
                if page.content_type:
                    self.send_header("Content-Type", page.content_type)
                if page.etag:
                    self.send_header("ETag", page.etag)
                if page.last_modified:
                    self.send_header("Last-Modified", page.last_modified)
                for key, value in page.headers.items():
                    self.send_header(key, value)
                if not page.chunked:
                    length = page.declared_length
                    self.send_header("Content-Length", str(length or len(page.body)))
                    self.end_headers()
                    self.wfile.write(page.body)
                    return
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for start in range(0, len(page.body), page.chunk_size):
                    if site._stopping.is_set():
                        return
                    chunk = page.body[start : start + page.chunk_size]
                    self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                    self.wfile.flush()
                    if page.chunk_delay_s:
                        site._wait(page.chunk_delay_s)
                self.wfile.write(b"0\r\n\r\n")

        return Handler


def _unchanged(page: Page, headers: dict[str, str]) -> bool:
    if page.etag and "if-none-match" in headers:
        return page.etag in [tag.strip() for tag in headers["if-none-match"].split(",")]
    if page.last_modified and "if-modified-since" in headers:
        return headers["if-modified-since"] == page.last_modified
    return False
