"""/v1/prompts: the versioned prompt templates, read-only."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import BaseModel

from briefing.errors import NotFoundError, PromptError
from briefing.models.prompts import CachedPromptLibrary, PromptTemplate
from briefing.service.deps import SettingsDep

router = APIRouter(prefix="/v1/prompts", tags=["prompts"])


class PromptSummary(BaseModel):
    """One template version, as listed."""

    name: str
    version: int
    label: str
    sha256: str
    description: str
    released: bool


class PromptPublic(PromptSummary):
    """One template version in full."""

    model_parameters: dict[str, Any]
    input_variables: list[str]
    output_schema: dict[str, Any]
    system: str
    user: str


def _summary(template: PromptTemplate, released: dict[str, str]) -> dict[str, Any]:
    return {
        "name": template.name,
        "version": template.version,
        "label": template.label,
        "sha256": template.sha256,
        "description": " ".join(template.description.split()),
        "released": template.label in released,
    }


@router.get("", response_model=list[PromptSummary])
def list_prompts(settings: SettingsDep) -> list[PromptSummary]:
    """Every template version with its content hash and whether it is released."""
    library = CachedPromptLibrary(settings.prompts_dir)
    released = library.released()
    return [PromptSummary(**_summary(t, released)) for t in library.all()]


@router.get("/{name}/{version}", response_model=PromptPublic)
def get_prompt(
    name: str, version: Annotated[int, Path(ge=1)], settings: SettingsDep
) -> PromptPublic:
    """One template version: parameters, variables, output schema and templates."""
    library = CachedPromptLibrary(settings.prompts_dir)
    try:
        template = library.get(f"{name}@{version}")
    except PromptError as exc:
        raise NotFoundError(str(exc)) from None
    return PromptPublic(
        **_summary(template, library.released()),
        model_parameters=template.model_parameters,
        input_variables=template.input_variables,
        output_schema=template.output_schema,
        system=template.system,
        user=template.user,
    )
