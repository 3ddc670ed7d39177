"""The compare page: sources in (see `gather`), every sentence of each judged against the
others, as `POST /v1/compare` does; the result on one page, nothing stored.

Each source is shown whole, its sentences marked by status; a sentence's supporting and
contradicting sentences are links to them on the same page, so checking one is a click.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response

from briefing.config import Settings
from briefing.errors import BriefingError, UserError
from briefing.faithfulness.checker import METHODS, Checker, Method
from briefing.faithfulness.compare import compare_sources
from briefing.schema import Citation, Comparison, SentenceComparison, Source
from briefing.service.deps import SettingsDep
from briefing.service.pages.gather import gather, read_form
from briefing.service.pages.routes import error_page, guard, render
from briefing.service.pages.view import STATUS_LABELS

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

_FIELDS = ("title", "text", "urls", "method")


@dataclass(frozen=True)
class Link:
    """A sentence of another source, as a link to it on the page."""

    number: int
    anchor: str
    quote: str


@dataclass(frozen=True)
class SentenceView:
    """One sentence of a source, with what the others say of it."""

    anchor: str
    text: str
    status: str
    status_label: str
    supporting: list[Link]
    contradicting: list[Link]
    conflicts: list[str]


@dataclass
class SourceView:
    """A source cut into the text between sentences and its judged sentences."""

    number: int
    source: Source
    parts: list[tuple[str, SentenceView]] = field(default_factory=list)
    tail: str = ""
    counts: dict[str, int] = field(default_factory=dict)

    def having(self, status: str) -> list[SentenceView]:
        """Its sentences of one status, in order."""
        return [s for _, s in self.parts if s.status == status]


def _anchor(number: int, start: int) -> str:
    return f"s{number}-{start}"


def comparison_view(comparison: Comparison) -> list[SourceView]:
    """Each source of `comparison` with its sentences, in order."""
    numbers = {s.id: n for n, s in enumerate(comparison.sources, start=1)}
    views = {s.id: SourceView(numbers[s.id], s) for s in comparison.sources}
    at = {s.id: 0 for s in comparison.sources}

    def links(citations: list[Citation]) -> list[Link]:
        return [
            Link(numbers[c.source_id], _anchor(numbers[c.source_id], c.start), c.quote)
            for c in citations
            if c.source_id in numbers
        ]

    for sentence in sorted(comparison.sentences, key=lambda s: (numbers[s.source_id], s.start)):
        view = views[sentence.source_id]
        gap = view.source.text[at[sentence.source_id] : sentence.start]
        at[sentence.source_id] = sentence.end
        view.parts.append((gap, _sentence(view.number, sentence, links)))
        view.counts[sentence.status] = view.counts.get(sentence.status, 0) + 1
    for view in views.values():
        view.tail = view.source.text[at[view.source.id] :]
    return list(views.values())


def _sentence(
    number: int, s: SentenceComparison, links: Callable[[list[Citation]], list[Link]]
) -> SentenceView:
    return SentenceView(
        anchor=_anchor(number, s.start),
        text=s.text,
        status=s.status,
        status_label=STATUS_LABELS.get(s.status, s.status),
        supporting=links(s.supporting),
        contradicting=links(s.contradicting),
        conflicts=list(s.conflicts),
    )


def _methods(settings: Settings) -> list[str]:
    """The methods this service can run: a judge's with a judge model, nli's with a model."""
    usable = {
        "offline": True,
        "judge": bool(settings.check_model),
        "auto": bool(settings.check_model),
        "nli": settings.check_nli_model is not None,
    }
    return [m for m in METHODS if usable[m]]


def _form(
    request: Request,
    settings: Settings,
    *,
    status: int = 200,
    error: str | None = None,
    given: dict[str, str] | None = None,
    result: list[SourceView] | None = None,
    method: str = "",
) -> HTMLResponse:
    given = {k: "" for k in _FIELDS} | (given or {})
    return render(
        request,
        settings,
        "compare.html",
        status=status,
        error=error,
        given=given,
        methods=_methods(settings),
        chosen=given["method"] or settings.check_method,
        result=result,
        method=method,
    )


@router.get("/compare", response_class=HTMLResponse)
def compare_form(request: Request, settings: SettingsDep) -> Response:
    """The form."""
    if (redirect := guard(request, settings)) is not None:
        return redirect
    return _form(request, settings)


def _compare(sources: list[Source], settings: Settings, method: Method | None) -> Comparison:
    checker = Checker(settings, method, fallback=True)
    checker.check_credentials()
    return asyncio.run(compare_sources(sources, checker))


@router.post("/compare", response_class=HTMLResponse)
async def compare_from_form(request: Request, settings: SettingsDep) -> Response:
    """Compare the form's sources and show the result under the form."""
    if (redirect := guard(request, settings)) is not None:
        return redirect
    form = await read_form(request)
    if not form.trusted:
        return error_page(request, settings, 403, "The form was stale or not sent from this site.")
    given = {k: form.field(k) for k in _FIELDS}
    method: Method | None = None
    try:
        if given["method"]:
            if given["method"] not in _methods(settings):
                raise UserError(
                    f"method {given['method']!r} is not available here; "
                    f"use one of {_methods(settings)}"
                )
            method = cast(Method, given["method"])
        sources = await gather(
            form,
            settings,
            limit="max_sources_per_compare",
            at_least=2,
        )
        comparison = await run_in_threadpool(_compare, sources, settings, method)
    except BriefingError as exc:
        return _form(request, settings, status=400, error=str(exc), given=given)
    return _form(
        request, settings, given=given, result=comparison_view(comparison), method=comparison.method
    )
