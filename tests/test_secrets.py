"""Secrets of a schedule stay out of every log line, error, API response and database row.

A schedule file plants three secrets: the path of a webhook URL (the common
`/hooks/<secret>` form), the `token` query parameter of a feed URL, and a webhook header.
The day's run fails its first delivery and a retry succeeds; a second feed and a second
webhook fail for good. Then everything the service says or keeps is searched for them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from news_site import NewsSite
from sqlalchemy import MetaData, select
from test_delivery import Reply, receiver  # noqa: F401  (the webhook receiver fixture)

from briefing.config import Settings
from briefing.daily.runs import retry_deliveries, run_schedule, schedules_of
from briefing.service import create_app
from briefing.store import Store

pytestmark = pytest.mark.usefixtures("no_briefing_env")

T0 = datetime(2026, 11, 20, 6, 0, tzinfo=UTC)
HOOK_SECRET = "hk7Q2wSecretPath91"
FEED_SECRET = "fd3ZtokenValue55x"
HEADER_SECRET = "hdr8BearerValue4k"
SECRETS = (HOOK_SECRET, FEED_SECRET, HEADER_SECRET)


def _leaks(text: str) -> list[str]:
    return [s for s in SECRETS if s in text]


def _rows(store: Store) -> Iterator[tuple[str, str]]:
    """Every row of every table, as text."""
    meta = MetaData()
    meta.reflect(store.engine)
    with store.engine.connect() as connection:
        for table in meta.sorted_tables:
            for row in connection.execute(select(table)):
                yield table.name, repr(tuple(row))


def test_no_secret_in_logs_errors_api_or_database(
    tmp_path: Path,
    store_url: str,
    receiver: Callable[..., Any],  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    hook = receiver(Reply(503), Reply(200), path=f"/hooks/T01/B02/{HOOK_SECRET}")
    with NewsSite() as site:
        for name in ("harbour", "council", "ferry"):
            site.serve_fixture(f"/news/{name}.html", f"{name}.html")
        site.serve_fixture("/feeds/rss.xml", "rss.xml", content_type="application/rss+xml")
        feed = site.url(f"/feeds/rss.xml?lang=en&token={FEED_SECRET}")
        gone = site.url(f"/feeds/gone.xml?token={FEED_SECRET}")
        # A closed port: this webhook fails for good, and names its URL in its error.
        dead = f"http://127.0.0.1:9/hooks/{HOOK_SECRET}"
        schedules_file = tmp_path / "schedules.toml"
        schedules_file.write_text(
            f"""
[[schedule]]
name = "morning"
cron = "0 7 * * *"
sources = [{{ kind = "feed", url = "{feed}" }}, {{ kind = "feed", url = "{gone}" }}]
deliver = [
  {{ kind = "store" }},
  {{ kind = "webhook", url = "{hook.url}", headers = {{ Authorization = "Bearer {HEADER_SECRET}" }} }},
  {{ kind = "webhook", url = "{dead}", timeout_s = 2 }},
]
""",
            "utf-8",
        )
        settings = Settings(
            database_url=store_url,
            schedules_file=schedules_file,
            call_log=tmp_path / "calls.db",
            fetch_allowed_networks="127.0.0.1/32",
            delivery_max_attempts=1,
            delivery_backoff_s=0,
        )
        store = Store(store_url)
        try:
            [schedule] = schedules_of(settings, store)
            outcome = run_schedule(schedule, store, settings, now=T0)
            assert outcome.status == "succeeded", outcome.message
            assert any("gone.xml" in w for w in outcome.run.warnings)  # type: ignore[union-attr]
            # The signed receiver failed once; the retry finds the spec, secrets and all,
            # in the schedules file, since the store keeps it redacted.
            retried = retry_deliveries(store, settings, now=T0 + timedelta(minutes=2))
            by_target = {d.target: d for d in retried}
            delivered = [d for d in retried if d.status == "delivered"]
            assert len(delivered) == 1, by_target
            assert hook.requests[-1].headers["Authorization"] == f"Bearer {HEADER_SECRET}"
            assert len(hook.requests) == 2
            failed = [d for d in store.deliveries.of_run(outcome.run.id) if d.kind == "webhook"]  # type: ignore[union-attr]
            assert any(d.last_error for d in failed)

            texts: dict[str, str] = {"outcome": outcome.message}
            texts.update({f"retry {d.id}": repr(d) for d in retried})
            with TestClient(create_app(settings, store=store, run_jobs=False)) as client:
                for path in (
                    "/v1/schedules",
                    "/v1/schedules/morning",
                    "/v1/schedules/morning/runs",
                    f"/v1/briefings/{outcome.run.job_id}",  # type: ignore[union-attr]
                    "/v1/briefings",
                    "/v1/sources",
                    "/schedules/morning",
                ):
                    response = client.get(path)
                    assert response.status_code in (200, 303), (path, response.text)
                    texts[path] = response.text
            for name, row in _rows(store):
                texts[f"row of {name}"] = row
        finally:
            store.close()

    for record in caplog.records:
        texts[f"log {record.name}"] = record.getMessage() + (record.exc_text or "")
    leaked = {where: _leaks(text) for where, text in texts.items() if _leaks(text)}
    assert leaked == {}
    # And the searches did look at what holds the URLs: the redacted forms are there.
    assert any("/hooks/***" in t for t in texts.values())
    assert any("token=***" in t for t in texts.values())
