"""Ingestion: read source files into canonical text with a stable content-hash id."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from pathlib import Path

from briefing.errors import SourceError
from briefing.schema import Source

SUPPORTED_SUFFIXES = (".txt", ".md")
_TITLE_MAX_CHARS = 200
_MD_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.+?)\s*#*\s*$")


def canonicalize(text: str) -> str:
    """Canonical text of the contract: CRLF turned into LF, then Unicode NFC."""
    return unicodedata.normalize("NFC", text.replace("\r\n", "\n"))


def source_from_text(text: str, *, title: str | None = None, path: str | None = None) -> Source:
    """Build a Source from already-decoded text; `where` in errors is the path or title."""
    where = path or title or "<text>"
    canonical = canonicalize(text)
    if "\x00" in canonical:
        raise SourceError(f"{where}: looks binary (contains NUL characters); expected UTF-8 text")
    if not canonical.strip():
        raise SourceError(f"{where}: is empty (no text after decoding)")
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    return Source(
        id=digest[:16],
        title=(title or "").strip() or _guess_title(canonical, path) or digest[:16],
        path=path,
        sha256=digest,
        text=canonical,
    )


def load_source(path: str | Path) -> Source:
    """Read a .txt or .md file as UTF-8; raise SourceError naming the file when it is unusable."""
    p = Path(path)
    if p.is_dir():
        raise SourceError(f"{p}: is a directory, not a file")
    if p.suffix.lower() not in SUPPORTED_SUFFIXES:
        raise SourceError(
            f"{p}: unsupported file type {p.suffix or '(none)'!r}; "
            f"expected one of {', '.join(SUPPORTED_SUFFIXES)}"
        )
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise SourceError(f"{p}: no such file") from None
    except IsADirectoryError:
        raise SourceError(f"{p}: is a directory, not a file") from None
    except OSError as exc:
        raise SourceError(f"{p}: cannot be read ({exc.strerror})") from None
    if b"\x00" in raw:
        raise SourceError(f"{p}: looks binary (contains NUL bytes); expected UTF-8 text")
    try:
        # utf-8-sig drops a leading byte-order mark, which is not part of the text.
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        # utf-8-sig counts offsets after the byte-order mark; report them in the file.
        at = exc.start + (3 if raw.startswith(b"\xef\xbb\xbf") else 0)
        raise SourceError(
            f"{p}: is not valid UTF-8 (byte 0x{raw[at]:02x} at offset {at})"
        ) from None
    return source_from_text(text, path=str(path))


def _guess_title(text: str, path: str | None) -> str | None:
    lines = [line.strip() for line in text.split("\n") if line.strip()]
    if path is None or path.lower().endswith(".md"):
        for line in lines:
            match = _MD_HEADING.match(line)
            if match:
                return match.group(1)
    # A short first line followed by more text reads as a headline.
    if len(lines) > 1 and len(lines[0]) <= _TITLE_MAX_CHARS and not lines[0].endswith("."):
        return lines[0].lstrip("# ").strip()
    return Path(path).stem if path else None
