"""Article text out of fetched pages and HTML files (trafilatura), with the page's metadata.

Used by the collectors of the daily briefings and by the pages' "new briefing" form, which
takes URLs (through the guarded fetcher) and uploaded .html files.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from briefing.errors import SourceError

if TYPE_CHECKING:  # fetching (httpx) is imported on first use, as in the collectors
    from briefing.daily.fetch import Fetched, Fetcher

__all__ = [
    "PAGE_ACCEPT",
    "PageMeta",
    "clean_text",
    "fetch_article",
    "html_article",
    "iso_time",
    "page_text",
]

HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
TEXT_TYPES = frozenset({"text/plain", "text/markdown", "text/x-markdown"})
PAGE_ACCEPT = "text/html,application/xhtml+xml;q=0.9,text/plain;q=0.8,*/*;q=0.1"
# Ask htmldate for the time and offset too, not just the day, when the page has them.
_DATE_FORMAT = "%Y-%m-%dT%H:%M:%S%z"


@dataclass(frozen=True)
class PageMeta:
    title: str | None = None
    author: str | None = None
    published_at: datetime | None = None


def page_text(fetched: Fetched, shown: str) -> tuple[str, PageMeta]:
    """The text of a fetched page: the article of an HTML page, or plain text as it is;
    SourceError for other content or a page without text."""
    media = fetched.media_type or _sniff(fetched.content)
    if media in HTML_TYPES:
        text, meta = _article(fetched, shown)
    elif media in TEXT_TYPES:
        text, meta = fetched.text(), PageMeta()
    else:
        raise SourceError(
            f"{shown}: unsupported content type {media or 'none'!r}; "
            "expected an HTML page or plain text"
        )
    if not text.strip():
        raise SourceError(f"{shown}: no text found in the page")
    return text, meta


def _sniff(content: bytes) -> str | None:
    head = content[:512].lstrip().lower()
    return "text/html" if head.startswith((b"<!doctype html", b"<html")) else None


def _article(fetched: Fetched, shown: str) -> tuple[str, PageMeta]:
    import trafilatura  # a slow import, needed only when a page is collected

    # The declared charset wins; without one, trafilatura sniffs the bytes (meta charset).
    html: str | bytes = (
        fetched.content.decode(fetched.charset, errors="replace")
        if fetched.charset
        else fetched.content
    )
    try:
        document = trafilatura.bare_extraction(
            html,
            url=shown,
            with_metadata=True,
            include_comments=False,
            include_tables=True,
            date_extraction_params={
                "outputformat": _DATE_FORMAT,
                # Dates from the page's markup only: the wider search guesses from text
                # such as a footer's copyright year, and a wrong date is worse than none.
                "extensive_search": False,
                "original_date": True,
            },
        )
    except Exception as exc:  # lxml and the extractors raise many kinds on broken markup
        raise SourceError(
            f"{shown}: the article text cannot be extracted ({type(exc).__name__})"
        ) from None
    if document is None:
        raise SourceError(f"{shown}: no article text found in the page")
    # trafilatura 2 returns a Document, 1.x a dict.
    fields: dict[str, Any] = document if isinstance(document, dict) else document.as_dict()
    meta = PageMeta(
        title=clean_text(fields.get("title")),
        author=clean_text(fields.get("author")),
        published_at=iso_time(fields.get("date")),
    )
    return str(fields.get("text") or ""), meta


def clean_text(value: object) -> str | None:
    """`value` as one line of text, or None when it holds none."""
    text = " ".join(str(value).split()) if value is not None else ""
    return text or None


def iso_time(value: object) -> datetime | None:
    """An ISO 8601 time as an aware UTC datetime; None when there is none to read."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    # A date without a time or offset is read as midnight UTC.
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def html_article(raw: bytes, name: str) -> tuple[str, PageMeta]:
    """The article text of an uploaded HTML file named `name` (SourceError without one)."""
    from briefing.daily.fetch import Fetched

    fetched = Fetched(
        url=name, final_url=name, status_code=200, content=raw, media_type="text/html"
    )
    text, meta = _article(fetched, name)
    if not text.strip():
        raise SourceError(f"{name}: no article text found in the page")
    return text, meta


def fetch_article(fetcher: Fetcher, url: str, shown: str) -> tuple[str, PageMeta, str]:
    """The text, metadata and final URL of the page at `url`, fetched within the settings'
    limits (FetchError or SourceError naming `shown`, the URL without credentials)."""
    fetched = fetcher.fetch(url, accept=PAGE_ACCEPT)
    return (*page_text(fetched, shown), fetched.final_url)
