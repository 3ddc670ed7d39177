"""Liveness and readiness probes (never behind the API key)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from briefing.errors import StoreError
from briefing.service.deps import StoreDep
from briefing.service.problems import problem_response

router = APIRouter(tags=["health"])


class Health(BaseModel):
    """A probe's answer."""

    status: str
    checks: dict[str, str] = {}


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    """The process is up and serving requests."""
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Health,
    responses={503: {"description": "Database unreachable or migrations not applied"}},
)
def readyz(request: Request, store: StoreDep) -> Any:
    """The database is reachable and every migration has been applied."""
    from briefing.store.migrations import current_revision, head_revision

    checks: dict[str, str] = {}
    try:
        store.ping()
        checks["database"] = "ok"
        current, head = current_revision(store.engine), head_revision()
        checks["migrations"] = (
            "ok"
            if current == head
            else f"at {current or 'none'}, need {head}: run 'briefing db upgrade'"
        )
    except StoreError as exc:
        # The cause's type is enough to act on; its text may name hosts and users.
        checks["database"] = f"unreachable ({type(exc.__cause__ or exc).__name__})"
    if all(value == "ok" for value in checks.values()) and "migrations" in checks:
        return Health(status="ready", checks=checks)
    failing = ", ".join(f"{k}: {v}" for k, v in checks.items() if v != "ok")
    response: JSONResponse = problem_response(request, "not-ready", 503, failing, checks=checks)
    return response
