"""`briefing db upgrade` and `briefing serve`, run as a user would run them."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from briefing.cli import main
from briefing.store import make_engine
from briefing.store.migrations import head_revision, is_current


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("BRIEFING_")}
    return {**env, **extra}


def test_db_upgrade_migrates_the_given_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'sub' / 'b.db'}"
    result = CliRunner().invoke(main, ["db", "upgrade", "--database-url", url], env=_clean_env())
    assert result.exit_code == 0, result.output
    assert f"at revision {head_revision()}" in result.output
    engine = make_engine(url)
    try:
        assert is_current(engine)
    finally:
        engine.dispose()


def test_db_upgrade_reports_a_bad_url_as_usage_error() -> None:
    result = CliRunner().invoke(main, ["db", "upgrade", "--database-url", "nonsense"])
    assert result.exit_code == 2
    assert "invalid database URL" in result.output


def test_db_upgrade_failure_never_shows_the_password() -> None:
    url = "postgresql://briefing:topsecret@127.0.0.1:1/briefing"  # nothing listens on port 1
    result = CliRunner().invoke(main, ["db", "upgrade", "--database-url", url], env=_clean_env())
    assert result.exit_code == 1
    assert "migration failed" in result.output or "unreachable" in result.output
    assert "topsecret" not in result.output


def test_the_cli_does_not_import_the_service_stack() -> None:
    # `briefing --help` must stay fast: FastAPI and SQLAlchemy load only inside commands.
    code = "import sys, briefing.cli; print(sorted(m for m in ('fastapi', 'sqlalchemy', 'alembic', 'uvicorn') if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _get(url: str, **headers: str) -> tuple[int, Any]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_serve_migrates_and_answers_on_loopback(tmp_path: Path) -> None:
    port = _free_port()
    db = tmp_path / "served.db"
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from briefing.cli import main; main()",
            "serve",
            "--port",
            str(port),
        ],
        env=_clean_env(BRIEFING_DATABASE_URL=f"sqlite:///{db}", BRIEFING_API_KEYS="k"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                status, body = _get(f"http://127.0.0.1:{port}/readyz")
                break
            except (urllib.error.URLError, ConnectionError):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(process.communicate()[0]) from None
                time.sleep(0.2)
        assert (status, body["status"]) == (200, "ready")
        assert _get(f"http://127.0.0.1:{port}/v1/sources")[0] == 401
        status, page = _get(f"http://127.0.0.1:{port}/v1/sources", Authorization="Bearer k")
        assert (status, page["items"]) == (200, [])
    finally:
        process.terminate()
        output = process.communicate(timeout=20)[0]
    assert '"path": "/v1/sources"' in output  # the structured request log
    assert "Bearer k" not in output
    assert db.exists()
