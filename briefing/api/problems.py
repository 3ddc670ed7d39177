"""Errors as RFC 9457 problem details (`application/problem+json`) with stable type URIs."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException

from briefing.errors import (
    BriefingError,
    ConflictError,
    LimitError,
    LLMError,
    NotFoundError,
    SourceError,
    StoreError,
    UserError,
)
from briefing.store import SourceInUseError

PROBLEM_JSON = "application/problem+json"
#: Problem types are URNs: stable identifiers that do not pretend to be fetchable pages.
TYPE_PREFIX = "urn:briefing:problem:"

#: slug -> title; a slug, once published, keeps its meaning.
TITLES = {
    "validation": "The request is not valid",
    "invalid-request": "The request cannot be served as asked",
    "invalid-source": "The source text cannot be used",
    "limit-exceeded": "A configured limit was exceeded",
    "request-too-large": "The request body is too large",
    "unsupported-media-type": "Unsupported media type",
    "unauthorized": "Missing or invalid API key",
    "not-found": "Not found",
    "method-not-allowed": "Method not allowed",
    "conflict": "The request conflicts with the stored state",
    "source-in-use": "The source is used by a briefing in progress",
    "upstream-error": "A model provider failed",
    "store-unavailable": "The database is unavailable",
    "not-ready": "The service is not ready",
    "internal": "Internal server error",
    "http-error": "HTTP error",
}
_BY_STATUS = {
    401: "unauthorized",
    404: "not-found",
    405: "method-not-allowed",
    413: "request-too-large",
    415: "unsupported-media-type",
    422: "validation",
}

log = logging.getLogger("briefing.api")


class Problem(BaseModel):
    """An RFC 9457 problem document; extension members are allowed."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str | None = None
    request_id: str | None = None


def problem_type(slug: str) -> str:
    """The type URI of a problem slug."""
    return TYPE_PREFIX + slug


def problem_body(slug: str, status: int, detail: str | None, **extra: Any) -> dict[str, Any]:
    """A problem document as a dict."""
    body: dict[str, Any] = {
        "type": problem_type(slug),
        "title": TITLES.get(slug, TITLES["http-error"]),
        "status": status,
    }
    if detail is not None:
        body["detail"] = detail
    body.update({k: v for k, v in extra.items() if v is not None})
    return body


def problem_response(
    request: Request | None,
    slug: str,
    status: int,
    detail: str | None = None,
    *,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    """A problem+json response; carries the request id when there is one."""
    request_id = request.scope.get("state", {}).get("request_id") if request else None
    # Set here too, because a 500 is sent from outside the middleware that adds it.
    with_id = {**(headers or {}), **({"X-Request-ID": request_id} if request_id else {})}
    return JSONResponse(
        problem_body(slug, status, detail, request_id=request_id, **extra),
        status_code=status,
        headers=with_id,
        media_type=PROBLEM_JSON,
    )


def _error_problem(exc: BriefingError) -> tuple[str, int, dict[str, Any]]:
    # Most specific first: the typed errors decide the status, not their messages.
    if isinstance(exc, SourceInUseError):
        return "source-in-use", 409, {"job_ids": exc.job_ids}
    if isinstance(exc, ConflictError):
        return "conflict", 409, {}
    if isinstance(exc, NotFoundError):
        return "not-found", 404, {}
    if isinstance(exc, LimitError):
        return "limit-exceeded", 422, {"limit": exc.limit, "maximum": exc.maximum}
    if isinstance(exc, SourceError):
        return "invalid-source", 422, {}
    if isinstance(exc, UserError):
        return "invalid-request", 422, {}
    if isinstance(exc, StoreError):
        return "store-unavailable", 503, {}
    if isinstance(exc, LLMError):
        return "upstream-error", 502, {}
    return "internal", 500, {}


async def _briefing_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, BriefingError)
    slug, status, extra = _error_problem(exc)
    if status >= 500:
        log.warning("request failed: %s: %s", type(exc).__name__, exc)
    # Runtime errors carry messages meant for operators (database errors); clients get the
    # kind of failure, not internals.
    detail = str(exc) if isinstance(exc, UserError | LLMError) else TITLES[slug]
    return problem_response(request, slug, status, detail, **extra)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": list(err.get("loc", ())), "msg": err.get("msg", ""), "type": err.get("type", "")}
        for err in exc.errors()
    ]
    where = ", ".join(".".join(str(p) for p in e["loc"]) for e in errors[:5])
    return problem_response(request, "validation", 422, f"invalid request: {where}", errors=errors)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    slug = _BY_STATUS.get(exc.status_code, "http-error")
    detail = exc.detail if isinstance(exc.detail, str) else None
    return problem_response(request, slug, exc.status_code, detail, headers=exc.headers)


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    # Starlette re-raises after this response, so the traceback still reaches the log.
    return problem_response(request, "internal", 500, TITLES["internal"])


def install(app: FastAPI) -> None:
    """Route every error of `app` through problem details."""
    app.add_exception_handler(BriefingError, _briefing_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
