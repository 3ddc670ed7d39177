"""/v1/schedules: schedules from the file and the API, their runs, and running one now.

Each test runs on SQLite, and again on PostgreSQL when BRIEFING_TEST_POSTGRES_URL is set.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from store_databases import BACKENDS, POSTGRES_ENV, database_url

from briefing.config import Settings
from briefing.daily.scheduler import DailyScheduler
from briefing.daily.schedules import Schedule, next_run
from briefing.pipeline.request import BriefingOptions
from briefing.service import create_app
from briefing.store import Store
from briefing.store.migrations import upgrade

PROBLEM = "application/problem+json"
SEED = Path(__file__).resolve().parent.parent / "seeds"
API_KEY = "schedules-test-key"


class Service:
    """An app over a fresh, migrated database, with its store and the folders it may use."""

    def __init__(self, client: TestClient, store: Store, root: Path) -> None:
        self.client = client
        self.store = store
        #: The one folder of BRIEFING_SCHEDULE_ROOTS; `news` holds a copy of seeds/.
        self.root = root
        self.news = root / "news"
        self.out = root / "out"

    @property
    def scheduler(self) -> DailyScheduler | None:
        """The app's scheduler, when it runs one."""
        scheduler: DailyScheduler | None = self.client.app.state.scheduler  # type: ignore[attr-defined]
        return scheduler

    def schedule(self, name: str = "news", **fields: Any) -> dict[str, Any]:
        """A schedule body over the copied seeds, delivered to the store and `out`."""
        return {
            "name": name,
            "cron": "0 7 * * *",
            "sources": [{"kind": "folder", "path": str(self.news)}],
            "deliver": [{"kind": "store"}, {"kind": "dir", "path": str(self.out)}],
            **fields,
        }


MakeService = Callable[..., Service]


@pytest.fixture(params=BACKENDS)
def make_service(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[MakeService]:
    """Factory of services; the scheduler runs only with `run_jobs=True`."""
    for name in list(os.environ):
        if name.upper().startswith("BRIEFING_") and name != POSTGRES_ENV:
            monkeypatch.delenv(name, raising=False)
    root = tmp_path / "roots" / "briefings"
    shutil.copytree(SEED, root / "news")
    with ExitStack() as stack:
        url = stack.enter_context(database_url(request.param, tmp_path))
        upgrade(url)

        def make(*, run_jobs: bool = False, **overrides: Any) -> Service:
            values: dict[str, Any] = {
                "database_url": url,
                "call_log": tmp_path / "calls.db",
                "schedule_roots": str(root),
                "job_workers": 0,
                "shutdown_grace_s": 5,
                **overrides,
            }
            store = Store(url)
            stack.callback(store.close)
            app = create_app(Settings(**values), store=store, run_jobs=run_jobs)
            client = stack.enter_context(TestClient(app, raise_server_exceptions=False))
            return Service(client, store, root)

        yield make


def _problem(response: Any, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["type"] == f"urn:briefing:problem:{slug}"
    return body


def _invalid(response: Any, *loc: str | int) -> str:
    """The message of the one validation error of `response`, which must be at `loc`."""
    body = _problem(response, 422, "validation")
    [error] = body["errors"]
    assert error["loc"] == list(loc), body
    message: str = error["msg"]
    return message


def _file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "briefings.toml"
    path.write_text(text, encoding="utf-8")
    return path


FILE_SCHEDULE = """\
[[schedule]]
name = "from-file"
cron = "30 6 * * 1-5"
timezone = "Europe/Berlin"
sources = [{ kind = "folder", path = "seeds/" }]
deliver = [{ kind = "dir", path = "out/" }]
"""


# ---------------------------------------------------------------- CRUD


def test_a_schedule_is_created_read_replaced_and_deleted(make_service: MakeService) -> None:
    service = make_service()
    client = service.client
    body = service.schedule()

    created = client.post("/v1/schedules", json=body)

    assert created.status_code == 201, created.text
    assert created.headers["location"] == "/v1/schedules/news"
    shown = created.json()
    assert (shown["name"], shown["origin"], shown["cron"], shown["last_run"]) == (
        "news",
        "api",
        "0 7 * * *",
        None,
    )
    assert shown["sources"] == [{"kind": "folder", "path": str(service.news), "glob": "*.txt"}]
    expected = next_run(Schedule.model_validate(body), datetime.now(UTC))
    assert datetime.fromisoformat(shown["next_run_at"]) == expected
    assert shown["created_at"] is not None
    assert client.get("/v1/schedules/news").json() == shown
    assert [s["name"] for s in client.get("/v1/schedules").json()["items"]] == ["news"]

    # PUT replaces it (200), and creates another (201).
    replaced = client.put("/v1/schedules/news", json={**body, "cron": "15 18 * * *"})
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["cron"] == "15 18 * * *"
    assert replaced.json()["created_at"] == shown["created_at"]
    other = client.put("/v1/schedules/other", json=service.schedule("other"))
    assert (other.status_code, other.headers["location"]) == (201, "/v1/schedules/other")
    listed = client.get("/v1/schedules").json()["items"]
    assert [(s["name"], s["cron"]) for s in listed] == [
        ("news", "15 18 * * *"),
        ("other", "0 7 * * *"),
    ]

    deleted = client.delete("/v1/schedules/news")
    assert (deleted.status_code, deleted.content) == (204, b"")
    _problem(client.get("/v1/schedules/news"), 404, "not-found")
    _problem(client.delete("/v1/schedules/news"), 404, "not-found")
    assert [s["name"] for s in client.get("/v1/schedules").json()["items"]] == ["other"]


def test_a_taken_name_is_a_conflict(make_service: MakeService) -> None:
    service = make_service()
    assert service.client.post("/v1/schedules", json=service.schedule()).status_code == 201

    again = service.client.post("/v1/schedules", json=service.schedule(cron="0 9 * * *"))

    assert "already exists" in _problem(again, 409, "conflict")["detail"]
    assert service.client.get("/v1/schedules/news").json()["cron"] == "0 7 * * *"


def test_file_schedules_are_listed_and_read_only(make_service: MakeService, tmp_path: Path) -> None:
    service = make_service(schedules_file=_file(tmp_path, FILE_SCHEDULE))
    client = service.client
    assert client.post("/v1/schedules", json=service.schedule()).status_code == 201

    listed = client.get("/v1/schedules").json()["items"]

    assert [(s["name"], s["origin"]) for s in listed] == [("from-file", "file"), ("news", "api")]
    from_file = client.get("/v1/schedules/from-file").json()
    assert (from_file["timezone"], from_file["created_at"]) == ("Europe/Berlin", None)
    # Paths as the file writes them; relative to the file's folder when they run.
    assert from_file["deliver"] == [
        {"kind": "dir", "path": "out/", "formats": ["md"], "content": "full"}
    ]
    body = service.schedule("from-file")
    _problem(client.post("/v1/schedules", json=body), 409, "conflict")
    assert (
        "schedules file"
        in _problem(client.put("/v1/schedules/from-file", json=body), 409, "conflict")["detail"]
    )
    _problem(client.delete("/v1/schedules/from-file"), 409, "conflict")
    assert client.get("/v1/schedules/from-file").json() == from_file


def test_the_name_in_the_body_must_be_the_one_in_the_path(make_service: MakeService) -> None:
    service = make_service()

    response = service.client.put("/v1/schedules/news", json=service.schedule("other"))

    assert "name in the path" in _invalid(response, "body", "name")
    _problem(service.client.get("/v1/schedules/other"), 404, "not-found")


def test_webhook_secrets_are_not_shown(make_service: MakeService) -> None:
    service = make_service()
    hook = {
        "kind": "webhook",
        "url": "https://hooks.example.org/x?token=hunter2&team=a",
        "secret_env": "HOOK_SECRET",
        "headers": {"Authorization": "Bearer hunter2"},
    }
    body = service.schedule(deliver=[hook])

    response = service.client.post("/v1/schedules", json=body)

    assert response.status_code == 201, response.text
    assert "hunter2" not in response.text
    [shown] = response.json()["deliver"]
    assert shown["url"] == "https://hooks.example.org/x?token=***&team=a"
    assert (shown["headers"], shown["secret_env"]) == ({"Authorization": "***"}, "HOOK_SECRET")
    # The store keeps what the client gave: the delivery needs it.
    definition = service.store.schedules.get("news").definition
    assert definition["deliver"][0]["headers"] == {"Authorization": "Bearer hunter2"}


# ---------------------------------------------------------------- refusals


def test_a_bad_cron_is_a_validation_problem_naming_cron(make_service: MakeService) -> None:
    service = make_service()

    response = service.client.post("/v1/schedules", json=service.schedule(cron="61 7 * * *"))

    assert "minute field '61'" in _invalid(response, "body", "cron")


def test_folders_outside_the_roots_are_refused(make_service: MakeService, tmp_path: Path) -> None:
    service = make_service()
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (service.root / "escape").symlink_to(outside)
    cases = {
        "outside": str(outside),
        "dot-dot": f"{service.root}/news/../../../elsewhere",
        "symlink": str(service.root / "escape"),
        "relative": "news",
        "home": "~/news",
    }
    for label, path in cases.items():
        body = service.schedule(sources=[{"kind": "folder", "path": path}])
        response = service.client.post("/v1/schedules", json=body)
        message = _invalid(response, "body", "sources", 0, "folder", "path")
        assert "BRIEFING_SCHEDULE_ROOTS" in message, label
        # The path as given, not where it leads.
        assert message.startswith(repr(path)), label
        assert message.count("elsewhere") == path.count("elsewhere"), label
    listed = service.client.get("/v1/schedules").json()["items"]
    assert listed == []


def test_a_glob_cannot_leave_its_folder(make_service: MakeService) -> None:
    service = make_service()
    body = service.schedule(sources=[{"kind": "folder", "path": str(service.news), "glob": "../*"}])

    response = service.client.post("/v1/schedules", json=body)

    assert "no '..'" in _invalid(response, "body", "sources", 0, "folder", "glob")


def test_dir_deliveries_outside_the_roots_are_refused(
    make_service: MakeService, tmp_path: Path
) -> None:
    service = make_service()
    body = service.schedule(
        deliver=[{"kind": "store"}, {"kind": "dir", "path": f"{service.root}/../../out"}]
    )

    response = service.client.post("/v1/schedules", json=body)

    assert "BRIEFING_SCHEDULE_ROOTS" in _invalid(response, "body", "deliver", 1, "dir", "path")


def test_without_roots_no_api_schedule_may_use_files(make_service: MakeService) -> None:
    service = make_service(schedule_roots=None)

    response = service.client.post("/v1/schedules", json=service.schedule())

    body = _problem(response, 422, "validation")
    assert [e["loc"] for e in body["errors"]] == [
        ["body", "sources", 0, "folder", "path"],
        ["body", "deliver", 1, "dir", "path"],
    ]
    assert all("BRIEFING_SCHEDULE_ROOTS" in e["msg"] for e in body["errors"])
    assert "sets none" in body["errors"][0]["msg"]
    # URL and feed sources and webhooks need no root.
    web = service.schedule(
        sources=[{"kind": "feed", "url": "https://example.org/rss.xml"}],
        deliver=[{"kind": "webhook", "url": "https://hooks.example.org/x"}],
    )
    assert service.client.post("/v1/schedules", json=web).status_code == 201


def test_only_offered_models_and_known_prompts(make_service: MakeService) -> None:
    service = make_service(models="openai/gpt-4o-mini")

    unoffered = service.client.post("/v1/schedules", json=service.schedule(model="openai/o3"))
    unknown = service.client.post("/v1/schedules", json=service.schedule(prompt="nope@7"))
    offered = service.client.post(
        "/v1/schedules", json=service.schedule(model="openai/gpt-4o-mini")
    )

    assert "not offered" in _invalid(unoffered, "body", "model")
    _invalid(unknown, "body", "prompt")
    assert offered.status_code == 201, offered.text


def test_a_secret_put_in_secret_env_is_not_echoed(make_service: MakeService) -> None:
    service = make_service()
    secret = "s3cr3t-value-PUT-here!"
    hook = {"kind": "webhook", "url": "https://hooks.example.org/x", "secret_env": secret}

    response = service.client.post("/v1/schedules", json=service.schedule(deliver=[hook]))

    message = _invalid(response, "body", "deliver", 0, "webhook", "secret_env")
    assert "not the secret" in message
    assert secret not in response.text


def test_patch_changes_only_the_fields_given_and_keeps_hidden_secrets(
    make_service: MakeService,
) -> None:
    service = make_service()
    client = service.client
    hook = {
        "kind": "webhook",
        "url": "https://hooks.example.org/hooks/T01/B02/tok3nSecret",
        "headers": {"Authorization": "Bearer hdr-secret", "Accept": "application/json"},
    }
    assert client.post("/v1/schedules", json=service.schedule(deliver=[hook])).status_code == 201
    shown = client.get("/v1/schedules/news").json()
    assert shown["deliver"][0]["url"] == "https://hooks.example.org/hooks/***"
    assert shown["deliver"][0]["headers"] == {
        "Authorization": "***",
        "Accept": "application/json",
    }

    # One field: the rest, secrets included, stay as stored.
    patched = client.patch("/v1/schedules/news", json={"cron": "30 6 * * 1-5"})
    assert patched.status_code == 200, patched.text
    assert patched.json()["cron"] == "30 6 * * 1-5"
    stored = service.store.schedules.get("news").definition
    assert stored["deliver"][0]["url"] == hook["url"]
    assert stored["deliver"][0]["headers"]["Authorization"] == "Bearer hdr-secret"

    # The list as GET shows it, edited: hidden values are kept, changed ones replaced.
    deliver = shown["deliver"]
    deliver[0]["headers"]["X-Team"] = "news-desk"
    deliver[0]["timeout_s"] = 30
    patched = client.patch(
        "/v1/schedules/news",
        json={"deliver": deliver, "options": {"key_points": 5}},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert patched.status_code == 200, patched.text
    stored = service.store.schedules.get("news").definition
    [webhook] = stored["deliver"]
    assert webhook["url"] == hook["url"]
    assert webhook["headers"] == {
        "Authorization": "Bearer hdr-secret",
        "Accept": "application/json",
        "X-Team": "news-desk",
    }
    assert webhook["timeout_s"] == 30
    assert stored["options"]["key_points"] == 5
    assert stored["cron"] == "30 6 * * 1-5"
    assert "hdr-secret" not in patched.text
    assert "tok3nSecret" not in patched.text

    # null removes a field (back to its default); bad values name the field; no renames.
    patched = client.patch("/v1/schedules/news", json={"options": None})
    assert patched.status_code == 200, patched.text
    options = service.store.schedules.get("news").definition["options"]
    assert options == BriefingOptions().model_dump(mode="json")
    message = _invalid(
        client.patch("/v1/schedules/news", json={"cron": "61 * * * *"}), "body", "cron"
    )
    assert "minute" in message
    _invalid(client.patch("/v1/schedules/news", json={"name": "other"}), "body", "name")
    _problem(client.patch("/v1/schedules/nope", json={"cron": "0 8 * * *"}), 404, "not-found")
    _invalid(client.patch("/v1/schedules/news", json=["not", "an", "object"]), "body")
    # Nothing of the refused patches was stored.
    assert service.store.schedules.get("news").definition["cron"] == "30 6 * * 1-5"


def test_the_api_key_guards_the_schedules(make_service: MakeService) -> None:
    service = make_service(api_keys=API_KEY)
    client = service.client

    for method, path in [
        ("GET", "/v1/schedules"),
        ("POST", "/v1/schedules"),
        ("GET", "/v1/schedules/news"),
        ("PUT", "/v1/schedules/news"),
        ("PATCH", "/v1/schedules/news"),
        ("DELETE", "/v1/schedules/news"),
        ("GET", "/v1/schedules/news/runs"),
        ("POST", "/v1/schedules/news/run"),
    ]:
        _problem(client.request(method, path), 401, "unauthorized")
    key = {"Authorization": f"Bearer {API_KEY}"}
    assert client.post("/v1/schedules", json=service.schedule(), headers=key).status_code == 201
    assert client.get("/v1/schedules", headers=key).status_code == 200


# ---------------------------------------------------------------- runs


def test_a_run_now_delivers_and_a_second_run_of_the_date_is_skipped(
    make_service: MakeService,
) -> None:
    service = make_service()
    client = service.client
    assert client.post("/v1/schedules", json=service.schedule()).status_code == 201

    first = client.post("/v1/schedules/news/run", params={"date": "2026-03-02"})

    assert first.status_code == 200, first.text
    outcome = first.json()
    assert (outcome["status"], outcome["run_date"]) == ("succeeded", "2026-03-02")
    assert "2 new item(s)" in outcome["message"]
    run = outcome["run"]
    assert (run["status"], run["items"]) == ("succeeded", 2)
    assert [(d["kind"], d["status"], d["attempts"]) for d in run["deliveries"]] == [
        ("store", "delivered", 1),
        ("dir", "delivered", 1),
    ]
    markdown = (service.out / "news-2026-03-02.md").read_text("utf-8")
    briefing = client.get(run["briefing"]).json()
    assert briefing["status"] == "succeeded"
    assert briefing["title"] in markdown

    second = client.post("/v1/schedules/news/run", params={"date": "2026-03-02"}).json()
    assert second["status"] == "skipped"
    assert "already ran" in second["message"]
    assert second["run"]["id"] == run["id"]

    listed = client.get("/v1/schedules/news/runs").json()
    assert listed["next_before"] is None
    [only] = listed["items"]
    assert only == {**run, "deliveries": only["deliveries"]}
    assert only["deliveries"][1]["target"] == str(service.out)
    last = client.get("/v1/schedules/news").json()["last_run"]
    assert last == {
        "id": run["id"],
        "run_date": "2026-03-02",
        "status": "succeeded",
        "finished_at": run["finished_at"],
        "briefing": run["briefing"],
    }


def test_force_runs_a_date_again_and_a_day_without_news_is_empty(
    make_service: MakeService,
) -> None:
    service = make_service()
    client = service.client
    assert client.post("/v1/schedules", json=service.schedule()).status_code == 201
    assert client.post("/v1/schedules/news/run?date=2026-03-02").json()["status"] == "succeeded"

    empty = client.post("/v1/schedules/news/run?date=2026-03-03").json()
    forced = client.post("/v1/schedules/news/run?date=2026-03-03&force=true").json()

    assert (empty["status"], empty["run"]["briefing"], empty["run"]["deliveries"]) == (
        "empty",
        None,
        [],
    )
    assert "nothing new" in empty["message"]
    assert (forced["status"], forced["run"]["attempt"]) == ("empty", 2)


def test_runs_are_listed_newest_first_in_pages_and_outlive_their_schedule(
    make_service: MakeService,
) -> None:
    service = make_service()
    client = service.client
    assert client.post("/v1/schedules", json=service.schedule()).status_code == 201
    for day in ("2026-03-01", "2026-03-03", "2026-03-02"):
        assert client.post(f"/v1/schedules/news/run?date={day}").status_code == 200

    page = client.get("/v1/schedules/news/runs", params={"limit": 2}).json()
    rest = client.get(
        "/v1/schedules/news/runs", params={"limit": 2, "before": page["next_before"]}
    ).json()

    assert [r["run_date"] for r in page["items"]] == ["2026-03-03", "2026-03-02"]
    assert page["next_before"] == "2026-03-02"
    assert ([r["run_date"] for r in rest["items"]], rest["next_before"]) == (["2026-03-01"], None)
    # The first run found the seeds; the later ones had nothing new.
    assert [r["status"] for r in rest["items"]] == ["succeeded"]
    assert client.delete("/v1/schedules/news").status_code == 204
    assert len(client.get("/v1/schedules/news/runs").json()["items"]) == 3
    _problem(client.post("/v1/schedules/news/run"), 404, "not-found")


def test_runs_of_unknown_schedules_and_bad_dates(make_service: MakeService) -> None:
    service = make_service()
    client = service.client
    assert client.post("/v1/schedules", json=service.schedule()).status_code == 201

    _problem(client.get("/v1/schedules/nope/runs"), 404, "not-found")
    _problem(client.post("/v1/schedules/nope/run"), 404, "not-found")
    assert client.get("/v1/schedules/news/runs").json() == {"items": [], "next_before": None}
    _invalid(client.post("/v1/schedules/news/run", params={"date": "0"}), "query", "date")
    _invalid(client.get("/v1/schedules/news/runs", params={"before": "86400"}), "query", "before")


def test_a_file_schedule_runs_with_paths_relative_to_the_file(
    make_service: MakeService, tmp_path: Path
) -> None:
    shutil.copytree(SEED, tmp_path / "seeds")
    # The file is trusted: its folders need no root.
    service = make_service(schedules_file=_file(tmp_path, FILE_SCHEDULE), schedule_roots=None)

    outcome = service.client.post("/v1/schedules/from-file/run?date=2026-03-02").json()

    assert outcome["status"] == "succeeded", outcome
    assert (tmp_path / "out" / "from-file-2026-03-02.md").is_file()


def test_an_api_schedule_the_settings_no_longer_allow_does_not_run(
    make_service: MakeService,
) -> None:
    service = make_service()
    assert service.client.post("/v1/schedules", json=service.schedule()).status_code == 201
    narrowed = make_service(schedule_roots=str(service.root / "out"))

    response = narrowed.client.post("/v1/schedules/news/run")

    detail = _problem(response, 422, "invalid-request")["detail"]
    assert "sources.0.folder.path" in detail
    assert not service.out.exists()


# ---------------------------------------------------------------- the service's scheduler


def test_changes_through_the_api_reach_the_scheduler_at_once(make_service: MakeService) -> None:
    service = make_service(run_jobs=True)
    scheduler = service.scheduler
    assert scheduler is not None
    assert scheduler.schedules == {}

    assert service.client.post("/v1/schedules", json=service.schedule()).status_code == 201
    assert list(scheduler.schedules) == ["news"]
    first = scheduler.next_run_time("news")
    replaced = service.client.put("/v1/schedules/news", json=service.schedule(cron="45 23 * * *"))
    assert replaced.status_code == 200
    assert scheduler.next_run_time("news") == datetime.fromisoformat(replaced.json()["next_run_at"])
    assert scheduler.next_run_time("news") != first
    assert service.client.delete("/v1/schedules/news").status_code == 204
    assert scheduler.schedules == {}
    assert scheduler.next_run_time("news") is None


def test_the_scheduler_can_be_switched_off(make_service: MakeService) -> None:
    service = make_service(run_jobs=True, scheduler=False)

    assert service.scheduler is None
    assert service.client.post("/v1/schedules", json=service.schedule()).status_code == 201
