"""What requests give as sources: stored ones by id, inline texts, or both."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from briefing.config import Settings
from briefing.errors import LimitError, SourceError
from briefing.schema import Source
from briefing.service.surrogates import reject_lone_surrogates
from briefing.text.sources import source_from_text

__all__ = [
    "SourceLimit",
    "SourceText",
    "SourcesGiven",
    "check_source_count",
    "decode_upload",
    "inline_source",
    "within_limits",
]


class SourceText(BaseModel):
    """A source given inline."""

    title: str | None = Field(default=None, max_length=500)
    text: str = Field(min_length=1)


class SourcesGiven(BaseModel):
    """Stored sources (`source_ids`), inline `sources`, or both; at least one."""

    model_config = ConfigDict(extra="forbid")

    source_ids: list[str] = Field(default_factory=list)
    sources: list[SourceText] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _valid_unicode(cls, data: Any) -> Any:
        # Python's JSON parser lets "\ud800" through; no source could be encoded with it.
        return reject_lone_surrogates(data)

    @model_validator(mode="after")
    def _some_source(self) -> SourcesGiven:
        if not self.source_ids and not self.sources:
            raise ValueError("give source_ids, sources, or both")
        return self


def inline_source(item: SourceText, settings: Settings) -> Source:
    """The canonical Source of an inline text; LimitError beyond `max_source_chars`."""
    return within_limits(source_from_text(item.text, title=item.title), settings)


SourceLimit = Literal["max_sources_per_briefing", "max_sources_per_compare"]


def check_source_count(given: int, settings: Settings, limit: SourceLimit) -> None:
    """LimitError when `given` sources are more than the setting `limit` allows."""
    maximum: int = getattr(settings, limit)
    if given > maximum:
        raise LimitError(
            f"{given} sources given; {limit} is {maximum}", limit=limit, maximum=maximum
        )


def within_limits(source: Source, settings: Settings) -> Source:
    """`source`, or LimitError when it is longer than `max_source_chars`."""
    if len(source.text) > settings.max_source_chars:
        raise LimitError(
            f"a source has {len(source.text)} characters; max_source_chars is "
            f"{settings.max_source_chars}",
            limit="max_source_chars",
            maximum=settings.max_source_chars,
        )
    return source


def decode_upload(raw: bytes, name: str) -> str:
    """An uploaded file's bytes as text: UTF-8, a leading byte-order mark dropped;
    SourceError naming `name` and the first bad byte otherwise."""
    if b"\x00" in raw:
        raise SourceError(f"{name}: looks binary (contains NUL bytes); expected UTF-8 text")
    try:
        # utf-8-sig drops a leading byte-order mark, which is not part of the text.
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        at = exc.start + (3 if raw.startswith(b"\xef\xbb\xbf") else 0)
        raise SourceError(
            f"{name}: is not valid UTF-8 (byte 0x{raw[at]:02x} at offset {at})"
        ) from None
