"""The map step's cache: a source's claims, kept under a key of everything that made them.

The key is the sha256 of the source's content hash, the chunking (chunk size and overlap
as sent, tiktoken encoding, claims asked per token), the map prompt's name, version and
file hash, the model and the model parameters. Any change to one of them is another key,
so an entry never needs invalidating; entries are written once and never changed, which
makes two runs that map the same source at once safe (the second write is a no-op).

The pipeline only knows this protocol; the store implements it (`Store.map_cache`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from pydantic import BaseModel

from briefing.schema import Citation, Source

__all__ = ["CachedClaim", "MapCache", "map_key"]


class CachedClaim(BaseModel):
    """One claim of the map step with the exact spans it cites."""

    text: str
    citations: list[Citation]


class MapCache(Protocol):
    """Where map results are kept between briefings."""

    def get_many(self, keys: Sequence[str]) -> dict[str, list[CachedClaim]]:
        """The claims kept under each of `keys` that has an entry."""
        ...

    def put(self, key: str, source_id: str, claims: Sequence[CachedClaim]) -> None:
        """Keep `claims` of `source_id` under `key` (a no-op when the key is taken)."""
        ...


def map_key(
    source: Source,
    *,
    chunking: Mapping[str, Any],
    prompt: Mapping[str, Any],
    model: str,
    parameters: Mapping[str, Any],
) -> str:
    """The cache key of one source's map result (see the module docstring)."""
    material = {
        "source": source.sha256,
        "chunking": dict(chunking),
        "prompt": dict(prompt),
        "model": model,
        "parameters": dict(parameters),
    }
    encoded = json.dumps(material, sort_keys=True, default=str).encode("utf-8")
    return hashlib.sha256(encoded).hexdigest()
