"""The HTTP service through its ASGI app: every route, happy paths and errors.

Each test runs on SQLite, and again on PostgreSQL when BRIEFING_TEST_POSTGRES_URL is set.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from store_databases import BACKENDS, POSTGRES_ENV, database_url

from briefing.config import Settings
from briefing.service import create_app
from briefing.store import Store
from briefing.store.migrations import upgrade

PROBLEM = "application/problem+json"
SEED = Path(__file__).resolve().parent.parent / "seeds"

MakeClient = Callable[..., TestClient]


@pytest.fixture(params=BACKENDS)
def make_client(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[MakeClient]:
    """Factory of clients of an app over a fresh, migrated store (SQLite, and PostgreSQL
    when BRIEFING_TEST_POSTGRES_URL is reachable)."""
    for name in list(os.environ):
        # The developer's settings must not change what a test runs with; the test
        # database URL is not a setting.
        if name.upper().startswith("BRIEFING_") and name != POSTGRES_ENV:
            monkeypatch.delenv(name, raising=False)
    made = 0
    with ExitStack() as stack:

        def make(*, migrate: bool = True, **overrides: Any) -> TestClient:
            nonlocal made
            made += 1
            folder = tmp_path / f"db{made}"
            folder.mkdir()
            url = stack.enter_context(database_url(request.param, folder))
            if migrate:
                upgrade(url)
            settings = Settings(database_url=url, call_log=tmp_path / "calls.db", **overrides)
            return stack.enter_context(
                TestClient(create_app(settings), raise_server_exceptions=False)
            )

        yield make


@pytest.fixture
def client(make_client: MakeClient) -> TestClient:
    """A client of an open (no API keys) app."""
    return make_client()


def _problem(response: Any, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["type"] == f"urn:briefing:problem:{slug}"
    assert body["status"] == status
    assert body["title"]
    assert body["request_id"] == response.headers["x-request-id"]
    return body


# ---------------------------------------------------------------- health


def test_healthz_and_readyz(client: TestClient) -> None:
    assert client.get("/healthz").json()["status"] == "ok"
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "checks": {"database": "ok", "migrations": "ok"}}


def test_readyz_reports_missing_migrations(make_client: MakeClient) -> None:
    client = make_client(migrate=False)
    body = _problem(client.get("/readyz"), 503, "not-ready")
    assert body["checks"]["database"] == "ok"
    assert "briefing db upgrade" in body["checks"]["migrations"]
    assert client.get("/healthz").status_code == 200  # alive, just not ready


def test_readyz_reports_an_unreachable_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(os.environ):
        if name.upper().startswith("BRIEFING_"):
            monkeypatch.delenv(name)
    # A directory where the database file should be: SQLite cannot open it.
    blocked = tmp_path / "db-is-a-dir"
    blocked.mkdir()
    settings = Settings(database_url=f"sqlite:///{blocked}")
    with TestClient(create_app(settings)) as client:
        body = _problem(client.get("/readyz"), 503, "not-ready")
    assert body["checks"]["database"].startswith("unreachable")
    assert str(blocked) not in json.dumps(body)


# ---------------------------------------------------------------- sources


def test_post_source_as_json_then_again(client: TestClient) -> None:
    created = client.post("/v1/sources", json={"title": "Council", "text": "It met.\r\nIt voted."})
    assert created.status_code == 201
    body = created.json()
    assert body["title"] == "Council"
    assert body["text"] == "It met.\nIt voted."  # canonical text
    assert body["chars"] == len(body["text"])
    assert created.headers["location"] == f"/v1/sources/{body['id']}"
    again = client.post("/v1/sources", json={"text": "It met.\nIt voted."})
    assert again.status_code == 200
    assert again.json() == body
    assert client.get(f"/v1/sources/{body['id']}").json() == body


def test_post_source_as_file_upload(client: TestClient) -> None:
    seed = sorted(SEED.glob("*.txt"))[0]
    response = client.post(
        "/v1/sources", files={"file": (f"some/dir/{seed.name}", seed.read_bytes(), "text/plain")}
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["path"] == seed.name  # a label only: the directory part is dropped
    assert body["text"] == seed.read_text("utf-8").replace("\r\n", "\n")
    titled = client.post(
        "/v1/sources",
        files={"file": ("x.md", b"# Heading\n\nBody text here.", "text/markdown")},
        data={"title": "Given title"},
    )
    assert titled.status_code == 201
    assert titled.json()["title"] == "Given title"


@pytest.mark.parametrize(
    ("payload", "detail"),
    [
        (b"\xff\xfebad", "not valid UTF-8"),
        (b"text\x00with nul", "binary"),
        (b"   \n ", "empty"),
    ],
)
def test_unusable_uploads_are_invalid_sources(
    client: TestClient, payload: bytes, detail: str
) -> None:
    response = client.post("/v1/sources", files={"file": ("f.txt", payload, "text/plain")})
    body = _problem(response, 422, "invalid-source")
    assert detail in body["detail"]


def test_upload_without_a_file_field_is_a_validation_error(client: TestClient) -> None:
    response = client.post("/v1/sources", data={"title": "no file"}, files={"x": ("a", b"b")})
    body = _problem(response, 422, "validation")
    assert body["errors"][0]["loc"] == ["body", "file"]
    too_long = client.post(
        "/v1/sources", data={"title": "t" * 501}, files={"file": ("a.txt", b"Some text.")}
    )
    assert _problem(too_long, 422, "validation")["errors"][0]["loc"] == ["body", "title"]


@pytest.mark.parametrize(
    ("kwargs", "loc"),
    [
        ({"json": {"title": "no text"}}, ["body", "text"]),
        ({"json": {"text": 5}}, ["body", "text"]),
        ({"content": b"{not json", "headers": {"content-type": "application/json"}}, ["body"]),
    ],
)
def test_invalid_json_sources_are_validation_problems(
    client: TestClient, kwargs: dict[str, Any], loc: list[Any]
) -> None:
    body = _problem(client.post("/v1/sources", **kwargs), 422, "validation")
    assert body["errors"][0]["loc"][: len(loc)] == loc


def test_blank_text_is_an_invalid_source(client: TestClient) -> None:
    _problem(client.post("/v1/sources", json={"text": "  \n "}), 422, "invalid-source")


def test_other_media_types_are_refused(client: TestClient) -> None:
    response = client.post("/v1/sources", content=b"x", headers={"content-type": "text/plain"})
    _problem(response, 415, "unsupported-media-type")


def test_source_size_limit_is_named(make_client: MakeClient) -> None:
    client = make_client(max_source_chars=10)
    body = _problem(
        client.post("/v1/sources", json={"text": "far more than ten characters"}),
        422,
        "limit-exceeded",
    )
    assert body["limit"] == "max_source_chars"
    assert body["maximum"] == 10
    assert client.post("/v1/sources", json={"text": "short"}).status_code == 201


def test_request_body_limit_gives_413(make_client: MakeClient) -> None:
    client = make_client(max_request_bytes=2048)
    big = {"text": "word " * 1000}
    body = _problem(client.post("/v1/sources", json=big), 413, "request-too-large")
    assert body["limit"] == "max_request_bytes"
    assert body["maximum"] == 2048

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit still holds
        yield b'{"text": "'
        for _ in range(100):
            yield b"x" * 100
        yield b'"}'

    chunked = client.post(
        "/v1/sources", content=chunks(), headers={"content-type": "application/json"}
    )
    _problem(chunked, 413, "request-too-large")
    assert client.post("/v1/sources", json={"text": "small enough"}).status_code == 201


def test_list_sources_paginates(client: TestClient) -> None:
    ids = [client.post("/v1/sources", json={"text": f"Text {i}."}).json()["id"] for i in range(3)]
    first = client.get("/v1/sources", params={"limit": 2}).json()
    assert [item["id"] for item in first["items"]] == ids[::-1][:2]
    assert "text" not in first["items"][0]
    second = client.get("/v1/sources", params={"limit": 2, "cursor": first["next_cursor"]}).json()
    assert [item["id"] for item in second["items"]] == ids[:1]
    assert second["next_cursor"] is None
    _problem(client.get("/v1/sources", params={"limit": 0}), 422, "validation")
    _problem(client.get("/v1/sources", params={"cursor": "junk!"}), 422, "invalid-request")


def test_nul_characters_in_ids_and_titles(client: TestClient) -> None:
    _problem(client.get("/v1/sources/a%00b"), 404, "not-found")
    _problem(client.delete("/v1/sources/a%00b"), 404, "not-found")
    bad = client.post("/v1/sources", json={"title": "a\u0000b", "text": "Fine text."})
    assert "NUL" in _problem(bad, 422, "invalid-source")["detail"]


def test_get_and_delete_sources(client: TestClient) -> None:
    source_id = client.post("/v1/sources", json={"text": "Short lived."}).json()["id"]
    deleted = client.delete(f"/v1/sources/{source_id}")
    assert deleted.status_code == 204
    assert deleted.content == b""
    _problem(client.get(f"/v1/sources/{source_id}"), 404, "not-found")
    _problem(client.delete(f"/v1/sources/{source_id}"), 404, "not-found")


def test_delete_refused_while_a_briefing_uses_the_source(client: TestClient) -> None:
    source_id = client.post("/v1/sources", json={"text": "In use."}).json()["id"]
    store: Store = client.app.state.store  # type: ignore[attr-defined]
    job, _ = store.jobs.create({"source_ids": [source_id]}, [source_id])
    body = _problem(client.delete(f"/v1/sources/{source_id}"), 409, "source-in-use")
    assert body["job_ids"] == [job.id]
    store.jobs.finish(job.id, "cancelled")
    assert client.delete(f"/v1/sources/{source_id}").status_code == 204


# ---------------------------------------------------------------- check


def test_check_scores_pairs_in_order(client: TestClient) -> None:
    document = "The council approved the budget on Monday. The mayor was absent."
    response = client.post(
        "/v1/check",
        json={
            "pairs": [
                {"id": "yes", "document": document, "claim": "The council approved the budget."},
                {"id": 7, "document": document, "claim": "The mayor resigned in protest.", "x": 1},
            ]
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    results = body["results"]
    assert [r["id"] for r in results] == ["yes", "7"]
    assert results[0]["label"] == 1
    assert results[0]["verdict"] == "supported"
    assert results[1]["label"] == 0
    assert results[0]["score"] > results[1]["score"]
    assert body["method"] == results[0]["method"]
    evidence = results[0]["evidence"][0]
    assert document[evidence["start"] : evidence["end"]] == evidence["text"]


def test_check_refuses_unpaired_surrogates(client: TestClient) -> None:
    raw = b'{"pairs": [{"id": "a", "document": "The cat \\ud800 sat.", "claim": "A cat."}]}'
    response = client.post("/v1/check", content=raw, headers={"content-type": "application/json"})
    body = _problem(response, 422, "validation")
    assert "pairs[0].document" in body["errors"][0]["msg"]


def test_check_errors(make_client: MakeClient) -> None:
    client = make_client(max_check_pairs=1)
    pair = {"id": "a", "document": "Doc.", "claim": "Claim."}
    body = _problem(client.post("/v1/check", json={"pairs": [pair, pair]}), 422, "limit-exceeded")
    assert body["limit"] == "max_check_pairs"
    blank = _problem(
        client.post("/v1/check", json={"pairs": [{**pair, "claim": " "}]}), 422, "validation"
    )
    assert blank["errors"][0]["loc"] == ["body", "pairs", 0, "claim"]
    _problem(client.post("/v1/check", json={"pairs": []}), 422, "validation")
    judge = _problem(
        client.post("/v1/check", json={"pairs": [pair], "method": "judge"}), 422, "invalid-request"
    )
    assert "BRIEFING_CHECK_MODEL" in judge["detail"]


# ---------------------------------------------------------------- prompts


def test_prompts_list_and_get(client: TestClient) -> None:
    listed = client.get("/v1/prompts").json()
    labels = {p["label"]: p for p in listed}
    assert labels["briefing@1"]["released"] is True
    one = client.get("/v1/prompts/briefing/1")
    assert one.status_code == 200
    body = one.json()
    assert body["sha256"] == labels["briefing@1"]["sha256"]
    assert body["input_variables"]
    assert body["system"]
    assert body["user"]
    _problem(client.get("/v1/prompts/briefing/999"), 404, "not-found")
    _problem(client.get("/v1/prompts/no-such-prompt/1"), 404, "not-found")
    _problem(client.get("/v1/prompts/briefing/0"), 422, "validation")


# ---------------------------------------------------------------- auth


def test_api_keys_guard_v1_but_not_health(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = make_client(api_keys="first-key, second-key")
    missing = _problem(client.get("/v1/sources"), 401, "unauthorized")
    assert "Bearer" in missing["detail"]
    wrong = client.get("/v1/sources", headers={"Authorization": "Bearer first-ke"})
    _problem(wrong, 401, "unauthorized")
    assert wrong.headers["www-authenticate"] == "Bearer"
    basic = client.get("/v1/prompts", headers={"Authorization": "Basic Zmlyc3Qta2V5"})
    _problem(basic, 401, "unauthorized")
    for key in ("first-key", "second-key"):
        ok = client.get("/v1/sources", headers={"Authorization": f"Bearer {key}"})
        assert ok.status_code == 200
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    assert "first-key" not in caplog.text
    assert "second-key" not in caplog.text


# ---------------------------------------------------------------- requests and errors


def test_request_id_is_echoed_or_made(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="briefing.api.access")
    given = client.get("/healthz", headers={"X-Request-ID": "req-123"})
    assert given.headers["x-request-id"] == "req-123"
    made = client.get("/healthz")
    assert len(made.headers["x-request-id"]) == 32
    forged = client.get("/healthz", headers={"X-Request-ID": "bad id\twith spaces"})
    assert forged.headers["x-request-id"] != "bad id\twith spaces"
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "briefing.api.access"]
    assert len(lines) == 3  # one per request
    assert lines[0]["request_id"] == "req-123"
    assert lines[0] | {"duration_ms": 0} == {
        "event": "request",
        "request_id": "req-123",
        "method": "GET",
        "path": "/healthz",
        "route": "/healthz",
        "status": 200,
        "duration_ms": 0,
        "client": "testclient",
    }


def test_unknown_routes_and_methods_are_problems(client: TestClient) -> None:
    _problem(client.get("/v1/nothing-here"), 404, "not-found")
    _problem(client.put("/v1/sources"), 405, "method-not-allowed")


def test_store_failures_are_503_without_internals(client: TestClient) -> None:
    store: Store = client.app.state.store  # type: ignore[attr-defined]
    with store.engine.begin() as connection:
        for table in ("job_sources", "items", "fetch_state", "sources"):  # referrers first
            connection.exec_driver_sql(f"DROP TABLE {table}")
    body = _problem(client.get("/v1/sources"), 503, "store-unavailable")
    assert "sources" not in body["detail"]


def test_unexpected_errors_are_problems_without_internals(client: TestClient) -> None:
    def explode() -> None:
        raise RuntimeError("secret internal state")

    client.app.add_api_route("/v1/explode", explode)  # type: ignore[attr-defined]
    response = client.get("/v1/explode", headers={"X-Request-ID": "boom-1"})
    body = _problem(response, 500, "internal")
    assert body["request_id"] == "boom-1"
    assert "secret" not in response.text


def test_openapi_documents_both_upload_forms(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert {"/healthz", "/readyz", "/v1/sources", "/v1/sources/{source_id}", "/v1/check"} <= set(
        spec["paths"]
    )
    content = spec["paths"]["/v1/sources"]["post"]["requestBody"]["content"]
    assert {"application/json", "multipart/form-data"} <= set(content)
    assert client.get("/docs").status_code == 200


# ---------------------------------------------------------------- compare


def test_compare_judges_stored_and_inline_sources(client: TestClient) -> None:
    shared = "The harbour bridge reopened on Friday after three months of repairs."
    stored = client.post(
        "/v1/sources", json={"title": "A", "text": f"{shared}\nThe mayor cut the ribbon."}
    ).json()
    response = client.post(
        "/v1/compare",
        json={
            "source_ids": [stored["id"]],
            "sources": [{"title": "B", "text": f"Port news.\n{shared}"}],
            "method": "offline",
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert [s["title"] for s in body["sources"]] == ["A", "B"]
    texts = {s["id"]: s["text"] for s in body["sources"]}
    by_text = {s["text"]: s for s in body["sentences"]}
    for s in body["sentences"]:
        assert texts[s["source_id"]][s["start"] : s["end"]] == s["text"]
    assert by_text[shared]["status"] == "corroborated"
    assert by_text["The mayor cut the ribbon."]["status"] == "single_source"
    assert body["method"] == "offline-lexical-v2"
    # Inline sources are compared, not stored.
    assert len(client.get("/v1/sources").json()["items"]) == 1


def test_compare_errors(make_client: MakeClient) -> None:
    client = make_client(max_sources_per_compare=2)
    text = {"text": "The council approved the budget on Monday."}
    body = _problem(
        client.post("/v1/compare", json={"sources": [text, text, text]}), 422, "limit-exceeded"
    )
    assert body["limit"] == "max_sources_per_compare"
    _problem(client.post("/v1/compare", json={}), 422, "validation")
    _problem(client.post("/v1/compare", json={"source_ids": ["nope"]}), 404, "not-found")
    judge = _problem(
        client.post("/v1/compare", json={"sources": [text], "method": "judge"}),
        422,
        "invalid-request",
    )
    assert "judge" in judge["detail"]
