"""The persistent store: SQLite or PostgreSQL through SQLAlchemy 2, one repository per aggregate.

A `Store` is one database (`Database`: the engine and its sessions) and the repositories
over it: `sources`, `items` and `fetch_state` (what the collectors found), `jobs` (briefing
jobs and their briefings), `schedules`, `runs` and `deliveries` (the daily briefings), and `map_cache` (the map
step's results, reused while a source is unchanged). The
schema is owned by the Alembic migrations in `briefing.store.migrations`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine

if TYPE_CHECKING:
    from briefing.config import Settings

from briefing.store.database import MAX_PAGE, Database, make_engine, normalise_url, redacted_url
from briefing.store.items import FetchState, FetchStateRepository, Item, ItemRepository
from briefing.store.jobs import (
    ACTIVE_STATUSES,
    FINAL_STATUSES,
    JOB_STATUSES,
    Job,
    JobRepository,
    JobStatus,
)
from briefing.store.map_cache import CacheStats, MapCacheRepository
from briefing.store.schedules import (
    Delivery,
    DeliveryRepository,
    DeliveryStatus,
    RunRepository,
    RunStatus,
    ScheduleRepository,
    ScheduleRun,
    StoredSchedule,
)
from briefing.store.sources import (
    SourceInUseError,
    SourcePage,
    SourceRepository,
    SourceSummary,
    StoredSource,
)

__all__ = [
    "ACTIVE_STATUSES",
    "FINAL_STATUSES",
    "JOB_STATUSES",
    "MAX_PAGE",
    "CacheStats",
    "Delivery",
    "DeliveryStatus",
    "FetchState",
    "Item",
    "Job",
    "JobStatus",
    "RunStatus",
    "ScheduleRun",
    "SourceInUseError",
    "SourcePage",
    "SourceSummary",
    "Store",
    "StoredSchedule",
    "StoredSource",
    "make_engine",
    "map_cache_of",
    "normalise_url",
    "redacted_url",
]


class Store:
    """One database and a repository per aggregate over it; safe to share between threads."""

    def __init__(self, url: str, *, engine: Engine | None = None) -> None:
        self.db = Database(url, engine=engine)
        self.url = url
        self.engine = self.db.engine
        self.sources = SourceRepository(self.db)
        self.items = ItemRepository(self.db)
        self.fetch_state = FetchStateRepository(self.db)
        self.jobs = JobRepository(self.db)
        self.schedules = ScheduleRepository(self.db)
        self.runs = RunRepository(self.db)
        self.deliveries = DeliveryRepository(self.db)
        self.map_cache = MapCacheRepository(self.db)

    def ping(self) -> None:
        """Raise StoreError when the database cannot be reached."""
        self.db.ping()

    def close(self) -> None:
        """Close every pooled connection."""
        self.db.close()


def map_cache_of(store: Store, settings: Settings) -> MapCacheRepository | None:
    """The store's map cache, or None when BRIEFING_MAP_CACHE is off."""
    return store.map_cache if settings.map_cache else None
