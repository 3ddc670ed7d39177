"""Shared fixtures: a fake OpenAI-compatible server and Settings aimed at it; a migrated
store on each backend; an environment without BRIEFING_* variables."""

from __future__ import annotations

import os

# litellm reads this when it is imported: use its bundled cost map, never fetch one.
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from store_databases import BACKENDS, database_url

from briefing.config import Settings
from briefing.store import Store
from briefing.store.migrations import upgrade
from briefing.testing import FakeOpenAIServer

#: A key-shaped string that tests check never leaks into messages or logs.
TEST_API_KEY = "sk-test-not-a-real-key"
TEST_MODEL = "openai/gpt-4o-mini"


@pytest.fixture
def fake_server() -> Iterator[FakeOpenAIServer]:
    """A running FakeOpenAIServer on 127.0.0.1; script it with `queue` or `responder`."""
    with FakeOpenAIServer() as server:
        yield server


@pytest.fixture
def llm_settings(
    fake_server: FakeOpenAIServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Settings]:
    """Factory of Settings for TEST_MODEL at `fake_server`, fast retries, call log in tmp_path."""
    # BRIEFING_* variables of the developer's shell must not change what a test runs with.
    for name in list(os.environ):
        if name.upper().startswith("BRIEFING_"):
            monkeypatch.delenv(name)

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "model": TEST_MODEL,
            "api_base": fake_server.base_url,
            "api_key": TEST_API_KEY,
            "retry_initial_s": 0.01,
            "retry_max_s": 5,
            "call_log": tmp_path / "calls.db",
            **overrides,
        }
        return Settings(**values)

    return make


@pytest.fixture
def no_briefing_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """BRIEFING_* variables of the developer's shell do not change what a test runs with
    (the PostgreSQL URL of the tests excepted)."""
    for name in list(os.environ):
        if name.upper().startswith("BRIEFING_") and name != "BRIEFING_TEST_POSTGRES_URL":
            monkeypatch.delenv(name)


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty database on each backend (PostgreSQL when configured)."""
    with database_url(request.param, tmp_path) as url:
        upgrade(url)
        yield url


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """A Store over `store_url`, closed after the test."""
    made = Store(store_url)
    yield made
    made.close()
