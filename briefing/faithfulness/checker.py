"""The faithfulness check: is a claim supported by its document, and by which sentences?

Three methods, each reported by name in every result:
- ``offline``: lexical alignment features and a stored logistic model (``briefing.faithfulness.lexical``);
  no model server, no network.
- ``judge``: an LLM, through the same client as the pipeline and the versioned prompt
  ``judge-claim``; its score comes from its verdict and stated confidence.
- ``auto``: ``offline`` alone, or, when a judge model is configured, the two scores blended
  with the weight and threshold stored in ``check_calibration.json``.
- ``nli``: a natural-language-inference cross-encoder the user has on disk as ONNX
  (``briefing.faithfulness.nli``): the claim against each sentence of its document, the best
  sentence's entailment probability its score.
"""

from __future__ import annotations

import asyncio
import json
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, Field, WithJsonSchema, field_validator

from briefing.errors import ConfigError, LLMError
from briefing.schema import Usage

if TYPE_CHECKING:
    from briefing.config import Settings
    from briefing.faithfulness.lexical import IndexedDocument, LexicalScore
    from briefing.faithfulness.nli import NLIModel
    from briefing.models.calllog import CallRecorder
    from briefing.models.llm import LLMClient

Method = Literal["offline", "judge", "auto", "nli"]
CheckVerdict = Literal["supported", "unsupported", "contradicted"]
METHODS: tuple[Method, ...] = ("offline", "judge", "auto", "nli")
#: The nli method: supported at this entailment probability; contradicted, when not
#: supported, at this contradiction probability.
NLI_THRESHOLD = 0.5
NLI_CONTRADICTION = 0.5
#: Documents kept prepared at once (pairs usually come grouped by document), and the most
#: characters they may hold together, so a file of huge documents keeps memory flat.
_DOCUMENT_CACHE = 8
_DOCUMENT_CACHE_CHARS = 8_000_000
#: Characters of context the judge sees on each side of a matching sentence in a long document.
_JUDGE_CONTEXT_CHARS = 600
_JUDGE_MAX_PASSAGES = 3


class CheckPair(BaseModel):
    """One (document, claim) pair to check; other fields of an input line are ignored."""

    # Integer ids are read as text (below), so the schema offers both.
    id: Annotated[str, WithJsonSchema({"anyOf": [{"type": "string"}, {"type": "integer"}]})]
    document: str
    claim: str

    @field_validator("id", mode="before")
    @classmethod
    def _id_as_text(cls, value: Any) -> Any:
        # Benchmarks number their pairs; an integer id is as good as a string one.
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("document", "claim")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("is empty")
        return value

    @field_validator("claim")
    @classmethod
    def _has_words(cls, value: str) -> str:
        from briefing.faithfulness.lexical import has_words

        # Punctuation or symbols alone ("-", ":") state nothing a document could support.
        if not has_words(value):
            raise ValueError("has no words to check")
        return value


class EvidenceSpan(BaseModel):
    """A passage of the document the verdict rests on: `document[start:end] == text`."""

    start: int = Field(ge=0)
    end: int = Field(ge=0)
    text: str


class CheckResult(BaseModel):
    """The checker's answer for one pair (the output line of `briefing check`)."""

    id: str
    score: float = Field(ge=0.0, le=1.0, description="P(the document supports the claim).")
    label: Literal[0, 1]
    method: str
    verdict: CheckVerdict
    evidence: list[EvidenceSpan] = Field(default_factory=list)


# ---------------------------------------------------------------- methods


def _span(text: str, start: int, end: int) -> EvidenceSpan:
    return EvidenceSpan(start=start, end=end, text=text[start:end])


class _Documents:
    """A small cache of prepared documents, so pairs sharing a document share the work."""

    def __init__(self) -> None:
        self._items: OrderedDict[str, IndexedDocument] = OrderedDict()

    def get(self, text: str) -> IndexedDocument:
        from briefing.faithfulness.lexical import IndexedDocument

        doc = self._items.get(text)
        if doc is None:
            doc = self._items[text] = IndexedDocument(text)
            while len(self._items) > 1 and (
                len(self._items) > _DOCUMENT_CACHE
                or sum(len(k) for k in self._items) > _DOCUMENT_CACHE_CHARS
            ):
                self._items.popitem(last=False)
        else:
            self._items.move_to_end(text)
        return doc


@dataclass(frozen=True)
class _Judgement:
    verdict: CheckVerdict
    score: float
    evidence: list[EvidenceSpan]


class _JudgeOutput(BaseModel):
    verdict: CheckVerdict
    confidence: float = Field(ge=0.0, le=1.0)
    evidence_ids: list[str] = Field(default_factory=list)

    @field_validator("evidence_ids", mode="before")
    @classmethod
    def _as_list(cls, value: Any) -> Any:
        if value is None:
            return []
        return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _verdict_score(verdict: CheckVerdict, confidence: float) -> float:
    # The judge states a verdict and how sure it is; P(supported) follows from both.
    half = 0.5 * min(max(confidence, 0.0), 1.0)
    return 0.5 + half if verdict == "supported" else 0.5 - half


class Checker:
    """Scores (document, claim) pairs with one method; reuse it across many pairs."""

    def __init__(
        self,
        settings: Settings,
        method: Method | None = None,
        *,
        call_log: CallRecorder | None = None,
        client: LLMClient | None = None,
        fallback: bool = False,
    ) -> None:
        """`fallback`: when a judge call fails, use the offline result for that pair and
        record a warning, instead of failing the whole check (the pipeline wants this)."""
        from briefing.faithfulness import lexical

        self.settings = settings
        self.requested: Method = method or settings.check_method
        if self.requested not in METHODS:
            raise ConfigError(
                f"unknown check method {self.requested!r}; choose one of {', '.join(METHODS)}"
            )
        self.usage = Usage()
        self.fallback = fallback
        self.warnings: list[str] = []
        self._documents = _Documents()
        self._threshold = lexical.THRESHOLD
        self._client = client
        self._judge_model = (settings.check_model or "").strip() or None
        if self.requested == "judge" and self._judge_model is None:
            raise ConfigError(
                "the judge method needs a model: set BRIEFING_CHECK_MODEL or pass --check-model"
            )
        self.uses_judge = self.requested == "judge" or (
            self.requested == "auto" and self._judge_model is not None
        )
        self._nli: NLIModel | None = None
        if self.requested == "nli":
            from briefing.faithfulness.nli import load_nli

            if settings.check_nli_model is None:
                raise ConfigError(
                    "the nli method needs a model folder: set BRIEFING_CHECK_NLI_MODEL or "
                    "pass --nli-model"
                )
            self._nli = load_nli(settings.check_nli_model)
        #: Scores with a model (a judge or the NLI cross-encoder), not the lexical method
        #: alone: callers that rank many pairs cheaply use an offline Checker beside it.
        self.uses_model = self.uses_judge or self._nli is not None
        self._prompt: Any = None
        if self.uses_judge:
            from briefing.models.prompts import PromptLibrary

            self._prompt = PromptLibrary(settings.prompts_dir).get(settings.judge_prompt)
            if self._client is None:
                from briefing.models.calllog import CallLog
                from briefing.models.llm import LLMClient

                if call_log is None and settings.log_calls:  # every model call is logged
                    call_log = CallLog(settings.call_log_path)

                judge_settings = settings.model_copy(update={"model": self._judge_model})
                self._client = LLMClient(judge_settings, call_log)
        self._blend = (
            _calibration(self._judge_model, settings.check_calibration)
            if self.requested == "auto"
            else None
        )
        self.name = self._name(lexical.METHOD_NAME)

    def _name(self, offline: str) -> str:
        if self._nli is not None:
            return self._nli.name
        if not self.uses_judge:
            return offline
        judge = f"judge:{self._prompt.label}:{self._judge_model}"
        return judge if self.requested == "judge" else f"auto:{offline}+{judge}"

    def check_credentials(self) -> None:
        """Fail before any work when the judge's provider needs a key that is not set."""
        if self._client is not None:
            self._client.check_credentials()

    def offline(self, pair: CheckPair) -> LexicalScore:
        """The lexical method's score for one pair."""
        from briefing.faithfulness.lexical import score_claim

        return score_claim(self._documents.get(pair.document), pair.claim)

    async def check(self, pairs: Sequence[CheckPair]) -> list[CheckResult]:
        """Results for `pairs`, in order. Judge calls run concurrently (bounded by the client)."""
        if self._nli is not None:
            return await asyncio.to_thread(self._nli_results, pairs)
        lexical = [self.offline(pair) for pair in pairs]
        if not self.uses_judge:
            return [self._offline_result(p, s) for p, s in zip(pairs, lexical, strict=True)]
        judged = await asyncio.gather(
            *(self._judge(p, s) for p, s in zip(pairs, lexical, strict=True))
        )
        results = []
        for pair, scored, judgement in zip(pairs, lexical, judged, strict=True):
            if judgement is None:  # the judge failed and fallback is on
                results.append(self._offline_result(pair, scored))
            elif self.requested == "judge":
                # The verdict decides; a zero-confidence "unsupported" (score 0.5) stays one.
                results.append(
                    self._result(
                        pair.id,
                        judgement.score,
                        judgement.verdict,
                        judgement.evidence,
                        threshold=0.5,
                        label=judgement.verdict == "supported",
                    )
                )
            else:
                results.append(self._auto_result(pair, scored, judgement))
        return results

    def _result(
        self,
        pair_id: str,
        score: float,
        verdict: CheckVerdict,
        evidence: list[EvidenceSpan],
        *,
        threshold: float,
        label: bool | None = None,
    ) -> CheckResult:
        score = min(max(score, 0.0), 1.0)
        supported = score >= threshold if label is None else label
        label_value: Literal[0, 1] = 1 if supported else 0
        if supported:
            verdict = "supported"
        elif verdict == "supported":
            verdict = "unsupported"
        return CheckResult(
            id=pair_id,
            score=score,
            label=label_value,
            method=self.name,
            verdict=verdict,
            evidence=evidence,
        )

    def _nli_results(self, pairs: Sequence[CheckPair]) -> list[CheckResult]:
        """Each claim against every sentence of its document; the best one speaks for it."""
        from briefing.text.segment import sentence_spans

        assert self._nli is not None
        spans = [sentence_spans(p.document) or [(0, len(p.document))] for p in pairs]
        flat = [
            (pair.document[start:end], pair.claim)
            for pair, found in zip(pairs, spans, strict=True)
            for start, end in found
        ]
        inferred = iter(self._nli.infer(flat))
        results = []
        for pair, found in zip(pairs, spans, strict=True):
            scored = [(next(inferred), span) for span in found]
            best, (start, end) = max(scored, key=lambda item: item[0].entailment)
            worst, against = max(scored, key=lambda item: item[0].contradiction)
            verdict: CheckVerdict = "unsupported"
            # A claim no sentence entails, that one contradicts, cites that one; a supported
            # claim cites what entails it, whatever else the document says.
            if best.entailment < NLI_THRESHOLD and worst.contradiction >= NLI_CONTRADICTION:
                verdict = "contradicted"
                start, end = against
            results.append(
                self._result(
                    pair.id,
                    best.entailment,
                    verdict,
                    [_span(pair.document, start, end)],
                    threshold=NLI_THRESHOLD,
                )
            )
        return results

    def _lexical_evidence(self, pair: CheckPair, scored: LexicalScore) -> list[EvidenceSpan]:
        return [_span(pair.document, start, end) for start, end in scored.evidence]

    def _offline_result(self, pair: CheckPair, scored: LexicalScore) -> CheckResult:
        verdict: CheckVerdict = "contradicted" if scored.contradiction else "unsupported"
        return self._result(
            pair.id,
            scored.score,
            verdict,
            self._lexical_evidence(pair, scored),
            threshold=self._threshold,
        )

    def _auto_result(
        self, pair: CheckPair, scored: LexicalScore, judged: _Judgement
    ) -> CheckResult:
        assert self._blend is not None
        weight, threshold = self._blend
        score = weight * judged.score + (1.0 - weight) * scored.score
        contradicted = judged.verdict == "contradicted" or scored.contradiction
        verdict: CheckVerdict = "contradicted" if contradicted else "unsupported"
        evidence = judged.evidence or self._lexical_evidence(pair, scored)
        return self._result(pair.id, score, verdict, evidence, threshold=threshold)

    async def _judge(self, pair: CheckPair, scored: LexicalScore) -> _Judgement | None:
        try:
            return await self._ask_judge(pair, scored)
        except LLMError as exc:
            if not self.fallback:
                raise
            self.usage += getattr(exc, "usage", None) or Usage()
            self.warnings.append(
                f"the judge failed on claim {pair.id} ({exc}); its offline verdict stands"
            )
            return None

    async def _ask_judge(self, pair: CheckPair, scored: LexicalScore) -> _Judgement:
        from briefing.models.prompts import as_data

        assert self._client is not None
        spans = _judge_passages(pair.document, scored.evidence, self.settings.judge_document_chars)
        shown = {f"E{i}": span for i, span in enumerate(spans, start=1)}
        sentences = [
            {"id": key, "text": as_data(" ".join(pair.document[s:e].split()))}
            for key, (s, e) in shown.items()
        ]
        completion = await self._client.structured(
            self._prompt, {"claim": as_data(pair.claim), "sentences": sentences}, _JudgeOutput
        )
        self.usage += completion.usage
        answer = completion.value
        cited = [shown[key] for key in _evidence_keys(answer.evidence_ids) if key in shown]
        return _Judgement(
            verdict=answer.verdict,
            score=_verdict_score(answer.verdict, answer.confidence),
            evidence=[_span(pair.document, s, e) for s, e in cited],
        )


def _evidence_keys(raw: list[str]) -> list[str]:
    keys = []
    for item in raw:
        digits = "".join(ch for ch in item if ch.isdigit())
        if digits:
            keys.append(f"E{int(digits)}")
    return list(dict.fromkeys(keys))


def _judge_passages(
    document: str, evidence: Sequence[tuple[int, int]], whole_below: int
) -> list[tuple[int, int]]:
    """Sentence spans the judge sees: the whole document when short, else passages around
    the best-matching sentences (so a long document costs a bounded prompt)."""
    from briefing.text.segment import sentence_spans

    if len(document) <= whole_below or not evidence:
        # Short: all of it. Long with nothing matching: its opening, which is bounded too.
        spans = sentence_spans(document[:whole_below])
        return spans or [(0, len(document[:whole_below].rstrip()))]
    regions: list[tuple[int, int]] = []
    for start, end in evidence[:_JUDGE_MAX_PASSAGES]:
        # Extend to whole lines (paragraphs), but never further than the context allowance.
        line_start = document.rfind("\n", 0, start) + 1
        line_end = document.find("\n", end)
        line_end = len(document) if line_end < 0 else line_end
        regions.append(
            (
                max(line_start, start - _JUDGE_CONTEXT_CHARS),
                min(line_end, end + _JUDGE_CONTEXT_CHARS),
            )
        )
    merged: list[tuple[int, int]] = []
    for start, end in sorted(regions):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    passages: list[tuple[int, int]] = []
    for start, end in merged:
        passages.extend(sentence_spans(document[start:end], start))
    return passages


def calibration_path() -> Path:
    """The bundled calibration table of `auto` (written by `briefing eval --calibrate`)."""
    return Path(str(resources.files("briefing.faithfulness").joinpath("check_calibration.json")))


def _calibration(judge_model: str | None, path: Path | None) -> tuple[float, float]:
    """(judge weight, threshold) for `auto`: the stored entry for this judge model, else the
    stored default; with no judge the offline score and threshold stand alone."""
    from briefing.faithfulness import lexical

    if judge_model is None:
        return 0.0, lexical.THRESHOLD
    where = path or calibration_path()
    try:
        table = json.loads(where.read_text("utf-8"))
        entry = table["judges"].get(judge_model) or table["judges"]["default"]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(f"{where}: not a usable calibration table ({exc})") from None
    weight = float(entry["judge_weight"])
    threshold = entry.get("threshold")
    if threshold is None:  # halfway points of the two scales, weighted like the scores
        threshold = weight * 0.5 + (1.0 - weight) * lexical.THRESHOLD
    return weight, float(threshold)
