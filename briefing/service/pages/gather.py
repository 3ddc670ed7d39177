"""Sources from a page's form: pasted text, uploaded files and URLs.

Files may be .txt, .md (UTF-8) or .html (the article is extracted); URLs go through the
guarded fetcher of the daily briefings, with its limits and address policy. Shared by the
new-briefing and the compare forms.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePath

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from briefing.config import Settings
from briefing.daily.articles import fetch_article, html_article
from briefing.errors import SourceError, UserError
from briefing.schema import Source
from briefing.service.inputs import SourceLimit, check_source_count, decode_upload, within_limits
from briefing.service.pages.session import CSRF_COOKIE, CSRF_FIELD, csrf_matches
from briefing.text.sources import source_from_text
from briefing.urls import redact_url

__all__ = ["SourcesForm", "gather", "read_form"]

#: Form parts one request may carry: files and fields (starlette's own limits are 1,000).
MAX_PARTS = 50
_TEXT_SUFFIXES = {".txt", ".md", ".markdown"}
_HTML_SUFFIXES = {".html", ".htm"}


@dataclass
class SourcesForm:
    """What a posted form holds: its text fields, its files, and whether its CSRF token
    was the browser's."""

    fields: dict[str, str]
    uploads: list[UploadFile]
    trusted: bool

    def field(self, name: str) -> str:
        """A text field, '' when absent."""
        return self.fields.get(name, "")

    @property
    def urls(self) -> list[str]:
        """The non-blank lines of the `urls` field."""
        return [line.strip() for line in self.field("urls").splitlines() if line.strip()]


async def read_form(request: Request) -> SourcesForm:
    """The posted multipart form, within MAX_PARTS parts."""
    form = await request.form(max_files=MAX_PARTS, max_fields=MAX_PARTS)
    fields = {k: v for k, v in form.multi_items() if isinstance(v, str)}
    uploads = [v for v in form.getlist("files") if isinstance(v, UploadFile) and v.filename]
    trusted = csrf_matches(request.cookies.get(CSRF_COOKIE), fields.get(CSRF_FIELD))
    return SourcesForm(fields, uploads, trusted)


def _upload(raw: bytes, name: str) -> Source:
    suffix = PurePath(name).suffix.lower()
    if suffix in _TEXT_SUFFIXES:
        return source_from_text(decode_upload(raw, name), path=name)
    if suffix in _HTML_SUFFIXES:
        text, meta = html_article(raw, name)
        return source_from_text(text, title=meta.title, path=name)
    raise SourceError(f"{name}: only .txt, .md and .html files can be read")


def _fetched(urls: list[str], settings: Settings) -> list[Source]:
    from briefing.daily.fetch import Fetcher  # httpx, on first use

    sources = []
    with Fetcher(settings) as fetcher:
        for url in urls:
            text, meta, final = fetch_article(fetcher, url, redact_url(url))
            sources.append(source_from_text(text, title=meta.title, path=redact_url(final)))
    return sources


async def gather(
    form: SourcesForm, settings: Settings, *, limit: SourceLimit, at_least: int = 1
) -> list[Source]:
    """The form's sources in order (text, files, URLs): LimitError beyond the setting
    `limit`, said before any URL is fetched; UserError below `at_least`."""
    text, urls = form.field("text"), form.urls
    count = bool(text.strip()) + len(form.uploads) + len(urls)
    # Each fetch may take fetch_timeout_s: refuse before the first.
    check_source_count(count, settings, limit)
    sources = []
    if text.strip():
        sources.append(source_from_text(text, title=form.field("title").strip() or None))
    for upload in form.uploads:
        name = PurePath(upload.filename or "upload.txt").name
        sources.append(_upload(await upload.read(), name))
    if urls:
        sources.extend(await run_in_threadpool(_fetched, urls, settings))
    if count < at_least:
        raise UserError(
            "Give a text, a file or a URL."
            if at_least == 1
            else f"Give at least {at_least} sources: a text, files or URLs."
        )
    return [within_limits(s, settings) for s in sources]
