"""The map step's cache in the store: content-addressed, written once, safe for overlapping runs."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import CursorResult, delete, func, select

from briefing.pipeline.mapcache import CachedClaim
from briefing.store.database import DuplicateError, Repository, check_aware, utc_now
from briefing.store.tables import MapCacheRow

__all__ = ["CacheStats", "MapCacheRepository"]

#: Keys looked up per query (well under every backend's limit on bound parameters).
_LOOKUP = 500


class CacheStats(BaseModel):
    """How much the map cache holds."""

    entries: int
    sources: int
    claims: int
    oldest: datetime | None
    newest: datetime | None


class MapCacheRepository(Repository):
    """Map results by key (`briefing.pipeline.mapcache.map_key`); implements `MapCache`."""

    def get_many(self, keys: Sequence[str]) -> dict[str, list[CachedClaim]]:
        """The claims kept under each of `keys` that has an entry."""
        wanted = [k for k in dict.fromkeys(keys) if "\x00" not in k]
        out: dict[str, list[CachedClaim]] = {}
        with self._read() as session:
            for first in range(0, len(wanted), _LOOKUP):
                rows = session.scalars(
                    select(MapCacheRow).where(MapCacheRow.key.in_(wanted[first : first + _LOOKUP]))
                )
                for row in rows:
                    out[row.key] = [CachedClaim.model_validate(c) for c in row.claims]
        return out

    def put(self, key: str, source_id: str, claims: Sequence[CachedClaim]) -> None:
        """Keep `claims` under `key`; when another run wrote the key first, its entry stays
        (the same key means the same inputs)."""
        try:
            with self._write() as session:
                if session.get(MapCacheRow, key) is not None:
                    return
                session.add(
                    MapCacheRow(
                        key=key,
                        source_id=source_id,
                        claims=[c.model_dump(mode="json") for c in claims],
                        created_at=utc_now(),
                    )
                )
        except DuplicateError:
            return

    def stats(self) -> CacheStats:
        """Entries, distinct sources and claims held, and when the oldest and newest were made."""
        with self._read() as session:
            entries, sources, oldest, newest = session.execute(
                select(
                    func.count(),
                    func.count(func.distinct(MapCacheRow.source_id)),
                    func.min(MapCacheRow.created_at),
                    func.max(MapCacheRow.created_at),
                ).select_from(MapCacheRow)
            ).one()
            claims = sum(len(c) for c in session.scalars(select(MapCacheRow.claims)))
        return CacheStats(
            entries=entries,
            sources=sources,
            claims=claims,
            oldest=_aware(oldest),
            newest=_aware(newest),
        )

    def clear(self, *, before: datetime | None = None) -> int:
        """Remove every entry (made before `before`, when given); returns how many."""
        query = delete(MapCacheRow)
        if before is not None:
            check_aware(before, "before")
            query = query.where(MapCacheRow.created_at < before)
        with self._write() as session:
            result: CursorResult[Any] = session.execute(query)  # type: ignore[assignment]
            return int(result.rowcount or 0)


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
