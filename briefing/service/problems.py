"""Errors as RFC 9457 problem details (`application/problem+json`) with stable type URIs."""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path

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
    """An RFC 9457 problem document; extension members (such as `errors` of a validation
    problem, or `limit` and `maximum` of an exceeded limit) are allowed."""

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


_METHODS = frozenset({"GET", "PUT", "POST", "DELETE", "OPTIONS", "HEAD", "PATCH", "TRACE"})


@functools.lru_cache(maxsize=256)
def _path_pattern(template: str) -> re.Pattern[str]:
    pattern, _, _ = compile_path(template)
    return pattern


def _allowed_methods(request: Request, given: str | None) -> str | None:
    """The methods of every documented operation on the request's path, and `given`."""
    methods = {m.strip().upper() for m in (given or "").split(",") if m.strip()}
    path = request.scope.get("path", "")
    for template, operations in request.app.openapi().get("paths", {}).items():
        if _path_pattern(template).match(path):
            methods.update(m.upper() for m in operations if m.upper() in _METHODS)
    if "GET" in methods:
        methods.add("HEAD")  # Starlette answers HEAD wherever it answers GET
    return ", ".join(sorted(methods)) or None


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    slug = _BY_STATUS.get(exc.status_code, "http-error")
    detail = exc.detail if isinstance(exc.detail, str) else None
    headers = exc.headers
    if exc.status_code == 405:
        # Starlette's Allow names the methods of the first route of the path only; a path
        # served by several routes (GET and POST /v1/sources) accepts them all.
        allowed = _allowed_methods(request, (headers or {}).get("Allow"))
        if allowed:
            headers = {**(headers or {}), "Allow": allowed}
    return problem_response(request, slug, exc.status_code, detail, headers=headers)


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    # Starlette re-raises after this response, so the traceback still reaches the log.
    return problem_response(request, "internal", 500, TITLES["internal"])


_PROBLEM_CONTENT = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}


def _document_problems(openapi: dict[str, Any]) -> dict[str, Any]:
    """Declare in an OpenAPI document that every operation's errors are problem documents."""
    schemas = openapi.setdefault("components", {}).setdefault("schemas", {})
    schemas["Problem"] = Problem.model_json_schema()
    for path_item in openapi.get("paths", {}).values():
        for operation in path_item.values():
            responses = operation.setdefault("responses", {})
            # Any operation may meet a missing key (401), a body over the limit (413) or a
            # database that is down (503), besides the errors of its own.
            for status in ("4XX", "5XX"):
                responses.setdefault(status, {"description": "A problem document (RFC 9457)"})
            for status, response in responses.items():
                if status[:1] in ("4", "5"):
                    # FastAPI's own 422 promises {"detail": [...]} as application/json;
                    # the handlers above answer every error, that one too, as a problem.
                    responses[status] = {**response, "content": _PROBLEM_CONTENT}
    # FastAPI's validation error schemas, now referenced by nothing.
    for name in ("HTTPValidationError", "ValidationError"):
        rest = {k: v for k, v in schemas.items() if k != name}
        if f'"#/components/schemas/{name}"' not in json.dumps([openapi.get("paths"), rest]):
            schemas.pop(name, None)
    return openapi


def install(app: FastAPI) -> None:
    """Route every error of `app` through problem details, and say so in its OpenAPI."""
    app.add_exception_handler(BriefingError, _briefing_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        # FastAPI caches the document in app.openapi_schema; it is amended once.
        if app.openapi_schema is None:
            app.openapi_schema = _document_problems(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
