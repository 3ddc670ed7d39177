"""The engines a briefing can be built with here: extractive, configured models, local models."""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from typing import Literal

from briefing.config import EXTRACTIVE, Settings

__all__ = ["Engine", "available_engines", "offered_models"]

EngineKind = Literal["extractive", "llm", "local"]
Role = Literal["briefing", "check"]


@dataclass(frozen=True)
class Engine:
    """One model string and what this installation can do with it."""

    id: str
    kind: EngineKind
    roles: tuple[Role, ...]
    default: bool
    available: bool
    note: str


def _installed(package: str) -> bool:
    # find_spec looks without importing: llama.cpp is slow to load and may not be there.
    return importlib.util.find_spec(package) is not None


def _local(settings: Settings) -> list[Engine]:
    """The built-in local models, the models file's, and the configured one if it is local
    (a GGUF file by path); one that does not resolve is listed as unavailable, saying why."""
    from briefing.errors import ConfigError
    from briefing.models.local import INSTALL_HINT, PROVIDER, LocalModel, local_models, resolve

    models: list[LocalModel | tuple[str, str]]
    try:
        models = list(local_models(settings))
    except ConfigError as exc:
        from briefing.models.local import MODELS

        # The list still answers; a briefing that names one of the file's models fails
        # with this same message.
        logging.getLogger("briefing.engines").warning("local models file: %s", exc)
        models = list(MODELS.values())
    configured = settings.model.strip()
    if configured.startswith(f"{PROVIDER}/") and all(
        isinstance(m, tuple) or m.litellm_name != configured for m in models
    ):
        try:
            models.append(resolve(configured.removeprefix(f"{PROVIDER}/"), settings.local_models))
        except ConfigError as exc:
            models.append((configured, str(exc)))
    runtime = _installed("llama_cpp")
    engines = []
    for model in models:
        if isinstance(model, tuple):
            model_id, problem = model
            available, note = False, problem
        else:
            model_id = model.litellm_name
            available = runtime and (model.package is None or _installed(model.package))
            note = (
                f"runs on this machine's CPU ({model.context_tokens}-token window)"
                if available
                else INSTALL_HINT
            )
        engines.append(
            Engine(
                id=model_id,
                kind="local",
                roles=("briefing",),
                default=settings.model == model_id,
                available=available,
                note=note,
            )
        )
    return engines


def available_engines(settings: Settings) -> list[Engine]:
    """Every engine this service knows of, the default first, with whether it can run."""
    engines = [
        Engine(
            id=EXTRACTIVE,
            kind="extractive",
            roles=("briefing",),
            default=settings.is_extractive,
            available=True,
            note="no model: verbatim sentences ranked by centrality",
        )
    ]
    local = {engine.id: engine for engine in _local(settings)}
    configured = [] if settings.is_extractive else [settings.model.strip()]
    configured += settings.model_list
    for model in dict.fromkeys(configured):
        if model in local or model.lower() == EXTRACTIVE:
            continue
        engines.append(
            Engine(
                id=model,
                kind="llm",
                roles=("briefing",),
                default=model == settings.model.strip(),
                available=True,
                note="configured litellm model; a missing provider key fails the job",
            )
        )
    engines.extend(local.values())
    if settings.check_model:
        judge = settings.check_model.strip()
        for i, engine in enumerate(engines):
            if engine.id == judge:
                engines[i] = Engine(**{**engine.__dict__, "roles": (*engine.roles, "check")})
                break
        else:
            engines.append(
                Engine(
                    id=judge,
                    kind="llm",
                    roles=("check",),
                    default=False,
                    available=True,
                    note="the faithfulness judge (check_model)",
                )
            )
    return sorted(engines, key=lambda engine: not engine.default)


def offered_models(settings: Settings) -> list[str]:
    """The model strings a client may ask a briefing of."""
    return [
        engine.id
        for engine in available_engines(settings)
        if engine.available and "briefing" in engine.roles
    ]
