"""What a briefing is asked for: the sources, model, prompt and the options a client may set."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from briefing.config import Settings

__all__ = ["BriefingOptions", "BriefingRequest", "job_settings"]


class BriefingOptions(BaseModel):
    """Settings a client may choose per briefing; everything else stays the service's."""

    # Unknown options are refused rather than ignored, so a typo is not silently lost;
    # settings that name files, URLs or keys are deliberately not among them.
    model_config = ConfigDict(extra="forbid")

    key_points: int | None = Field(default=None, ge=1, le=50)
    summary_sentences: int | None = Field(default=None, ge=1, le=10)
    on_unsupported: Literal["flag", "drop"] | None = None
    check_method: Literal["offline", "judge", "auto", "nli"] | None = None


class BriefingRequest(BaseModel):
    """What a briefing job runs, as stored with the job (model and prompt resolved)."""

    source_ids: list[str] = Field(min_length=1)
    model: str
    prompt: str
    options: BriefingOptions = Field(default_factory=BriefingOptions)


def job_settings(settings: Settings, request: BriefingRequest) -> Settings:
    """The service's settings with the job's model, prompt and options applied."""
    update: dict[str, Any] = {"model": request.model, "prompt": request.prompt}
    update.update(request.options.model_dump(exclude_none=True))
    return settings.model_copy(update=update)
