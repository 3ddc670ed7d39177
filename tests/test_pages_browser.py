"""The reader's pages in a real Chromium against a real `briefing serve` on 127.0.0.1.

Debian's chromium through Playwright (`executable_path`, no `playwright install`). Skipped
when either is missing, except where BRIEFING_REQUIRE_BROWSER=1 (CI), where that fails.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
SEEDS = sorted((ROOT / "seeds").glob("*.txt"))
KEY = "browser-test-key-0123456789"
CHROMIUM = next(
    (
        p
        for p in (os.environ.get("BRIEFING_CHROMIUM"), "/usr/bin/chromium")
        if p and Path(p).exists()
    ),
    None,
)

try:
    from playwright.sync_api import Browser, Page, sync_playwright
except ImportError:  # pragma: no cover - the dev extra installs it
    sync_playwright = None  # type: ignore[assignment]

if CHROMIUM is None or sync_playwright is None:
    if os.environ.get("BRIEFING_REQUIRE_BROWSER") == "1":
        raise RuntimeError(
            "BRIEFING_REQUIRE_BROWSER=1 but Debian's chromium or playwright is missing "
            "(apt-get install chromium; pip install -e '.[dev]')"
        )
    pytest.skip("needs Debian's chromium and playwright", allow_module_level=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _api(base: str, method: str, path: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode("utf-8")
    request = urllib.request.Request(
        base + path,
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def _briefing(base: str, texts: list[tuple[str, str]]) -> dict[str, Any]:
    """A briefing built by the service from inline texts, once it has succeeded."""
    job = _api(
        base,
        "POST",
        "/v1/briefings",
        {"sources": [{"title": t, "text": x} for t, x in texts], "model": "extractive"},
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        got = _api(base, "GET", f"/v1/briefings/{job['id']}")
        if got["status"] == "succeeded":
            return dict(got, job_id=job["id"])
        assert got["status"] in ("queued", "running"), got
        time.sleep(0.2)
    raise AssertionError(f"briefing {job['id']} did not finish in 60 s")


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The served service's folder: its database, and `news`, a copy of the seeds that
    schedules may read (it is BRIEFING_SCHEDULE_ROOTS)."""
    made = tmp_path_factory.mktemp("served")
    shutil.copytree(ROOT / "seeds", made / "news")
    return made


@pytest.fixture(scope="module")
def server(folder: Path) -> Iterator[str]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("BRIEFING_")}
    env.update(
        BRIEFING_DATABASE_URL=f"sqlite:///{folder / 'pages.db'}",
        BRIEFING_CALL_LOG=str(folder / "calls.db"),
        BRIEFING_MODEL="extractive",
        BRIEFING_API_KEYS=KEY,
        BRIEFING_SESSION_SECRET="x" * 48,
        BRIEFING_SCHEDULE_ROOTS=str(folder),
        BRIEFING_SCHEDULER="false",
    )
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from briefing.cli import main; main()",
            "serve",
            "--port",
            str(port),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(base + "/readyz", timeout=2).close()
                break
            except (urllib.error.URLError, ConnectionError):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(process.communicate()[0]) from None
                time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        output = process.communicate(timeout=20)[0]
        assert KEY not in output  # the key never reaches the log


@pytest.fixture(scope="module")
def seeds(server: str) -> dict[str, Any]:
    return _briefing(server, [(p.stem, p.read_text("utf-8")) for p in SEEDS])


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert sync_playwright is not None
    assert CHROMIUM is not None
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield launched
        launched.close()


def _signed_in(browser: Browser, server: str, path: str, **options: Any) -> Page:
    page = browser.new_context(**options).new_page()
    page.goto(server + path)
    assert "/login" in page.url
    page.fill("#key", KEY)
    page.click("button[type=submit]")
    page.wait_for_url(server + path)
    return page


def _shown(page: Page, chip: Any) -> None:
    """Wait until the pane shows what `chip` opens (not what the chip before it did)."""
    fragment = chip.get_attribute("data-fragment")
    page.wait_for_function(
        "f => document.getElementById('source-pane').dataset.shown === f", arg=fragment
    )


def test_signing_in_once_opens_the_briefing_and_keeps_the_key_out_of_the_page(
    browser: Browser, server: str, seeds: dict[str, Any]
) -> None:
    page = browser.new_context().new_page()
    page.goto(f"{server}/briefings/{seeds['job_id']}")
    assert "/login" in page.url
    page.fill("#key", "wrong-key")
    page.click("button[type=submit]")
    assert page.locator("p.error").inner_text() == "That key is not valid."
    page.fill("#key", KEY)
    page.click("button[type=submit]")
    page.wait_for_url(f"{server}/briefings/{seeds['job_id']}")
    assert page.locator("h1").inner_text() == seeds["title"]
    assert KEY not in page.content()
    cookies = {c["name"]: c for c in page.context.cookies()}
    assert cookies["briefing_session"]["httpOnly"]
    assert cookies["briefing_session"]["sameSite"] == "Strict"
    assert KEY not in cookies["briefing_session"]["value"]
    page.goto(f"{server}/briefings")
    assert page.locator(f"a[href='/briefings/{seeds['job_id']}']").count() == 1
    page.click("text=Sign out")
    page.wait_for_url(f"{server}/login")
    page.goto(f"{server}/briefings")
    assert "/login" in page.url


def test_clicking_a_chip_opens_the_source_beside_the_briefing_at_the_quote(
    browser: Browser, server: str, seeds: dict[str, Any]
) -> None:
    errors: list[str] = []
    page = _signed_in(browser, server, f"/briefings/{seeds['job_id']}")
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    claims = [*seeds["summary"], *seeds["key_points"]]
    chips = page.locator("a.chip-cite")
    assert chips.count() >= sum(len(c["citations"]) for c in claims) > 0
    for n, claim in enumerate(claims[:3]):
        citation = claim["citations"][0]
        chip = page.locator(f"#claim-{claim['id']} a.chip-cite").first
        if n == 1:  # by keyboard: the chip is a link, Enter opens it
            chip.focus()
            page.keyboard.press("Enter")
        else:
            chip.click()
        _shown(page, chip)
        mark = page.locator("#source-pane mark")
        assert mark.inner_text() == citation["quote"]
        assert page.locator("#source-pane").is_visible()
        assert chip.get_attribute("aria-current") == "true"
        assert "/login" not in page.url
        assert page.url.endswith(f"/briefings/{seeds['job_id']}")
        pane = page.locator("#source-pane").bounding_box()
        box = mark.bounding_box()
        assert pane
        assert box
        assert box["y"] < pane["y"] + pane["height"]
        assert box["y"] + box["height"] > pane["y"]
    # A supporting span in the other source is one click away (the seeds back each other).
    corroborated = [c for c in claims if c["corroboration"]["supporting"]]
    assert corroborated
    claim = corroborated[0]
    chip = page.locator(f"#claim-{claim['id']} a.chip-supporting").first
    chip.click()
    _shown(page, chip)
    assert (
        page.locator("#source-pane mark").inner_text()
        == (claim["corroboration"]["supporting"][0]["quote"])
    )
    assert errors == []  # no CSP violation, no script error


def test_without_javascript_a_chip_is_a_link_to_the_marked_source(
    browser: Browser, server: str, seeds: dict[str, Any]
) -> None:
    page = _signed_in(browser, server, f"/briefings/{seeds['job_id']}", java_script_enabled=False)
    claim = seeds["key_points"][0]
    page.locator(f"#claim-{claim['id']} a.chip-cite").first.click()
    page.wait_for_url("**/sources/**")
    assert page.locator("mark#mark").inner_text() == claim["citations"][0]["quote"]


def test_a_source_with_markup_shows_as_text_and_runs_nothing(browser: Browser, server: str) -> None:
    text = (
        "<script>alert('pwned')</script> The council approved the new budget on Monday.\n"
        'The mayor said <img src=x onerror="alert(1)"> the vote was close.'
    )
    made = _briefing(server, [("<b>hostile</b>", text)])
    page = _signed_in(browser, server, f"/briefings/{made['job_id']}/sources/1")
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.reload()
    assert "<script>alert('pwned')</script>" in page.locator(".source-text").inner_text()
    assert page.locator(".source-text script, .source-text img, h2 b").count() == 0
    assert dialogs == []


def test_the_pages_fit_a_360_px_screen(
    browser: Browser, server: str, seeds: dict[str, Any]
) -> None:
    size = {"width": 360, "height": 740}
    for path in (
        f"/briefings/{seeds['job_id']}",
        "/briefings",
        "/briefings/new",
        "/compare",
        "/schedules",
    ):
        page = _signed_in(browser, server, path, viewport=size)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 360, f"{path} is {width} px wide at 360"


def test_a_briefing_built_from_the_form_opens_when_its_job_ends(
    browser: Browser, server: str
) -> None:
    page = _signed_in(browser, server, "/briefings/new")
    page.fill("#title", "Council week")
    # A text not stored yet: a stored one keeps the title it was first stored with.
    page.fill("#text", SEEDS[0].read_text("utf-8") + "\nThe council met again on Friday.")
    page.select_option("#model", "extractive")
    page.click("form.new-briefing button[type=submit]")
    # The job's page follows its progress and turns into the briefing when it is done.
    page.wait_for_selector("article.briefing h1", timeout=60_000)
    assert page.locator("article.briefing h1").inner_text() == "Council week"
    assert "/briefings/" in page.url
    assert page.locator("a.chip-cite").count() > 0


def test_the_form_shows_what_is_wrong_and_keeps_the_text(browser: Browser, server: str) -> None:
    page = _signed_in(browser, server, "/briefings/new")
    page.fill("#text", "Kept words.")
    page.fill("#urls", "http://127.0.0.1:9/refused")
    page.click("form.new-briefing button[type=submit]")
    assert "127.0.0.1" in page.locator("#form-error").inner_text()
    assert page.locator("#text").input_value() == "Kept words."


def test_comparing_two_files_links_a_contradiction_to_the_sentence_it_clashes_with(
    browser: Browser, server: str
) -> None:
    page = _signed_in(browser, server, "/compare")
    page.set_input_files("#files", [str(p) for p in SEEDS])
    page.click("form.compare-form button[type=submit]")
    page.wait_for_selector("section.comparison")
    chip = page.locator(".source-text a.chip-contradicting").first
    quote = (chip.get_attribute("title") or "").removeprefix("contradicted by: ")
    chip.click()
    target = page.locator(".sent:target")
    target.wait_for()
    assert target.inner_text() == quote
    assert page.locator("h3").count() == len(SEEDS)


def test_a_schedule_runs_now_from_its_page_and_its_run_opens_the_briefing(
    browser: Browser, server: str, folder: Path
) -> None:
    made = _api(
        server,
        "POST",
        "/v1/schedules",
        {
            "name": "morning",
            "cron": "0 7 * * *",
            "sources": [{"kind": "folder", "path": str(folder / "news")}],
            "deliver": [{"kind": "store"}],
        },
    )
    assert made["name"] == "morning"
    page = _signed_in(browser, server, "/schedules")
    page.click("a[href='/schedules/morning']")
    assert page.locator("text=No runs yet.").count() == 1
    page.click("form.run-now button[type=submit]")
    outcome = page.locator("#run-outcome")
    outcome.wait_for(timeout=60_000)
    assert outcome.inner_text().startswith("succeeded")
    rows = page.locator("table.runs tbody tr")
    assert rows.count() == 1
    assert "store delivered" in rows.first.inner_text()
    rows.first.locator("a", has_text="briefing").click()
    page.wait_for_selector("article.briefing h1")
    assert page.locator("a.chip-cite").count() > 0
