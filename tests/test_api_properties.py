"""Property-based tests of the HTTP API: generated requests against its own OpenAPI document.

Schemathesis reads /openapi.json from the app (in-process, through ASGI), generates valid
and invalid requests for every operation, and checks each response: never a server error,
and what the document promises (status codes, content types, headers, body schemas, and
that the API key it declares is enforced). The API runs with keys set, as deployed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from pydantic import SecretStr

from briefing.config import Settings
from briefing.service import create_app
from briefing.store import Store
from briefing.store.migrations import upgrade

KEY = "test-key"
PROBLEM = "application/problem+json"

#: The document is the same for every app; this one only serves it (its store is never
#: opened). Each test calls an app of its own, over a fresh database.
schema = schemathesis.openapi.from_asgi(
    "/openapi.json",
    create_app(Settings(database_url="sqlite://", api_keys=SecretStr(KEY)), run_jobs=False),
)
schema.config.generation.update(
    # The test sends the valid key itself, and checks that requests without it (or with a
    # wrong one) are refused; a generated Authorization header would only hide the key.
    with_security_parameters=False,
    # Query parameters the API does not know are ignored, as HTTP APIs do; OpenAPI has no
    # way to promise otherwise, so sending them is not a negative case.
    allow_extra_parameters=False,
)


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FastAPI]:
    """An app over a fresh, migrated SQLite store: API keys set, small limits, no worker."""
    for name in list(os.environ):
        if name.upper().startswith("BRIEFING_"):
            monkeypatch.delenv(name)
    url = f"sqlite:///{tmp_path / 'store.db'}"
    upgrade(url)
    store = Store(url)
    values: dict[str, Any] = {
        "database_url": url,
        "call_log": tmp_path / "calls.db",
        "api_keys": KEY,
        "job_workers": 0,
        # Small limits keep generated requests cheap, and put the limits themselves in reach.
        "max_wait_s": 1,
        "max_request_bytes": 64 * 1024,
        "max_source_chars": 5_000,
        "max_check_pairs": 3,
        "max_sources_per_briefing": 3,
    }
    try:
        yield create_app(Settings(**values), store=store, run_jobs=False)
    finally:
        store.close()


def _excluded_checks(case: schemathesis.Case[Any]) -> list[Any]:
    # Not among the checks: that every schema-valid request is accepted. Whether a request
    # can be served depends on more than its shape: on stored state (ids, opaque cursors),
    # on rules across fields (a briefing needs source_ids or sources), and on the service's
    # limits, which these settings make smaller than the schema's.
    excluded: list[Any] = [schemathesis.checks.positive_data_acceptance]
    if case.media_type == "multipart/form-data":
        # Form fields are text: a title negated into a number arrives as the text "152282",
        # which is a valid title.
        excluded.append(schemathesis.checks.negative_data_rejection)
    return excluded


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_api_keeps_its_documented_contract(case: schemathesis.Case[Any], app: FastAPI) -> None:
    case.call_and_validate(
        app=app,
        headers={"Authorization": f"Bearer {KEY}"},
        excluded_checks=_excluded_checks(case),
    )


# ---------------------------------------------------------------- the key, and what it found


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    """A client of `app` that sends the API key."""
    with TestClient(
        app, raise_server_exceptions=False, headers={"Authorization": f"Bearer {KEY}"}
    ) as client:
        yield client


def _operations(prefix: str) -> list[tuple[str, str]]:
    paths: dict[str, dict[str, Any]] = schema.raw_schema["paths"]
    return [
        (method.upper(), path)
        for path, operations in paths.items()
        if path.startswith(prefix)
        for method in operations
    ]


@pytest.mark.parametrize(("method", "path"), _operations("/v1/"))
def test_every_v1_operation_needs_the_key(app: FastAPI, method: str, path: str) -> None:
    declared = schema.raw_schema["paths"][path][method.lower()]
    assert declared["security"] == [{"HTTPBearer": []}]
    url = re.sub(r"\{[^}]+\}", "x", path)
    with TestClient(app, raise_server_exceptions=False) as client:
        responses = [
            client.request(method, url),
            client.request(method, url, headers={"Authorization": "Bearer wrong-key"}),
            client.request(method, url, headers={"Authorization": f"Basic {KEY}"}),
        ]
    for response in responses:
        assert response.status_code == 401, response.text
        assert response.headers["content-type"] == PROBLEM
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["type"] == "urn:briefing:problem:unauthorized"


def test_a_claim_without_words_is_refused_not_a_server_error(client: TestClient) -> None:
    pairs = [{"id": "a", "document": "0", "claim": ":"}]
    response = client.post("/v1/check", json={"pairs": pairs})
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM
    [error] = response.json()["errors"]
    assert error["loc"] == ["body", "pairs", 0, "claim"]
    assert "has no words" in error["msg"]


def test_method_not_allowed_names_every_method_of_the_path(client: TestClient) -> None:
    assert client.put("/v1/sources").headers["allow"] == "GET, HEAD, POST"
    assert client.put("/v1/sources/x").headers["allow"] == "DELETE, GET, HEAD"
    response = client.delete("/v1/briefings/x/cancel")
    assert (response.status_code, response.headers["allow"]) == (405, "POST")
    assert response.headers["content-type"] == PROBLEM


def test_errors_are_documented_as_problems() -> None:
    for path, operations in schema.raw_schema["paths"].items():
        for method, operation in operations.items():
            errors = {s: r for s, r in operation["responses"].items() if s[0] in "45"}
            assert {"4XX", "5XX"} <= set(errors), (method, path)
            for response in errors.values():
                assert list(response["content"]) == [PROBLEM], (method, path)
