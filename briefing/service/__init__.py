"""The HTTP service (FastAPI) over the pipeline and the store."""

from __future__ import annotations

from briefing.service.app import create_app

__all__ = ["create_app"]
