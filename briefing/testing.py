"""Test doubles that other projects' tests (and ours) can use: a fake OpenAI-compatible server.

The server speaks real HTTP on 127.0.0.1, so the whole client stack (litellm, the OpenAI
SDK, httpx) runs as it would against a provider.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["FakeOpenAIServer", "RecordedRequest", "Reply"]


@dataclass
class Reply:
    """One scripted answer: a chat completion, or an error status with a body."""

    content: str | None = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    finish_reason: str = "stop"
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    error_message: str = "scripted error"
    #: A refusal in the message's `refusal` field (structured outputs), with no content.
    refusal: str | None = None
    #: Prompt tokens the provider says it served from its cache.
    cached_tokens: int | None = None


@dataclass
class RecordedRequest:
    """What the server received."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    #: When it arrived (time.time()).
    received_at: float = field(default_factory=time.time)

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The chat messages of the request."""
        return list(self.body.get("messages", []))


Responder = Callable[[RecordedRequest], Reply]


class FakeOpenAIServer:
    """Answers /v1/chat/completions from a queue of Replies, then from `responder` if set."""

    def __init__(self, responder: Responder | None = None, *, latency_s: float = 0.0) -> None:
        self.replies: deque[Reply] = deque()
        self.requests: list[RecordedRequest] = []
        self.responder = responder
        self.latency_s = latency_s
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def base_url(self) -> str:
        """The api_base to give a client."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def queue(self, *replies: Reply) -> None:
        """Append scripted replies, answered in order."""
        with self._lock:
            self.replies.extend(replies)

    def start(self) -> FakeOpenAIServer:
        """Start serving in a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _next_reply(self, request: RecordedRequest) -> Reply:
        with self._lock:
            self.requests.append(request)
            if self.replies:
                return self.replies.popleft()
        if self.responder is not None:
            return self.responder(request)
        return Reply(status=500, error_message="fake server: no scripted reply left")

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in separate writes; with Nagle's algorithm on, the
            # body waits for the client's delayed ACK, about 40 ms a call.
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b"{}"
                try:
                    body = json.loads(raw)
                except json.JSONDecodeError:
                    body = {"_raw": raw.decode("utf-8", "replace")}
                request = RecordedRequest(self.path, dict(self.headers.items()), body)
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self._send(404, {"error": {"message": f"no route {self.path}"}}, {})
                    return
                reply = fake._next_reply(request)
                delay = reply.delay_s + fake.latency_s
                if delay:
                    time.sleep(delay)
                if reply.status != 200:
                    payload = {"error": {"message": reply.error_message, "type": "fake_error"}}
                    self._send(reply.status, payload, reply.headers)
                    return
                self._send(200, _completion(request, reply), reply.headers)

            def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str]) -> None:
                data = json.dumps(payload).encode("utf-8")
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for key, value in headers.items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test); nothing to answer

        return Handler


def _completion(request: RecordedRequest, reply: Reply) -> dict[str, Any]:
    content = reply.content or ""
    prompt_chars = sum(len(str(m.get("content", ""))) for m in request.messages)
    prompt_tokens = reply.prompt_tokens if reply.prompt_tokens is not None else prompt_chars // 4
    completion_tokens = (
        reply.completion_tokens
        if reply.completion_tokens is not None
        else max(1, len(content) // 4)
    )
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if reply.refusal is not None:
        message = {"role": "assistant", "content": None, "refusal": reply.refusal}
    usage: dict[str, Any] = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    if reply.cached_tokens is not None:
        usage["prompt_tokens_details"] = {"cached_tokens": reply.cached_tokens}
    return {
        "id": f"chatcmpl-fake-{len(request.messages)}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": str(request.body.get("model", "fake")),
        "choices": [{"index": 0, "message": message, "finish_reason": reply.finish_reason}],
        "usage": usage,
    }
