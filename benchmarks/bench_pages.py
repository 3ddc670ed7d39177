"""9. Pages: server time of the page of a 1,000-claim briefing.

The briefing cites 100 sources of the benchmark corpus: 1,000 claims (5 in the summary),
each quoting one sentence exactly, every other one corroborated by a sentence of the next
source and every tenth contradicted, so the page carries 1,600 chips. It is stored in a
fresh SQLite store, and `GET /briefings/{id}` goes through the whole app in-process (routing,
the store's read, validating the Briefing, building the view, rendering, the middleware), so
no socket or browser time is counted. Median of 15 after 2 unmeasured requests.
"""

from __future__ import annotations

import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import corpus
from common import median

from briefing.config import Settings
from briefing.schema import Briefing, Citation, Claim, Corroboration, Source
from briefing.text.segment import sentence_spans

NAME = "pages"
CLAIMS = 1000
SOURCES = 100
TARGET_MS = 300.0
RUNS = 15


def _citation(source: Source, span: tuple[int, int]) -> Citation:
    start, end = span
    return Citation(source_id=source.id, start=start, end=end, quote=source.text[start:end])


def briefing(claims: int = CLAIMS, n_sources: int = SOURCES) -> Briefing:
    """A briefing of `claims` claims over `n_sources` corpus sources, every citation exact."""
    sources = corpus.sources(n_sources)
    spans = [list(sentence_spans(s.text)) for s in sources]
    made = []
    for n in range(claims):
        at = n % n_sources
        source, own = sources[at], spans[at]
        citation = _citation(source, own[(n // n_sources) % len(own)])
        other = sources[(at + 1) % n_sources]
        backing = _citation(other, spans[(at + 1) % n_sources][0])
        if n % 10 == 0:
            corroboration = Corroboration(
                status="contradicted",
                score=0.1,
                contradicting=[backing],
                conflicts=['a different number: "400" vs "900"'],
            )
        elif n % 2:
            corroboration = Corroboration(status="corroborated", score=0.8, supporting=[backing])
        else:
            corroboration = Corroboration(status="single_source", score=0.0)
        made.append(
            Claim(
                id=f"c{n + 1}",
                text=citation.quote,
                citations=[citation],
                verdict="supported",
                score=0.9,
                corroboration=corroboration,
            )
        )
    return Briefing(
        id=f"brf_{uuid.uuid4().hex}",
        title=f"A briefing of {claims:,} claims",
        engine="extractive",
        model="extractive",
        prompt=None,
        sources=sources,
        summary=made[:5],
        key_points=made[5:],
    )


def run(quick: bool = False) -> dict[str, Any]:
    """Time the page of one stored 1,000-claim briefing."""
    from fastapi.testclient import TestClient

    from briefing.service import create_app
    from briefing.store import Store
    from briefing.store.migrations import upgrade

    made = briefing()
    runs = 5 if quick else RUNS
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'pages.db'}"
        upgrade(url)
        store = Store(url)
        job_id = uuid.uuid4().hex
        store.jobs.add_finished(
            job_id, {"model": "extractive"}, [], result=made.model_dump(mode="json")
        )
        settings = Settings(database_url=url, model="extractive", log_calls=False)
        times = []
        with TestClient(create_app(settings, store=store, run_jobs=False)) as client:
            for n in range(runs + 2):
                started = time.perf_counter()
                response = client.get(f"/briefings/{job_id}")
                elapsed = time.perf_counter() - started
                if response.status_code != 200:
                    raise RuntimeError(f"the page answered {response.status_code}")
                if n >= 2:
                    times.append(elapsed * 1000)
            size = len(response.content)
            chips = response.text.count('class="chip ')
        store.close()
    ms = median(times)
    return {
        "claims": CLAIMS,
        "sources": SOURCES,
        "page_bytes": size,
        "chips": chips,
        "runs": len(times),
        "median_ms": round(ms, 1),
        "max_ms": round(max(times), 1),
        "stdev_ms": round(statistics.pstdev(times), 1),
        "all_ms": [round(t, 1) for t in times],
        "target_ms": TARGET_MS,
        "met": ms < TARGET_MS,
    }


def table(result: dict[str, Any]) -> list[list[str]]:
    """Rows of the summary table."""
    return [
        [
            "9 pages",
            f"GET /briefings/{{id}} of a {result['claims']:,}-claim briefing "
            f"({result['sources']} sources, {result['chips']:,} chips, "
            f"{result['page_bytes'] / 1e6:.1f} MB; median of {result['runs']})",
            f"{result['median_ms']:.0f} ms (max {result['max_ms']:.0f} ms)",
            f"< {result['target_ms']:.0f} ms",
            "yes" if result["met"] else "no",
        ]
    ]
