"""/v1/check: the faithfulness checker over (document, claim) pairs."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field, model_validator

from briefing.errors import LimitError
from briefing.faithfulness.checker import Checker, CheckPair, CheckResult, Method
from briefing.service.deps import SettingsDep
from briefing.service.surrogates import reject_lone_surrogates

router = APIRouter(prefix="/v1", tags=["check"])


class CheckRequest(BaseModel):
    """Pairs to check, with the fields of the JSONL contract; `method` overrides the setting."""

    pairs: list[CheckPair] = Field(min_length=1)
    method: Method | None = None

    @model_validator(mode="before")
    @classmethod
    def _valid_unicode(cls, data: Any) -> Any:
        # Python's JSON parser lets "\ud800" through; the checker could not encode it.
        return reject_lone_surrogates(data)


class CheckResponse(BaseModel):
    """One result per pair, in the order given."""

    method: str
    results: list[CheckResult]


@router.post("/check", response_model=CheckResponse)
async def check(body: CheckRequest, settings: SettingsDep) -> CheckResponse:
    """Score how well each document supports its claim."""
    if len(body.pairs) > settings.max_check_pairs:
        raise LimitError(
            f"{len(body.pairs)} pairs given; max_check_pairs is {settings.max_check_pairs}",
            limit="max_check_pairs",
            maximum=settings.max_check_pairs,
        )

    def run() -> CheckResponse:
        # The offline method is CPU-bound: it runs on a worker thread, with its own event
        # loop for the judge's calls, so the service keeps answering meanwhile.
        checker = Checker(settings, body.method)
        checker.check_credentials()
        results = asyncio.run(checker.check(body.pairs))
        return CheckResponse(method=checker.name, results=results)

    return await run_in_threadpool(run)
