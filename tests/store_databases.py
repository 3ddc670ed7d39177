"""Databases for store and API tests: a SQLite file, and PostgreSQL when one is reachable.

Set BRIEFING_TEST_POSTGRES_URL (e.g. postgresql://briefing:briefing@127.0.0.1:5432/briefing_test)
to run the PostgreSQL cases; each test gets its own schema, dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

POSTGRES_ENV = "BRIEFING_TEST_POSTGRES_URL"
#: Set in CI: there a missing or unreachable server fails the PostgreSQL cases, never skips them.
REQUIRE_ENV = "BRIEFING_REQUIRE_POSTGRES"
BACKENDS = ["sqlite", "postgresql"]

_unreachable: dict[str, str] = {}


def _skip(reason: str) -> None:
    if os.environ.get(REQUIRE_ENV):
        pytest.fail(
            f"{REQUIRE_ENV} is set, but {reason.removeprefix('PostgreSQL tests skipped: ')}"
        )
    pytest.skip(reason)


def _postgres_or_skip() -> str:
    url = os.environ.get(POSTGRES_ENV, "").strip()
    if not url:
        _skip(f"PostgreSQL tests skipped: {POSTGRES_ENV} is not set")
    if url in _unreachable:
        _skip(_unreachable[url])
    from sqlalchemy import text

    from briefing.store import make_engine, redacted_url

    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:
        _unreachable[url] = (
            f"PostgreSQL tests skipped: {redacted_url(url)} is not reachable ({type(exc).__name__})"
        )
        _skip(_unreachable[url])
    finally:
        engine.dispose()
    return url


@contextmanager
def _postgres_schema(url: str) -> Iterator[str]:
    from sqlalchemy import text

    from briefing.store import make_engine, normalise_url

    schema = f"test_{uuid.uuid4().hex[:12]}"
    admin = make_engine(url)
    try:
        with admin.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        scoped = normalise_url(url).update_query_dict({"options": f"-csearch_path={schema}"})
        yield scoped.render_as_string(hide_password=False)
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


@contextmanager
def database_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """An empty database of `backend` for one test; PostgreSQL skips when unavailable."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    with _postgres_schema(_postgres_or_skip()) as url:
        yield url
