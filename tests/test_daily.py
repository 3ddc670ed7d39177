"""Daily runs (`briefing.daily.runs` and `briefing daily`): collect, brief what is new, deliver.

Store-backed cases run on SQLite, and on PostgreSQL when BRIEFING_TEST_POSTGRES_URL is set.
"""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from news_site import NewsSite
from test_delivery import Reply, receiver  # noqa: F401  (the webhook receiver fixture)

from briefing.cli import main
from briefing.config import Settings
from briefing.daily.runs import REDELIVERY_DELAYS, retry_deliveries, run_schedule, schedules_of
from briefing.daily.schedules import Schedule, load_schedules
from briefing.schema import Briefing
from briefing.store import Store

pytestmark = pytest.mark.usefixtures("no_briefing_env")

SEEDS = Path(__file__).resolve().parent.parent / "seeds"
T0 = datetime(2026, 11, 20, 6, 0, tzinfo=UTC)  # 07:00 in Berlin
DAY = date(2026, 11, 20)


@pytest.fixture
def settings(tmp_path: Path, store_url: str) -> Settings:
    return Settings(
        database_url=store_url,
        call_log=tmp_path / "calls.db",
        fetch_allowed_networks="127.0.0.1/32",
        delivery_max_attempts=1,
        delivery_backoff_s=0,
    )


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    """A folder with the two seed articles."""
    folder = tmp_path / "in"
    folder.mkdir()
    for seed in SEEDS.glob("*.txt"):
        shutil.copy(seed, folder / seed.name)
    return folder


def schedule(tmp_path: Path, **fields: Any) -> Schedule:
    definition: dict[str, Any] = {
        "name": "morning",
        "cron": "0 7 * * *",
        "timezone": "Europe/Berlin",
        "sources": [{"kind": "folder", "path": "in", "glob": "*.txt"}],
        "deliver": [{"kind": "store"}, {"kind": "dir", "path": "out", "formats": ["md", "json"]}],
        **fields,
    }
    return Schedule.model_validate(definition).with_base_dir(tmp_path)


# ---------------------------------------------------------------- a day's run


def test_a_run_briefs_the_new_items_and_delivers_them(
    tmp_path: Path, inbox: Path, store: Store, settings: Settings
) -> None:
    outcome = run_schedule(schedule(tmp_path), store, settings, now=T0)

    assert outcome.status == "succeeded", outcome.message
    assert outcome.run_date == DAY
    briefing = outcome.briefing
    assert briefing is not None
    assert {s.path for s in briefing.sources} == {str(p) for p in inbox.glob("*.txt")}
    for claim in briefing.claims():
        for citation in claim.citations:
            text = next(s.text for s in briefing.sources if s.id == citation.source_id)
            assert text[citation.start : citation.end] == citation.quote
    # The dated files, named by schedule and date, hold this briefing.
    markdown = (tmp_path / "out" / "morning-2026-11-20.md").read_text("utf-8")
    assert briefing.title in markdown
    stored = json.loads((tmp_path / "out" / "morning-2026-11-20.json").read_text("utf-8"))
    assert Briefing.model_validate(stored).id == briefing.id
    # "store": the briefing is a finished job of the API, linked from the run.
    assert outcome.run is not None
    assert outcome.run.job_id == briefing.id
    job = store.jobs.get(briefing.id)
    assert (job.status, job.request["schedule"], job.request["run_date"]) == (
        "succeeded",
        "morning",
        "2026-11-20",
    )
    assert [(d.kind, d.status, d.attempts) for d in store.deliveries.of_run(outcome.run.id)] == [
        ("store", "delivered", 1),
        ("dir", "delivered", 1),
    ]
    assert outcome.run.items == 2


def test_a_second_run_of_the_date_does_nothing_unless_forced(
    tmp_path: Path, inbox: Path, store: Store, settings: Settings
) -> None:
    first = run_schedule(schedule(tmp_path), store, settings, now=T0)
    again = run_schedule(schedule(tmp_path), store, settings, now=T0 + timedelta(hours=1))

    assert again.status == "skipped"
    assert "already ran" in again.message
    assert "--force" in again.message
    assert again.run is not None
    assert first.run is not None
    assert again.run.id == first.run.id

    forced = run_schedule(
        schedule(tmp_path), store, settings, now=T0 + timedelta(hours=2), force=True
    )
    assert forced.status == "succeeded"
    assert forced.run is not None
    assert (forced.run.id, forced.run.attempt) == (first.run.id, 2)
    assert forced.briefing is not None
    assert first.briefing is not None
    assert forced.briefing.id != first.briefing.id
    assert len(store.runs.recent("morning")) == 1


def test_the_next_day_briefs_only_what_is_new(
    tmp_path: Path, inbox: Path, store: Store, settings: Settings
) -> None:
    run_schedule(schedule(tmp_path), store, settings, now=T0)

    quiet = run_schedule(schedule(tmp_path), store, settings, now=T0 + timedelta(days=1))
    assert quiet.status == "empty"
    assert "nothing new" in quiet.message
    assert not (tmp_path / "out" / "morning-2026-11-21.md").exists()
    assert quiet.run is not None
    assert quiet.run.job_id is None

    # A new article on the third day: only it is briefed, though the window is 48 h and
    # reaches back over the first day's articles.
    (inbox / "new.txt").write_text(
        "The harbour authority opened a second ferry terminal on Sunday.\n"
        "It will handle up to 40 ferries a day, the authority said.",
        "utf-8",
    )
    third = run_schedule(
        schedule(tmp_path, window="48h"), store, settings, now=T0 + timedelta(days=2)
    )
    assert third.status == "succeeded", third.message
    assert third.briefing is not None
    assert [s.path for s in third.briefing.sources] == [str(inbox / "new.txt")]


def test_an_empty_day_note_is_delivered_when_asked_for(
    tmp_path: Path, store: Store, settings: Settings
) -> None:
    (tmp_path / "in").mkdir()
    outcome = run_schedule(schedule(tmp_path, empty_day_note=True), store, settings, now=T0)

    assert outcome.status == "succeeded"
    assert outcome.briefing is not None
    assert outcome.briefing.claims() == []
    assert outcome.briefing.sources == []
    note = (tmp_path / "out" / "morning-2026-11-20.md").read_text("utf-8")
    assert "nothing new" in note


def test_a_failing_source_is_a_warning_and_the_others_are_briefed(
    tmp_path: Path, inbox: Path, store: Store, settings: Settings
) -> None:
    sources = [
        {"kind": "folder", "path": "in", "glob": "*.txt"},
        {"kind": "url", "url": "http://127.0.0.1:9/gone"},  # nothing listens on port 9
    ]
    outcome = run_schedule(schedule(tmp_path, sources=sources), store, settings, now=T0)

    assert outcome.status == "succeeded", outcome.message
    assert outcome.briefing is not None
    assert len(outcome.briefing.sources) == 2
    [warning] = [w for w in outcome.briefing.warnings if w.startswith("source failed")]
    assert "http://127.0.0.1:9/gone" in warning
    assert outcome.run is not None
    assert outcome.run.warnings == [warning]


def test_a_build_failure_fails_the_run_with_the_reason(
    tmp_path: Path, inbox: Path, store: Store, settings: Settings
) -> None:
    # No key for the provider: the pipeline refuses before any request.
    outcome = run_schedule(schedule(tmp_path, model="openai/gpt-4o-mini"), store, settings, now=T0)

    assert outcome.status == "failed"
    assert outcome.run is not None
    assert outcome.run.status == "failed"
    assert "OPENAI_API_KEY" in (outcome.run.error or "")
    assert not (tmp_path / "out").exists()
    # A failed run may be run again without --force? No: the date has its run.
    assert run_schedule(schedule(tmp_path), store, settings, now=T0).status == "skipped"


def test_a_feed_day_end_to_end_over_http(
    tmp_path: Path,
    store: Store,
    settings: Settings,
    receiver: Callable[..., Any],  # noqa: F811
) -> None:
    hook = receiver()
    with NewsSite() as site:
        for name in ("harbour", "council", "ferry"):
            site.serve_fixture(f"/news/{name}.html", f"{name}.html", etag=f'"{name}-1"')
        site.serve_fixture(
            "/feeds/rss.xml", "rss.xml", content_type="application/rss+xml", etag='"rss-1"'
        )
        daily = schedule(
            tmp_path,
            sources=[{"kind": "feed", "url": site.url("/feeds/rss.xml")}],
            deliver=[{"kind": "webhook", "url": hook.url}, {"kind": "dir", "path": "out"}],
        )
        outcome = run_schedule(daily, store, settings, now=T0)
        # The next morning the feed is unchanged (304): nothing new, nothing fetched whole.
        quiet = run_schedule(daily, store, settings, now=T0 + timedelta(days=1))

    assert outcome.status == "succeeded", outcome.message
    assert outcome.briefing is not None
    titles = sorted(s.title for s in outcome.briefing.sources)
    assert titles == [
        "Council approves new school on the old rope works site",
        "Ferry timetable changes from Monday",
        "Harbour reopens after storm repairs",
    ]
    # The entry without a link is a warning; the others are briefed.
    assert any("link" in w for w in outcome.briefing.warnings if w.startswith("source failed"))
    [delivered] = hook.requests
    assert json.loads(delivered.body)["id"] == outcome.briefing.id
    assert (tmp_path / "out" / "morning-2026-11-20.md").exists()
    assert quiet.status == "empty"
    assert site.hits_for("/feeds/rss.xml")[-1].headers.get("if-none-match") == '"rss-1"'


# ---------------------------------------------------------------- deliveries


def test_a_failed_webhook_is_retried_later_from_the_stored_briefing(
    tmp_path: Path,
    inbox: Path,
    store: Store,
    settings: Settings,
    receiver: Callable[..., Any],  # noqa: F811
) -> None:
    hook = receiver(Reply(503), Reply(200))
    deliver = [{"kind": "webhook", "url": hook.url}, {"kind": "dir", "path": "out"}]
    outcome = run_schedule(schedule(tmp_path, deliver=deliver), store, settings, now=T0)

    assert outcome.status == "succeeded"
    webhook, folder = outcome.deliveries
    assert (webhook.status, webhook.attempts) == ("pending", 1)
    assert "503" in (webhook.last_error or "")
    assert webhook.next_attempt_at == T0 + REDELIVERY_DELAYS[0]
    assert folder.status == "delivered"  # one failed destination does not stop the others
    assert "retried later" in outcome.message

    assert retry_deliveries(store, settings, now=T0 + timedelta(seconds=30)) == []  # not due
    [retried] = retry_deliveries(store, settings, now=T0 + timedelta(minutes=2))

    assert (retried.status, retried.attempts) == ("delivered", 2)
    assert len(hook.requests) == 2
    # The same briefing and the same delivery id, both times.
    first, second = hook.requests
    assert first.body == second.body
    assert first.headers["Idempotency-Key"] == second.headers["Idempotency-Key"]
    assert outcome.briefing is not None
    assert json.loads(second.body)["id"] == outcome.briefing.id


def test_a_delivery_that_keeps_failing_gives_up_after_the_last_delay(
    tmp_path: Path,
    inbox: Path,
    store: Store,
    settings: Settings,
    receiver: Callable[..., Any],  # noqa: F811
) -> None:
    hook = receiver(*[Reply(503)] * 10)
    deliver = [{"kind": "webhook", "url": hook.url}]
    outcome = run_schedule(schedule(tmp_path, deliver=deliver), store, settings, now=T0)
    now = T0
    for _ in REDELIVERY_DELAYS:
        now += timedelta(days=1)
        [delivery] = retry_deliveries(store, settings, now=now)
    assert (delivery.status, delivery.next_attempt_at) == ("failed", None)
    assert delivery.attempts == len(REDELIVERY_DELAYS) + 1
    assert retry_deliveries(store, settings, now=now + timedelta(days=30)) == []
    assert outcome.run is not None
    assert store.runs.get(outcome.run.id).status == "succeeded"  # the briefing itself is fine


# ---------------------------------------------------------------- once per day


def test_two_processes_racing_for_a_date_run_it_once(
    tmp_path: Path, inbox: Path, store_url: str, settings: Settings
) -> None:
    outcomes: list[str] = []
    barrier = threading.Barrier(3)

    def race() -> None:
        own = Store(store_url)  # a process of its own, as far as the database can tell
        try:
            barrier.wait(timeout=10)
            outcomes.append(run_schedule(schedule(tmp_path), own, settings, now=T0).status)
        finally:
            own.close()

    threads = [threading.Thread(target=race) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(outcomes) == ["skipped", "skipped", "succeeded"]
    check = Store(store_url)
    try:
        [run] = check.runs.recent("morning")
        assert run.status == "succeeded"
        jobs, _ = check.jobs.page(limit=10)
        assert len(jobs) == 1
    finally:
        check.close()


def test_a_run_left_running_by_a_dead_process_is_taken_over(
    tmp_path: Path, inbox: Path, store: Store, settings: Settings
) -> None:
    abandoned, claimed = store.runs.claim("morning", DAY, "dead:1", lease_s=60, now=T0)
    assert claimed

    busy = run_schedule(schedule(tmp_path), store, settings, now=T0 + timedelta(seconds=30))
    assert busy.status == "skipped"
    assert "already running elsewhere (dead:1)" in busy.message

    taken = run_schedule(schedule(tmp_path), store, settings, now=T0 + timedelta(minutes=5))
    assert taken.status == "succeeded"
    assert taken.run is not None
    assert (taken.run.id, taken.run.attempt) == (abandoned.id, 2)


# ---------------------------------------------------------------- the command line


def _toml(tmp_path: Path, extra: str = "") -> Path:
    config = tmp_path / "briefings.toml"
    config.write_text(
        f"""
[[schedule]]
name = "seeds"
cron = "0 7 * * *"
timezone = "Europe/Berlin"
sources = [ {{ kind = "folder", path = "in/", glob = "*.txt" }} ]
deliver = [ {{ kind = "store" }}, {{ kind = "dir", path = "out/", formats = ["md", "json"] }} ]
{extra}
""",
        "utf-8",
    )
    return config


def test_daily_run_from_the_command_line(tmp_path: Path, inbox: Path, store_url: str) -> None:
    config = _toml(tmp_path)
    env = {"BRIEFING_SCHEDULES": str(config), "BRIEFING_CALL_LOG": str(tmp_path / "c.db")}
    args = ["--database-url", store_url, "--date", "2026-11-20"]
    runner = CliRunner()

    first = runner.invoke(main, ["daily", "run", "seeds", *args], env=env)
    second = runner.invoke(main, ["daily", "run", "seeds", *args], env=env)
    listed = runner.invoke(main, ["daily", "list", "--database-url", store_url], env=env)

    assert first.exit_code == 0, first.output
    assert "of 2 new item(s)" in first.output
    assert (tmp_path / "out" / "seeds-2026-11-20.md").read_text("utf-8").startswith("# ")
    assert second.exit_code == 0
    assert "already ran" in second.output
    assert listed.exit_code == 0, listed.output
    [row] = [line for line in listed.output.splitlines() if line.startswith("seeds ")]
    assert "2026-11-20 succeeded" in row
    assert "0 7 * * * (Europe/Berlin)" in row


def test_daily_run_errors_name_the_problem(tmp_path: Path, store_url: str) -> None:
    runner = CliRunner()
    config = _toml(tmp_path)
    unknown = runner.invoke(
        main, ["daily", "run", "nope", "--config", str(config), "--database-url", store_url]
    )
    assert unknown.exit_code == 2
    assert "no schedule named 'nope' (known: seeds)" in unknown.output

    bad = tmp_path / "bad.toml"
    bad.write_text('[[schedule]]\nname = "x"\ncron = "61 * * * *"\nsources = []\n', "utf-8")
    invalid = runner.invoke(
        main, ["daily", "run", "x", "--config", str(bad), "--database-url", store_url]
    )
    assert invalid.exit_code == 2
    assert "bad.toml" in invalid.output
    assert "cron" in invalid.output


def test_a_name_in_both_the_file_and_the_store_is_refused(
    tmp_path: Path, store: Store, settings: Settings
) -> None:
    config = _toml(tmp_path)
    [from_file] = load_schedules(config)
    store.schedules.put("seeds", from_file.model_dump(mode="json"))
    with pytest.raises(Exception, match="defined both"):
        schedules_of(settings, store, config)


def test_a_stored_schedule_that_no_longer_validates_is_left_out(
    tmp_path: Path, store: Store, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    config = _toml(tmp_path)
    store.schedules.put("broken", {"name": "broken", "cron": "not a cron", "sources": []})
    assert [s.name for s in schedules_of(settings, store, config)] == ["seeds"]
    assert "stored schedule broken is not valid any more" in caplog.text
