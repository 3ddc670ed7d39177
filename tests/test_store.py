"""The store on SQLite, and on PostgreSQL when BRIEFING_TEST_POSTGRES_URL points at one."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import inspect, text
from store_databases import BACKENDS, database_url

from briefing.errors import ConflictError, NotFoundError, SourceError, UserError
from briefing.store import (
    SourceInUseError,
    Store,
    make_engine,
    normalise_url,
    redacted_url,
)
from briefing.store.migrations import current_revision, head_revision, is_current, upgrade
from briefing.store.tables import Base
from briefing.text.sources import source_from_text


@pytest.fixture(params=BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database, not yet migrated."""
    with database_url(request.param, tmp_path) as given:
        yield given


@pytest.fixture
def store(url: str) -> Iterator[Store]:
    """A migrated store."""
    upgrade(url)
    made = Store(url)
    yield made
    made.close()


def _source(text: str, title: str | None = None):  # type: ignore[no-untyped-def]
    return source_from_text(text, title=title)


# ---------------------------------------------------------------- migrations


def test_upgrade_creates_the_schema_and_is_idempotent(url: str) -> None:
    engine = make_engine(url)
    try:
        assert current_revision(engine) is None
        assert not is_current(engine)
        assert upgrade(url) == head_revision()
        assert upgrade(url) == head_revision()  # a second run changes nothing
        assert is_current(engine)
        tables = set(inspect(engine).get_table_names())
        assert {"sources", "jobs", "job_sources", "alembic_version"} <= tables
    finally:
        engine.dispose()


def test_models_match_the_migrations(store: Store) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with store.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'nested' / 'dir' / 'store.db'}"
    upgrade(url)  # creates the missing folders too
    store = Store(url)
    try:
        with store.engine.connect() as connection:
            assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
    finally:
        store.close()


def test_postgresql_urls_use_psycopg_and_passwords_stay_hidden() -> None:
    assert normalise_url("postgresql://u:pw@h/db").drivername == "postgresql+psycopg"
    assert normalise_url("sqlite:///x.db").drivername == "sqlite"
    shown = redacted_url("postgresql+psycopg://user:s3cret@db.example/briefing")
    assert "s3cret" not in shown
    assert "user" in shown
    with pytest.raises(UserError, match="invalid database URL"):
        normalise_url("not a url")


# ---------------------------------------------------------------- sources


def test_add_source_is_idempotent_by_content(store: Store) -> None:
    first, created = store.sources.add(_source("The council met. It voted.", "Council"))
    assert created
    again, created_again = store.sources.add(_source("The council met. It voted.", "Other"))
    assert not created_again
    assert again == first  # the stored title is kept
    assert first.title == "Council"
    assert first.created_at.tzinfo == UTC
    assert store.sources.get(first.id) == first


def test_concurrent_adds_of_one_text_store_it_once(store: Store) -> None:
    outcomes: list[bool] = []
    barrier = threading.Barrier(4)

    def add() -> None:
        barrier.wait()
        outcomes.append(store.sources.add(_source("Same text, many writers."))[1])

    threads = [threading.Thread(target=add) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == [False, False, False, True]
    assert len(store.sources.page().items) == 1


def test_get_missing_source_is_not_found(store: Store) -> None:
    with pytest.raises(NotFoundError, match="nope"):
        store.sources.get("nope")


def test_list_sources_pages_newest_first_without_gaps(store: Store) -> None:
    added = [store.sources.add(_source(f"Source number {i}."))[0] for i in range(5)]
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = store.sources.page(limit=2, cursor=cursor)
        seen += [item.id for item in page.items]
        pages += 1
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert pages == 3
    assert seen == [s.id for s in reversed(added)]
    first = store.sources.page(limit=5).items[0]
    assert first.chars == len(added[-1].text)


def _cursor(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage!",
        _cursor("text"),
        _cursor([1, 2]),
        _cursor(["2026-01-01T00:00:00", "naive-time"]),
        _cursor(["0001-01-01T00:00:00+05:00", "overflows"]),
        _cursor(["2026-01-01T00:00:00+00:00", "nul\x00id"]),
    ],
)
def test_list_rejects_forged_cursors(store: Store, cursor: str) -> None:
    with pytest.raises(UserError, match="invalid cursor"):
        store.sources.page(cursor=cursor)
    with pytest.raises(UserError, match="invalid cursor"):
        store.jobs.page(cursor=cursor)


def test_list_sources_rejects_bad_cursor_and_limit(store: Store) -> None:
    with pytest.raises(UserError, match="invalid cursor"):
        store.sources.page(cursor="garbage!")
    with pytest.raises(UserError, match="limit"):
        store.sources.page(limit=0)


# ---------------------------------------------------------------- jobs and deletion


def test_delete_source_refused_while_a_job_uses_it(store: Store) -> None:
    source, _ = store.sources.add(_source("Used by a job."))
    other, _ = store.sources.add(_source("Not used by anyone."))
    job, _ = store.jobs.create({"source_ids": [source.id]}, [source.id])
    with pytest.raises(SourceInUseError) as refused:
        store.sources.delete(source.id)
    assert refused.value.job_ids == [job.id]
    assert isinstance(refused.value, ConflictError)

    store.sources.delete(other.id)  # unused sources go at once
    with pytest.raises(NotFoundError):
        store.sources.get(other.id)

    claimed = store.jobs.claim("worker-1", lease_s=30)
    assert claimed is not None
    assert claimed.status == "running"
    with pytest.raises(SourceInUseError):
        store.sources.delete(source.id)

    store.jobs.finish(job.id, "succeeded", result={"ok": True})
    store.sources.delete(source.id)
    kept = store.jobs.get(job.id)
    assert kept.status == "succeeded"
    assert kept.result == {"ok": True}
    assert kept.source_ids == []  # the reference went with the source


def test_delete_missing_source_is_not_found(store: Store) -> None:
    with pytest.raises(NotFoundError):
        store.sources.delete("missing")


def test_create_job_needs_stored_sources(store: Store) -> None:
    with pytest.raises(NotFoundError, match="ghost"):
        store.jobs.create({"source_ids": ["ghost"]}, ["ghost"])


def test_idempotency_key_returns_the_same_job_or_conflicts(store: Store) -> None:
    source, _ = store.sources.add(_source("Idempotent."))
    request = {"source_ids": [source.id], "model": "extractive"}
    job, created = store.jobs.create(request, [source.id], idempotency_key="key-1")
    again, created_again = store.jobs.create(dict(request), [source.id], idempotency_key="key-1")
    assert created
    assert not created_again
    assert again.id == job.id
    with pytest.raises(ConflictError, match="key-1"):
        store.jobs.create({**request, "model": "other"}, [source.id], idempotency_key="key-1")
    other, created_other = store.jobs.create(request, [source.id], idempotency_key="key-2")
    assert created_other
    assert other.id != job.id


def test_claim_takes_the_oldest_queued_job_and_counts_attempts(store: Store) -> None:
    source, _ = store.sources.add(_source("Claimed."))
    first, _ = store.jobs.create({"n": 1}, [source.id])
    second, _ = store.jobs.create({"n": 2}, [source.id])
    claimed = store.jobs.claim("w", lease_s=60)
    assert claimed is not None
    assert claimed.id == first.id
    assert claimed.attempts == 1
    assert claimed.worker_id == "w"
    assert claimed.started_at is not None
    assert claimed.lease_expires_at is not None
    assert claimed.lease_expires_at > claimed.started_at
    assert store.jobs.claim("w", lease_s=60).id == second.id  # type: ignore[union-attr]
    assert store.jobs.claim("w", lease_s=60) is None


def test_finish_job_only_once_and_only_to_a_final_status(store: Store) -> None:
    source, _ = store.sources.add(_source("Finished."))
    job, _ = store.jobs.create({}, [source.id])
    with pytest.raises(UserError, match="final status"):
        store.jobs.finish(job.id, "running")
    done = store.jobs.finish(job.id, "failed", error="provider said no")
    assert done.status == "failed"
    assert done.error == "provider said no"
    assert done.finished_at is not None
    with pytest.raises(ConflictError, match="already finished"):
        store.jobs.finish(job.id, "succeeded")
    with pytest.raises(NotFoundError):
        store.jobs.finish("missing", "failed")
    with pytest.raises(NotFoundError):
        store.jobs.get("missing")


def test_heartbeat_extends_the_lease_and_records_progress(store: Store) -> None:
    source, _ = store.sources.add(_source("Heartbeat."))
    job, _ = store.jobs.create({}, [source.id])
    claimed = store.jobs.claim("w1", lease_s=1)
    assert claimed is not None
    assert claimed.lease_expires_at is not None
    beat = store.jobs.heartbeat(job.id, "w1", lease_s=600, progress={"stage": "map", "done": 1})
    assert beat.progress == {"stage": "map", "done": 1}
    assert beat.lease_expires_at is not None
    assert beat.lease_expires_at > claimed.lease_expires_at
    with pytest.raises(ConflictError, match="no longer held"):
        store.jobs.heartbeat(job.id, "w2", lease_s=600)
    with pytest.raises(ConflictError, match="no longer held"):
        store.jobs.finish(job.id, "succeeded", worker_id="w2")
    assert store.jobs.finish(job.id, "succeeded", worker_id="w1").status == "succeeded"
    with pytest.raises(ConflictError):
        store.jobs.heartbeat(job.id, "w1", lease_s=600)


def test_cancel_stops_queued_jobs_at_once_and_flags_running_ones(store: Store) -> None:
    source, _ = store.sources.add(_source("Cancelled."))
    queued, _ = store.jobs.create({"n": 1}, [source.id])
    running, _ = store.jobs.create({"n": 2}, [source.id])
    assert store.jobs.claim("w", lease_s=60) is not None  # takes `queued` (the oldest)...
    store.jobs.finish(queued.id, "succeeded", worker_id="w")
    claimed = store.jobs.claim("w", lease_s=60)  # ...then `running`
    assert claimed is not None
    assert claimed.id == running.id
    third, _ = store.jobs.create({"n": 3}, [source.id])

    cancelled = store.jobs.request_cancel(third.id)
    assert cancelled.status == "cancelled"
    assert cancelled.finished_at is not None
    flagged = store.jobs.request_cancel(running.id)
    assert flagged.status == "running"
    assert flagged.cancel_requested
    assert store.jobs.heartbeat(running.id, "w", lease_s=60).cancel_requested
    finished = store.jobs.request_cancel(queued.id)
    assert finished.status == "succeeded"  # too late: left as it was
    assert not finished.cancel_requested
    with pytest.raises(NotFoundError):
        store.jobs.request_cancel("missing")


def test_recover_requeues_jobs_of_dead_workers_then_gives_up(store: Store) -> None:
    source, _ = store.sources.add(_source("Recovered."))
    job, _ = store.jobs.create({}, [source.id])
    healthy, _ = store.jobs.create({"other": True}, [source.id])
    first = store.jobs.claim("dead-worker", lease_s=5)
    store.jobs.claim("live-worker", lease_s=3600)
    assert first is not None
    assert first.id == job.id
    assert first.lease_expires_at is not None
    later = first.lease_expires_at + timedelta(seconds=1)

    assert (
        store.jobs.recover(max_attempts=2, now=first.lease_expires_at - timedelta(seconds=1)) == []
    )
    recovered = store.jobs.recover(max_attempts=2, now=later)
    assert [(j.id, j.status, j.worker_id) for j in recovered] == [(job.id, "queued", None)]
    assert store.jobs.get(healthy.id).status == "running"  # its lease has not run out

    second = store.jobs.claim("another-dead-worker", lease_s=5)
    assert second is not None
    assert second.attempts == 2
    assert second.lease_expires_at is not None
    failed = store.jobs.recover(max_attempts=2, now=second.lease_expires_at + timedelta(seconds=1))
    assert [j.status for j in failed] == ["failed"]
    assert "gave up after 2 attempt(s)" in (failed[0].error or "")


def test_release_requeues_a_job_without_counting_the_attempt(store: Store) -> None:
    source, _ = store.sources.add(_source("Released."))
    job, _ = store.jobs.create({}, [source.id])
    store.jobs.claim("stopping-worker", lease_s=60)

    with pytest.raises(ConflictError):
        store.jobs.release(job.id, "another-worker")
    released = store.jobs.release(job.id, "stopping-worker")

    assert (released.status, released.attempts, released.worker_id) == ("queued", 0, None)
    assert released.lease_expires_at is None
    assert released.started_at is None
    with pytest.raises(ConflictError):  # a queued job is held by no one
        store.jobs.release(job.id, "stopping-worker")


def test_release_cancels_a_job_whose_cancel_was_asked_for(store: Store) -> None:
    source, _ = store.sources.add(_source("Released, cancelled."))
    job, _ = store.jobs.create({}, [source.id])
    store.jobs.claim("stopping-worker", lease_s=60)
    store.jobs.request_cancel(job.id)

    released = store.jobs.release(job.id, "stopping-worker")

    assert (released.status, released.error) == ("cancelled", "cancelled")
    assert released.finished_at is not None


def test_finish_job_records_the_last_progress(store: Store) -> None:
    source, _ = store.sources.add(_source("Finished with progress."))
    job, _ = store.jobs.create({}, [source.id])
    store.jobs.claim("w", lease_s=60)
    store.jobs.heartbeat(job.id, "w", lease_s=60, progress={"stage": "map", "done": 0, "total": 1})

    done = store.jobs.finish(
        job.id, "succeeded", result={}, worker_id="w", progress={"stage": "check", "done": 1}
    )

    assert done.progress == {"stage": "check", "done": 1}


def test_list_jobs_pages_and_filters(store: Store) -> None:
    source, _ = store.sources.add(_source("Listed."))
    made = [store.jobs.create({"n": i}, [source.id])[0] for i in range(3)]
    store.jobs.request_cancel(made[0].id)
    page, cursor = store.jobs.page(limit=2)
    assert [j.id for j in page] == [made[2].id, made[1].id]
    assert cursor is not None
    rest, end = store.jobs.page(limit=2, cursor=cursor)
    assert [j.id for j in rest] == [made[0].id]
    assert end is None
    queued, _ = store.jobs.page(statuses=["queued"])
    assert {j.id for j in queued} == {made[1].id, made[2].id}
    since, _ = store.jobs.page(since=made[1].created_at)
    assert {j.id for j in since} == {made[1].id, made[2].id}
    future, _ = store.jobs.page(since=made[2].created_at + timedelta(days=1))
    assert future == []
    with pytest.raises(UserError, match="timezone"):
        store.jobs.page(since=datetime(2026, 1, 1))


def test_list_jobs_finds_briefings_by_title_source_schedule_engine_and_dates(
    store: Store,
) -> None:
    council, _ = store.sources.add(_source("The council met.", title="City Council minutes"))
    harbour, _ = store.sources.add(_source("Ships came in.", title="Harbour log"))

    def briefing(title: str, engine: str) -> dict[str, object]:
        return {"title": title, "engine": engine}

    daily = store.jobs.add_finished(
        uuid.uuid4().hex,
        {"schedule": "morning", "run_date": "2026-12-01"},
        [harbour.id],
        result=briefing("Morning 100%_news", "extractive"),
    )
    built = store.jobs.add_finished(
        uuid.uuid4().hex, {}, [council.id], result=briefing("Budget week", "llm")
    )
    queued, _ = store.jobs.create({"n": 1}, [council.id, harbour.id])

    def ids(**filters: object) -> set[str]:
        return {j.id for j in store.jobs.page(**filters)[0]}  # type: ignore[arg-type]

    assert ids(text="budget") == {built.id}  # the briefing's title, any case
    assert ids(text="COUNCIL") == {built.id, queued.id}  # a source's title
    assert ids(text="harbour") == {daily.id, queued.id}
    assert ids(text="100%_") == {daily.id}  # % and _ are text, not patterns
    assert ids(text="100%x") == set()
    assert ids(text="   ") == {daily.id, built.id, queued.id}
    assert ids(text="har\x00bour") == set()  # no stored text holds NUL, on any backend
    assert ids(schedule="\x00") == set()
    assert ids(schedule="morning") == {daily.id}
    assert ids(schedule="evening") == set()
    assert ids(engine="llm") == {built.id}
    assert ids(engine="extractive", text="harbour") == {daily.id}
    assert ids(until=built.created_at) == {daily.id}
    assert ids(since=built.created_at, until=queued.created_at) == {built.id}
    with pytest.raises(UserError, match="until must carry a timezone"):
        store.jobs.page(until=datetime(2026, 1, 1))


def test_concurrent_upgrades_all_reach_head(url: str) -> None:
    # Separate processes, as when several service instances start together.
    code = "import sys; from briefing.store.migrations import upgrade; print(upgrade(sys.argv[1]))"
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", code, url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outcomes = [(p.wait(timeout=120), *p.communicate()) for p in processes]
    assert [(rc, out.strip()) for rc, out, _ in outcomes] == [(0, head_revision())] * 3, outcomes
    errors: list[BaseException] = []

    def migrate() -> None:
        try:
            upgrade(url)
        except BaseException as exc:  # asserted below: a thread's exception fails nothing
            errors.append(exc)

    threads = [threading.Thread(target=migrate) for _ in range(3)]
    for thread in threads:  # and threads of one process
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    engine = make_engine(url)
    try:
        assert is_current(engine)
    finally:
        engine.dispose()


def test_nul_characters_are_refused_alike_on_every_backend(store: Store) -> None:
    # PostgreSQL cannot store NUL in text or jsonb; SQLite could, but must answer the same.
    source, _ = store.sources.add(_source("Plain text."))
    with pytest.raises(SourceError, match="NUL"):
        store.sources.add(source_from_text("Other text.", title="bad\x00title"))
    with pytest.raises(NotFoundError):
        store.sources.get("ab\x00cd")
    with pytest.raises(NotFoundError):
        store.sources.delete("ab\x00cd")
    with pytest.raises(NotFoundError):
        store.jobs.get("x\x00")
    with pytest.raises(UserError, match="job request"):
        store.jobs.create({"title": ["fine", {"k": "bad\x00"}]}, [source.id])
    with pytest.raises(UserError, match="idempotency key"):
        store.jobs.create({}, [source.id], idempotency_key="k\x00")
    job, _ = store.jobs.create({}, [source.id])
    assert store.jobs.claim("w", lease_s=60) is not None
    with pytest.raises(UserError, match="progress"):
        store.jobs.heartbeat(job.id, "w", lease_s=60, progress={"stage": "\x00"})
    with pytest.raises(UserError, match="job error"):
        store.jobs.finish(job.id, "failed", error="bad\x00")
    assert store.jobs.finish(job.id, "failed", error="readable").error == "readable"
