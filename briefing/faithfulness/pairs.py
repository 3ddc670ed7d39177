"""Pairs files for `briefing check`: JSONL read lazily and validated line by line, results
written whole or not at all."""

from __future__ import annotations

import itertools
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from briefing.errors import UserError
from briefing.faithfulness.checker import Checker, CheckPair
from briefing.schema import Usage

__all__ = [
    "CheckInputError",
    "CheckSummary",
    "check_file",
    "pair_from_dict",
    "parse_pair",
    "read_pairs",
]

#: Characters of distinct documents read into one batch of a file check.
_BATCH_CHARS = 8_000_000


class CheckInputError(UserError):
    """A pairs file (or request) that is not valid check input."""


def parse_pair(line: str, where: str) -> CheckPair:
    """One JSONL line as a CheckPair; errors name `where` (file and line number)."""
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        raise CheckInputError(
            f"{where}: not valid JSON ({exc.msg} at column {exc.colno})"
        ) from None
    if not isinstance(data, dict):
        raise CheckInputError(f"{where}: expected a JSON object, got {type(data).__name__}")
    return pair_from_dict(data, where)


def pair_from_dict(data: dict[str, Any], where: str) -> CheckPair:
    """Validate one pair given as a mapping; errors name `where` and the field."""
    missing = [name for name in ("id", "document", "claim") if name not in data]
    if missing:
        raise CheckInputError(f"{where}: missing field {', '.join(repr(m) for m in missing)}")
    try:
        return CheckPair.model_validate(
            {"id": data["id"], "document": data["document"], "claim": data["claim"]}
        )
    except ValidationError as exc:
        problems = "; ".join(
            f"field {'.'.join(str(p) for p in err['loc'])!r}: "
            f"{err['msg'].removeprefix('Value error, ').lower()}"
            for err in exc.errors()
        )
        raise CheckInputError(f"{where}: {problems}") from None


def read_pairs(lines: Iterable[str], name: str) -> Iterator[CheckPair]:
    """Pairs from JSONL lines, lazily; blank lines are skipped, a bad line is an error."""
    for number, line in enumerate(lines, start=1):
        if line.strip():
            yield parse_pair(line, f"{name} line {number}")


@dataclass
class CheckSummary:
    """What a file check did."""

    pairs: int
    supported: int
    method: str
    usage: Usage


def _validate_file(path: Path, name: str) -> int:
    with path.open(encoding="utf-8", errors="strict") as handle:
        try:
            return sum(1 for _ in read_pairs(handle, name))
        except UnicodeDecodeError as exc:
            raise CheckInputError(f"{name}: not UTF-8 ({exc.reason})") from None


async def check_file(
    checker: Checker,
    input_path: Path,
    output_path: Path,
    *,
    batch: int = 64,
    name: str | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> CheckSummary:
    """Check every pair of a JSONL file and write the results JSONL.

    The input is validated in full before any pair is scored, so a bad line costs nothing;
    results go to a temporary file renamed into place at the end, so a failure never leaves
    half an output. Pairs are read and scored in batches: memory does not grow with the file.
    """
    # Local file work here is sequential and brief next to the checking itself; the event
    # loop serves only this job's judge calls, so it is not moved to threads.
    name = name or str(input_path)
    if not input_path.is_file():  # noqa: ASYNC240
        raise CheckInputError(f"{name}: no such file")
    total = _validate_file(input_path, name)
    if total == 0:
        raise CheckInputError(f"{name}: no pairs (the file is empty)")
    output_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{output_path.name}.", dir=output_path.parent)
    supported = done = 0
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out, input_path.open(encoding="utf-8") as src:
            pending: list[CheckPair] = []
            documents: dict[str, str] = {}  # one string per distinct document in the batch
            for pair in itertools.chain(read_pairs(src, name), [None]):
                if pair is not None:
                    pair.document = documents.setdefault(pair.document, pair.document)
                    pending.append(pair)
                full = len(pending) >= batch or sum(map(len, documents)) > _BATCH_CHARS
                if pending and (pair is None or full):
                    for result in await checker.check(pending):
                        supported += result.label
                        done += 1
                        out.write(result.model_dump_json() + "\n")
                    pending, documents = [], {}
                    if progress is not None:
                        progress("check", done, total)
        os.replace(tmp, output_path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)  # noqa: ASYNC240
        raise
    return CheckSummary(pairs=total, supported=supported, method=checker.name, usage=checker.usage)
