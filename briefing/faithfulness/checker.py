"""The faithfulness check: is a claim supported by its document, and by which sentences?

Three methods, each reported by name in every result:
- ``offline``: lexical alignment features and a stored logistic model (``briefing.faithfulness.lexical``);
  no model server, no network.
- ``judge``: an LLM, through the same client as the pipeline and the versioned prompt
  ``judge-claim``; its score comes from its verdict and stated confidence.
- ``auto``: ``offline`` alone, or, when a judge model is configured, the two scores blended
  with the weight and threshold stored in ``check_calibration.json``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import tempfile
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, Field, ValidationError, WithJsonSchema, field_validator

from briefing.errors import ConfigError, LLMError, UserError
from briefing.schema import Usage

if TYPE_CHECKING:
    from briefing.config import Settings
    from briefing.faithfulness.lexical import IndexedDocument, LexicalScore
    from briefing.models.calllog import CallRecorder
    from briefing.models.llm import LLMClient
    from briefing.schema import Briefing, Claim

Method = Literal["offline", "judge", "auto"]
CheckVerdict = Literal["supported", "unsupported", "contradicted"]
METHODS: tuple[Method, ...] = ("offline", "judge", "auto")
#: Documents kept prepared at once (pairs usually come grouped by document), and the most
#: characters they may hold together, so a file of huge documents keeps memory flat.
_DOCUMENT_CACHE = 8
_DOCUMENT_CACHE_CHARS = 8_000_000
#: Characters of distinct documents read into one batch of a file check.
_BATCH_CHARS = 8_000_000
#: Characters of context the judge sees on each side of a matching sentence in a long document.
_JUDGE_CONTEXT_CHARS = 600
_JUDGE_MAX_PASSAGES = 3


class CheckInputError(UserError):
    """A pairs file (or request) that is not valid check input."""


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


# ---------------------------------------------------------------- reading pairs


def parse_pair(line: str, where: str) -> CheckPair:
    """One JSONL line as a CheckPair; errors name `where` (file and line number)."""
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        raise CheckInputError(
            f"{where}: not valid JSON ({exc.msg} at column {exc.colno})"
        ) from None
    if not isinstance(data, dict):
        raise CheckInputError(f"{where}: expected a JSON object, got {type(data).__name__}")
    return pair_from_dict(data, where)


def pair_from_dict(data: dict[str, Any], where: str) -> CheckPair:
    """Validate one pair given as a mapping; errors name `where` and the field."""
    missing = [name for name in ("id", "document", "claim") if name not in data]
    if missing:
        raise CheckInputError(f"{where}: missing field {', '.join(repr(m) for m in missing)}")
    try:
        return CheckPair.model_validate(
            {"id": data["id"], "document": data["document"], "claim": data["claim"]}
        )
    except ValidationError as exc:
        problems = "; ".join(
            f"field {'.'.join(str(p) for p in err['loc'])!r}: "
            f"{err['msg'].removeprefix('Value error, ').lower()}"
            for err in exc.errors()
        )
        raise CheckInputError(f"{where}: {problems}") from None


def read_pairs(lines: Iterable[str], name: str) -> Iterator[CheckPair]:
    """Pairs from JSONL lines, lazily; blank lines are skipped, a bad line is an error."""
    for number, line in enumerate(lines, start=1):
        if line.strip():
            yield parse_pair(line, f"{name} line {number}")


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


# ---------------------------------------------------------------- files


@dataclass
class CheckSummary:
    """What a file check did."""

    pairs: int
    supported: int
    method: str
    usage: Usage


def _validate_file(path: Path, name: str) -> int:
    with path.open(encoding="utf-8", errors="strict") as handle:
        try:
            return sum(1 for _ in read_pairs(handle, name))
        except UnicodeDecodeError as exc:
            raise CheckInputError(f"{name}: not UTF-8 ({exc.reason})") from None


async def check_file(
    checker: Checker,
    input_path: Path,
    output_path: Path,
    *,
    batch: int = 64,
    name: str | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> CheckSummary:
    """Check every pair of a JSONL file and write the results JSONL.

    The input is validated in full before any pair is scored, so a bad line costs nothing;
    results go to a temporary file renamed into place at the end, so a failure never leaves
    half an output. Pairs are read and scored in batches: memory does not grow with the file.
    """
    # Local file work here is sequential and brief next to the checking itself; the event
    # loop serves only this job's judge calls, so it is not moved to threads.
    name = name or str(input_path)
    if not input_path.is_file():  # noqa: ASYNC240
        raise CheckInputError(f"{name}: no such file")
    total = _validate_file(input_path, name)
    if total == 0:
        raise CheckInputError(f"{name}: no pairs (the file is empty)")
    output_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{output_path.name}.", dir=output_path.parent)
    supported = done = 0
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out, input_path.open(encoding="utf-8") as src:
            pending: list[CheckPair] = []
            documents: dict[str, str] = {}  # one string per distinct document in the batch
            for pair in itertools.chain(read_pairs(src, name), [None]):
                if pair is not None:
                    pair.document = documents.setdefault(pair.document, pair.document)
                    pending.append(pair)
                full = len(pending) >= batch or sum(map(len, documents)) > _BATCH_CHARS
                if pending and (pair is None or full):
                    for result in await checker.check(pending):
                        supported += result.label
                        done += 1
                        out.write(result.model_dump_json() + "\n")
                    pending, documents = [], {}
                    if progress is not None:
                        progress("check", done, total)
        os.replace(tmp, output_path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)  # noqa: ASYNC240
        raise
    return CheckSummary(pairs=total, supported=supported, method=checker.name, usage=checker.usage)


# ---------------------------------------------------------------- briefings


def claim_pair(claim: Claim, texts: dict[str, str]) -> CheckPair | None:
    """The pair that tests a claim against exactly the spans it cites (None: it cites nothing).

    The promise is "supported by the span it cites", so the document is the cited quotes
    alone, not the whole source: a claim true elsewhere in the source but not where it points
    is a wrong citation, and is reported as unsupported.
    """
    from briefing.faithfulness.lexical import has_words

    quotes = [texts[c.source_id][c.start : c.end] for c in claim.citations if c.source_id in texts]
    quotes = [q for q in quotes if q.strip()]
    if not quotes or not has_words(claim.text):
        return None
    return CheckPair(id=claim.id, document="\n".join(quotes), claim=claim.text)


async def check_briefing(briefing: Briefing, checker: Checker, on_unsupported: str) -> Briefing:
    """Give every claim a verdict and score; drop the failing ones when asked, with a warning."""
    texts = {s.id: s.text for s in briefing.sources}
    claims = briefing.claims()
    pairs = {claim.id: claim_pair(claim, texts) for claim in claims}
    results = {r.id: r for r in await checker.check([p for p in pairs.values() if p is not None])}
    for claim in claims:
        result = results.get(claim.id)
        if result is None:  # no citation to check against: never presented as supported
            claim.verdict, claim.score = "unsupported", 0.0
        else:
            claim.verdict, claim.score = result.verdict, round(result.score, 4)
    briefing.usage = briefing.usage + checker.usage
    briefing.warnings.extend(checker.warnings)
    failing = [c for c in claims if c.verdict in ("unsupported", "contradicted")]
    if failing and on_unsupported == "drop":
        gone = {id(c) for c in failing}
        briefing.summary = [c for c in briefing.summary if id(c) not in gone]
        briefing.key_points = [c for c in briefing.key_points if id(c) not in gone]
        for item in briefing.disagreements:
            item.claims = [c for c in item.claims if id(c) not in gone]
        briefing.disagreements = [d for d in briefing.disagreements if len(d.claims) >= 2]
        listed = "; ".join(f'"{c.text}" ({c.verdict}, score {c.score:.2f})' for c in failing)
        briefing.warnings.append(
            f"dropped {len(failing)} claim(s) the checker ({checker.name}) found not supported "
            f"by their citations: {listed}"
        )
    elif failing:
        briefing.warnings.append(
            f"{len(failing)} claim(s) marked unsupported or contradicted by the checker "
            f"({checker.name})"
        )
    return briefing
