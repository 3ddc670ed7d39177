"""Collectors of the daily briefings: where a schedule's sources come from (folder, url, feed).

`collect` gathers the sources of a schedule's specs, records each text once in the store
(with where and when it was first seen) and says which are new. One failing source becomes
an error message in the result, never an exception: the others are still collected.
Fetching, HTML extraction (trafilatura) and feed parsing (feedparser) are imported on first
use, so loading schedules stays fast.

A folder's files are those its glob matches that resolve (symlinks followed, `..` folded)
to a place inside the folder: a link out of it is refused with an error naming it. Feed
entries are fetched several at a time, a few per host.
"""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import urljoin, urlsplit

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, ValidationError

from briefing.daily.articles import PAGE_ACCEPT, clean_text, page_text
from briefing.errors import FetchError, NotFoundError, SourceError, StoreError, UserError
from briefing.schema import Source
from briefing.text.sources import load_source, source_from_text

if TYPE_CHECKING:
    from briefing.config import Settings
    from briefing.daily.fetch import Fetched, Fetcher
    from briefing.store import FetchState, Item, Store

__all__ = [
    "Collected",
    "Collection",
    "CollectorSpec",
    "FeedEntry",
    "FeedSpec",
    "FolderSpec",
    "UrlSpec",
    "collect",
    "describe",
]


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


_log = logging.getLogger(__name__)

# ---------------------------------------------------------------- results

_FEED_ACCEPT = (
    "application/rss+xml,application/atom+xml,application/xml;q=0.9,text/xml;q=0.9,*/*;q=0.1"
)
#: Timeouts or refused connections after which a host's other pages are skipped: a feed of
#: 50 entries on a host that hangs would otherwise cost 50 full fetch timeouts.
_HOST_FAILURES = 2
#: UTF-8 takes at most 4 bytes a character: a larger file cannot fit max_source_chars.
_BYTES_PER_CHAR = 4


@dataclass(frozen=True)
class Collected:
    """One collected source: its text, its item record, whether it is new, and the spec."""

    source: Source
    item: Item
    new: bool
    spec: str


@dataclass
class Collection:
    """What `collect` found: every source (new or not) and one message per failed source."""

    items: list[Collected] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def new(self) -> list[Collected]:
        """The items first seen by this collection."""
        return [c for c in self.items if c.new]


class FeedEntry(BaseModel):
    """One entry of a feed: its link and the metadata the feed gives for it."""

    url: str
    title: str | None = None
    author: str | None = None
    published_at: datetime | None = None


def describe(spec: FolderSpec | UrlSpec | FeedSpec) -> str:
    """A short label of a spec for messages, without credentials (e.g. "feed https://x/rss")."""
    if isinstance(spec, FolderSpec):
        return f"folder {spec.path} ({spec.glob})"
    from briefing.urls import redact_url

    return f"{spec.kind} {redact_url(str(spec.url))}"


# ---------------------------------------------------------------- collecting


def collect(
    specs: Sequence[FolderSpec | UrlSpec | FeedSpec],
    store: Store,
    settings: Settings,
    *,
    base_dir: Path,
    now: datetime | None = None,
    fetcher: Fetcher | None = None,
) -> Collection:
    """Collect the sources of `specs`, record them in `store`, and report per-source errors.

    Relative folder paths are relative to `base_dir`; `now` (aware, default the current
    time) is when new items are first seen. A text found by several specs is listed once.
    Database failures (StoreError) are raised: without the store nothing can be recorded.
    """
    seen_at = now or datetime.now(UTC)
    if seen_at.tzinfo is None:
        raise UserError("now must carry a timezone (an aware datetime)")
    run = _Run(store, settings, base_dir, seen_at, fetcher)
    try:
        for spec in specs:
            where = None if isinstance(spec, FolderSpec) else str(spec.url)
            with run.attempt(describe(spec), where):
                run.collect(spec)
    finally:
        run.close()
    return run.result


class _Run:
    """The state of one collection: the store, the fetcher (opened on first use), results."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        base_dir: Path,
        now: datetime,
        fetcher: Fetcher | None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.base_dir = base_dir
        self.now = now
        self.result = Collection()
        self._fetcher = fetcher
        self._owns_fetcher = fetcher is None
        self._ids: set[str] = set()
        self._host_failures: dict[str, int] = {}
        # Feed entries are fetched on threads: these guard what the threads share.
        self._lock = threading.Lock()
        self._host_slots: dict[str, threading.BoundedSemaphore] = {}

    @property
    def fetcher(self) -> Fetcher:
        if self._fetcher is None:
            from briefing.daily.fetch import Fetcher

            self._fetcher = Fetcher(self.settings)
        return self._fetcher

    def fetch(self, url: str, **options: Any) -> Fetched:
        """Fetch through the fetcher, at most `fetch_per_host` at once a host, skipping
        hosts that keep failing in this collection (judged once a slot is free, so the
        pages waiting behind failing ones are skipped, not sent)."""
        host = (urlsplit(url).hostname or "").lower()
        with self._lock:
            slot = self._host_slots.setdefault(
                host, threading.BoundedSemaphore(self.settings.fetch_per_host)
            )
        with slot:
            with self._lock:
                failures = self._host_failures.get(host, 0)
            if failures >= _HOST_FAILURES:
                from briefing.urls import redact_url

                raise FetchError(
                    f"{redact_url(url)}: skipped: {host} failed {_HOST_FAILURES} times in this run",
                    url=redact_url(url),
                    kind="skipped",
                )
            try:
                return self.fetcher.fetch(url, **options)
            except FetchError as exc:
                if exc.kind in ("timeout", "connect"):
                    with self._lock:
                        self._host_failures[host] = self._host_failures.get(host, 0) + 1
                raise

    def close(self) -> None:
        if self._owns_fetcher and self._fetcher is not None:
            self._fetcher.close()

    def fail(self, label: str, reason: str, errors: list[str] | None = None) -> None:
        (self.result.errors if errors is None else errors).append(f"{label}: {reason}")

    @contextmanager
    def attempt(
        self, label: str, url: str | None, *, prefix: str = "", errors: list[str] | None = None
    ) -> Iterator[None]:
        """Turn the failure of one source into an error message (in `errors` when given,
        else the collection's); the store's are raised."""
        try:
            yield
        except StoreError:
            raise
        except (FetchError, UserError) as exc:
            self.fail(label, prefix + _without(exc, url), errors)
        except Exception as exc:
            # A bug, or a library's surprise on odd input, must not cost the other sources.
            _log.exception("collecting %s failed", label)
            reason = f"{prefix}unexpected {type(exc).__name__}"
            if detail := str(exc).strip():
                reason += f" ({detail.splitlines()[0][:200]})"
            self.fail(label, reason, errors)

    def add(self, collected: Collected) -> None:
        # The same text through two specs (or two feed entries) is one source of the briefing.
        if collected.source.id not in self._ids:
            self._ids.add(collected.source.id)
            self.result.items.append(collected)

    def collect(self, spec: FolderSpec | UrlSpec | FeedSpec) -> None:
        if isinstance(spec, FolderSpec):
            self.folder(spec)
        elif isinstance(spec, UrlSpec):
            self.add(self.page(str(spec.url), describe(spec)))
        else:
            self.feed(spec)

    # ------------------------------------------------------------ folder

    def folder(self, spec: FolderSpec) -> None:
        label = describe(spec)
        folder = Path(spec.path).expanduser()
        if not folder.is_absolute():
            folder = self.base_dir / folder
        if not folder.is_dir():
            raise SourceError(f"{folder}: no such folder")
        try:
            files = sorted(p for p in folder.glob(spec.glob) if p.is_file())
        except (ValueError, NotImplementedError) as exc:  # e.g. an absolute pattern
            raise SourceError(f"invalid glob {spec.glob!r} ({exc})") from None
        if not files:
            raise SourceError(f"no file in {folder} matches {spec.glob!r}")
        root = folder.resolve()
        for path in files:
            with self.attempt(label, None):
                _inside(path, root)
                self.add(self.file(path, label))

    def file(self, path: Path, label: str) -> Collected:
        limit = self.settings.max_source_chars
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise SourceError(f"{path}: cannot be read ({exc.strerror})") from None
        if size > limit * _BYTES_PER_CHAR:
            raise SourceError(f"{path}: longer than {limit} characters (max_source_chars)")
        source = load_source(path)
        return self.record(source, origin=str(path), label=label)

    # ------------------------------------------------------------ url

    def page(self, url: str, label: str, hints: FeedEntry | None = None) -> Collected:
        """Fetch one page (conditionally when fetched before) and record its text."""
        from briefing.urls import redact_url

        state = self.store.fetch_state.get(url)
        known = state if state is not None and state.source_id is not None else None
        fetched = self.fetch(
            url,
            etag=known.etag if known else None,
            last_modified=known.last_modified if known else None,
            accept=PAGE_ACCEPT,
        )
        if fetched.not_modified and known is not None and known.source_id is not None:
            try:
                # Unchanged since the last fetch: the text stored then, not new.
                stored = self.store.sources.get(known.source_id)
                return Collected(stored, self.store.items.get(stored.id), False, label)
            except NotFoundError:
                fetched = self.fetch(url, accept=PAGE_ACCEPT)
        if fetched.not_modified:  # a 304 to a request that was not conditional
            fetched = self.fetch(url, accept=PAGE_ACCEPT)
        text, meta = page_text(fetched, redact_url(fetched.final_url))
        hints = hints or FeedEntry(url=url)
        # The feed's own metadata is structured; the page's is guessed from its markup.
        title = hints.title or meta.title
        source = source_from_text(text, title=title, path=redact_url(fetched.final_url))
        collected = self.record(
            source,
            origin=redact_url(url),
            label=label,
            title=title,
            author=hints.author or meta.author,
            published_at=hints.published_at or meta.published_at,
        )
        self.store.fetch_state.put(
            _state(url, fetched, self.now, source_id=source.id),
        )
        return collected

    # ------------------------------------------------------------ feed

    def feed(self, spec: FeedSpec) -> None:

        url = str(spec.url)
        label = describe(spec)
        state = self.store.fetch_state.get(url)
        known = state if state is not None and state.entries is not None else None
        fetched = self.fetch(
            url,
            etag=known.etag if known else None,
            last_modified=known.last_modified if known else None,
            accept=_FEED_ACCEPT,
        )
        entries = None
        if fetched.not_modified and known is not None and known.entries is not None:
            # Unchanged: the entries are those of the last fetch. Each is still collected
            # (conditionally), so entries that failed then are tried again.
            with suppress(ValidationError):  # a state this code did not write: fetch afresh
                entries = [FeedEntry.model_validate(e) for e in known.entries]
        if entries is None:
            if fetched.not_modified:
                fetched = self.fetch(url, accept=_FEED_ACCEPT)
            entries = self.entries(fetched, spec, label)
        entries = entries[: spec.max_entries]
        self.store.fetch_state.put(
            _state(url, fetched, self.now, entries=[e.model_dump(mode="json") for e in entries])
        )
        self.pages(entries, label)

    def pages(self, entries: list[FeedEntry], label: str) -> None:
        """Collect the entries' pages, several at once (BRIEFING_FETCH_CONCURRENCY, at most
        BRIEFING_FETCH_PER_HOST a host); results and errors in the entries' order."""
        from briefing.urls import redact_url

        def one(entry: FeedEntry) -> tuple[Collected | None, list[str]]:
            errors: list[str] = []
            with self.attempt(
                label, entry.url, prefix=f"entry {redact_url(entry.url)}: ", errors=errors
            ):
                return self.page(entry.url, label, hints=entry), errors
            return None, errors

        workers = min(self.settings.fetch_concurrency, len(entries))
        if workers <= 1:
            done = [one(entry) for entry in entries]
        else:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fetch") as pool:
                done = list(pool.map(one, entries))
        for collected, errors in done:
            if collected is not None:
                self.add(collected)
            self.result.errors.extend(errors)

    def entries(self, fetched: Fetched, spec: FeedSpec, label: str) -> list[FeedEntry]:
        """The first `max_entries` entries of a fetched feed that have a link, links absolute."""
        import feedparser  # a slow import, needed only when a feed is collected

        from briefing.urls import redact_url

        shown = redact_url(fetched.final_url)
        # Bytes in a stream: given a string, feedparser may read a file or fetch a URL itself.
        parsed: Any = feedparser.parse(
            io.BytesIO(fetched.content),
            response_headers={
                "content-location": fetched.final_url,
                "content-type": fetched.headers.get("content-type", "application/xml"),
            },
        )
        if not parsed.get("version") and not parsed.entries:
            problem = parsed.get("bozo_exception")
            raise SourceError(
                f"{shown}: not an RSS or Atom feed"
                + (f" ({str(problem).strip()[:200]})" if problem else "")
            )
        entries: dict[str, FeedEntry] = {}
        for number, raw in enumerate(parsed.entries[: spec.max_entries], start=1):
            link = str(raw.get("link") or "").strip()
            title = clean_text(raw.get("title"))
            if not link:
                name = repr(title) if title else f"number {number}"
                self.fail(label, f"entry {name} has no link; skipped")
                continue
            absolute = urljoin(fetched.final_url, link)
            entries.setdefault(
                absolute,
                FeedEntry(
                    url=absolute,
                    title=title,
                    author=clean_text(raw.get("author")),
                    published_at=_struct_time(
                        raw.get("published_parsed") or raw.get("updated_parsed")
                    ),
                ),
            )
        return list(entries.values())

    # ------------------------------------------------------------ store

    def record(
        self,
        source: Source,
        *,
        origin: str,
        label: str,
        title: str | None = None,
        author: str | None = None,
        published_at: datetime | None = None,
    ) -> Collected:
        """Store the source and its item; new when this text was never collected before."""
        limit = self.settings.max_source_chars
        if len(source.text) > limit:
            where = source.path or origin
            raise SourceError(f"{where}: longer than {limit} characters (max_source_chars)")
        item, new = self.store.items.record(
            source,
            origin=origin,
            seen_at=self.now,
            title=title,
            author=author,
            published_at=published_at,
        )
        return Collected(source, item, new, label)


# ---------------------------------------------------------------- pages


# ---------------------------------------------------------------- small helpers


def _state(
    url: str,
    fetched: Fetched,
    now: datetime,
    *,
    source_id: str | None = None,
    entries: list[dict[str, Any]] | None = None,
) -> FetchState:
    from briefing.store import FetchState

    return FetchState(
        url=url,
        etag=fetched.etag,
        last_modified=fetched.last_modified,
        source_id=source_id,
        entries=entries,
        fetched_at=now,
    )


def _inside(path: Path, root: Path) -> None:
    """Refuse a file that is, once links are followed, outside the folder `root`."""
    try:
        real = path.resolve(strict=True)
    except (OSError, RuntimeError) as exc:  # a dangling link, a link loop
        raise SourceError(f"{path}: cannot be resolved ({exc})") from None
    if not real.is_relative_to(root):
        raise SourceError(f"{path}: links to {real}, outside the folder {root}; not read")


def _struct_time(value: object) -> datetime | None:
    # feedparser gives times as UTC struct_time tuples.
    if not isinstance(value, tuple) or len(value) < 6:
        return None
    year, month, day, hour, minute, second = value[:6]
    try:
        return datetime(year, month, day, hour, minute, min(second, 59), tzinfo=UTC)
    except (TypeError, ValueError):
        return None


def _without(exc: Exception, url: str | None) -> str:
    # Fetch errors start with the URL that the caller's label names already.
    message = str(exc)
    if url is None:
        return message
    from briefing.urls import redact_url

    prefix = f"{redact_url(url)}: "
    return message[len(prefix) :] if message.startswith(prefix) else message
