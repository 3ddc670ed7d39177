"""Collected items and fetch state in the store, on SQLite and (when available) PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from store_databases import BACKENDS, database_url

from briefing.errors import ConflictError, NotFoundError, UserError
from briefing.schema import Source
from briefing.store import FetchState, Store
from briefing.store.migrations import upgrade
from briefing.text.sources import source_from_text

T0 = datetime(2026, 3, 14, 6, 0, tzinfo=UTC)


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


def text(n: int) -> Source:
    return source_from_text(f"Article number {n}.\nIt says something about the harbour.")


def test_recording_a_text_twice_keeps_the_first_sighting(store: Store) -> None:
    source = text(1)
    item, new = store.items.record(
        source,
        origin="https://news.example/a",
        seen_at=T0,
        title="Harbour reopens",
        author="Maria Lindqvist",
        published_at=datetime(2026, 3, 14, 5, 30, tzinfo=UTC),
    )
    assert new
    assert item.source_id == source.id
    assert item.origin == "https://news.example/a"
    assert item.first_seen_at == T0
    assert (item.title, item.author) == ("Harbour reopens", "Maria Lindqvist")
    assert item.published_at == datetime(2026, 3, 14, 5, 30, tzinfo=UTC)
    assert store.sources.get(source.id).text == source.text

    later = T0 + timedelta(days=1)
    again, new = store.items.record(source, origin="/elsewhere/a.txt", seen_at=later, title="Other")
    assert not new
    assert again == item  # origin, first_seen_at and metadata untouched
    assert store.items.get(source.id) == item


def test_a_stored_source_collected_later_is_a_new_item(store: Store) -> None:
    uploaded, _ = store.sources.add(text(2))
    item, new = store.items.record(text(2), origin="notes/2.txt", seen_at=T0)
    assert new
    assert item.source_id == uploaded.id
    assert store.sources.get(uploaded.id).created_at == uploaded.created_at


def test_aware_times_only(store: Store) -> None:
    with pytest.raises(UserError, match="seen_at must carry a timezone"):
        store.items.record(text(3), origin="x", seen_at=datetime(2026, 3, 14))
    with pytest.raises(UserError, match="since"):
        store.items.between(datetime(2026, 3, 14), T0)


def test_a_different_text_under_a_taken_id_conflicts(store: Store) -> None:
    store.items.record(text(4), origin="a", seen_at=T0)
    forged = text(5).model_copy(update={"id": text(4).id})
    with pytest.raises(ConflictError):
        store.items.record(forged, origin="b", seen_at=T0)


def test_list_items_of_a_window(store: Store) -> None:
    times = [T0 - timedelta(hours=1), T0, T0 + timedelta(hours=12), T0 + timedelta(hours=24)]
    ids = []
    for n, when in enumerate(times):
        item, _ = store.items.record(text(10 + n), origin=f"o{n}", seen_at=when)
        ids.append(item.source_id)
    window = store.items.between(T0, T0 + timedelta(hours=24))  # [since, until)
    assert [i.source_id for i in window] == ids[1:3]
    assert [i.source_id for i in store.items.between(T0, T0 + timedelta(days=2))] == ids[1:]
    only = store.items.between(T0, T0 + timedelta(days=2), source_ids=[ids[3], "missing"])
    assert [i.source_id for i in only] == [ids[3]]
    assert store.items.between(T0, T0 + timedelta(days=2), source_ids=[]) == []
    # Any time zone names the same instants.
    berlin = T0.astimezone(ZoneInfo("Europe/Berlin"))
    assert store.items.between(berlin, berlin + timedelta(hours=24)) == window


def test_get_item_of_an_uncollected_source_is_not_found(store: Store) -> None:
    with pytest.raises(NotFoundError):
        store.items.get("0123456789abcdef")


def test_fetch_state_round_trip_under_the_normalised_url(store: Store) -> None:
    assert store.fetch_state.get("https://news.example/feed") is None
    source, _ = store.sources.add(text(20))
    saved = store.fetch_state.put(
        FetchState(
            url="HTTPS://News.Example:443/feed#latest",
            etag='W/"abc"',
            last_modified="Sat, 14 Mar 2026 06:00:00 GMT",
            source_id=source.id,
            entries=[{"url": "https://news.example/a", "title": "A", "published_at": None}],
            fetched_at=T0,
        )
    )
    assert saved.url == "https://news.example/feed"
    got = store.fetch_state.get("https://news.example/feed")
    assert got == saved
    assert got is not None
    assert got.entries == [{"url": "https://news.example/a", "title": "A", "published_at": None}]

    replaced = store.fetch_state.put(
        FetchState(url="https://news.example/feed", etag='"v2"', fetched_at=T0 + timedelta(1))
    )
    assert replaced.etag == '"v2"'
    assert replaced.last_modified is None
    assert replaced.source_id is None
    assert store.fetch_state.get("https://news.example/feed#x") == replaced


def test_fetch_state_needs_a_stored_source(store: Store) -> None:
    with pytest.raises(NotFoundError):
        store.fetch_state.put(
            FetchState(url="https://news.example/", source_id="0123456789abcdef", fetched_at=T0)
        )


def test_deleting_a_source_deletes_its_item_and_forgets_its_fetch(store: Store) -> None:
    source = text(30)
    store.items.record(source, origin="https://news.example/a", seen_at=T0)
    store.fetch_state.put(
        FetchState(url="https://news.example/a", etag='"1"', source_id=source.id, fetched_at=T0)
    )
    store.sources.delete(source.id)
    with pytest.raises(NotFoundError):
        store.items.get(source.id)
    state = store.fetch_state.get("https://news.example/a")
    assert state is not None
    assert state.source_id is None  # the next fetch of the URL asks unconditionally
    assert store.items.between(T0 - timedelta(1), T0 + timedelta(1)) == []
    # Found again, the text is new again: it was deleted on purpose.
    later = T0 + timedelta(days=2)
    item, new = store.items.record(source, origin="https://news.example/a", seen_at=later)
    assert new
    assert item.first_seen_at == later


def test_concurrent_collectors_record_one_item(store: Store) -> None:
    source = text(40)
    results: list[bool] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def record(n: int) -> None:
        try:
            barrier.wait(timeout=10)
            _, new = store.items.record(source, origin=f"worker-{n}", seen_at=T0)
            results.append(new)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=record, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert sorted(results) == [False] * 5 + [True]
    assert len(store.items.between(T0, T0 + timedelta(seconds=1))) == 1


def test_concurrent_fetch_state_writers_leave_one_row(store: Store) -> None:
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def put(n: int) -> None:
        try:
            barrier.wait(timeout=10)
            store.fetch_state.put(
                FetchState(url="https://news.example/race", etag=f'"{n}"', fetched_at=T0)
            )
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=put, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    state = store.fetch_state.get("https://news.example/race")
    assert state is not None
    assert state.etag in {'"0"', '"1"', '"2"', '"3"'}


def test_upgrading_from_0001_keeps_the_sources(url: str) -> None:
    upgrade(url, "0001")
    store = Store(url)
    try:
        old, _ = store.sources.add(text(50))
        assert upgrade(url, "0002") == "0002"
        item, new = store.items.record(text(50), origin="notes/50.txt", seen_at=T0)
        assert new
        assert item.source_id == old.id
    finally:
        store.close()


def test_nul_characters_are_refused(store: Store) -> None:
    with pytest.raises(UserError):
        store.items.record(text(60), origin="a\x00b", seen_at=T0)
    with pytest.raises(UserError):
        store.fetch_state.put(FetchState(url="https://x.example/", etag="\x00", fetched_at=T0))
