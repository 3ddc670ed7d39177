"""Benchmark inputs: news-article-sized sources made from the seeds and the dev documents.

Deterministic: the same `n` always gives the same sources. Source 1 is seed 000 (a real
article of about 3,000 tokens), source 2 seed 004, and every further source joins dev
documents (FactCC, SummEval, XSumFaith articles) drawn by a seeded generator until it is
about as long as a news article; its first line names it, so no two sources are the same text
and no two map chunks are identical prompts.
"""

from __future__ import annotations

import functools
import json
import random
from pathlib import Path

from briefing.schema import Source
from briefing.text.sources import source_from_text

ROOT = Path(__file__).resolve().parent.parent
SEEDS = sorted((ROOT / "seeds").glob("*.txt"))
DEV_DATASETS = sorted((ROOT / "evals" / "datasets" / "summac-dev").glob("*.jsonl"))
#: About 900 tokens of English news text: a typical article.
ARTICLE_CHARS = 4_000


@functools.cache
def dev_documents() -> tuple[str, ...]:
    """The distinct documents of the dev datasets, in file order."""
    seen: dict[str, None] = {}
    for path in DEV_DATASETS:
        with path.open(encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    seen.setdefault(json.loads(line)["document"].strip(), None)
    return tuple(seen)


def _combined(index: int) -> tuple[str, str]:
    documents = dev_documents()
    rng = random.Random(index)  # reproducible inputs, not security
    parts: list[str] = []
    size = 0
    while size < ARTICLE_CHARS:
        part = documents[rng.randrange(len(documents))]
        if part in parts:
            continue
        parts.append(part)
        size += len(part)
    title = f"Dispatch {index}: {parts[0].split('. ')[0][:80]}"
    return title, title + "\n\n" + "\n\n".join(parts) + "\n"


def sources(n: int) -> list[Source]:
    """`n` sources: the two seeds first, then combined dev documents."""
    out: list[Source] = []
    for path in SEEDS[:n]:
        out.append(source_from_text(path.read_text("utf-8"), path=str(path.relative_to(ROOT))))
    index = 0
    while len(out) < n:
        index += 1
        title, text = _combined(index)
        out.append(source_from_text(text, title=title))
    return out


def write_sources(n: int, folder: Path) -> list[Path]:
    """Write `sources(n)` as .txt files into `folder`; the paths, in order."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for number, source in enumerate(sources(n), start=1):
        path = folder / f"{number:05d}.txt"
        path.write_text(source.text, "utf-8")
        paths.append(path)
    return paths
