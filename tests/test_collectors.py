"""Collectors against real HTTP on 127.0.0.1 (a small news site) and real folders."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from news_site import NewsSite, Page
from pydantic import TypeAdapter

from briefing.config import Settings
from briefing.daily.collectors import (
    Collection,
    CollectorSpec,
    FeedSpec,
    FolderSpec,
    UrlSpec,
    collect,
    describe,
)
from briefing.daily.fetch import Fetched, Fetcher
from briefing.store import Store
from briefing.store.migrations import upgrade

T0 = datetime(2026, 3, 14, 7, 0, tzinfo=UTC)
T1 = T0 + timedelta(days=1)

HARBOUR_SENTENCES = [
    "The town harbour reopened to fishing boats on Friday",
    "Harbour master Jonas Berg said the repairs cost 2.4 million kronor",
    "a two-hour round trip that several crews said had cut their earnings by a third",
    "The council will decide in May whether to raise the breakwater",
]
#: Navigation, banners, teasers and comments around the harbour article.
HARBOUR_BOILERPLATE = [
    "Accept all cookies",
    "Subscribe from 1 krona a week",
    "Most read",
    "Council approves new school",
    "Sign up for our morning newsletter",
    "All rights reserved",
    "The detour to Skarvik was ridiculous",
    "Share on Facebook",
]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("BRIEFING_"):
            monkeypatch.delenv(name)


@pytest.fixture
def site() -> Iterator[NewsSite]:
    """The news site with its three articles (ETags on all) and both feeds."""
    with NewsSite() as running:
        for name in ("harbour", "council", "ferry"):
            running.serve_fixture(f"/news/{name}.html", f"{name}.html", etag=f'"{name}-1"')
        running.serve_fixture(
            "/feeds/rss.xml",
            "rss.xml",
            content_type="application/rss+xml; charset=utf-8",
            etag='"rss-1"',
        )
        running.serve_fixture(
            "/feeds/atom.xml",
            "atom.xml",
            content_type="application/atom+xml",
            last_modified="Fri, 13 Mar 2026 16:10:00 GMT",
        )
        yield running


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    upgrade(url)
    made = Store(url)
    yield made
    made.close()


@pytest.fixture
def settings() -> Settings:
    return Settings(fetch_allowed_networks="127.0.0.1/32", fetch_timeout_s=5)


def specs(*raw: dict[str, Any]) -> list[Any]:
    """Specs validated the way a schedule file's are."""
    return TypeAdapter(list[CollectorSpec]).validate_python(list(raw))


def run(
    store: Store, settings: Settings, *raw: dict[str, Any], now: datetime = T0, **kw: Any
) -> Collection:
    kw.setdefault("base_dir", Path("."))
    return collect(specs(*raw), store, settings, now=now, **kw)


# ---------------------------------------------------------------- url


def test_an_article_is_extracted_with_its_metadata(
    site: NewsSite, store: Store, settings: Settings
) -> None:
    url = site.url("/news/harbour.html")
    got = run(store, settings, {"kind": "url", "url": url})
    assert got.errors == []
    [collected] = got.items
    assert collected.new
    text = collected.source.text
    for sentence in HARBOUR_SENTENCES:
        assert sentence in text
    for noise in HARBOUR_BOILERPLATE:
        assert noise not in text
    item = collected.item
    assert item.origin == url
    assert item.first_seen_at == T0
    assert item.title == "Harbour reopens after storm repairs"
    assert item.author == "Maria Lindqvist"
    assert item.published_at == datetime(2026, 3, 14, 5, 30, tzinfo=UTC)
    assert collected.source.title == "Harbour reopens after storm repairs"
    assert collected.source.path == url
    assert collected.spec == f"url {url}"
    assert store.sources.get(collected.source.id).text == text


def test_an_unchanged_page_is_asked_for_conditionally_and_is_not_new(
    site: NewsSite, store: Store, settings: Settings
) -> None:
    spec = {"kind": "url", "url": site.url("/news/harbour.html")}
    first = run(store, settings, spec)
    second = run(store, settings, spec, now=T1)
    hits = site.hits_for("/news/harbour.html")
    assert "if-none-match" not in hits[0].headers
    assert hits[1].headers["if-none-match"] == '"harbour-1"'  # and the site answered 304
    assert second.errors == []
    [again] = second.items
    assert not again.new
    assert again.item == first.items[0].item  # first seen at T0, not T1
    assert again.source.text == first.items[0].source.text
    assert second.new == []


def test_last_modified_alone_makes_the_request_conditional(
    site: NewsSite, store: Store, settings: Settings
) -> None:
    stamp = "Fri, 13 Mar 2026 16:05:00 GMT"
    site.serve_fixture("/news/lm.html", "ferry.html", last_modified=stamp)
    spec = {"kind": "url", "url": site.url("/news/lm.html")}
    assert run(store, settings, spec).items[0].new
    second = run(store, settings, spec, now=T1)
    assert site.hits_for("/news/lm.html")[1].headers["if-modified-since"] == stamp
    assert [c.new for c in second.items] == [False]


def test_a_changed_page_is_new_and_the_same_content_again_is_not(
    site: NewsSite, store: Store, settings: Settings
) -> None:
    # No validators: the content hash alone decides.
    site.serve(
        "/live.txt", Page(body=b"Morning edition.\nThe ferry is late.", content_type="text/plain")
    )
    spec = {"kind": "url", "url": site.url("/live.txt")}
    first = run(store, settings, spec)
    site.serve(
        "/live.txt",
        Page(body=b"Evening edition.\nThe ferry is on time.", content_type="text/plain"),
    )
    second = run(store, settings, spec, now=T1)
    third = run(store, settings, spec, now=T1 + timedelta(hours=1))
    assert first.items[0].new
    assert second.items[0].new
    assert second.items[0].source.text == "Evening edition.\nThe ferry is on time."
    assert not third.items[0].new
    assert third.items[0].item.first_seen_at == T1


def test_one_failing_source_does_not_stop_the_others(
    site: NewsSite, store: Store, settings: Settings
) -> None:
    site.serve("/report.pdf", Page(body=b"%PDF-1.7", content_type="application/pdf"))
    site.serve_fixture("/news/empty.html", "empty.html")
    got = run(
        store,
        settings,
        {"kind": "url", "url": site.url("/news/harbour.html")},
        {"kind": "url", "url": site.url("/gone")},
        {"kind": "url", "url": site.url("/report.pdf")},
        {"kind": "url", "url": site.url("/news/empty.html")},
        {"kind": "url", "url": "http://10.1.2.3/intranet"},
        {"kind": "url", "url": site.url("/news/ferry.html")},
    )
    assert [c.item.title for c in got.items] == [
        "Harbour reopens after storm repairs",
        "Ferry timetable changes from Monday",
    ]
    assert got.errors[0] == f"url {site.url('/gone')}: HTTP 404 Not Found"
    assert got.errors[1].startswith(f"url {site.url('/report.pdf')}: ")
    assert "unsupported content type 'application/pdf'" in got.errors[1]
    assert got.errors[2].startswith(f"url {site.url('/news/empty.html')}: ")
    assert "no article text" in got.errors[2] or "no text" in got.errors[2]
    assert got.errors[3].startswith("url http://10.1.2.3/intranet: refused to connect")
    assert len(got.errors) == 4


def test_private_addresses_are_refused_unless_allowed(site: NewsSite, store: Store) -> None:
    spec = {"kind": "url", "url": site.url("/news/harbour.html")}
    refused = run(store, Settings(), spec)
    assert refused.items == []
    assert "a loopback address" in refused.errors[0]
    assert site.hits == []
    allowed = run(store, Settings(fetch_allow_private=True), spec)
    assert allowed.errors == []
    assert len(allowed.items) == 1


def test_a_redirected_page_keeps_where_it_was_asked_for_and_where_it_was(
    site: NewsSite, store: Store, settings: Settings
) -> None:
    site.redirect("/s/abc", "/news/council.html", status=301)
    got = run(store, settings, {"kind": "url", "url": site.url("/s/abc")})
    [collected] = got.items
    assert collected.item.origin == site.url("/s/abc")
    assert collected.source.path == site.url("/news/council.html")
    assert "The town council voted 31 to 18" in collected.source.text
    assert "Get the Courier in your inbox" not in collected.source.text


def test_a_text_too_long_for_the_store_is_an_error(
    site: NewsSite, store: Store, settings: Settings
) -> None:
    small = settings.model_copy(update={"max_source_chars": 100})
    got = run(store, small, {"kind": "url", "url": site.url("/news/harbour.html")})
    assert got.items == []
    assert "longer than 100 characters (max_source_chars)" in got.errors[0]


# ---------------------------------------------------------------- feeds


def test_rss_entries_are_collected_as_pages(
    site: NewsSite, store: Store, settings: Settings
) -> None:
    feed = site.url("/feeds/rss.xml")
    got = run(store, settings, {"kind": "feed", "url": feed})
    by_url = {c.item.origin: c for c in got.items}
    # The relative link of the council entry resolves against the feed's URL.
    assert list(by_url) == [
        site.url("/news/harbour.html"),
        site.url("/news/council.html"),
        site.url("/news/ferry.html"),
    ]
    assert all(c.new and c.spec == f"feed {feed}" for c in got.items)
    council = by_url[site.url("/news/council.html")].item
    # The feed's metadata comes first; the page's markup has no date for this one anyway.
    assert council.author == "Per Sandberg"
    assert council.published_at == datetime(2026, 3, 12, 20, 15, tzinfo=UTC)
    assert council.title == "Council approves new school on the old rope works site"
    assert by_url[site.url("/news/ferry.html")].item.author == "Lena Ek"  # from the page
    assert got.errors == [
        f"feed {feed}: entry 'Live: storm warning for the weekend' has no link; skipped"
    ]
    assert "application/rss+xml" in site.hits_for("/feeds/rss.xml")[0].headers["accept"]


def test_atom_entries_are_collected_as_pages(
    site: NewsSite, store: Store, settings: Settings
) -> None:
    got = run(store, settings, {"kind": "feed", "url": site.url("/feeds/atom.xml")})
    assert got.errors == []
    ferry, harbour = got.items
    # xml:base makes the relative link absolute.
    assert ferry.item.origin == site.url("/news/ferry.html")
    assert ferry.item.author == "Lena Ek"
    assert ferry.item.published_at == datetime(2026, 3, 13, 16, 5, tzinfo=UTC)
    assert "every forty minutes instead of every half hour" in ferry.source.text
    assert harbour.item.origin == site.url("/news/harbour.html")


def test_max_entries_caps_what_a_feed_gives(
    site: NewsSite, store: Store, settings: Settings
) -> None:
    got = run(
        store, settings, {"kind": "feed", "url": site.url("/feeds/rss.xml"), "max_entries": 2}
    )
    assert [c.item.origin for c in got.items] == [
        site.url("/news/harbour.html"),
        site.url("/news/council.html"),
    ]
    assert site.hits_for("/news/ferry.html") == []


def test_an_unchanged_feed_gives_its_entries_again_not_new(
    site: NewsSite, store: Store, settings: Settings
) -> None:
    spec = {"kind": "feed", "url": site.url("/feeds/rss.xml")}
    first = run(store, settings, spec)
    second = run(store, settings, spec, now=T1)
    assert site.hits_for("/feeds/rss.xml")[1].headers["if-none-match"] == '"rss-1"'
    assert [c.source.id for c in second.items] == [c.source.id for c in first.items]
    assert second.new == []
    assert all(c.item.first_seen_at == T0 for c in second.items)
    # Each entry was asked for conditionally too.
    assert site.hits_for("/news/harbour.html")[1].headers["if-none-match"] == '"harbour-1"'


def test_an_entry_that_fails_is_tried_again_next_time(
    site: NewsSite, store: Store, settings: Settings
) -> None:
    site.serve("/news/council.html", Page(status=503, body=b"busy", content_type="text/plain"))
    spec = {"kind": "feed", "url": site.url("/feeds/rss.xml")}
    first = run(store, settings, spec)
    assert any(f"entry {site.url('/news/council.html')}: HTTP 503" in e for e in first.errors)
    assert len(first.items) == 2
    site.serve_fixture("/news/council.html", "council.html")
    second = run(store, settings, spec, now=T1)  # the feed itself answers 304
    council = [c for c in second.items if c.item.origin == site.url("/news/council.html")]
    assert [c.new for c in council] == [True]
    assert council[0].item.first_seen_at == T1


def test_a_page_that_is_not_a_feed_is_an_error(
    site: NewsSite, store: Store, settings: Settings
) -> None:
    got = run(store, settings, {"kind": "feed", "url": site.url("/news/harbour.html")})
    assert got.items == []
    [error] = got.errors
    assert error.startswith(f"feed {site.url('/news/harbour.html')}: not an RSS or Atom feed (")


# ---------------------------------------------------------------- folders


def test_a_folder_is_collected_by_glob(tmp_path: Path, store: Store, settings: Settings) -> None:
    notes = tmp_path / "notes"
    (notes / "deep").mkdir(parents=True)
    (notes / "a.txt").write_text("Alpha report.\nThe harbour is open.", encoding="utf-8")
    (notes / "b.md").write_text("# Beta\n\nThe ferry is late.", encoding="utf-8")
    (notes / "deep" / "c.txt").write_text("Gamma.\nThe school is approved.", encoding="utf-8")
    (notes / "skip.csv").write_text("x,y", encoding="utf-8")

    got = run(store, settings, {"kind": "folder", "path": "notes"}, base_dir=tmp_path)
    assert got.errors == []
    [alpha] = got.items
    assert alpha.source.path == str(notes / "a.txt")
    assert alpha.item.origin == str(notes / "a.txt")
    assert alpha.spec == "folder notes (*.txt)"

    everything = run(
        store, settings, {"kind": "folder", "path": str(notes), "glob": "**/*.*"}, now=T1
    )
    assert [Path(c.item.origin).name for c in everything.items] == ["a.txt", "b.md", "c.txt"]
    assert [c.new for c in everything.items] == [False, True, True]
    assert everything.items[0].item.first_seen_at == T0
    assert everything.items[1].source.title == "Beta"
    [unsupported] = everything.errors
    assert unsupported.startswith(f"folder {notes} (**/*.*): {notes / 'skip.csv'}: unsupported")


def test_an_unchanged_file_is_not_new_and_a_changed_one_is(
    tmp_path: Path, store: Store, settings: Settings
) -> None:
    note = tmp_path / "today.txt"
    note.write_text("Monday.\nNothing happened.", encoding="utf-8")
    spec = {"kind": "folder", "path": ".", "glob": "today.txt"}
    assert [c.new for c in run(store, settings, spec, base_dir=tmp_path).items] == [True]
    assert [c.new for c in run(store, settings, spec, base_dir=tmp_path, now=T1).items] == [False]
    note.write_text("Tuesday.\nThe harbour reopened.", encoding="utf-8")
    changed = run(store, settings, spec, base_dir=tmp_path, now=T1)
    assert [c.new for c in changed.items] == [True]
    assert (
        store.items.between(T1, T1 + timedelta(seconds=1))[0].source_id
        == changed.items[0].source.id
    )


def test_folder_problems_are_errors(tmp_path: Path, store: Store, settings: Settings) -> None:
    (tmp_path / "empty.txt").write_text("   \n", encoding="utf-8")
    (tmp_path / "ok.txt").write_text("Fine.\nA real note.", encoding="utf-8")
    got = run(
        store,
        settings,
        {"kind": "folder", "path": "missing"},
        {"kind": "folder", "path": ".", "glob": "*.nothing"},
        {"kind": "folder", "path": "."},
        base_dir=tmp_path,
    )
    assert [c.item.origin for c in got.items] == [str(tmp_path / "ok.txt")]
    assert got.errors[0] == f"folder missing (*.txt): {tmp_path / 'missing'}: no such folder"
    assert got.errors[1] == f"folder . (*.nothing): no file in {tmp_path / '.'} matches '*.nothing'"
    assert "empty.txt: is empty" in got.errors[2]
    assert len(got.errors) == 3


# ---------------------------------------------------------------- all kinds together


def test_one_text_found_twice_is_one_item(
    tmp_path: Path, site: NewsSite, store: Store, settings: Settings
) -> None:
    body = "Shared note.\nThe same words in a file and on the web."
    (tmp_path / "shared.txt").write_text(body, encoding="utf-8")
    site.serve("/shared.txt", Page(body=body.encode(), content_type="text/plain"))
    got = run(
        store,
        settings,
        {"kind": "folder", "path": ".", "glob": "shared.txt"},
        {"kind": "url", "url": site.url("/shared.txt")},
        {"kind": "feed", "url": site.url("/feeds/atom.xml")},
        {"kind": "url", "url": site.url("/news/ferry.html")},  # also an atom entry
        base_dir=tmp_path,
    )
    assert got.errors == []
    assert [c.item.origin for c in got.items] == [
        str(tmp_path / "shared.txt"),
        site.url("/news/ferry.html"),
        site.url("/news/harbour.html"),
    ]
    assert all(c.new for c in got.items)
    assert len(store.items.between(T0, T1)) == 3


def test_describe_hides_credentials() -> None:
    [spec] = specs({"kind": "feed", "url": "https://me:pw@news.example/rss?token=abc"})
    assert describe(spec) == "feed https://news.example/rss?token=***"
    assert describe(FolderSpec(path="seeds/")) == "folder seeds/ (*.txt)"
    assert describe(UrlSpec(url="https://news.example/a")) == "url https://news.example/a"
    assert FeedSpec(url="https://news.example/rss").max_entries == 50


def test_naive_now_is_refused(store: Store, settings: Settings) -> None:
    from briefing.errors import UserError

    with pytest.raises(UserError):
        collect([], store, settings, base_dir=Path("."), now=datetime(2026, 3, 14))


class _BrokenFetcher(Fetcher):
    """A fetcher with a bug on one URL."""

    def fetch(self, url: str, **kw: Any) -> Fetched:
        if url.endswith("/news/council.html"):
            raise RuntimeError("boom")
        return super().fetch(url, **kw)


def test_an_unexpected_failure_costs_only_its_source(
    site: NewsSite, store: Store, settings: Settings
) -> None:
    with _BrokenFetcher(settings) as broken:
        got = run(
            store,
            settings,
            {"kind": "url", "url": site.url("/news/council.html")},
            {"kind": "url", "url": site.url("/news/ferry.html")},
            fetcher=broken,
        )
    assert got.errors == [f"url {site.url('/news/council.html')}: unexpected RuntimeError (boom)"]
    assert [c.item.origin for c in got.items] == [site.url("/news/ferry.html")]


def test_a_host_that_keeps_timing_out_is_skipped_for_the_rest_of_the_run(
    site: NewsSite, store: Store, settings: Settings
) -> None:
    names = ("harbour", "council", "ferry")
    for name in names:
        site.serve_fixture(f"/news/{name}.html", f"{name}.html", delay_s=5)
    # One page of the host at a time: two time out, and the third, waiting for the host's
    # slot, is skipped instead of costing a third timeout.
    quick = settings.model_copy(update={"fetch_timeout_s": 0.5, "fetch_per_host": 1})
    started = time.monotonic()
    got = run(store, quick, {"kind": "feed", "url": site.url("/feeds/rss.xml")})
    assert time.monotonic() - started < 4
    assert got.items == []
    timeouts = [e for e in got.errors if "no complete answer within 0.5 s" in e]
    assert len(timeouts) == 2
    skipped = [e for e in got.errors if e.endswith("skipped: 127.0.0.1 failed 2 times in this run")]
    [one] = skipped
    assert one.startswith(f"feed {site.url('/feeds/rss.xml')}: entry {site.url('/news/')}")
    assert sum(len(site.hits_for(f"/news/{name}.html")) for name in names) == 2


@pytest.mark.parametrize("per_host", [1, 2, 3])
def test_feed_entries_are_fetched_at_once_up_to_the_per_host_limit(
    site: NewsSite, store: Store, settings: Settings, per_host: int
) -> None:
    names = ("harbour", "council", "ferry")
    for name in names:
        # Slow enough that fetches allowed to overlap do overlap.
        site.serve_fixture(f"/news/{name}.html", f"{name}.html", delay_s=0.3)
    limited = settings.model_copy(update={"fetch_per_host": per_host})
    got = run(store, limited, {"kind": "feed", "url": site.url("/feeds/rss.xml")})
    assert len(got.items) == 3
    # The entries keep the feed's order, however the fetches finished.
    assert [Path(c.item.origin).name for c in got.items] == [f"{n}.html" for n in names]
    assert site.most_in_flight == per_host


def test_a_link_out_of_the_folder_is_refused(
    tmp_path: Path, store: Store, settings: Settings
) -> None:
    outside = tmp_path / "private"
    outside.mkdir()
    (outside / "secret.txt").write_text("Not for the briefing.\n", "utf-8")
    folder = tmp_path / "inbox"
    folder.mkdir()
    (folder / "note.txt").write_text("The harbour reopened on Monday.\n", "utf-8")
    (folder / "escape.txt").symlink_to(outside / "secret.txt")
    (folder / "inner.txt").symlink_to(folder / "note.txt")  # inside: fine (same text, once)
    got = run(store, settings, {"kind": "folder", "path": str(folder), "glob": "*.txt"})
    assert [c.source.text for c in got.items] == ["The harbour reopened on Monday.\n"]
    [error] = got.errors
    assert "escape.txt" in error
    assert "outside the folder" in error
    assert all("Not for the briefing" not in c.source.text for c in got.items)
