"""Take the README's screenshots of the reader's pages: `python docs/screenshots.py`.

Starts `briefing serve` on a free loopback port with a fresh SQLite store, builds the
extractive briefing of the seeds through the API, and photographs the pages in Debian's
Chromium (through Playwright, which downloads nothing). Writes docs/*.png.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("BRIEFING_CHROMIUM", "/usr/bin/chromium")


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _call(base: str, method: str, path: str, body: object = None) -> dict:
    data = None if body is None else json.dumps(body).encode("utf-8")
    request = urllib.request.Request(
        base + path, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def main() -> None:
    """Serve, build, photograph."""
    with tempfile.TemporaryDirectory() as folder:
        port = _port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("BRIEFING_")}
        env.update(
            BRIEFING_DATABASE_URL=f"sqlite:///{folder}/shots.db",
            BRIEFING_CALL_LOG=f"{folder}/calls.db",
            BRIEFING_MODEL="extractive",
        )
        server = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from briefing.cli import main; main()",
                "serve",
                "--port",
                str(port),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(150):
                try:
                    urllib.request.urlopen(base + "/readyz", timeout=2).close()
                    break
                except OSError:
                    time.sleep(0.2)
            seeds = sorted((ROOT / "seeds").glob("*.txt"))
            body = {"sources": [{"title": p.stem, "text": p.read_text("utf-8")} for p in seeds]}
            job = _call(base, "POST", "/v1/briefings?wait=60", body)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM)
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                page.goto(f"{base}/briefings/{job['id']}")
                page.screenshot(path=ROOT / "docs" / "briefing.png")
                chip = page.locator("a.chip-cite").nth(3)
                chip.click()
                page.locator("#source-pane mark").wait_for()
                page.screenshot(path=ROOT / "docs" / "source-pane.png")
                page.goto(f"{base}/briefings")
                page.screenshot(path=ROOT / "docs" / "briefings.png")
                page.goto(f"{base}/briefings/new")
                page.screenshot(path=ROOT / "docs" / "new-briefing.png")
                page.goto(f"{base}/compare")
                page.set_input_files("#files", [str(p) for p in seeds])
                page.click("form.compare-form button[type=submit]")
                page.locator("#h-src-2").scroll_into_view_if_needed()
                page.screenshot(path=ROOT / "docs" / "compare.png")
                phone = browser.new_page(viewport={"width": 360, "height": 740})
                phone.goto(f"{base}/briefings/{job['id']}")
                phone.screenshot(path=ROOT / "docs" / "briefing-360.png")
                browser.close()
        finally:
            server.terminate()
            server.wait(timeout=20)


if __name__ == "__main__":
    main()
