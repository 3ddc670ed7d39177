"""A fake OpenAI-compatible provider for the benchmarks, run in its own process.

It answers the project's prompts (extract-claims, condense-claims, briefing, judge-claim)
with plausible, schema-valid JSON: a map answer lists about one claim per three sentences,
each citing its sentence; a condense answer merges claims pairwise; the briefing answer has a
title, three summary points, up to eight key points and no disagreements. An answer never
exceeds the request's max_tokens: it holds as many items as fit. `usage` reports
tokens counted with tiktoken (o200k_base, OpenAI's chat accounting), so token figures are
real counts of what was sent. Every call takes `latency` seconds from when its request was
read, however long the answer took to make, so the provider's own work is not counted as the
pipeline's.

As a process: `python benchmarks/fake_provider.py --latency 0.2` prints its base URL, then
reads commands on stdin: `stats` prints (and resets) a JSON line of calls and tokens per
prompt, `quit` (or end of input) stops it.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import IO, Any

from briefing.models.tokens import get_encoding
from briefing.testing import FakeOpenAIServer, RecordedRequest, Reply

ENCODING = "o200k_base"
#: A sentence line of extract-claims: "[S12] text" (version 1) or "S12 text" (version 2).
_SENTENCE = re.compile(r"^\[?(S\d+)\]? (.*)$", re.MULTILINE)
#: A claim line: "[C12] ([3]) text" (briefing@1, condense-claims@1) or "[C12] text" (briefing@2).
_CLAIM = re.compile(r"^\[?(C\d+)\]? (?:\([^)]*\) )?(.*)$", re.MULTILINE)
_MAX_CLAIMS = re.compile(r"at most (\d+) claims")
#: A source block of extract-claims@2 and its claim budget.
_SOURCE_BLOCK = re.compile(r'^<source title="[^"]*" claims="(\d+)">\n(.*?)^</source>', re.M | re.S)
#: Words kept of a sentence when the fake "restates" it as a claim.
_CLAIM_WORDS = 24


def chat_tokens(messages: list[dict[str, Any]]) -> int:
    """Prompt tokens of chat messages as OpenAI counts them: 3 per message, 3 to prime."""
    enc = get_encoding(ENCODING)
    texts = [str(m.get("content", "")) for m in messages]
    return sum(len(ids) + 3 for ids in enc.encode_batch(texts, disallowed_special=())) + 3


def text_tokens(text: str) -> int:
    """Tokens of a plain text in the benchmark's encoding."""
    return len(get_encoding(ENCODING).encode(text, disallowed_special=()))


def _restate(text: str) -> str:
    words = text.split()
    return " ".join(words[:_CLAIM_WORDS]) or "The source makes a statement."


def kind_of(request: RecordedRequest) -> str:
    """Which of the project's prompts a request renders."""
    system = str(request.messages[0].get("content", "")) if request.messages else ""
    if "extract factual claims" in system:
        return "map"
    if "You condense a list of claims" in system:
        return "condense"
    if "You check whether a claim is supported" in system:
        return "judge"
    if "You write a short, neutral briefing" in system:
        return "reduce"
    return "other"


def _within(items: list[dict[str, Any]], budget: int) -> list[dict[str, Any]]:
    """The leading items whose JSON fits `budget` tokens: a model stops at max_tokens, and a
    good one plans its answer to end before it."""
    kept: list[dict[str, Any]] = []
    used = 0
    for item in items:
        used += text_tokens(json.dumps(item)) + 1
        if used > budget:
            break
        kept.append(item)
    return kept


def answer(kind: str, user: str, max_tokens: int | None = None) -> dict[str, Any]:
    """The JSON a plausible model gives to the prompt of `kind` with this user message."""
    budget = (max_tokens or 100_000) - 40  # the object's own braces and keys
    if kind == "map":
        # Every third sentence, up to the claims asked of each source (extract-claims@2),
        # or 12 for a one-source request of version 1.
        blocks = _SOURCE_BLOCK.findall(user)
        if blocks:
            picked = [pair for n, body in blocks for pair in _SENTENCE.findall(body)[::3][: int(n)]]
        else:
            picked = _SENTENCE.findall(user)[::3][:12]
        extracted = [{"text": _restate(t), "sentence_ids": [i]} for i, t in picked]
        return {"claims": _within(extracted, budget)}
    if kind == "condense":
        claims = _CLAIM.findall(user)
        wanted = _MAX_CLAIMS.search(user)
        limit = int(wanted.group(1)) if wanted else max(1, len(claims) // 2)
        pairs = [claims[i : i + 2] for i in range(0, len(claims), 2)][:limit]
        merged = [
            {"text": _restate(pair[0][1]), "claim_ids": [c[0] for c in pair]} for pair in pairs
        ]
        return {"claims": _within(merged, budget)}
    if kind == "reduce":
        claims = _CLAIM.findall(user)
        points = [{"text": _restate(t), "claim_ids": [i]} for i, t in claims]
        return {
            "title": "Briefing: " + _restate(claims[0][1] if claims else "sources")[:80],
            "summary": points[:3],
            "key_points": points[3:11],
            "disagreements": [],
        }
    if kind == "judge":
        return {"verdict": "supported", "confidence": 0.9, "evidence": []}
    return {}


class Stats:
    """Calls and tokens per prompt kind, thread-safe."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: Counter[str] = Counter()
        self.prompt_tokens: Counter[str] = Counter()
        self.completion_tokens: Counter[str] = Counter()

    def add(self, kind: str, prompt: int, completion: int) -> None:
        with self.lock:
            self.calls[kind] += 1
            self.prompt_tokens[kind] += prompt
            self.completion_tokens[kind] += completion

    def take(self) -> dict[str, dict[str, int]]:
        """The counts so far, which are then reset."""
        with self.lock:
            out = {
                "calls": dict(self.calls),
                "prompt_tokens": dict(self.prompt_tokens),
                "completion_tokens": dict(self.completion_tokens),
            }
            self.calls.clear()
            self.prompt_tokens.clear()
            self.completion_tokens.clear()
        return out


def make_server(latency_s: float, stats: Stats | None = None) -> FakeOpenAIServer:
    """A FakeOpenAIServer answering the project's prompts after `latency_s` per call."""
    server = FakeOpenAIServer()
    # The handler writes headers and body separately; with Nagle's algorithm on, the body
    # waits for the client's delayed ACK (40 ms on Linux), a stall no real provider has.
    server._server.RequestHandlerClass.disable_nagle_algorithm = True

    def respond(request: RecordedRequest) -> Reply:
        started = time.perf_counter()
        kind = kind_of(request)
        user = str(request.messages[-1].get("content", "")) if request.messages else ""
        max_tokens = request.body.get("max_tokens")
        content = json.dumps(
            answer(kind, user, max_tokens if isinstance(max_tokens, int) else None)
        )
        prompt = chat_tokens(request.messages)
        completion = text_tokens(content)
        if stats is not None:
            stats.add(kind, prompt, completion)
        # Bodies are not kept: a long run would hold every prompt ever sent.
        with server._lock:
            server.requests.clear()
        spent = time.perf_counter() - started
        return Reply(
            content=content,
            prompt_tokens=prompt,
            completion_tokens=completion,
            delay_s=max(0.0, latency_s - spent),
        )

    server.responder = respond
    return server


class ProviderProcess:
    """The fake provider in a child process, so its CPU is not the measured process's."""

    def __init__(self, latency_s: float) -> None:
        self.latency_s = latency_s
        self.process = subprocess.Popen(  # noqa: S603 - our own command line
            [sys.executable, str(Path(__file__).resolve()), "--latency", str(latency_s)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.base_url = self.process.stdout.readline().strip()
        if not self.base_url.startswith("http"):
            self.close()
            raise RuntimeError("the fake provider did not start")

    def stats(self) -> dict[str, dict[str, int]]:
        """Calls and tokens per prompt kind since the last call; then reset."""
        stdin: IO[str] | None = self.process.stdin
        assert stdin is not None
        assert self.process.stdout is not None
        stdin.write("stats\n")
        stdin.flush()
        data: dict[str, dict[str, int]] = json.loads(self.process.stdout.readline())
        return data

    def close(self) -> None:
        """Stop the child process."""
        if self.process.poll() is None:
            try:
                assert self.process.stdin is not None
                self.process.stdin.write("quit\n")
                self.process.stdin.close()
                self.process.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> ProviderProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def main() -> None:
    """Serve until `quit` or end of input; print the base URL first."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.2, help="seconds per call")
    args = parser.parse_args()
    get_encoding(ENCODING)  # loaded before the first request, not during it
    stats = Stats()
    with make_server(args.latency, stats) as server:
        print(server.base_url, flush=True)
        for line in sys.stdin:
            command = line.strip()
            if command == "stats":
                print(json.dumps(stats.take()), flush=True)
            elif command == "quit":
                break


if __name__ == "__main__":
    main()
