"""Token counting with tiktoken, offline: the encoding files come from litellm's package."""

from __future__ import annotations

import functools
import importlib.util
import os
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from briefing.errors import ConfigError

if TYPE_CHECKING:
    import tiktoken


class Encoder(Protocol):
    """The part of a tiktoken Encoding this project uses."""

    def encode(self, text: str, *, disallowed_special: tuple[str, ...] = ...) -> list[int]: ...


def _bundled_cache_dir() -> Path | None:
    # litellm ships tiktoken's BPE files in its package; pointing tiktoken at them keeps
    # token counting offline without paying litellm's import time.
    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "litellm_core_utils" / "tokenizers"
    return path if path.is_dir() else None


@functools.cache
def get_encoding(name: str) -> tiktoken.Encoding:
    """Load a tiktoken encoding from files on disk; never downloads."""
    import tiktoken

    if "TIKTOKEN_CACHE_DIR" not in os.environ and "DATA_GYM_CACHE_DIR" not in os.environ:
        bundled = _bundled_cache_dir()
        if bundled is not None:
            os.environ["TIKTOKEN_CACHE_DIR"] = str(bundled)
    try:
        return tiktoken.get_encoding(name)
    except ValueError as exc:
        raise ConfigError(f"unknown tiktoken encoding {name!r}: {exc}") from None
    except Exception as exc:
        # A missing file makes tiktoken try the network, which fails here by design.
        raise ConfigError(
            f"tiktoken encoding {name!r} is not available offline "
            f"(looked in {os.environ.get('TIKTOKEN_CACHE_DIR')}): {type(exc).__name__}"
        ) from None


def count_tokens(text: str, encoding: str) -> int:
    """Number of tokens of `text` in the named encoding; special-token text counts as text."""
    return len(get_encoding(encoding).encode(text, disallowed_special=()))
