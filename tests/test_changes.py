"""What changed since the last run (`briefing.daily.changes`), and the map cache behind it.

A schedule over a folder of living documents (`scope = "all"`) runs on three days of a fake
clock against the fake provider; the files change between days. Store-backed cases run on
SQLite, and on PostgreSQL when BRIEFING_TEST_POSTGRES_URL is set.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import TEST_API_KEY, TEST_MODEL

from briefing.cli import main
from briefing.config import Settings
from briefing.daily.changes import diff_briefings
from briefing.daily.runs import run_schedule
from briefing.daily.schedules import Schedule
from briefing.faithfulness.checker import Checker
from briefing.schema import Briefing, Changes, Citation, Claim, Source
from briefing.store import Store
from briefing.testing import FakeOpenAIServer, RecordedRequest, Reply
from briefing.text.segment import sentence_spans
from briefing.text.sources import source_from_text

pytestmark = pytest.mark.usefixtures("no_briefing_env")

T0 = datetime(2026, 11, 20, 6, 0, tzinfo=UTC)  # 07:00 in Berlin

REVENUE_5 = "Acme Corp reported revenue of 5 billion dollars for 2026."
REVENUE_7 = "Acme Corp reported revenue of 7 billion dollars for 2026."
STAFF = "The company employs 1,200 engineers at its Berlin campus."
BRIDGE = "The city council approved the new river bridge on Monday."
WORKS = "Construction of the bridge will start in March."
SNOW = "Heavy snow closed the main airport for six hours on Tuesday."

_SENTENCE_LINE = re.compile(r"^\[?(S\d+)\]? (.*)$", re.MULTILINE)
_CLAIM_LINE = re.compile(r"^\[?(C\d+)\]? (?:\([^)]*\) )?(.*)$", re.MULTILINE)


def _step(request: RecordedRequest) -> str:
    user = request.messages[1]["content"]
    return "map" if "<source" in user else "reduce"


def _verbatim(request: RecordedRequest) -> Reply:
    """A model that takes every sentence as a claim and every claim as a key point."""
    user = request.messages[1]["content"]
    if _step(request) == "map":
        claims = [
            {"text": text, "sentence_ids": [sid]} for sid, text in _SENTENCE_LINE.findall(user)
        ]
        return Reply(content=json.dumps({"claims": claims}))
    points = [{"text": text, "claim_ids": [cid]} for cid, text in _CLAIM_LINE.findall(user)]
    return Reply(
        content=json.dumps({"title": "Morning", "summary": points[:1], "key_points": points[1:]})
    )


@pytest.fixture
def provider() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(_verbatim) as server:
        yield server


@pytest.fixture
def settings(tmp_path: Path, store_url: str, provider: FakeOpenAIServer) -> Settings:
    return Settings(
        database_url=store_url,
        api_base=provider.base_url,
        api_key=TEST_API_KEY,
        call_log=tmp_path / "calls.db",
        retry_initial_s=0.01,
    )


def _schedule(tmp_path: Path, **fields: Any) -> Schedule:
    definition: dict[str, Any] = {
        "name": "reports",
        "cron": "0 7 * * *",
        "timezone": "Europe/Berlin",
        "model": TEST_MODEL,
        "scope": "all",
        "sources": [{"kind": "folder", "path": "docs", "glob": "*.txt"}],
        "deliver": [{"kind": "store"}, {"kind": "dir", "path": "out", "formats": ["md", "json"]}],
        **fields,
    }
    return Schedule.model_validate(definition).with_base_dir(tmp_path)


def _write(folder: Path, files: dict[str, str]) -> None:
    folder.mkdir(exist_ok=True)
    for old in folder.glob("*.txt"):
        if old.name not in files:
            old.unlink()
    for name, text in files.items():
        path = folder / name
        if not path.exists() or path.read_text("utf-8") != text:
            path.write_text(text, "utf-8")


def _assert_cites(claim: Claim, sources: list[Source]) -> None:
    texts = {s.id: s.text for s in sources}
    assert claim.citations, claim
    for c in claim.citations:
        assert texts[c.source_id][c.start : c.end] == c.quote


def _maps(provider: FakeOpenAIServer) -> int:
    return sum(_step(r) == "map" for r in provider.requests)


def test_three_days_of_a_changing_folder(
    tmp_path: Path, store: Store, settings: Settings, provider: FakeOpenAIServer
) -> None:
    docs = tmp_path / "docs"
    schedule = _schedule(tmp_path)

    # Day 1: two reports. Nothing to compare with yet.
    _write(docs, {"acme.txt": f"{REVENUE_5} {STAFF}\n", "city.txt": f"{BRIDGE} {WORKS}\n"})
    first = run_schedule(schedule, store, settings, now=T0)
    assert first.status == "succeeded", first.message
    assert first.briefing is not None
    assert first.briefing.changes is None
    assert _maps(provider) >= 1
    assert first.briefing.usage.cache_hits == 0

    # Day 2: no file changed. Every source's map result comes from the cache.
    maps_before = _maps(provider)
    second = run_schedule(schedule, store, settings, now=T0 + timedelta(days=1))
    assert second.status == "succeeded", second.message
    assert _maps(provider) == maps_before  # zero map calls
    assert second.briefing is not None
    assert second.briefing.usage.cache_hits == 2
    changes = second.briefing.changes
    assert changes is not None
    assert changes.since == first.briefing.id
    assert (changes.new, changes.updated, changes.dropped) == ([], [], [])
    assert changes.unchanged == 4
    assert {s.status for s in changes.sources} == {"unchanged"}
    assert changes.empty

    # Day 3: the revenue changed, the city report is gone, a weather report is new.
    _write(docs, {"acme.txt": f"{REVENUE_7} {STAFF}\n", "weather.txt": f"{SNOW}\n"})
    third = run_schedule(schedule, store, settings, now=T0 + timedelta(days=2))
    assert third.status == "succeeded", third.message
    briefing = third.briefing
    assert briefing is not None
    assert briefing.changes is not None
    changes = briefing.changes
    assert changes.since == second.briefing.id
    assert [c.text for c in changes.new] == [SNOW]
    assert [(u.before.text, u.after.text) for u in changes.updated] == [(REVENUE_5, REVENUE_7)]
    assert changes.updated[0].conflicts == ['a different number: "7" vs "5"']
    assert sorted(c.text for c in changes.dropped) == sorted([BRIDGE, WORKS])
    assert changes.unchanged == 1  # the staff count
    statuses = {Path(s.path or "").name: s.status for s in changes.sources}
    assert statuses == {"acme.txt": "edited", "weather.txt": "new", "city.txt": "removed"}
    edited = next(s for s in changes.sources if s.status == "edited")
    assert edited.previous_id in {s.id for s in second.briefing.sources}

    # Both sides cite exactly: the later claims this day's sources, the earlier ones the
    # previous day's, which the changes carry where today's briefing lacks them.
    earlier = [*briefing.sources, *changes.since_sources]
    for claim in changes.new:
        _assert_cites(claim, briefing.sources)
    for update in changes.updated:
        _assert_cites(update.after, briefing.sources)
        _assert_cites(update.before, changes.since_sources)
    for claim in changes.dropped:
        _assert_cites(claim, changes.since_sources)
    assert {s.id for s in changes.since_sources} <= {s.id for s in second.briefing.sources}
    assert all(any(s.id == c.source_id for s in earlier) for c in briefing.changes.new[0].citations)

    # The stored briefing keeps them; the delivered Markdown opens with them.
    stored = Briefing.model_validate(store.jobs.get(briefing.id).result)
    assert stored.changes == changes
    markdown = (tmp_path / "out" / "reports-2026-11-22.md").read_text("utf-8")
    assert "## What changed since" in markdown
    assert markdown.index("## What changed since") < markdown.index("## Summary")
    for heading in ("### New", "### Updated", "### No longer said"):
        assert heading in markdown
    assert "in the earlier briefing only" in markdown


def test_a_changes_only_delivery_carries_only_what_changed(
    tmp_path: Path, store: Store, settings: Settings
) -> None:
    docs = tmp_path / "docs"
    schedule = _schedule(
        tmp_path,
        deliver=[{"kind": "dir", "path": "out", "formats": ["md", "json"], "content": "changes"}],
    )
    _write(docs, {"acme.txt": f"{REVENUE_5} {STAFF}\n"})
    assert run_schedule(schedule, store, settings, now=T0).status == "succeeded"
    # The first run has nothing to compare with: the whole briefing goes out.
    first = (tmp_path / "out" / "reports-2026-11-20.md").read_text("utf-8")
    assert "## Key points" in first

    _write(docs, {"acme.txt": f"{REVENUE_7} {STAFF}\n"})
    outcome = run_schedule(schedule, store, settings, now=T0 + timedelta(days=1))
    assert outcome.status == "succeeded", outcome.message
    markdown = (tmp_path / "out" / "reports-2026-11-21.md").read_text("utf-8")
    assert "## What changed since" in markdown
    assert "## Key points" not in markdown
    assert REVENUE_7 in markdown
    assert REVENUE_5 in markdown
    payload = json.loads((tmp_path / "out" / "reports-2026-11-21.json").read_text("utf-8"))
    assert set(payload) == {"id", "created_at", "title", "changes", "sources"}
    changes = Changes.model_validate(payload["changes"])
    [update] = changes.updated
    texts = {s["id"]: s["text"] for s in payload["sources"]}
    for c in update.after.citations:
        assert texts[c.source_id][c.start : c.end] == c.quote
    for c in update.before.citations:
        source = next(s for s in changes.since_sources if s.id == c.source_id)
        assert source.text[c.start : c.end] == c.quote


def test_a_changed_prompt_model_or_chunking_misses_the_cache(
    tmp_path: Path, store: Store, settings: Settings, provider: FakeOpenAIServer
) -> None:
    _write(tmp_path / "docs", {"acme.txt": f"{REVENUE_5} {STAFF}\n"})
    schedule = _schedule(tmp_path)
    run_schedule(schedule, store, settings, now=T0)
    maps = _maps(provider)
    # Another chunk size is another key: the source is mapped again.
    changed = settings.model_copy(update={"chunk_tokens": 3000})
    outcome = run_schedule(schedule, store, changed, now=T0 + timedelta(days=1))
    assert outcome.briefing is not None
    assert outcome.briefing.usage.cache_hits == 0
    assert _maps(provider) == maps + 1
    # And with the cache turned off nothing is read or written.
    off = settings.model_copy(update={"map_cache": False})
    outcome = run_schedule(schedule, store, off, now=T0 + timedelta(days=2))
    assert outcome.briefing is not None
    assert outcome.briefing.usage.cache_hits == 0
    assert _maps(provider) == maps + 2
    assert store.map_cache.stats().entries == 2


def test_cache_stats_and_clear_from_the_command_line(
    tmp_path: Path, store: Store, store_url: str, settings: Settings
) -> None:
    _write(tmp_path / "docs", {"acme.txt": f"{REVENUE_5} {STAFF}\n", "w.txt": f"{SNOW}\n"})
    run_schedule(_schedule(tmp_path), store, settings, now=T0)
    runner = CliRunner()
    env = {"BRIEFING_DATABASE_URL": store_url}
    shown = runner.invoke(main, ["cache", "stats", "--format", "json"], env=env)
    assert shown.exit_code == 0, shown.output
    stats = json.loads(shown.stdout)
    assert (stats["entries"], stats["sources"], stats["claims"]) == (2, 2, 3)
    cleared = runner.invoke(main, ["cache", "clear", "--yes"], env=env)
    assert cleared.exit_code == 0, cleared.output
    assert "2 entries removed" in cleared.output
    assert store.map_cache.stats().entries == 0


# ---------------------------------------------------------------- diff by meaning


def _briefing(bid: str, texts: dict[str, str], at: datetime) -> Briefing:
    sources = [source_from_text(t, title=name, path=f"/r/{name}") for name, t in texts.items()]
    claims = [
        Claim(
            id=f"K{n}",
            text=s.text[a:b],
            citations=[Citation(source_id=s.id, start=a, end=b, quote=s.text[a:b])],
        )
        for s in sources
        for n, (a, b) in enumerate(sentence_spans(s.text), start=1)
    ]
    return Briefing(
        id=bid,
        created_at=at,
        title=bid,
        engine="llm",
        model=TEST_MODEL,
        prompt=None,
        sources=sources,
        summary=claims[:1],
        key_points=claims[1:],
    )


async def test_a_paraphrase_is_unchanged_and_a_reversal_is_an_update() -> None:
    before = _briefing(
        "a",
        {"city.txt": "The city council approved the river bridge plan on Monday.\n"
                     "The mayor said the works would cost 40 million euros.\n"},
        T0,
    )  # fmt: skip
    after = _briefing(
        "b",
        {"city.txt": "On Monday the city council approved the plan for the river bridge.\n"
                     "The mayor said the works would not cost 40 million euros.\n"},
        T0 + timedelta(days=1),
    )  # fmt: skip
    changes = await diff_briefings(before, after, Checker(Settings(), "offline"))
    assert changes.unchanged == 1
    assert changes.new == []
    assert changes.dropped == []
    [update] = changes.updated
    assert "not" in update.after.text
    assert "not" not in update.before.text
    assert any(c.startswith("negated") for c in update.conflicts)


def test_briefing_diff_of_two_stored_briefings(store: Store, store_url: str) -> None:
    before = _briefing("one", {"acme.txt": f"{REVENUE_5}\n{STAFF}\n"}, T0)
    after = _briefing("two", {"acme.txt": f"{REVENUE_7}\n{STAFF}\n{SNOW}\n"}, T0 + timedelta(1))
    for briefing in (before, after):
        for source in briefing.sources:
            store.sources.add(source)
        store.jobs.add_finished(
            briefing.id,
            {"source_ids": [s.id for s in briefing.sources]},
            [s.id for s in briefing.sources],
            result=briefing.model_dump(mode="json"),
        )
    runner = CliRunner()
    env = {"BRIEFING_DATABASE_URL": store_url}
    shown = runner.invoke(main, ["diff", "one", "two", "--format", "json"], env=env)
    assert shown.exit_code == 0, shown.output
    changes = Changes.model_validate_json(shown.stdout)
    assert [c.text for c in changes.new] == [SNOW]
    assert [(u.before.text, u.after.text) for u in changes.updated] == [(REVENUE_5, REVENUE_7)]
    assert (changes.dropped, changes.unchanged) == ([], 1)
    markdown = runner.invoke(main, ["diff", "one", "two"], env=env)
    assert markdown.exit_code == 0, markdown.output
    assert "## What changed since 2026-11-20 06:00 UTC" in markdown.stdout
    # A later briefing first is refused: the order says which side is "before".
    backwards = runner.invoke(main, ["diff", "two", "one"], env=env)
    assert backwards.exit_code != 0
    assert "is older than" in backwards.output
    missing = runner.invoke(main, ["diff", "one", "nope"], env=env)
    assert missing.exit_code != 0
    assert "nope" in missing.output


def test_a_later_run_on_an_earlier_date_is_not_compared_with_a_future_one(
    tmp_path: Path, store: Store, settings: Settings
) -> None:
    _write(tmp_path / "docs", {"acme.txt": f"{REVENUE_5} {STAFF}\n"})
    schedule = _schedule(tmp_path)
    run_schedule(schedule, store, settings, now=T0 + timedelta(days=3))
    outcome = run_schedule(schedule, store, settings, run_date=date(2026, 11, 20), now=T0)
    assert outcome.briefing is not None
    assert outcome.briefing.changes is None


def test_changes_over_http(
    tmp_path: Path, store: Store, settings: Settings, provider: FakeOpenAIServer
) -> None:
    from fastapi.testclient import TestClient

    from briefing.service import create_app

    docs = tmp_path / "docs"
    schedule = _schedule(tmp_path)
    _write(docs, {"acme.txt": f"{REVENUE_5} {STAFF}\n"})
    first = run_schedule(schedule, store, settings, now=T0)
    _write(docs, {"acme.txt": f"{REVENUE_7} {STAFF}\n", "weather.txt": f"{SNOW}\n"})
    second = run_schedule(schedule, store, settings, now=T0 + timedelta(days=1))
    assert first.briefing is not None
    assert second.briefing is not None
    with TestClient(create_app(settings, store=store, run_jobs=False)) as client:
        stored = client.get(f"/v1/briefings/{second.briefing.id}/changes")
        assert stored.status_code == 200, stored.text
        changes = Changes.model_validate(stored.json())
        assert changes == second.briefing.changes
        assert [c.text for c in changes.new] == [SNOW]
        # Any earlier briefing, computed on request.
        asked = client.get(
            f"/v1/briefings/{second.briefing.id}/changes", params={"since": first.briefing.id}
        )
        assert asked.status_code == 200, asked.text
        assert Changes.model_validate(asked.json()).updated[0].after.text == REVENUE_7
        markdown = client.get(
            f"/v1/briefings/{second.briefing.id}/changes", params={"format": "md"}
        )
        assert markdown.status_code == 200
        assert markdown.headers["content-type"].startswith("text/markdown")
        assert "### Updated" in markdown.text
        # The first run has no changes of its own: a 404 problem that says what to ask.
        none = client.get(f"/v1/briefings/{first.briefing.id}/changes")
        assert none.status_code == 404
        assert "?since=" in none.json()["detail"]
        backwards = client.get(
            f"/v1/briefings/{first.briefing.id}/changes", params={"since": second.briefing.id}
        )
        assert backwards.status_code == 422, backwards.text
        assert "earlier one" in backwards.json()["detail"]
        # The briefing itself carries them too.
        whole = client.get(f"/v1/briefings/{second.briefing.id}").json()
        assert whole["changes"]["since"] == first.briefing.id
        # Its page opens with them; the earlier side's chips open the earlier source.
        page = client.get(f"/briefings/{second.briefing.id}")
        assert page.status_code == 200
        html = page.text
        assert html.index("What changed since") < html.index('id="h-summary"')
        assert "Updated" in html
        assert "(earlier)" in html
        earlier = len(second.briefing.sources) + 1
        [before] = changes.updated[0].before.citations
        shown = client.get(
            f"/briefings/{second.briefing.id}/sources/{earlier}",
            params={"start": before.start, "end": before.end},
        )
        assert shown.status_code == 200, shown.text
        assert "<mark" in shown.text
        assert "5 billion" in shown.text


def test_overlapping_runs_write_one_cache_entry_and_keep_the_first(store: Store) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from briefing.pipeline.mapcache import CachedClaim

    source = source_from_text(f"{REVENUE_5}\n", title="acme")
    cite = Citation(source_id=source.id, start=0, end=len(REVENUE_5), quote=REVENUE_5)
    first = [CachedClaim(text="first answer", citations=[cite])]
    store.map_cache.put("k" * 64, source.id, first)
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(
            pool.map(
                lambda n: store.map_cache.put(
                    "k" * 64, source.id, [CachedClaim(text=f"answer {n}", citations=[cite])]
                ),
                range(16),
            )
        )
        # And sixteen new keys at once, as sixteen jobs mapping sixteen sources would.
        list(pool.map(lambda n: store.map_cache.put(f"{n:064d}", source.id, first), range(16)))
    assert store.map_cache.get_many(["k" * 64]) == {"k" * 64: first}
    assert store.map_cache.stats().entries == 17
    assert store.map_cache.get_many(["missing", "\x00"]) == {}
    assert store.map_cache.clear() == 17
