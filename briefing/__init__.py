"""briefing: grounded briefings whose every claim cites the exact source span it rests on."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "Briefing",
    "BriefingError",
    "CheckPair",
    "CheckResult",
    "Checker",
    "Citation",
    "Claim",
    "Settings",
    "Source",
    "__version__",
    "build_briefing",
    "build_briefing_sync",
    "load_source",
    "load_sources",
]

if TYPE_CHECKING:
    from briefing.config import Settings
    from briefing.errors import BriefingError
    from briefing.faithfulness.checker import Checker, CheckPair, CheckResult
    from briefing.pipeline.build import build_briefing, build_briefing_sync, load_sources
    from briefing.schema import Briefing, Citation, Claim, Source
    from briefing.text.sources import load_source

_HOME = {
    "Briefing": "briefing.schema",
    "Citation": "briefing.schema",
    "Claim": "briefing.schema",
    "BriefingError": "briefing.errors",
    "CheckPair": "briefing.faithfulness.checker",
    "CheckResult": "briefing.faithfulness.checker",
    "Checker": "briefing.faithfulness.checker",
    "Settings": "briefing.config",
    "Source": "briefing.schema",
    "load_source": "briefing.text.sources",
    "build_briefing": "briefing.pipeline.build",
    "build_briefing_sync": "briefing.pipeline.build",
    "load_sources": "briefing.pipeline.build",
}


def __getattr__(name: str) -> Any:
    # Lazy, so `import briefing` (and `briefing --help`) stays fast.
    if name in _HOME:
        import importlib

        return getattr(importlib.import_module(_HOME[name]), name)
    raise AttributeError(f"module 'briefing' has no attribute {name!r}")
