"""/v1/sources: store source texts (JSON or a file upload), list, read and delete them."""

from __future__ import annotations

from datetime import datetime
from pathlib import PurePath
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, ValidationError
from starlette.datastructures import UploadFile

from briefing.schema import Source
from briefing.service.deps import SettingsDep, StoreDep
from briefing.service.inputs import decode_upload, within_limits
from briefing.store import MAX_PAGE, SourcePage, StoredSource
from briefing.text.sources import source_from_text

router = APIRouter(prefix="/v1/sources", tags=["sources"])

_TITLE_MAX = 500


class SourceCreate(BaseModel):
    """A source given as text; the title is guessed from the text when left out."""

    title: str | None = Field(default=None, max_length=_TITLE_MAX)
    text: str = Field(min_length=1)


class SourcePublic(BaseModel):
    """A stored source: `text` is the canonical text that citation offsets index."""

    id: str
    title: str
    path: str | None
    sha256: str
    chars: int
    created_at: datetime
    text: str

    @classmethod
    def of(cls, stored: StoredSource) -> SourcePublic:
        """The public form of a stored source."""
        return cls(
            id=stored.id,
            title=stored.title,
            path=stored.path,
            sha256=stored.sha256,
            chars=len(stored.text),
            created_at=stored.created_at,
            text=stored.text,
        )


_UPLOAD_SCHEMA = {
    "type": "object",
    "required": ["file"],
    "properties": {
        "file": {"type": "string", "format": "binary", "description": "UTF-8 .txt or .md"},
        "title": {"type": "string", "maxLength": _TITLE_MAX},
    },
}


async def _source_from_request(request: Request) -> Source:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        form = await request.form()
        upload, title = form.get("file"), form.get("title")
        if not isinstance(upload, UploadFile):
            raise RequestValidationError(
                [{"loc": ("body", "file"), "msg": "a file field is required", "type": "missing"}]
            )
        if title is not None and (not isinstance(title, str) or len(title) > _TITLE_MAX):
            raise RequestValidationError(
                [
                    {
                        "loc": ("body", "title"),
                        "msg": f"must be text of at most {_TITLE_MAX} characters",
                        "type": "string_too_long",
                    }
                ]
            )
        # The client's file name is kept as a label only; no server path is ever read.
        name = PurePath(upload.filename or "upload.txt").name
        text = decode_upload(await upload.read(), name)
        return source_from_text(text, title=title or None, path=name)
    if content_type == "application/json" or content_type.endswith("+json"):
        try:
            given = SourceCreate.model_validate_json(await request.body())
        except ValidationError as exc:
            raise RequestValidationError(
                [{**err, "loc": ("body", *err["loc"])} for err in exc.errors()]
            ) from None
        return source_from_text(given.text, title=given.title)
    from fastapi import HTTPException

    raise HTTPException(
        status_code=415,
        detail="send application/json ({title, text}) or multipart/form-data (file, title)",
    )


@router.post(
    "",
    response_model=SourcePublic,
    status_code=201,
    responses={
        200: {"description": "The same text was already stored", "model": SourcePublic},
        201: {"description": "Stored"},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": SourceCreate.model_json_schema()},
                "multipart/form-data": {"schema": _UPLOAD_SCHEMA},
            },
        }
    },
)
async def create_source(
    request: Request, response: Response, store: StoreDep, settings: SettingsDep
) -> SourcePublic:
    """Store a source; posting a text that is already stored returns it with 200."""
    source = within_limits(await _source_from_request(request), settings)
    stored, created = await run_in_threadpool(store.sources.add, source)
    response.status_code = 201 if created else 200
    response.headers["Location"] = f"/v1/sources/{stored.id}"
    return SourcePublic.of(stored)


@router.get("", response_model=SourcePage)
def list_sources(
    store: StoreDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> SourcePage:
    """Sources newest first, without their text; follow `next_cursor` for more."""
    return store.sources.page(limit=limit, cursor=cursor)


@router.get("/{source_id}", response_model=SourcePublic)
def get_source(source_id: str, store: StoreDep) -> SourcePublic:
    """One source with its canonical text."""
    return SourcePublic.of(store.sources.get(source_id))


@router.delete("/{source_id}", status_code=204, response_model=None)
def delete_source(source_id: str, store: StoreDep) -> None:
    """Delete a source; 409 while a briefing in progress uses it."""
    store.sources.delete(source_id)
