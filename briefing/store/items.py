"""What the daily collectors found: each text's first sighting, and each URL's last fetch."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import select

from briefing.errors import NotFoundError, SourceError, UserError
from briefing.schema import Source
from briefing.store.database import (
    DuplicateError,
    Repository,
    check_aware,
    check_storable,
    known_id,
    to_public,
)
from briefing.store.sources import check_same, source_row, stored_source
from briefing.store.tables import FetchStateRow, ItemRow, SourceRow
from briefing.urls import storage_key

__all__ = ["FetchState", "FetchStateRepository", "Item", "ItemRepository"]


class Item(BaseModel):
    """A collected source's record: where (`origin`: URL or file path) and when it was first
    seen, with the title, author and publication time found there."""

    source_id: str
    origin: str
    first_seen_at: datetime
    title: str | None = None
    author: str | None = None
    published_at: datetime | None = None


class FetchState(BaseModel):
    """The validators (ETag, Last-Modified) and result of the last fetch of a URL."""

    url: str
    etag: str | None = None
    last_modified: str | None = None
    source_id: str | None = None
    entries: list[dict[str, Any]] | None = None
    fetched_at: datetime


class ItemRepository(Repository):
    """Collected texts, one item per content: the same text found again is not new."""

    def record(
        self,
        source: Source,
        *,
        origin: str,
        seen_at: datetime,
        title: str | None = None,
        author: str | None = None,
        published_at: datetime | None = None,
    ) -> tuple[Item, bool]:
        """Store a collected source (unless stored) and its item (unless recorded): (item, new).

        An item already recorded comes back unchanged, first_seen_at and all: the same text
        found again, anywhere, is not new.
        """
        check_aware(seen_at, "seen_at")
        if published_at is not None:
            check_aware(published_at, "published_at")
        for value, what in (
            (source.title, "source title"),
            (source.path, "source path"),
            (origin, "item origin"),
            (title, "item title"),
            (author, "item author"),
        ):
            if value is not None and "\x00" in value:
                raise SourceError(f"{what} contains a NUL character, which cannot be stored")
        check_storable(source.text, "source text")
        for attempt in range(2):
            try:
                with self._write() as session:
                    row = session.get(SourceRow, source.id)
                    if row is None:
                        session.add(source_row(source))
                    else:
                        check_same(stored_source(row), source)
                    item = session.get(ItemRow, source.id)
                    if item is not None:
                        return _item(item), False
                    item = ItemRow(
                        source_id=source.id,
                        origin=origin,
                        first_seen_at=seen_at,
                        title=title,
                        author=author,
                        published_at=published_at,
                    )
                    session.add(item)
                    session.flush()
                    return _item(item), True
            except DuplicateError:
                # A concurrent collector stored the same text first: the retry finds its rows.
                if attempt:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def get(self, source_id: str) -> Item:
        """The item of this source; NotFoundError when it was never collected."""
        with self._read() as session:
            row = session.get(ItemRow, known_id(source_id, "item"))
            if row is None:
                raise NotFoundError(f"no collected item with source id {source_id!r}")
            return _item(row)

    def between(
        self,
        since: datetime,
        until: datetime,
        *,
        source_ids: Sequence[str] | None = None,
    ) -> list[Item]:
        """Items first seen in [since, until), oldest first; only those of `source_ids` if given."""
        check_aware(since, "since")
        check_aware(until, "until")
        query = (
            select(ItemRow)
            .where(ItemRow.first_seen_at >= since, ItemRow.first_seen_at < until)
            .order_by(ItemRow.first_seen_at, ItemRow.source_id)
        )
        if source_ids is not None:
            wanted = [s for s in dict.fromkeys(source_ids) if "\x00" not in s]
            query = query.where(ItemRow.source_id.in_(wanted))
        with self._read() as session:
            return [_item(row) for row in session.scalars(query)]


class FetchStateRepository(Repository):
    """The validators of each URL's last fetch, under the URL's canonical form."""

    def get(self, url: str) -> FetchState | None:
        """What the last fetch of `url` (normalised) returned; None when it was never fetched."""
        key = _fetch_key(url)
        with self._read() as session:
            row = session.get(FetchStateRow, key)
            return None if row is None else _fetch_state(row)

    def put(self, state: FetchState) -> FetchState:
        """Record the last fetch of `state.url` (normalised), replacing what was there."""
        key = _fetch_key(state.url)
        check_aware(state.fetched_at, "fetched_at")
        for value, what in (
            (state.etag, "etag"),
            (state.last_modified, "last_modified"),
            (state.entries, "feed entries"),
        ):
            check_storable(value, what)
        for attempt in range(2):
            try:
                with self._write() as session:
                    if state.source_id is not None and (
                        session.get(SourceRow, known_id(state.source_id, "source")) is None
                    ):
                        raise NotFoundError(f"no source with id {state.source_id!r}")
                    row = session.get(FetchStateRow, key)
                    if row is None:
                        row = FetchStateRow(url=key)
                        session.add(row)
                    row.etag = state.etag
                    row.last_modified = state.last_modified
                    row.source_id = state.source_id
                    row.entries = state.entries
                    row.fetched_at = state.fetched_at
                    session.flush()
                    return _fetch_state(row)
            except DuplicateError:
                # A concurrent writer inserted this URL first: the retry updates its row.
                if attempt:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover


def _item(row: ItemRow) -> Item:
    return to_public(Item, row)


def _fetch_state(row: FetchStateRow) -> FetchState:
    return to_public(FetchState, row)


def _fetch_key(url: str) -> str:
    # Credential-like query values are kept only as digests: the store never holds them.
    key = storage_key(url)
    if not key or "\x00" in key:
        raise UserError(f"invalid URL {url!r}")
    return key
