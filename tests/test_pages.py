"""The reader's pages through the app: what they show, what they escape, who may see them."""

from __future__ import annotations

import html
import re
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from briefing.config import Settings
from briefing.pipeline.build import build_briefing_sync, load_sources
from briefing.schema import Briefing
from briefing.service import create_app
from briefing.store import Store
from briefing.store.migrations import upgrade
from briefing.text.sources import source_from_text

ROOT = Path(__file__).resolve().parents[1]
SEEDS = sorted((ROOT / "seeds").glob("*.txt"))
KEY = "page-test-key-0123456789"
SECRET = "s" * 40


def _stored(store: Store, briefing: Briefing) -> str:
    job_id = uuid.uuid4().hex
    request = {"source_ids": [s.id for s in briefing.sources], "model": briefing.model}
    store.jobs.add_finished(job_id, request, [], result=briefing.model_dump(mode="json"))
    return job_id


@pytest.fixture(scope="module")
def seed_briefing() -> Briefing:
    return build_briefing_sync(load_sources(SEEDS), Settings(model="extractive", log_calls=False))


@pytest.fixture
def make_client(tmp_path: Path) -> Iterator[Any]:
    made: list[tuple[TestClient, Store]] = []

    def make(run_jobs: bool = False, **overrides: Any) -> tuple[TestClient, Store]:
        url = f"sqlite:///{tmp_path / f'pages{len(made)}.db'}"
        upgrade(url)
        store = Store(url)
        values = {"job_poll_s": 0.05, "job_heartbeat_s": 0.05, **overrides}
        settings = Settings(database_url=url, model="extractive", log_calls=False, **values)
        client = TestClient(create_app(settings, store=store, run_jobs=run_jobs))
        client.__enter__()
        made.append((client, store))
        return client, store

    yield make
    for client, store in made:
        client.__exit__(None, None, None)
        store.close()


def _marked(page: str) -> str:
    found = re.search(r'<mark id="mark" tabindex="-1">(.*?)</mark>', page, re.S)
    assert found, "no marked span"
    return html.unescape(found.group(1))


def test_a_briefing_page_shows_every_claim_with_chips_that_open_the_cited_span(
    make_client: Any, seed_briefing: Briefing
) -> None:
    client, store = make_client()
    job_id = _stored(store, seed_briefing)
    page = client.get(f"/briefings/{job_id}")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    text = page.text
    shown = html.unescape(re.sub(r"<[^>]+>", "", text))
    assert seed_briefing.title in shown
    for claim in (*seed_briefing.summary, *seed_briefing.key_points):
        assert claim.text in shown
    assert "Only one source says" in text
    assert "Where the sources disagree" in text  # the seeds' code-found disagreement
    chips = re.findall(r'<a class="chip chip-cite" href="([^"]+)"', text)
    cited = [c for claim in seed_briefing.key_points for c in claim.citations]
    assert len(chips) >= len(cited) > 0
    # Every chip, followed without JavaScript, marks exactly its citation's quote.
    numbers = {s.id: n for n, s in enumerate(seed_briefing.sources, start=1)}
    for citation in cited:
        href = (
            f"/briefings/{job_id}/sources/{numbers[citation.source_id]}"
            f"?start={citation.start}&end={citation.end}"
        )
        assert html.escape(href + "#mark") in text
        assert _marked(client.get(href).text) == citation.quote
        fragment = client.get(href.replace("?", "/fragment?"))
        assert fragment.status_code == 200
        assert _marked(fragment.text) == citation.quote
        assert "<html" not in fragment.text


def test_pages_escape_every_source_text_and_send_a_strict_policy(
    make_client: Any, seed_briefing: Briefing
) -> None:
    client, store = make_client()
    hostile = source_from_text(
        "<script>alert('pwned')</script> The council approved the budget on Monday.\n"
        'A second line with <img src=x onerror="alert(1)"> in it.',
        title="<b>bold</b> title",
    )
    briefing = build_briefing_sync([hostile], Settings(model="extractive", log_calls=False))
    job_id = _stored(store, briefing)
    for path in (
        f"/briefings/{job_id}",
        f"/briefings/{job_id}/sources/1",
        f"/briefings/{job_id}/sources/1/fragment?start=0&end=10",
        "/briefings",
    ):
        response = client.get(path)
        assert response.status_code == 200, path
        assert "<script>alert" not in response.text
        assert "<img src=x" not in response.text
        assert "<b>bold</b>" not in response.text
        policy = response.headers["content-security-policy"]
        assert "script-src 'self'" in policy
        assert "default-src 'none'" in policy
        assert "'unsafe-inline'" not in policy
        assert response.headers["x-content-type-options"] == "nosniff"
    assert "&lt;script&gt;alert" in client.get(f"/briefings/{job_id}/sources/1").text


def test_the_list_links_every_briefing_newest_first_and_pages(
    make_client: Any, seed_briefing: Briefing
) -> None:
    client, store = make_client()
    ids = [_stored(store, seed_briefing) for _ in range(27)]
    first = client.get("/briefings")
    assert first.status_code == 200
    linked = re.findall(r'<a href="/briefings/([0-9a-f]{32})">', first.text)
    assert linked == ids[::-1][:25]
    older = re.search(r'<a rel="next" href="([^"]+)">', first.text)
    assert older
    second = client.get(html.unescape(older.group(1)))
    assert re.findall(r'<a href="/briefings/([0-9a-f]{32})">', second.text) == ids[::-1][25:]
    failed = client.get("/briefings?status=failed")
    assert "No briefings match." in failed.text
    home = client.get("/", follow_redirects=False)
    assert home.status_code == 307
    assert home.headers["location"] == "/briefings"


def test_the_list_finds_briefings_by_title_source_engine_and_day(
    make_client: Any, seed_briefing: Briefing
) -> None:
    client, store = make_client()
    seeds = _stored(store, seed_briefing)
    council = build_briefing_sync(
        [source_from_text("The council approved the budget on Monday.", title="Council news")],
        Settings(model="extractive", log_calls=False),
    )
    other = _stored(store, council)

    def listed(query: str) -> list[str]:
        page = client.get(f"/briefings?{query}")
        assert page.status_code == 200, page.text
        return re.findall(r'<a href="/briefings/([0-9a-f]{32})">', page.text)

    assert listed("q=council") == [other]
    assert listed("q=COUNCIL+news&engine=extractive") == [other]
    assert listed("engine=llm") == []
    assert listed("q=zzz-nothing") == []
    today = datetime.now(UTC).date()
    assert set(listed(f"from={today}&to={today}")) == {seeds, other}
    assert listed(f"to={today - timedelta(days=1)}") == []
    kept = client.get("/briefings?q=council")
    assert 'value="council"' in kept.text  # the form shows what it filtered by
    bad = client.get("/briefings?from=yesterday")
    assert bad.status_code == 400
    assert "from must be a date such as 2026-12-01" in html.unescape(bad.text)


def test_bad_addresses_get_a_page_that_says_what_is_wrong(
    make_client: Any, seed_briefing: Briefing
) -> None:
    client, store = make_client()
    job_id = _stored(store, seed_briefing)
    missing = client.get("/briefings/nope")
    assert missing.status_code == 404
    assert "There is no briefing nope." in missing.text
    assert client.get(f"/briefings/{job_id}/sources/9").status_code == 404
    beyond = client.get(f"/briefings/{job_id}/sources/1?start=5&end=99999999")
    assert beyond.status_code == 400
    assert "0 &lt;= start &lt;= end &lt;=" in beyond.text
    assert client.get(f"/briefings/{job_id}/download/other.txt").status_code == 404


def test_downloads_are_the_briefing_as_json_and_markdown(
    make_client: Any, seed_briefing: Briefing
) -> None:
    client, store = make_client()
    job_id = _stored(store, seed_briefing)
    as_json = client.get(f"/briefings/{job_id}/download/briefing.json")
    assert as_json.status_code == 200
    assert Briefing.model_validate_json(as_json.content) == seed_briefing
    assert "attachment" in as_json.headers["content-disposition"]
    as_md = client.get(f"/briefings/{job_id}/download/briefing.md")
    assert as_md.headers["content-type"].startswith("text/markdown")
    assert seed_briefing.title in as_md.text


def _login(client: TestClient, key: str, next_path: str = "/briefings") -> Any:
    form = client.get(f"/login?next={next_path}")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token
    return client.post(
        "/login",
        data={"key": key, "csrf_token": token.group(1), "next": next_path},
        follow_redirects=False,
    )


def test_with_api_keys_the_pages_ask_for_a_key_once_and_keep_a_session(
    make_client: Any, seed_briefing: Briefing
) -> None:
    client, store = make_client(api_keys=f"other-key-000000000,{KEY}", session_secret=SECRET)
    job_id = _stored(store, seed_briefing)
    away = client.get(f"/briefings/{job_id}", follow_redirects=False)
    assert away.status_code == 303
    assert away.headers["location"].startswith("/login?next=")
    download = f"/briefings/{job_id}/download/briefing.json"
    assert client.get(download, follow_redirects=False).status_code == 303
    wrong = _login(client, "not-a-key")
    assert wrong.status_code == 401
    assert "That key is not valid." in wrong.text
    assert "not-a-key" not in wrong.text
    done = _login(client, KEY, f"/briefings/{job_id}")
    assert done.status_code == 303
    assert done.headers["location"] == f"/briefings/{job_id}"
    cookie = done.headers["set-cookie"]
    assert "briefing_session=" in cookie
    assert "HttpOnly" in cookie
    assert "samesite=strict" in cookie.lower()
    assert KEY not in cookie
    page = client.get(f"/briefings/{job_id}")
    assert page.status_code == 200
    assert KEY not in page.text
    assert "Sign out" in page.text
    # The API still wants its bearer key; a page session is not one.
    assert client.get(f"/v1/briefings/{job_id}").status_code == 401


def test_login_and_logout_refuse_a_form_without_its_csrf_token(make_client: Any) -> None:
    client, _ = make_client(api_keys=KEY, session_secret=SECRET)
    client.get("/login")
    forged = client.post("/login", data={"key": KEY, "csrf_token": "guess"}, follow_redirects=False)
    assert forged.status_code == 403
    assert "briefing_session" not in forged.headers.get("set-cookie", "")
    assert _login(client, KEY).status_code == 303
    assert client.post("/logout", data={"csrf_token": "guess"}).status_code == 403
    assert client.get("/briefings", follow_redirects=False).status_code == 200
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/briefings").text)
    assert token
    out = client.post("/logout", data={"csrf_token": token.group(1)}, follow_redirects=False)
    assert out.status_code == 303
    assert client.get("/briefings", follow_redirects=False).status_code == 303


def test_a_session_ends_when_its_key_is_removed_or_the_cookie_is_forged(
    make_client: Any, tmp_path: Path
) -> None:
    client, _ = make_client(api_keys=KEY, session_secret=SECRET)
    assert _login(client, KEY).status_code == 303
    session = client.cookies.get("briefing_session")
    assert session
    other, _ = make_client(api_keys="a-different-key-0000000", session_secret=SECRET)
    other.cookies.clear()
    other.cookies.set("briefing_session", session)
    assert other.get("/briefings", follow_redirects=False).status_code == 303
    client.cookies.clear()
    client.cookies.set("briefing_session", session)
    assert client.get("/briefings", follow_redirects=False).status_code == 200
    forged = session[:-4] + ("AAAA" if not session.endswith("AAAA") else "BBBB")
    client.cookies.clear()
    client.cookies.set("briefing_session", forged)
    assert client.get("/briefings", follow_redirects=False).status_code == 303


def test_keys_without_a_session_secret_say_what_to_set(make_client: Any) -> None:
    client, _ = make_client(api_keys=KEY)
    page = client.get("/briefings")
    assert page.status_code == 503
    assert "BRIEFING_SESSION_SECRET" in page.text


def test_login_never_redirects_off_site(make_client: Any) -> None:
    client, _ = make_client(api_keys=KEY, session_secret=SECRET)
    for target in ("https://evil.example/", "//evil.example/x", "/\\evil.example"):
        done = _login(client, KEY, target)
        assert done.status_code == 303
        assert done.headers["location"] == "/briefings"


# ---------------------------------------------------------------- the new-briefing form

ARTICLE = (
    b"<!doctype html><html><head><title>Harbour news</title></head><body>"
    b"<nav>Home | Sport | Weather</nav><article><h1>Harbour reopens</h1>"
    b"<p>Ships came in on Tuesday after the storm had passed over the coast.</p>"
    b"<p>The harbour master said the docks reopened at noon and traffic was normal.</p>"
    b"</article><footer>Copyright 2026</footer></body></html>"
)


@pytest.fixture
def article_site() -> Iterator[str]:
    """An HTTP server on 127.0.0.1 with one article page."""
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            found = self.path == "/harbour"
            self.send_response(200 if found else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.end_headers()
            # Not the uploaded page's text: the same text would be one source, stored once.
            served = ARTICLE.replace(b"traffic was normal", b"no ship was damaged")
            self.wfile.write(served if found else b"missing")

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    thread.join(timeout=5)


def _form_token(client: TestClient) -> str:
    form = client.get("/briefings/new")
    assert form.status_code == 200
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token
    return token.group(1)


def _opened(client: TestClient, location: str) -> str:
    """The page at `location` once the job behind it has ended (bounded wait)."""
    for _ in range(200):
        page = client.get(location)
        if 'id="job-progress"' not in page.text:
            return page.text
        time.sleep(0.05)
    raise AssertionError(f"{location} did not finish")


def test_the_form_builds_one_briefing_of_text_files_and_a_url(
    make_client: Any, article_site: str
) -> None:
    client, store = make_client(run_jobs=True, fetch_allow_private=True)
    token = _form_token(client)
    done = client.post(
        "/briefings/new",
        data={
            "csrf_token": token,
            "title": "Council",
            "text": "The council approved the budget on Monday. The mayor said the vote was close.",
            "urls": f"\n  {article_site}/harbour  \n",
            "model": "extractive",
        },
        files=[
            (
                "files",
                (
                    "notes.md",
                    b"# Notes\n\nThe bridge will close for repairs in May.",
                    "text/markdown",
                ),
            ),
            ("files", ("page.html", ARTICLE, "text/html")),
        ],
        follow_redirects=False,
    )
    assert done.status_code == 303, done.text
    job_id = done.headers["location"].rsplit("/", 1)[1]
    page = _opened(client, done.headers["location"])
    job = store.jobs.get(job_id)
    assert job.status == "succeeded", job.error
    briefing = Briefing.model_validate(job.result)
    by_path = {s.path: s for s in briefing.sources}
    assert [s.title for s in briefing.sources if s.path is None] == ["Council"]
    assert "The bridge will close for repairs in May." in by_path["notes.md"].text
    for path in ("page.html", f"{article_site}/harbour"):
        text = by_path[path].text
        assert "The harbour master said the docks reopened at noon" in text
        assert "<p>" not in text
        assert "Copyright 2026" not in text  # the article, not the page's chrome
    assert html.unescape(briefing.title) in html.unescape(page)


def test_the_form_says_what_is_wrong_and_keeps_what_was_given(make_client: Any) -> None:
    client, store = make_client()
    token = _form_token(client)

    def post(**fields: Any) -> Any:
        files = fields.pop("files", None)
        return client.post("/briefings/new", data={"csrf_token": token, **fields}, files=files)

    empty = post(text="   ")
    assert empty.status_code == 400
    assert "Give a text, a file or a URL." in empty.text
    pdf = post(text="Kept text.", files=[("files", ("report.pdf", b"%PDF-1.4", "application/pdf"))])
    assert pdf.status_code == 400
    assert "report.pdf: only .txt, .md and .html files can be read" in pdf.text
    assert ">Kept text.</textarea>" in pdf.text
    binary = post(files=[("files", ("data.txt", b"a\x00b", "text/plain"))])
    assert "data.txt: looks binary" in binary.text
    private = post(text="Kept.", urls="http://127.0.0.1:9/nothing")
    assert private.status_code == 400
    assert "127.0.0.1" in html.unescape(private.text)
    model = post(text="Some text to brief.", model="gpt-nonexistent")
    assert model.status_code == 400
    assert "is not offered by this service" in html.unescape(model.text)
    many = post(urls="\n".join(f"http://127.0.0.1:9/{n}" for n in range(25)))
    assert many.status_code == 400
    assert "25 sources given; max_sources_per_briefing is 20" in many.text
    forged = client.post("/briefings/new", data={"csrf_token": "guess", "text": "x y z"})
    assert forged.status_code == 403
    assert store.jobs.page()[0] == []  # nothing was queued by any of these


def test_a_running_briefing_page_follows_its_job_and_its_events_end_with_it(
    make_client: Any, seed_briefing: Briefing
) -> None:
    client, store = make_client()
    token = _form_token(client)
    queued = client.post(
        "/briefings/new",
        data={"csrf_token": token, "text": "The council approved the budget on Monday."},
        follow_redirects=False,
    )
    page = client.get(queued.headers["location"])
    assert 'id="job-progress"' in page.text
    job_id = queued.headers["location"].rsplit("/", 1)[1]
    assert f'data-events="/briefings/{job_id}/events"' in page.text
    assert '<noscript><meta http-equiv="refresh" content="2"></noscript>' in page.text
    finished = _stored(store, seed_briefing)
    events = client.get(f"/briefings/{finished}/events")
    assert events.status_code == 200
    assert events.headers["content-type"].startswith("text/event-stream")
    assert "event: done" in events.text
    assert '"status":"succeeded"' in events.text.replace(" ", "")
    assert client.get("/briefings/nope/events").status_code == 404


def test_with_keys_the_form_and_the_events_need_a_session(make_client: Any) -> None:
    client, _ = make_client(api_keys=KEY, session_secret=SECRET)
    assert client.get("/briefings/new", follow_redirects=False).status_code == 303
    assert client.post("/briefings/new", data={}, follow_redirects=False).status_code == 303
    assert client.get("/briefings/x/events").status_code == 401
    assert _login(client, KEY).status_code == 303
    assert client.get("/briefings/new").status_code == 200


# ---------------------------------------------------------------- the compare page


def test_the_compare_page_shows_each_source_whole_with_links_between_its_sentences(
    make_client: Any,
) -> None:
    client, _ = make_client()
    form = client.get("/compare")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token
    files = [("files", (p.name, p.read_bytes(), "text/plain")) for p in SEEDS]
    page = client.post("/compare", data={"csrf_token": token.group(1)}, files=files)
    assert page.status_code == 200, page.text
    text = page.text
    # Each source whole: its sentences and the text between them, in order.
    for number, path in enumerate(SEEDS, start=1):
        block = re.search(
            rf'<h3 id="h-src-{number}">.*?<div class="source-text">(.*?)</div>', text, re.S
        )
        assert block
        shown = re.sub(r'<a class="chip[^>]*>\[\d+\]</a>', "", block.group(1))
        assert (
            html.unescape(re.sub(r"<[^>]+>", "", shown))
            == source_from_text(path.read_text("utf-8")).text
        )
    # Every link leads to a sentence on the page whose text is the quote it shows.
    spans = {
        anchor: html.unescape(body)
        for anchor, body in re.findall(
            r'<span class="sent st-\w+" id="(s\d+-\d+)" tabindex="-1" title="[^"]*">(.*?)</span>',
            text,
            re.S,
        )
    }
    links = re.findall(
        r'<a class="chip chip-(?:supporting|contradicting)" href="#(s\d+-\d+)" '
        r'title="(?:backed by: |contradicted by: )?([^"]*)">',
        text,
    )
    assert len(links) > 10
    for anchor, quote in links:
        assert spans[anchor] == html.unescape(quote)
    # The twisted quote of seed 004 is listed where it contradicts the other source.
    second = text.split('id="h-src-2"')[1]
    clashes = re.search(r"Where it contradicts the others</h4>(.*?)</ul>", second, re.S)
    assert clashes
    assert "get along with people" in html.unescape(clashes.group(1))


def test_the_compare_form_wants_two_sources_and_a_known_method(make_client: Any) -> None:
    client, _ = make_client()
    token = _form_token(client)
    one = client.post("/compare", data={"csrf_token": token, "text": "Only one text here."})
    assert one.status_code == 400
    assert "Give at least 2 sources" in one.text
    assert ">Only one text here.</textarea>" in one.text
    judge = client.post(
        "/compare", data={"csrf_token": token, "text": "One.", "urls": "", "method": "judge"}
    )
    assert judge.status_code == 400
    assert "method &#39;judge&#39; is not available here" in judge.text
    assert client.post("/compare", data={"csrf_token": "guess"}).status_code == 403


# ---------------------------------------------------------------- the schedules' pages


def test_a_schedule_runs_from_its_page_and_lists_its_run_with_the_briefing(
    make_client: Any, tmp_path: Path
) -> None:
    import shutil

    root = tmp_path / "roots"
    shutil.copytree(ROOT / "seeds", root / "news")
    client, _ = make_client(schedule_roots=str(root))
    schedule = {
        "name": "news",
        "cron": "0 7 * * *",
        "sources": [{"kind": "folder", "path": str(root / "news")}],
        "deliver": [{"kind": "store"}],
    }
    assert client.post("/v1/schedules", json=schedule).status_code == 201
    listed = client.get("/schedules")
    assert listed.status_code == 200
    assert '<a href="/schedules/news">news</a>' in listed.text
    assert "never" in listed.text
    page = client.get("/schedules/news")
    assert "No runs yet." in page.text
    assert str(root / "news") in html.unescape(page.text)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token
    assert client.post("/schedules/news/run", data={"csrf_token": "guess"}).status_code == 403
    ran = client.post("/schedules/news/run", data={"csrf_token": token.group(1)})
    assert ran.status_code == 200, ran.text
    outcome = re.search(r'<p class="outcome outcome-(\w+)"', ran.text)
    assert outcome
    assert outcome.group(1) == "succeeded"
    opened = re.search(r'<a href="(/briefings/[^"]+)">Open the briefing</a>', ran.text)
    assert opened
    assert "store delivered" in ran.text
    briefing = client.get(opened.group(1))
    assert briefing.status_code == 200
    assert '<article class="briefing">' in briefing.text
    again = client.post("/schedules/news/run", data={"csrf_token": token.group(1)})
    assert re.search(r'<p class="outcome outcome-skipped"', again.text)
    assert re.search(
        r'status-succeeded">succeeded</span> <a href="/briefings/', client.get("/schedules").text
    )
    assert client.get("/schedules/nope").status_code == 404
    assert client.get("/schedules/news?before=soon").status_code == 400
