"""Collectors of the daily briefings: where a schedule's sources come from (folder, url, feed)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl

__all__ = ["CollectorSpec", "FeedSpec", "FolderSpec", "UrlSpec"]


class _Spec(BaseModel):
    # A typo in a schedule file must be an error, not a silently ignored key.
    model_config = ConfigDict(extra="forbid", frozen=True)


class FolderSpec(_Spec):
    """Files in a folder matching a glob; relative paths are relative to the schedule file."""

    kind: Literal["folder"] = "folder"
    path: str = Field(min_length=1)
    glob: str = Field(default="*.txt", min_length=1)


class UrlSpec(_Spec):
    """One web page; its article text is extracted from the HTML."""

    kind: Literal["url"] = "url"
    url: HttpUrl


class FeedSpec(_Spec):
    """An RSS or Atom feed; each entry's link is collected as a url source."""

    kind: Literal["feed"] = "feed"
    url: HttpUrl
    max_entries: int = Field(default=50, ge=1, le=1000)


CollectorSpec = Annotated[FolderSpec | UrlSpec | FeedSpec, Field(discriminator="kind")]
