"""/v1/models: the engines this service builds briefings with, and which can run here."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from briefing.pipeline.engines import available_engines
from briefing.service.deps import SettingsDep

router = APIRouter(prefix="/v1/models", tags=["models"])


class ModelPublic(BaseModel):
    """One engine: its model string, what it is used for, and whether it can run here."""

    id: str = Field(description="The value of `model` in POST /v1/briefings.")
    kind: Literal["extractive", "llm", "local"]
    roles: list[Literal["briefing", "check"]]
    default: bool = Field(description="Used when a briefing names no model.")
    available: bool
    note: str


class ModelList(BaseModel):
    """The engines, the default first."""

    items: list[ModelPublic]


@router.get("", response_model=ModelList)
def list_models(settings: SettingsDep) -> ModelList:
    """Configured, local and default engines; only available ones are accepted by briefings."""
    return ModelList(
        items=[
            ModelPublic(
                id=engine.id,
                kind=engine.kind,
                roles=list(engine.roles),
                default=engine.default,
                available=engine.available,
                note=engine.note,
            )
            for engine in available_engines(settings)
        ]
    )
