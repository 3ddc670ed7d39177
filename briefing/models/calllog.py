"""Every model call, logged to SQLite. Migrations are append-only: never edit a released one."""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

#: Schema migrations, applied in order; PRAGMA user_version counts those applied.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE calls (
        id INTEGER PRIMARY KEY,
        created_at TEXT NOT NULL,
        prompt TEXT,
        prompt_sha256 TEXT,
        model TEXT NOT NULL,
        parameters TEXT NOT NULL,
        attempt INTEGER NOT NULL,
        input_tokens INTEGER,
        output_tokens INTEGER,
        cost_usd REAL,
        latency_ms REAL NOT NULL,
        finish_reason TEXT,
        error TEXT
    );
    CREATE INDEX calls_created_at ON calls (created_at);
    """,
    # What was asked and answered, so a call can be diagnosed after the fact; and the
    # provider's prompt-cache hits.
    """
    ALTER TABLE calls ADD COLUMN messages TEXT;
    ALTER TABLE calls ADD COLUMN response TEXT;
    ALTER TABLE calls ADD COLUMN cached_tokens INTEGER;
    """,
)


@dataclass
class CallRecord:
    """One request to a model, successful or not."""

    prompt: str | None
    prompt_sha256: str | None
    model: str
    parameters: dict[str, Any]
    attempt: int
    latency_ms: float
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    finish_reason: str | None = None
    error: str | None = None
    #: The request's chat messages and the answer's text (None when content logging is off).
    messages: list[dict[str, Any]] | None = None
    response: str | None = None
    #: Prompt tokens the provider served from its prompt cache, when it says.
    cached_tokens: int | None = None
    #: The row id, once a CallLog has recorded the call.
    id: int | None = None


class CallRecorder(Protocol):
    """Anything that takes note of model calls: the SQLite log, the service's metrics."""

    def record(self, call: CallRecord) -> None:
        """Take note of one call."""


class CallRecorders:
    """Several recorders as one: each call goes to every one of them, in order."""

    def __init__(self, *recorders: CallRecorder) -> None:
        self.recorders = recorders

    def record(self, call: CallRecord) -> None:
        """Hand the call to every recorder."""
        for recorder in self.recorders:
            recorder.record(call)


class CallLog:
    """An SQLite file of CallRecords; safe to share between threads of one process."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA busy_timeout=5000")
        self._migrate()

    def _migrate(self) -> None:
        with self._lock:
            current = self._conn.execute("PRAGMA user_version").fetchone()[0]
            for number, sql in enumerate(MIGRATIONS[current:], start=current + 1):
                # BEGIN IMMEDIATE serialises two processes migrating the same file.
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    if self._conn.execute("PRAGMA user_version").fetchone()[0] >= number:
                        self._conn.execute("ROLLBACK")
                        continue
                    for statement in sql.split(";"):
                        if statement.strip():
                            self._conn.execute(statement)
                    self._conn.execute(f"PRAGMA user_version = {number}")
                    self._conn.execute("COMMIT")
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise

    def record(self, call: CallRecord) -> None:
        """Append one call, and set its `id`."""
        row = asdict(call)
        del row["id"]
        row["parameters"] = json.dumps(call.parameters, sort_keys=True, default=str)
        if call.messages is not None:
            row["messages"] = json.dumps(call.messages, ensure_ascii=False)
        row["created_at"] = datetime.now(UTC).isoformat()
        columns = ", ".join(row)
        marks = ", ".join(f":{key}" for key in row)
        with self._lock:
            cursor = self._conn.execute(
                f"INSERT INTO calls ({columns}) VALUES ({marks})",  # noqa: S608
                row,
            )
            call.id = cursor.lastrowid

    def rows(self) -> list[dict[str, Any]]:
        """All calls, oldest first."""
        with self._lock:
            cursor = self._conn.execute("SELECT * FROM calls ORDER BY id")
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]

    def recent(
        self,
        *,
        limit: int = 20,
        model: str | None = None,
        prompt: str | None = None,
        errors_only: bool = False,
    ) -> list[dict[str, Any]]:
        """The latest calls first, without their messages and answers."""
        where, args = [], []
        if model is not None:
            where.append("model = ?")
            args.append(model)
        if prompt is not None:
            where.append("(prompt = ? OR prompt LIKE ?)")
            args += [prompt, f"{prompt}@%"]
        if errors_only:
            where.append("error IS NOT NULL")
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        # Only fixed column names and placeholders go into the text; values are bound.
        columns = (
            "id, created_at, prompt, model, attempt, input_tokens, output_tokens, "
            "cached_tokens, cost_usd, latency_ms, finish_reason, error, "
            "response IS NOT NULL AS has_content"
        )
        query = f"SELECT {columns} FROM calls {clause} ORDER BY id DESC LIMIT ?"  # noqa: S608
        with self._lock:
            cursor = self._conn.execute(query, [*args, limit])
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]

    def get(self, call_id: int) -> dict[str, Any] | None:
        """One call with everything recorded of it (messages parsed), or None."""
        with self._lock:
            cursor = self._conn.execute("SELECT * FROM calls WHERE id = ?", (call_id,))
            names = [d[0] for d in cursor.description]
            found = cursor.fetchone()
        if found is None:
            return None
        row = dict(zip(names, found, strict=True))
        for key in ("parameters", "messages"):
            if row.get(key):
                row[key] = json.loads(row[key])
        return row

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._conn.close()
