"""The lexical checker's stored model: a logistic regression over `FEATURES`, fitted by
`evals/train_checker.py` and shipped as `lexical_model.json`."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from importlib import resources
from typing import Any

from briefing.faithfulness.lexical.features import FEATURES, analyse_claim
from briefing.faithfulness.lexical.index import IndexedDocument

__all__ = ["METHOD_NAME", "THRESHOLD", "LexicalScore", "probability", "score_claim"]

METHOD_NAME = "offline-lexical-v2"


@dataclass(frozen=True)
class LexicalScore:
    """How well a document supports a claim, and where."""

    #: P(claim supported by the document), in [0, 1]; compare with `THRESHOLD`.
    score: float
    #: Best-supporting sentences, best first, at most 3: `doc.text[start:end]` is the exact
    #: sentence. Empty when no sentence shares a word with the claim.
    evidence: tuple[tuple[int, int], ...]
    #: The aligned evidence states a conflicting number or date, negates or reverses what the
    #: claim says, or binds the claim's words to another name.
    contradiction: bool
    #: The model's inputs (`FEATURES`) and diagnostics, by name.
    features: dict[str, float]


# ---------------------------------------------------------------- the stored model


def _load_model() -> dict[str, Any]:
    raw = (
        resources.files("briefing.faithfulness")
        .joinpath("lexical_model.json")
        .read_text(encoding="utf-8")
    )
    model: dict[str, Any] = json.loads(raw)
    return model


_MODEL = _load_model()
THRESHOLD: float = float(_MODEL["threshold"])


def probability(feats: dict[str, float]) -> float:
    """The stored model's P(supported) for a claim's features (`FEATURES`, by name)."""
    names = _MODEL["features"]
    if tuple(names) != FEATURES:
        raise RuntimeError(
            "lexical_model.json was trained on other features; rerun evals/train_checker.py"
        )
    z = float(_MODEL["bias"])
    for name, mu, sd, w in zip(names, _MODEL["mean"], _MODEL["scale"], _MODEL["coef"], strict=True):
        z += (feats[name] - mu) / sd * w
    # Guard exp() against overflow for extreme feature values.
    z = max(-60.0, min(60.0, z))
    return 1.0 / (1.0 + math.exp(-z))


def score_claim(doc: IndexedDocument, claim: str) -> LexicalScore:
    """Score how well `doc` supports `claim`: probability, evidence spans and a conflict flag."""
    feats, evidence, contradiction = analyse_claim(doc, claim)
    return LexicalScore(
        score=probability(feats), evidence=evidence, contradiction=contradiction, features=feats
    )
