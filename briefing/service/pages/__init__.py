"""The reader's web pages, served by the same app as the API (which stays under /v1)."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from briefing.service.pages import compare_page, new_briefing, schedules_page
from briefing.service.pages.routes import STATIC_DIR, router

__all__ = ["install"]


def install(app: FastAPI) -> None:
    """Serve the pages at / and their script and stylesheet at /static."""
    # First: /briefings/new and /briefings/{id}/events before /briefings/{id}.
    app.include_router(new_briefing.router)
    app.include_router(compare_page.router)
    app.include_router(schedules_page.router)
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
