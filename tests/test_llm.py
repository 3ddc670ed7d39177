"""LLMClient and the LLM engine, driven through litellm over real HTTP to a fake server."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest

from briefing.config import Settings
from briefing.errors import BriefingError, ModelOutputError, ProviderError
from briefing.faithfulness import lexical
from briefing.faithfulness.compare import Comparer
from briefing.models.calllog import CallLog
from briefing.models.llm import LLMClient, litellm_module
from briefing.models.prompts import PromptLibrary, PromptTemplate, default_prompts_dir
from briefing.models.tokens import count_tokens
from briefing.pipeline.build import build_briefing, load_sources
from briefing.pipeline.extractive import alone_weight
from briefing.pipeline.mapreduce import (
    MAX_POINT_CHARS,
    MAX_TITLE_CHARS,
    MIN_SUMMARY,
    SUMMARY_CLAIMS,
    MapOutput,
    MapReduce,
    _backed_share,
    _Claim,
)
from briefing.schema import Briefing, Citation, Claim, Corroboration
from briefing.testing import FakeOpenAIServer, RecordedRequest, Reply
from briefing.text.segment import segment
from briefing.text.statements import is_statement

#: What the `llm_settings` fixture of conftest.py configures.
TEST_API_KEY = "sk-test-not-a-real-key"
TEST_MODEL = "openai/gpt-4o-mini"

ROOT = Path(__file__).resolve().parent.parent
SEEDS = sorted((ROOT / "seeds").glob("*.txt"))

GOOD = json.dumps({"claims": [{"text": "The sky is blue.", "sentence_ids": ["S1"]}]})
#: Valid JSON, wrong shape: the claim lacks its sentence_ids.
WRONG_SHAPE = json.dumps({"claims": [{"text": "The sky is blue."}]})
VARIABLES = {
    "source_title": "Weather",
    "sentences": [{"id": "S1", "text": "The sky is blue."}, {"id": "S2", "text": "It rains."}],
}

MakeSettings = Callable[..., Settings]


@pytest.fixture(autouse=True, scope="module")
def _litellm_imported() -> None:
    # Importing litellm takes seconds; keep it out of the timed regions below.
    litellm_module()


@pytest.fixture(autouse=True)
def _settings_as_documented(llm_settings: MakeSettings) -> None:
    settings = llm_settings()
    assert settings.api_key is not None
    assert settings.api_key.get_secret_value() == TEST_API_KEY
    assert settings.model == TEST_MODEL


@pytest.fixture
def extract_prompt() -> PromptTemplate:
    return PromptLibrary().get("extract-claims@1")


@pytest.fixture
def call_log(tmp_path: Path) -> Iterator[CallLog]:
    log = CallLog(tmp_path / "calls.db")
    yield log
    log.close()


def _contents(request: RecordedRequest) -> list[tuple[str, str]]:
    return [(m["role"], m["content"]) for m in request.messages]


# --- valid output -----------------------------------------------------------------------


async def test_valid_output_is_validated_counted_logged_and_sent_with_schema(
    fake_server: FakeOpenAIServer,
    llm_settings: MakeSettings,
    call_log: CallLog,
    extract_prompt: PromptTemplate,
) -> None:
    fake_server.queue(Reply(content=GOOD, prompt_tokens=123, completion_tokens=45))

    result = await LLMClient(llm_settings(), call_log).structured(
        extract_prompt, VARIABLES, MapOutput
    )

    assert isinstance(result.value, MapOutput)
    assert result.value.claims[0].text == "The sky is blue."
    assert result.value.claims[0].sentence_ids == ["S1"]
    assert result.attempts == 1
    assert result.raw == GOOD
    assert result.usage.calls == 1
    assert result.usage.input_tokens == 123
    assert result.usage.output_tokens == 45
    assert result.usage.cost_usd is not None
    assert result.usage.cost_usd > 0

    [request] = fake_server.requests
    assert request.body["model"] == "gpt-4o-mini"
    assert request.body["response_format"]["type"] == "json_schema"
    assert request.body["response_format"]["json_schema"]["schema"] == extract_prompt.output_schema
    assert request.body["max_tokens"] == extract_prompt.model_parameters["max_tokens"]
    assert _contents(request) == [
        (m["role"], m["content"]) for m in extract_prompt.render(VARIABLES)
    ]
    headers = {k.lower(): v for k, v in request.headers.items()}
    assert headers["authorization"] == f"Bearer {TEST_API_KEY}"

    [row] = call_log.rows()
    assert row["prompt"] == "extract-claims@1"
    file_hash = hashlib.sha256(
        (default_prompts_dir() / "extract-claims" / "v1.yaml").read_bytes()
    ).hexdigest()
    assert row["prompt_sha256"] == file_hash
    assert row["model"] == TEST_MODEL
    assert row["attempt"] == 1
    assert row["input_tokens"] == 123
    assert row["output_tokens"] == 45
    assert row["cost_usd"] == pytest.approx(result.usage.cost_usd)
    assert row["latency_ms"] > 0
    assert row["finish_reason"] == "stop"
    assert row["error"] is None
    assert json.loads(row["parameters"])["max_tokens"] == 1024
    assert TEST_API_KEY not in json.dumps(row)


async def test_fenced_json_is_accepted_without_a_reask(
    fake_server: FakeOpenAIServer, llm_settings: MakeSettings, extract_prompt: PromptTemplate
) -> None:
    fake_server.queue(Reply(content=f"```json\n{GOOD}\n```"))

    result = await LLMClient(llm_settings()).structured(extract_prompt, VARIABLES, MapOutput)

    assert result.value.claims[0].sentence_ids == ["S1"]
    assert len(fake_server.requests) == 1


# --- invalid output and the re-ask -------------------------------------------------------


async def test_invalid_json_gets_one_reask_quoting_the_error(
    fake_server: FakeOpenAIServer,
    llm_settings: MakeSettings,
    call_log: CallLog,
    extract_prompt: PromptTemplate,
) -> None:
    bad = '{"claims": [{"text": "The sky'
    fake_server.queue(
        Reply(content=bad, prompt_tokens=100, completion_tokens=10),
        Reply(content=GOOD, prompt_tokens=200, completion_tokens=20),
    )

    result = await LLMClient(llm_settings(), call_log).structured(
        extract_prompt, VARIABLES, MapOutput
    )

    assert result.value.claims[0].sentence_ids == ["S1"]
    assert len(fake_server.requests) == 2
    first, second = fake_server.requests
    assert _contents(second)[:2] == _contents(first)
    assert len(second.messages) == 4
    assert _contents(second)[2] == ("assistant", bad)
    role, reask = _contents(second)[3]
    assert role == "user"
    assert "not valid JSON" in reask
    assert "line 1 column" in reask
    assert result.attempts == 2
    assert result.usage.calls == 2
    assert result.usage.input_tokens == 300
    assert result.usage.output_tokens == 30
    assert [r["error"] for r in call_log.rows()] == [None, None]


async def test_wrong_shape_twice_raises_model_output_error(
    fake_server: FakeOpenAIServer, llm_settings: MakeSettings, extract_prompt: PromptTemplate
) -> None:
    also_wrong = json.dumps({"claims": "none"})
    fake_server.queue(
        Reply(content=WRONG_SHAPE, prompt_tokens=100, completion_tokens=10),
        Reply(content=also_wrong, prompt_tokens=200, completion_tokens=20),
    )

    with pytest.raises(ModelOutputError) as raised:
        await LLMClient(llm_settings()).structured(extract_prompt, VARIABLES, MapOutput)

    error = raised.value
    assert error.attempts == 2
    assert error.usage.calls == 2
    assert error.usage.input_tokens == 300
    assert error.usage.output_tokens == 30
    assert error.last_output == also_wrong
    assert "extract-claims@1" in str(error)
    assert len(fake_server.requests) == 2
    role, reask = _contents(fake_server.requests[1])[-1]
    assert role == "user"
    assert "did not match the required schema" in reask
    assert "claims.0.sentence_ids" in reask


async def test_truncated_output_is_reasked_as_cut_off(
    fake_server: FakeOpenAIServer, llm_settings: MakeSettings, extract_prompt: PromptTemplate
) -> None:
    # Even a parsable answer is not trusted when the model ran out of tokens.
    fake_server.queue(Reply(content=GOOD, finish_reason="length"), Reply(content=GOOD))

    result = await LLMClient(llm_settings()).structured(extract_prompt, VARIABLES, MapOutput)

    assert result.usage.calls == 2
    second = fake_server.requests[1]
    assert _contents(second)[2] == ("assistant", GOOD)
    role, reask = _contents(second)[3]
    assert role == "user"
    assert "cut off" in reask


async def test_truncated_twice_raises_model_output_error(
    fake_server: FakeOpenAIServer, llm_settings: MakeSettings, extract_prompt: PromptTemplate
) -> None:
    cut = '{"claims": [{"text": "The'
    fake_server.queue(
        Reply(content=cut, finish_reason="length"), Reply(content=cut, finish_reason="length")
    )

    with pytest.raises(ModelOutputError, match="truncated") as raised:
        await LLMClient(llm_settings()).structured(extract_prompt, VARIABLES, MapOutput)

    assert raised.value.attempts == 2
    assert raised.value.usage.calls == 2
    assert raised.value.last_output == cut
    assert len(fake_server.requests) == 2


# --- transport errors and retries ----------------------------------------------------------


async def test_rate_limit_waits_for_retry_after_then_succeeds(
    fake_server: FakeOpenAIServer,
    llm_settings: MakeSettings,
    call_log: CallLog,
    extract_prompt: PromptTemplate,
) -> None:
    fake_server.queue(Reply(status=429, headers={"Retry-After": "1"}), Reply(content=GOOD))

    started = time.monotonic()
    result = await LLMClient(llm_settings(), call_log).structured(
        extract_prompt, VARIABLES, MapOutput
    )
    elapsed = time.monotonic() - started

    assert elapsed >= 0.9
    assert result.value.claims[0].sentence_ids == ["S1"]
    assert result.attempts == 2
    # A failed request has no answer to pay for.
    assert result.usage.calls == 1
    assert len(fake_server.requests) == 2
    first, second = call_log.rows()
    assert first["attempt"] == 1
    assert "rate_limit" in first["error"]
    assert first["input_tokens"] is None
    assert second["attempt"] == 2
    assert second["error"] is None


@pytest.mark.parametrize(
    "retry_after",
    [
        "30",
        format_datetime(datetime.now(UTC) + timedelta(hours=1), usegmt=True),
    ],
    ids=["seconds", "http-date"],
)
async def test_retry_after_beyond_retry_max_gives_up_at_once(
    fake_server: FakeOpenAIServer,
    llm_settings: MakeSettings,
    extract_prompt: PromptTemplate,
    retry_after: str,
) -> None:
    fake_server.queue(Reply(status=429, headers={"Retry-After": retry_after}), Reply(content=GOOD))

    started = time.monotonic()
    with pytest.raises(ProviderError) as raised:
        await LLMClient(llm_settings(retry_max_s=5)).structured(
            extract_prompt, VARIABLES, MapOutput
        )
    elapsed = time.monotonic() - started

    assert elapsed < 3
    assert raised.value.kind == "rate_limit"
    assert raised.value.status_code == 429
    assert raised.value.retry_after is not None
    assert raised.value.retry_after > 5
    assert raised.value.attempts == 1
    assert len(fake_server.requests) == 1


async def test_server_error_is_retried_without_a_reask(
    fake_server: FakeOpenAIServer,
    llm_settings: MakeSettings,
    call_log: CallLog,
    extract_prompt: PromptTemplate,
) -> None:
    fake_server.queue(Reply(status=500), Reply(content=GOOD))

    result = await LLMClient(llm_settings(), call_log).structured(
        extract_prompt, VARIABLES, MapOutput
    )

    assert result.value.claims[0].sentence_ids == ["S1"]
    assert result.attempts == 2
    assert len(fake_server.requests) == 2
    first, second = fake_server.requests
    # A transport failure is not the model's fault: the retry repeats the request as it was.
    assert second.messages == first.messages
    assert [role for role, _ in _contents(second)] == ["system", "user"]
    errors = [r["error"] for r in call_log.rows()]
    assert errors[0] is not None
    assert errors[0].startswith("server")
    assert errors[1] is None


async def test_server_errors_until_attempts_run_out(
    fake_server: FakeOpenAIServer, llm_settings: MakeSettings, extract_prompt: PromptTemplate
) -> None:
    fake_server.queue(Reply(status=503), Reply(status=500), Reply(status=502), Reply(content=GOOD))

    with pytest.raises(ProviderError) as raised:
        await LLMClient(llm_settings(max_attempts=3)).structured(
            extract_prompt, VARIABLES, MapOutput
        )

    assert raised.value.attempts == 3
    assert raised.value.retryable
    assert raised.value.status_code == 502
    assert len(fake_server.requests) == 3


async def test_auth_error_is_not_retried_and_hides_the_key(
    fake_server: FakeOpenAIServer,
    llm_settings: MakeSettings,
    call_log: CallLog,
    extract_prompt: PromptTemplate,
) -> None:
    # Providers echo the rejected key back, as OpenAI does.
    fake_server.queue(
        Reply(status=401, error_message=f"Incorrect API key provided: {TEST_API_KEY}."),
        Reply(content=GOOD),
    )

    with pytest.raises(ProviderError) as raised:
        await LLMClient(llm_settings(), call_log).structured(extract_prompt, VARIABLES, MapOutput)

    assert raised.value.kind == "auth"
    assert raised.value.status_code == 401
    assert not raised.value.retryable
    assert raised.value.attempts == 1
    assert len(fake_server.requests) == 1
    assert "Incorrect API key provided" in str(raised.value)
    assert TEST_API_KEY not in str(raised.value)
    assert TEST_API_KEY not in repr(raised.value.args)
    [row] = call_log.rows()
    assert row["error"].startswith("auth")
    assert TEST_API_KEY not in json.dumps(row)


async def test_timeout_is_retried(
    fake_server: FakeOpenAIServer, llm_settings: MakeSettings, extract_prompt: PromptTemplate
) -> None:
    fake_server.queue(Reply(content=GOOD, delay_s=2), Reply(content=GOOD))

    started = time.monotonic()
    result = await LLMClient(llm_settings(timeout_s=0.5)).structured(
        extract_prompt, VARIABLES, MapOutput
    )
    elapsed = time.monotonic() - started

    assert result.value.claims[0].sentence_ids == ["S1"]
    assert result.attempts == 2
    assert len(fake_server.requests) == 2
    assert 0.4 <= elapsed < 2


async def test_timeouts_until_attempts_run_out(
    fake_server: FakeOpenAIServer,
    llm_settings: MakeSettings,
    call_log: CallLog,
    extract_prompt: PromptTemplate,
) -> None:
    fake_server.queue(Reply(content=GOOD, delay_s=2), Reply(content=GOOD, delay_s=2))

    with pytest.raises(ProviderError) as raised:
        await LLMClient(llm_settings(timeout_s=0.5, max_attempts=2), call_log).structured(
            extract_prompt, VARIABLES, MapOutput
        )

    assert raised.value.kind == "timeout"
    assert raised.value.attempts == 2
    assert raised.value.retryable
    assert len(fake_server.requests) == 2
    assert [r["error"].split(":")[0] for r in call_log.rows()] == ["timeout", "timeout"]


# --- the engine end to end -----------------------------------------------------------------

#: "[S12] text" (extract-claims@1) or "S12 text" (@2).
_SENTENCE_LINE = re.compile(r"^\[?(S\d+)\]? (.*)$", re.MULTILINE)
#: "[C12] ([3]) text" (briefing@1, condense-claims@1) or "[C12] text" (briefing@2).
_CLAIM_LINE = re.compile(r"^\[?(C\d+)\]? (?:\([^)]*\) )?(.*)$", re.MULTILINE)
#: The prompt versions the engine supports: one chunk per map request, or packed sources.
PROMPT_SETS = {
    "v1": {"map_prompt": "extract-claims@1", "prompt": "briefing@1"},
    "v2": {"map_prompt": "extract-claims@2", "prompt": "briefing@2"},
}


def _step(request: RecordedRequest) -> str:
    system, user = request.messages[0]["content"], request.messages[1]["content"]
    if "<source" in user:
        return "map"
    if system.startswith("You condense"):
        return "condense"
    return "reduce"


def _claim_lines(request: RecordedRequest) -> dict[str, str]:
    return dict(_CLAIM_LINE.findall(request.messages[1]["content"]))


def _reply(payload: dict[str, Any]) -> Reply:
    return Reply(content=json.dumps(payload))


def _assert_exact_citations(briefing: Briefing) -> None:
    texts = {s.id: s.text for s in briefing.sources}
    for claim in briefing.claims():
        assert claim.citations, claim
        for c in claim.citations:
            assert texts[c.source_id][c.start : c.end] == c.quote


def _hallucinating_responder(request: RecordedRequest) -> Reply:
    step = _step(request)
    if step == "map":
        sentences = dict(_SENTENCE_LINE.findall(request.messages[1]["content"]))
        return _reply(
            {
                "claims": [
                    {
                        "text": f"The source says: {sentences['S1']}",
                        "sentence_ids": ["S1", "S9999"],
                    },
                    {"text": "Ghost claim from nowhere", "sentence_ids": ["S9999"]},
                ]
            }
        )
    assert step == "reduce"
    return _reply(
        {
            "title": "Briefing title",
            "summary": [{"text": "Summary point", "claim_ids": ["C1", "C404"]}],
            "key_points": [
                {"text": "Phantom point", "claim_ids": ["C404"]},
                {"text": "Second point", "claim_ids": ["C2"]},
            ],
            "disagreements": [
                {
                    "topic": "What happened",
                    "sides": [
                        {"text": "Side one", "claim_ids": ["C1"]},
                        {"text": "Side two", "claim_ids": ["C2"]},
                    ],
                }
            ],
        }
    )


@pytest.mark.parametrize("version", sorted(PROMPT_SETS))
async def test_build_briefing_keeps_only_citations_of_ids_the_model_was_shown(
    fake_server: FakeOpenAIServer, llm_settings: MakeSettings, tmp_path: Path, version: str
) -> None:
    fake_server.responder = _hallucinating_responder
    sources = load_sources(SEEDS)

    # Chunks small enough that either version sends several map requests.
    settings = llm_settings(chunk_tokens=2000, **PROMPT_SETS[version])
    briefing = await build_briefing(sources, settings)

    data = json.loads(briefing.model_dump_json())
    for key in (
        "id", "created_at", "title", "engine", "model", "prompt", "sources",
        "summary", "key_points", "disagreements", "usage", "warnings",
    ):  # fmt: skip
        assert key in data
    assert Briefing.model_validate(data) == briefing
    assert data["created_at"].endswith("Z")

    maps = [r for r in fake_server.requests if _step(r) == "map"]
    [reduce] = [r for r in fake_server.requests if _step(r) == "reduce"]
    assert fake_server.requests[-1] is reduce
    # S9999 must name nothing: no request shows 9999 sentences.
    shown = [_SENTENCE_LINE.findall(r.messages[1]["content"]) for r in maps]
    assert all(0 < len(s) < 9999 for s in shown)
    first_sentences = {dict(s)["S1"] for s in shown}

    # The ghost claim cites nothing that exists, so the reduce step never sees it.
    claims_shown = _claim_lines(reduce)
    # One claim per distinct first sentence that states something: a claim citing only a
    # headline is dropped, and a source that yields too little is mapped again (the same
    # first sentence again, one claim).
    statements = {x.text for src in sources for x in segment(src) if is_statement(x, src)}
    assert len(claims_shown) == len({s for s in first_sentences if s in statements})
    assert "Ghost claim from nowhere" not in reduce.messages[1]["content"]

    _assert_exact_citations(briefing)
    for claim in briefing.claims():
        [citation] = claim.citations  # C1/C2 each rest on one S1; S9999 and C404 add none
        assert citation.quote in first_sentences
        assert claim.score is not None
        if claim.text.startswith("The source says: "):
            # A map claim added so that its source is represented: it quotes its citation.
            assert claim.verdict == "supported"
            continue
        # "Summary point" and the like say nothing their citation says: the checker must
        # not pass them.
        assert claim.verdict in ("unsupported", "contradicted")
        assert claim.score < lexical.THRESHOLD

    texts = [c.text for c in briefing.claims()]
    assert "Phantom point" not in texts
    assert "Ghost claim from nowhere" not in texts
    [summary] = briefing.summary
    assert summary.text == "Summary point"
    assert f"The source says: {summary.citations[0].quote}" == claims_shown["C1"]
    assert summary.citations[0].source_id == sources[0].id
    assert summary.citations[0].start == min(c.start for c in summary.citations)
    # One key point of its own is too few: the map step's claims follow, from every
    # source, up to BRIEFING_KEY_POINTS, and the warnings say how many.
    first, *added = briefing.key_points
    assert first.text == "Second point"
    assert len(claims_shown) - 2 <= len(added) <= 7
    assert {c.text for c in added} <= set(claims_shown.values())
    # "Summary point" cites C1 and says nothing of it: C1's fact is still to be made.
    assert claims_shown["C1"] in {c.text for c in added}
    assert f"the reduce gave 1 key point(s); {len(added)} more were taken" in " ".join(
        briefing.warnings
    )
    assert len({c.citations[0].source_id for c in added}) == len(sources)
    assert f"The source says: {first.citations[0].quote}" == claims_shown["C2"]
    [disagreement] = briefing.disagreements
    assert [c.text for c in disagreement.claims] == ["Side one", "Side two"]

    assert any("S9999" in w for w in briefing.warnings)
    assert any("C404" in w for w in briefing.warnings)
    assert any("Ghost claim from nowhere" in w and "dropped" in w for w in briefing.warnings)
    assert any("Phantom point" in w and "dropped" in w for w in briefing.warnings)

    assert briefing.engine == "llm"
    assert briefing.model == TEST_MODEL
    assert briefing.prompt is not None
    assert briefing.prompt.name == "briefing"
    assert f"briefing@{briefing.prompt.version}" == PROMPT_SETS[version]["prompt"]
    template = ROOT / "prompts" / "briefing" / f"v{briefing.prompt.version}.yaml"
    assert briefing.prompt.sha256 == hashlib.sha256(template.read_bytes()).hexdigest()
    assert [p.name for p in briefing.prompts] == ["extract-claims", "briefing"]
    assert briefing.usage.calls == len(fake_server.requests)
    assert len(CallLog(tmp_path / "calls.db").rows()) == len(fake_server.requests)


_SHORT_SOURCES = {
    "alpha.txt": "Alpha council met on Monday.\nIt approved the budget of 3 million.",
    "beta.txt": "Beta storm hit the coast at dawn.\nTwo coastal roads were closed.",
    "gamma.txt": "Gamma bread prices rose by 3 percent in May.",
}


async def test_short_sources_share_one_map_request_and_each_id_cites_its_own_source(
    fake_server: FakeOpenAIServer, llm_settings: MakeSettings, tmp_path: Path
) -> None:
    for name, text in _SHORT_SOURCES.items():
        (tmp_path / name).write_text(text, "utf-8")
    sources = load_sources([tmp_path / name for name in _SHORT_SOURCES])

    def respond(request: RecordedRequest) -> Reply:
        if _step(request) == "map":
            lines = _SENTENCE_LINE.findall(request.messages[1]["content"])
            # Last sentence first: an answer need not follow the sources' order.
            return _reply({"claims": [{"text": t, "sentence_ids": [i]} for i, t in lines[::-1]]})
        claims = _claim_lines(request)
        points = [{"text": text, "claim_ids": [cid]} for cid, text in claims.items()]
        return _reply(
            {"title": "Three", "summary": points[:1], "key_points": points, "disagreements": []}
        )

    fake_server.responder = respond
    briefing = await build_briefing(sources, llm_settings())

    [mapped, reduced] = fake_server.requests
    user = mapped.messages[1]["content"]
    # One request: the instructions are sent once for the three sources, and each source
    # is asked for one claim (it is far shorter than claim_tokens).
    assert user.count("<source ") == 3
    assert user.count('claims="1"') == 3
    ids = [sid for sid, _ in _SENTENCE_LINE.findall(user)]
    assert ids == ["S1", "S2", "S3", "S4", "S5"]
    # The reduce step sees the claims in source order, each source named once, and within
    # a source in the order of what they cite (not the order an answer gave them in).
    reduce_user = reduced.messages[1]["content"]
    assert reduce_user.index("Source [1]") < reduce_user.index("Source [2]")
    assert reduce_user.index("Source [2]") < reduce_user.index("Source [3]")
    assert list(_claim_lines(reduced).values()) == [
        "Alpha council met on Monday.",
        "It approved the budget of 3 million.",
        "Beta storm hit the coast at dawn.",
        "Two coastal roads were closed.",
        "Gamma bread prices rose by 3 percent in May.",
    ]
    _assert_exact_citations(briefing)
    owner = {s.id: s.text for s in sources}
    for point in briefing.key_points:
        [citation] = point.citations
        assert citation.quote == point.text
        assert point.text in owner[citation.source_id]
        assert point.verdict == "supported"
    assert [p.name for p in briefing.prompts] == ["extract-claims", "briefing"]
    assert [p.version for p in briefing.prompts] == [2, 2]


async def test_map_requests_hold_sources_up_to_the_chunk_budget_each_source_once(
    fake_server: FakeOpenAIServer, llm_settings: MakeSettings, tmp_path: Path
) -> None:
    paths = []
    for n in range(12):
        path = tmp_path / f"note{n:02}.txt"
        path.write_text(f"Note {n} reports that the depot {n} reopened on Monday.", "utf-8")
        paths.append(path)

    def respond(request: RecordedRequest) -> Reply:
        if _step(request) == "map":
            # A claim for every source of the pack: none is mapped again for yielding too
            # little, so each source is shown once.
            lines = _SENTENCE_LINE.findall(request.messages[1]["content"])
            return _reply({"claims": [{"text": t, "sentence_ids": [i]} for i, t in lines]})
        points = [{"text": t, "claim_ids": [c]} for c, t in _claim_lines(request).items()]
        return _reply({"title": "Notes", "summary": points[:1], "key_points": points[1:]})

    fake_server.responder = respond
    await build_briefing(
        load_sources(paths), llm_settings(chunk_tokens=100, chunk_overlap_tokens=10)
    )

    maps = [r.messages[1]["content"] for r in fake_server.requests if _step(r) == "map"]
    assert 1 < len(maps) < 12
    shown = [line for user in maps for _, line in _SENTENCE_LINE.findall(user)]
    assert sorted(shown) == sorted(p.read_text("utf-8") for p in paths)
    for user in maps:
        # Each request is within the budget it was packed to (tags and tiktoken's count of
        # the sentences; the template around them is not part of the chunk budget).
        body = "\n".join(line for line in user.splitlines() if _SENTENCE_LINE.match(line))
        assert count_tokens(body, "o200k_base") <= 100


async def test_the_reduce_is_shown_the_same_claims_whichever_map_answer_comes_first(
    fake_server: FakeOpenAIServer, llm_settings: MakeSettings, tmp_path: Path
) -> None:
    """Map answers arrive in the order the provider finishes them; the reduce's list of
    claims must not depend on it (a small model's answer changed wholesale with the order)."""
    path = tmp_path / "depots.txt"
    lines = [f"Note {n} reports that the depot {n} reopened on Monday." for n in range(8)]
    path.write_text("\n".join(lines) + "\n", "utf-8")

    def answering_last(slow: str) -> Callable[[RecordedRequest], Reply]:
        def respond(request: RecordedRequest) -> Reply:
            if _step(request) == "map":
                user = request.messages[1]["content"]
                if slow in user:
                    time.sleep(0.3)  # this request's answer comes after the others
                lines = _SENTENCE_LINE.findall(user)
                return _reply({"claims": [{"text": t, "sentence_ids": [i]} for i, t in lines]})
            points = [{"text": t, "claim_ids": [c]} for c, t in _claim_lines(request).items()]
            return _reply({"title": "Notes", "summary": points[:1], "key_points": points[1:]})

        return respond

    shown = []
    for slow in ("Note 0 ", "Note 7 "):
        fake_server.responder = answering_last(slow)
        fake_server.requests.clear()
        await build_briefing(
            load_sources([path]), llm_settings(chunk_tokens=64, chunk_overlap_tokens=5)
        )
        assert sum(_step(r) == "map" for r in fake_server.requests) > 2
        reduce = next(r for r in fake_server.requests if _step(r) == "reduce")
        shown.append(list(_claim_lines(reduce).values()))
    assert shown[0] == shown[1] == lines


async def test_sentence_tags_copied_into_a_claim_are_removed_unless_they_are_its_words(
    fake_server: FakeOpenAIServer, llm_settings: MakeSettings, tmp_path: Path
) -> None:
    path = tmp_path / "alpha.txt"
    path.write_text(_SHORT_SOURCES["alpha.txt"], "utf-8")

    def respond(request: RecordedRequest) -> Reply:
        if _step(request) == "map":
            # What small models do: the tags of the lines they restate lead the claim.
            claims = [
                {"text": "S1 Alpha council met on Monday.", "sentence_ids": ["S1"]},
                {"text": "[S2] S1: It approved the budget.", "sentence_ids": ["S1", "S2"]},
                # Not a tag of a cited sentence: part of what the claim says.
                {"text": "S7 is the council's budget code.", "sentence_ids": ["S2"]},
            ]
            return _reply({"claims": claims})
        points = [{"text": t, "claim_ids": [c]} for c, t in _claim_lines(request).items()]
        return _reply(
            {"title": "Alpha", "summary": points[:1], "key_points": points, "disagreements": []}
        )

    fake_server.responder = respond
    await build_briefing(load_sources([path]), llm_settings())

    reduced = fake_server.requests[-1]
    assert list(_claim_lines(reduced).values()) == [
        "Alpha council met on Monday.",
        "It approved the budget.",
        "S7 is the council's budget code.",
    ]


def _condensing_responder(request: RecordedRequest) -> Reply:
    step = _step(request)
    if step == "map":
        sentences = _SENTENCE_LINE.findall(request.messages[1]["content"])
        return _reply(
            {
                "claims": [
                    {"text": f"The source says: {text}", "sentence_ids": [sid]}
                    for sid, text in sentences[:3]
                ]
            }
        )
    ids = list(_claim_lines(request))
    if step == "condense":
        # Merge neighbours pairwise: each merged claim cites the two it replaces.
        return _reply(
            {
                "claims": [
                    {"text": f"Merged {' and '.join(ids[i : i + 2])}", "claim_ids": ids[i : i + 2]}
                    for i in range(0, len(ids), 2)
                ]
            }
        )
    return _reply(
        {
            "title": "Condensed briefing",
            "summary": [{"text": "First merged", "claim_ids": ["C1"]}],
            "key_points": [{"text": f"Point {i}", "claim_ids": [i]} for i in ids],
            "disagreements": [],
        }
    )


def _small_prompts(tmp_path: Path, max_tokens: int) -> Path:
    # The output budget (max_tokens) counts against the window; shrink it so a small
    # window still leaves room for input.
    root = tmp_path / "prompts"
    shutil.copytree(default_prompts_dir(), root)
    for path in root.glob("*/v*.yaml"):
        text = path.read_text("utf-8")
        path.write_text(re.sub(r"max_tokens: \d+", f"max_tokens: {max_tokens}", text), "utf-8")
    return root


async def test_claims_too_large_for_the_window_are_condensed_before_the_reduce(
    fake_server: FakeOpenAIServer, llm_settings: MakeSettings, tmp_path: Path
) -> None:
    fake_server.responder = _condensing_responder
    sources = load_sources(SEEDS)
    # 1500 tokens with 256 for output: about 45 claims of the seeds overflow the reduce
    # prompt, while a batch of about half of them fits the condense prompt.
    settings = llm_settings(context_tokens=1500, prompts_dir=_small_prompts(tmp_path, 256))

    briefing = await build_briefing(sources, settings)

    steps = [_step(r) for r in fake_server.requests]
    assert "condense" in steps
    assert steps[-1] == "reduce"
    assert steps.count("reduce") == 1
    first_condense = steps.index("condense")
    assert set(steps[:first_condense]) == {"map"}
    assert set(steps[first_condense:-1]) == {"condense"}
    condensed = [_claim_lines(r) for r in fake_server.requests if _step(r) == "condense"]
    extracted = sum(len(batch) for batch in condensed)
    reduce_claims = _claim_lines(fake_server.requests[-1])
    assert len(reduce_claims) < extracted
    assert all(text.startswith("Merged ") for text in reduce_claims.values())

    _assert_exact_citations(briefing)
    # Final C1 merged the first two claims of the first batch (claims other sources back
    # come first): it cites both of their sentences.
    one, two = reduce_claims["C1"].removeprefix("Merged ").split(" and ")
    # Batches run at once, so the first batch is the one that holds them, first.
    [first_batch] = [batch for batch in condensed if one in batch]
    assert list(first_batch)[:2] == [one, two]
    [summary] = briefing.summary
    assert sorted(f"The source says: {c.quote}" for c in summary.citations) == sorted(
        [first_batch[one], first_batch[two]]
    )
    represented = [w for w in briefing.warnings if "so that every source is represented" in w]
    assert len(briefing.key_points) == len(reduce_claims) + len(represented)
    assert [p.name for p in briefing.prompts] == ["extract-claims", "condense-claims", "briefing"]
    assert briefing.usage.calls == len(fake_server.requests)
    # The fake's "Merged ..." texts say nothing their citations say; besides the notes of
    # coverage (headlines dropped, a source mapped again), that is the only warning.
    unsupported = [w for w in briefing.warnings if "marked unsupported" in w]
    assert unsupported == [
        f"{len(briefing.claims()) - len(represented)} claim(s) marked unsupported or "
        f"contradicted by the checker ({lexical.METHOD_NAME})"
    ]
    coverage = (
        "cited only headlines",
        "mapped again on its own",
        "every source is represented",
        "per-source quota",
        "condense level",
    )
    # Each condense level says how many claims went in and out, and what was left out.
    levels = [w for w in briefing.warnings if w.startswith("condense level")]
    assert levels
    assert levels[-1].startswith(f"condense level {len(levels)}: ")
    assert f"claims into {len(reduce_claims)} (" in levels[-1]
    others = [w for w in briefing.warnings if w not in unsupported]
    assert all(any(kind in w for kind in coverage) for w in others), others


async def test_a_condensed_claim_keeps_the_backing_of_the_claims_it_merges(
    fake_server: FakeOpenAIServer, llm_settings: MakeSettings
) -> None:
    """What another source says stays said through the condense step: the top-up weighs
    backed claims ahead, and the backing sentences keep a point from being made twice."""
    fake_server.responder = _condensing_responder
    settings = llm_settings()
    engine = MapReduce(settings, LLMClient(settings), PromptLibrary(default_prompts_dir()))
    cite = Citation(source_id="a", start=0, end=4, quote="Text")
    backer = ("b", 10, 20)
    batch = [
        _Claim("C1", "One.", [cite], ["[1]"], backed=True, backers=frozenset({backer})),
        _Claim("C2", "Two.", [cite], ["[1]"]),
        _Claim("C3", "Three.", [cite], ["[1]"]),
        _Claim("C4", "Four.", [cite], ["[1]"]),
    ]
    out, cited = await engine._condense(batch)
    assert [(c.text, c.backed, c.backers, c.merged) for c in out] == [
        ("Merged C1 and C2", True, frozenset({backer}), ("C1", "C2")),
        ("Merged C3 and C4", False, frozenset(), ("C3", "C4")),
    ]
    assert cited == {"C1", "C2", "C3", "C4"}


async def test_a_claim_another_source_backs_survives_a_condense_that_left_it_out(
    fake_server: FakeOpenAIServer, llm_settings: MakeSettings, tmp_path: Path
) -> None:
    """A model merging claims may drop some; what another source backs goes on to the next
    level (and the reduce) as it stands, and the level's report counts it."""

    def respond(request: RecordedRequest) -> Reply:
        if _step(request) != "condense":
            return _condensing_responder(request)
        # Merges the first two claims of each batch and leaves out all the others.
        ids = list(_claim_lines(request))
        return _reply({"claims": [{"text": "Merged " + " and ".join(ids[:2]),
                                   "claim_ids": ids[:2]}]})  # fmt: skip

    fake_server.responder = respond
    settings = llm_settings(context_tokens=1500, prompts_dir=_small_prompts(tmp_path, 256))
    engine = MapReduce(settings, LLMClient(settings), PromptLibrary(settings.prompts_dir))
    sources = load_sources(SEEDS)
    labels = {s.id: f"[{n}]" for n, s in enumerate(sources, start=1)}
    engine._order = {s.id: n for n, s in enumerate(sources)}
    headline = sources[0].text.split("\n")[0]
    cite = [Citation(source_id=sources[0].id, start=0, end=len(headline), quote=headline)]

    def claim(n: int) -> _Claim:
        text = f"The source says claim number {n} of many, at some length."
        if n % 5:
            return _Claim(f"C{n}", text, cite, ["[1]"])
        return _Claim(f"C{n}", text, cite, ["[1]"], backed=True, backers=frozenset({("b", n, n)}))

    claims = [claim(n) for n in range(1, 61)]
    out = await engine._condense_until_fits(claims, sources, labels)
    condense = [r for r in fake_server.requests if _step(r) == "condense"]
    first_level = [_claim_lines(r) for r in condense[: len(engine._batches(claims))]]
    shown = {text for batch in first_level for text in batch.values()}
    merged_first = {t for batch in first_level for t in list(batch.values())[:2]}
    backed = {c.text for c in claims if c.backed}
    # The backed claims the first level left out went on, as they stand, to the next.
    carried = backed & shown - merged_first
    assert carried
    [level_one, *_] = [w for w in engine.warnings if w.startswith("condense level")]
    assert f"{len(carried)} claim(s) another source backs" in level_one
    # None of them is lost: each is in the output or in a claim that merges it.
    later = {t for r in condense[len(first_level) :] for t in _claim_lines(r).values()}
    for text in carried:
        assert text in later or any(c.text == text for c in out)
    assert all(c.backed for c in out if not c.text.startswith("Merged"))


# --- the CLI with --model and --api-base ----------------------------------------------------


def test_cli_build_with_a_model_and_api_base_writes_the_contract(
    fake_server: FakeOpenAIServer,
    llm_settings: MakeSettings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from click.testing import CliRunner

    from briefing.cli import main

    llm_settings()  # clears the developer's BRIEFING_* variables
    monkeypatch.setenv("BRIEFING_API_KEY", TEST_API_KEY)
    monkeypatch.setenv("BRIEFING_CALL_LOG", str(tmp_path / "cli-calls.db"))
    fake_server.responder = _hallucinating_responder
    out = tmp_path / "out.json"
    args = ["build", *map(str, SEEDS), "--model", TEST_MODEL, "--api-base", fake_server.base_url]
    result = CliRunner().invoke(main, [*args, "--format", "json", "--output", str(out)])
    assert result.exit_code == 0, result.output
    briefing = Briefing.model_validate_json(out.read_text("utf-8"))
    assert briefing.engine == "llm"
    assert briefing.model == TEST_MODEL
    _assert_exact_citations(briefing)
    assert fake_server.requests, "the CLI did not reach the server given by --api-base"
    auth = {k.lower(): v for k, v in fake_server.requests[0].headers.items()}["authorization"]
    assert auth == f"Bearer {TEST_API_KEY}"
    assert TEST_API_KEY not in out.read_text("utf-8")
    assert len(CallLog(tmp_path / "cli-calls.db").rows()) == len(fake_server.requests)


def test_a_local_model_runs_with_its_own_defaults_unless_they_are_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from briefing.models.local import with_model_defaults

    for name in ("BRIEFING_PROMPT", "BRIEFING_MAP_PROMPT", "BRIEFING_CHUNK_TOKENS"):
        monkeypatch.delenv(name, raising=False)
    hosted = Settings(model=TEST_MODEL)
    assert with_model_defaults(hosted) is hosted
    assert (hosted.map_prompt, hosted.prompt, hosted.chunk_tokens) == (
        "extract-claims@2",
        "briefing@2",
        6000,
    )
    local = with_model_defaults(Settings(model="local/smollm2"))
    assert (local.map_prompt, local.prompt, local.chunk_tokens) == (
        "extract-claims@1",
        "briefing@1",
        1200,
    )
    # What the user set, in code or in the environment, is kept.
    chosen = with_model_defaults(Settings(model="local/smollm2", prompt="briefing@2"))
    assert (chosen.map_prompt, chosen.prompt) == ("extract-claims@1", "briefing@2")
    monkeypatch.setenv("BRIEFING_CHUNK_TOKENS", "3000")
    assert with_model_defaults(Settings(model="local/smollm2")).chunk_tokens == 3000


async def test_a_paragraph_point_becomes_one_claim_per_sentence_citing_its_own_claims(
    fake_server: FakeOpenAIServer, llm_settings: MakeSettings, tmp_path: Path
) -> None:
    path = tmp_path / "city.txt"
    path.write_text(
        "The council approved the new bridge on Monday.\n"
        "Construction will start in March and cost 40 million euros.\n"
        "The mayor said the old ferry will keep running until then.\n",
        "utf-8",
    )

    def respond(request: RecordedRequest) -> Reply:
        if _step(request) == "map":
            lines = _SENTENCE_LINE.findall(request.messages[1]["content"])
            return _reply({"claims": [{"text": t, "sentence_ids": [i]} for i, t in lines]})
        ids = list(_claim_lines(request))
        paragraph = (
            "The council approved the new bridge on Monday. Construction starts in March "
            "and will cost 40 million euros. The old ferry keeps running until then."
        )
        point = {"text": paragraph, "claim_ids": ids}
        return _reply({"title": "Bridge", "summary": [point], "key_points": [point]})

    fake_server.responder = respond
    briefing = await build_briefing(load_sources([path]), llm_settings())
    text = path.read_text("utf-8")
    # Three sentences, three claims, each citing the one sentence it restates.
    assert [c.text for c in briefing.summary] == [
        "The council approved the new bridge on Monday.",
        "Construction starts in March and will cost 40 million euros.",
        "The old ferry keeps running until then.",
    ]
    assert [[c.quote for c in claim.citations] for claim in briefing.summary] == [
        [line] for line in text.splitlines()
    ]
    assert all(c.verdict == "supported" for c in briefing.summary)
    # The key point repeated the summary: it is not a key point twice over.
    assert all(k.text not in {c.text for c in briefing.summary} for k in briefing.key_points)


async def test_a_point_repeating_one_sentence_to_its_length_limit_is_one_claim(
    fake_server: FakeOpenAIServer, llm_settings: MakeSettings, tmp_path: Path
) -> None:
    """A 1.5B model fell into repeating one sentence until max_tokens. The schema sent ends
    a point's text at MAX_POINT_CHARS (a grammar enforcing it closes the string there): the
    repeats are one claim, and the sentence cut off mid-way is dropped, not kept as one."""
    path = tmp_path / "city.txt"
    path.write_text(
        "The council approved the new bridge on Monday.\n"
        "Construction will start in March and cost 40 million euros.\n",
        "utf-8",
    )
    sentence = "The council approved the new bridge on Monday. "

    def respond(request: RecordedRequest) -> Reply:
        if _step(request) == "map":
            return _each_sentence_a_claim(request)
        ids = list(_claim_lines(request))
        looped = (sentence * (MAX_POINT_CHARS // len(sentence) + 1))[:MAX_POINT_CHARS]
        assert not looped.rstrip().endswith(".")
        point = {"text": looped, "claim_ids": ids[:1]}
        return _reply({"title": "Bridge", "summary": [point], "key_points": []})

    fake_server.responder = respond
    briefing = await build_briefing(load_sources([path]), llm_settings())
    assert [c.text for c in briefing.summary] == [sentence.strip()]
    assert briefing.summary[0].verdict == "supported"
    assert f"was cut off at {MAX_POINT_CHARS} characters and dropped" in " ".join(briefing.warnings)
    _assert_exact_citations(briefing)


async def test_a_claim_copied_from_a_quotation_without_its_speaker_names_the_speaker(
    fake_server: FakeOpenAIServer, llm_settings: MakeSettings, tmp_path: Path
) -> None:
    """A 1.5B model copied out the words of an analyst's quotation and dropped who said it:
    one person's view read as a fact of the story. The claim names the speaker again,
    whom the sentence it cites names; a claim already naming its speaker is left alone."""
    path = tmp_path / "talks.txt"
    path.write_text(
        "The talks in Geneva ended on Friday without an agreement.\n"
        '"The administration is eager to make a deal, but unwilling to pay a high price for '
        'it," said Jennifer Kavanagh, director of military analysis at a think tank.\n',
        "utf-8",
    )

    def respond(request: RecordedRequest) -> Reply:
        if _step(request) == "map":
            lines = dict(_SENTENCE_LINE.findall(request.messages[1]["content"]))
            quoted = next(i for i, t in lines.items() if "eager" in t)
            plain = next(i for i, t in lines.items() if "Geneva" in t)
            claims = [
                {"text": "The talks in Geneva ended on Friday without an agreement.",
                 "sentence_ids": [plain]},
                {"text": "The administration is eager to make a deal, but unwilling to pay a "
                 "high price for it.", "sentence_ids": [quoted]},
            ]  # fmt: skip
            return _reply({"claims": claims})
        points = [{"text": t, "claim_ids": [cid]} for cid, t in _claim_lines(request).items()]
        return _reply({"title": "Talks", "summary": points[:1], "key_points": points[1:]})

    fake_server.responder = respond
    briefing = await build_briefing(load_sources([path]), llm_settings())
    texts = [c.text for c in briefing.claims()]
    assert texts == [
        "The talks in Geneva ended on Friday without an agreement.",
        "The administration is eager to make a deal, but unwilling to pay a high price for "
        "it, Jennifer Kavanagh said.",
    ]
    assert all(c.verdict == "supported" for c in briefing.claims())
    assert "the speaker the cited sentence names was added" in " ".join(briefing.warnings)
    _assert_exact_citations(briefing)


async def test_the_reduce_schema_sent_names_only_the_claims_shown(
    fake_server: FakeOpenAIServer, llm_settings: MakeSettings, tmp_path: Path
) -> None:
    """A provider (or local grammar) that enforces the schema can cite only real claim ids,
    at most 8 a point: a small model once listed ids up to C376 of 82 until max_tokens; and
    its texts are bounded (another repeated one sentence until max_tokens). A
    map request's schema, likewise, cites only the sentences shown and ends its list at the
    claims asked for (the same model copied out every sentence of an article)."""
    shown_ids: list[str] = []

    def respond(request: RecordedRequest) -> Reply:
        user = request.messages[-1]["content"]
        if "<claims>" not in user:
            sids = re.findall(r"^\[?(S\d+)\]? ", user, re.MULTILINE)
            claims = [{"text": "The council approved the budget.", "sentence_ids": sids[:1]}]
            return Reply(content=json.dumps({"claims": claims}))
        shown_ids.extend(re.findall(r"^\[(C\d+)\]", user, re.MULTILINE))
        point = {"text": "The council approved the budget.", "claim_ids": shown_ids[:1]}
        answer = {"title": "Council", "summary": [point], "key_points": [], "disagreements": []}
        return Reply(content=json.dumps(answer))

    fake_server.responder = respond
    path = tmp_path / "council.txt"
    path.write_text("Council news.\nThe council approved the budget on Monday.\n", "utf-8")
    await build_briefing(load_sources([path]), llm_settings(response_format="json_schema"))
    reduce = next(r for r in fake_server.requests if "<claims>" in r.messages[-1]["content"])
    schema = reduce.body["response_format"]["json_schema"]["schema"]
    cited = schema["$defs"]["point"]["properties"]["claim_ids"]
    assert shown_ids
    assert cited["items"]["enum"] == shown_ids
    assert cited["maxItems"] == 8
    # A point's text, and the title, end where a model repeating one sentence would not.
    assert schema["$defs"]["point"]["properties"]["text"]["maxLength"] == MAX_POINT_CHARS
    assert schema["properties"]["title"]["maxLength"] == MAX_TITLE_CHARS
    topic = schema["properties"]["disagreements"]["items"]["properties"]["topic"]
    assert topic["maxLength"] == MAX_TITLE_CHARS
    # The map request's schema names the sentences it shows and holds the claims it asks.
    first = fake_server.requests[0]
    claims = first.body["response_format"]["json_schema"]["schema"]["properties"]["claims"]
    user = first.messages[-1]["content"]
    shown_sentences = re.findall(r"^\[?(S\d+)\]? ", user, re.MULTILINE)
    assert shown_sentences
    assert claims["items"]["properties"]["sentence_ids"]["items"]["enum"] == shown_sentences
    asked = sum(int(n) for n in re.findall(r'claims="(\d+)"', user))
    assert claims["maxItems"] == asked


def _harbour_and_ferry(tmp_path: Path, *more_harbour: str) -> list[Path]:
    """Two sources, each a fact with names and figures among vaguer sentences."""
    harbour, ferry = tmp_path / "harbour.txt", tmp_path / "ferry.txt"
    lines = [
        "The harbour reopened on Friday after repairs.",
        "Officials were pleased with how things went overall.",
        "Mayor Anna Berg said 240 ships and 3,100 passengers used it in May.",
        *more_harbour,
    ]
    harbour.write_text("".join(f"{line}\n" for line in lines), "utf-8")
    ferry.write_text(
        "The weather was pleasant for most of the week.\n"
        "The ferry company Nordlink added 12 sailings to Gotland and Riga.\n"
        "Many people felt that the change was welcome.\n",
        "utf-8",
    )
    return [harbour, ferry]


def _each_sentence_a_claim(request: RecordedRequest) -> Reply:
    lines = _SENTENCE_LINE.findall(request.messages[1]["content"])
    return _reply({"claims": [{"text": t, "sentence_ids": [i]} for i, t in lines]})


async def test_a_summary_sentence_restating_none_of_its_claims_is_dropped_and_filled(
    fake_server: FakeOpenAIServer, llm_settings: MakeSettings, tmp_path: Path
) -> None:
    """Qwen2.5-1.5B wrote "The U.S. administration has consistently used the word 'reset'
    ...", citing the article's first eight claims, none of which says it. A sentence of a
    point that restates none of the claims it cites is dropped; its claims may still be
    key points (a point that does not make them has not made them), and map claims fill
    the summary to MIN_SUMMARY sentences."""
    paths = _harbour_and_ferry(tmp_path)

    def respond(request: RecordedRequest) -> Reply:
        if _step(request) == "map":
            return _each_sentence_a_claim(request)
        claims = _claim_lines(request)
        ids = list(claims)
        paragraph = (
            "The harbour reopened on Friday after repairs. "
            "Regional trade policy has long been debated in parliament."
        )
        summary = [{"text": paragraph, "claim_ids": ids}]
        # Nor does a one-sentence side citing several claims it says nothing of.
        sides = [
            {"text": "Parliament has long debated regional trade.", "claim_ids": ids[:2]},
            {"text": claims[ids[-1]], "claim_ids": ids[-1:]},
        ]
        disagreements = [{"topic": "Trade", "sides": sides}]
        return _reply(
            {"title": "Harbour", "summary": summary, "key_points": [],
             "disagreements": disagreements}
        )  # fmt: skip

    fake_server.responder = respond
    briefing = await build_briefing(load_sources(paths), llm_settings())
    assert briefing.disagreements == []
    assert "disagreement 'Trade' dropped: fewer than two cited sides" in briefing.warnings
    texts = [c.text for c in briefing.summary]
    assert "Regional trade policy has long been debated in parliament." not in texts
    assert "restated none of the claims they cited and were dropped" in " ".join(briefing.warnings)
    assert texts[0] == "The harbour reopened on Friday after repairs."
    assert MIN_SUMMARY <= len(texts) <= SUMMARY_CLAIMS
    # The dropped sentence cited every claim: the ferry's facts are still made.
    every = texts + [c.text for c in briefing.key_points]
    assert "The ferry company Nordlink added 12 sailings to Gotland and Riga." in every
    assert len(every) == len(set(every))
    assert all(c.verdict == "supported" for c in briefing.claims())
    _assert_exact_citations(briefing)


def test_what_a_rewrite_alone_adds_weighs_less_than_what_an_original_alone_says() -> None:
    """Qwen2.5-1.5B's map claims of the seeds: the rewrite (004) restates much of the
    article and adds flourishes ("a genius in the art of the deal"), which the top-up took
    as a key point. A source's single-source claims weigh `extractive.alone_weight` of the
    share of its map claims others back, as the extractive engine weighs its sentences."""

    def claims(source_id: str, n: int, backed: int) -> list[_Claim]:
        cite = Citation(source_id=source_id, start=0, end=1, quote="x")
        return [
            _Claim(f"C{k}", f"claim {k}", [cite], [source_id], backed=k < backed) for k in range(n)
        ]

    shares = _backed_share([*claims("original", 10, 1), *claims("rewrite", 4, 3)])
    assert shares == {"original": 0.1, "rewrite": 0.75}
    assert alone_weight(shares["original"]) > 0.8 > 0.3 > alone_weight(shares["rewrite"]) > 0


async def test_a_fact_two_sources_state_is_cited_from_the_one_that_is_no_rewrite(
    fake_server: FakeOpenAIServer, llm_settings: MakeSettings, tmp_path: Path
) -> None:
    """The seeds' rewrite (004) restates the article's quotations without who said them;
    of two map claims stating one fact, the top-up takes the one of the source that echoes
    the others less (`_backed_share`): the article's, not the rewrite's."""
    original, rewrite = tmp_path / "original.txt", tmp_path / "rewrite.txt"
    fact = "Mayor Anna Berg said 240 ships and 3,100 passengers used the harbour in May."
    original.write_text(
        "\n".join(
            [
                "The harbour reopened on Friday after repairs.",
                "Customs chief Lars Ek checked 450 containers from Riga, Gdansk and Kiel.",
                "Harbour master Eva Lind expects 30 cruise ships from Oslo and Tallinn in July.",
                "Nordlink and Stena Line added 12 sailings to Gotland, Riga and Turku.",
                fact,
            ]
        )
        + "\n",
        "utf-8",
    )
    rewrite.write_text(
        f"It is a port for the ages.\n{fact}\nThe harbour reopened on Friday after repairs.\n"
        "Many people felt that the change was welcome.\n",
        "utf-8",
    )

    def respond(request: RecordedRequest) -> Reply:
        if _step(request) == "map":
            return _each_sentence_a_claim(request)
        ids = list(_claim_lines(request))
        point = {"text": "The harbour reopened on Friday after repairs.", "claim_ids": ids[:1]}
        return _reply({"title": "Harbour", "summary": [point], "key_points": []})

    fake_server.responder = respond
    # The rewrite listed first: ahead of the article, were it not for what it echoes.
    briefing = await build_briefing(load_sources([rewrite, original]), llm_settings())
    [made] = [c for c in briefing.key_points if c.text == fact]
    assert made.citations[0].source_id == briefing.sources[1].id
    _assert_exact_citations(briefing)


async def test_key_points_topped_up_are_the_weightiest_facts_each_source_its_share(
    fake_server: FakeOpenAIServer, llm_settings: MakeSettings, tmp_path: Path
) -> None:
    """A reduce that gave no key point of its own (a small model) is topped up from the map
    step's claims: the ones that name who, where and how many before the commentary, and
    no source more than its share of the statements (here two of three each)."""
    paths = _harbour_and_ferry(tmp_path)

    def respond(request: RecordedRequest) -> Reply:
        if _step(request) == "map":
            return _each_sentence_a_claim(request)
        ids = {text: cid for cid, text in _claim_lines(request).items()}
        opening = "The harbour reopened on Friday after repairs."
        point = {"text": opening, "claim_ids": [ids[opening]]}
        return _reply({"title": "Harbour", "summary": [point], "key_points": []})

    fake_server.responder = respond
    briefing = await build_briefing(load_sources(paths), llm_settings(key_points=3))
    [summary] = briefing.summary
    assert summary.citations[0].source_id == briefing.sources[0].id
    assert [k.text for k in briefing.key_points[:2]] == [
        "The ferry company Nordlink added 12 sailings to Gotland and Riga.",
        "Mayor Anna Berg said 240 ships and 3,100 passengers used it in May.",
    ]
    assert len(briefing.key_points) == 3
    per_source = Counter(
        c.citations[0].source_id for c in [*briefing.summary, *briefing.key_points]
    )
    assert sorted(per_source.values()) == [2, 2]
    _assert_exact_citations(briefing)


async def test_a_claim_another_point_rests_on_in_other_words_is_not_a_second_point(
    fake_server: FakeOpenAIServer, llm_settings: MakeSettings, tmp_path: Path
) -> None:
    """The top-up takes no claim whose backing sentence (another source saying the same
    thing, as the comparison found) a point already cites, nor the backer of a point: one
    fact, one point, whichever source's words it is in."""
    paths = _harbour_and_ferry(tmp_path)
    sources = load_sources(paths)
    harbour = sources[0]
    mayor = "Mayor Anna Berg said 240 ships and 3,100 passengers used it in May."
    start = harbour.text.index(mayor)
    backer = Citation(source_id=harbour.id, start=start, end=start + len(mayor), quote=mayor)

    async def backing(claims: list[Claim]) -> dict[str, Corroboration]:
        # A stand-in for the comparison: the ferry's Nordlink sentence, it says, states
        # what the mayor said (say, in another language).
        return {
            c.id: Corroboration(status="corroborated", score=0.9, supporting=[backer])
            for c in claims
            if "Nordlink" in c.text
        }

    def respond(request: RecordedRequest) -> Reply:
        if _step(request) == "map":
            return _each_sentence_a_claim(request)
        return _reply({"title": "Harbour", "summary": [], "key_points": []})

    fake_server.responder = respond
    settings = llm_settings(key_points=4)
    engine = MapReduce(
        settings, LLMClient(settings), PromptLibrary(default_prompts_dir()), backing=backing
    )
    briefing = await engine.run(sources)
    texts = [c.text for c in [*briefing.summary, *briefing.key_points]]
    assert "The ferry company Nordlink added 12 sailings to Gotland and Riga." in texts
    assert mayor not in texts
    _assert_exact_citations(briefing)


async def test_sources_with_nothing_to_cite_fail_saying_so_without_a_call(
    fake_server: FakeOpenAIServer, llm_settings: MakeSettings, tmp_path: Path
) -> None:
    path = tmp_path / "headlines.txt"
    path.write_text("Breaking news from the harbour\nMore on this story soon\n", "utf-8")
    with pytest.raises(BriefingError, match="no sentence of the sources reads as a statement"):
        await build_briefing(load_sources([path]), llm_settings())
    assert fake_server.requests == []


async def test_a_source_the_reduce_ignored_gets_key_points_of_its_facts(
    fake_server: FakeOpenAIServer, llm_settings: MakeSettings, tmp_path: Path
) -> None:
    """A small model that writes only of one source (the last listed) leaves the others'
    facts out: claims of the source it cited nothing of fill the key points up to
    BRIEFING_KEY_POINTS, its most specific first, and the warnings say so."""
    paths = _harbour_and_ferry(tmp_path, "Crews repainted the quay walls over the winter months.")

    def respond(request: RecordedRequest) -> Reply:
        if _step(request) == "map":
            return _each_sentence_a_claim(request)
        ferry_ids = [cid for cid, text in _claim_lines(request).items() if "harbour" not in text
                     and ("ferry" in text or "weather" in text or "people" in text)]  # fmt: skip
        points = [{"text": t, "claim_ids": [cid]} for cid, t in _claim_lines(request).items()
                  if cid in ferry_ids]  # fmt: skip
        summary = [{"text": "Ferries changed this week.", "claim_ids": ferry_ids[:2]}]
        return _reply({"title": "Ferry", "summary": summary, "key_points": points})

    fake_server.responder = respond
    briefing = await build_briefing(load_sources(paths), llm_settings(key_points=5))
    harbour_id = briefing.sources[0].id
    own = [k for k in briefing.key_points if k.citations[0].source_id != harbour_id]
    added = [k for k in briefing.key_points if k.citations[0].source_id == harbour_id]
    assert len(own) == 3
    assert len(briefing.key_points) == 5
    assert added[0].text == "Mayor Anna Berg said 240 ships and 3,100 passengers used it in May."
    assert "2 more were taken from the map step's claims of 1 source(s) it cited nothing of" in (
        " ".join(briefing.warnings)
    )
    _assert_exact_citations(briefing)


_ASKED = re.compile(r'<source title="[^"]*" claims="(\d+)">')


def _station_mapper(
    pick: Callable[[list[tuple[str, str]], int], list[tuple[str, str]]],
) -> Callable[[RecordedRequest], Reply]:
    """A fake model whose map answers cite the (id, sentence) pairs `pick` chooses of the
    sentences shown, given how many claims were asked; its reduce writes nothing."""

    def respond(request: RecordedRequest) -> Reply:
        if _step(request) != "map":
            return _reply({"title": "Stations", "summary": [], "key_points": []})
        user = request.messages[1]["content"]
        asked = sum(int(n) for n in _ASKED.findall(user))
        picked = pick(_SENTENCE_LINE.findall(user), asked)
        return _reply({"claims": [{"text": t, "sentence_ids": [i]} for i, t in picked]})

    return respond


async def test_a_chunk_read_only_at_its_start_has_the_rest_mapped_again(
    fake_server: FakeOpenAIServer, llm_settings: MakeSettings, tmp_path: Path
) -> None:
    """A small model asked for N claims of a long article copies out its first N sentences
    in order: the sentences it left unread are mapped again, in chunks the size of what it
    read, so that the article's later facts reach the briefing; a retry is not retried."""
    path = tmp_path / "stations.txt"
    path.write_text(
        "".join(
            f"Station {n} on the {('north', 'east', 'west')[n % 3]} line opened in "
            f"{1900 + n} with {n + 2} platforms.\n"
            for n in range(1, 61)
        ),
        "utf-8",
    )

    fake_server.responder = _station_mapper(lambda lines, asked: lines[:asked])
    briefing = await build_briefing(load_sources([path]), llm_settings(key_points=5))

    maps = [r for r in fake_server.requests if _step(r) == "map"]
    first = _SENTENCE_LINE.findall(maps[0].messages[1]["content"])
    read = int(_ASKED.findall(maps[0].messages[1]["content"])[0])
    assert 2 <= read < len(first) / 2
    again = [t for r in maps[1:] for _, t in _SENTENCE_LINE.findall(r.messages[1]["content"])]
    # Only the unread sentences are sent again, each once (no overlap is wider than the
    # small chunks), and all of them.
    assert len(maps) > 2
    assert set(again) == {t for _, t in first[read:]}
    assert not set(again) & {t for _, t in first[:read]}
    warning = next(w for w in briefing.warnings if "cited only the first" in w)
    assert f"the first {read} of {len(first)} sentences shown" in warning
    assert f"in {len(maps) - 1} smaller request(s)" in warning
    # The reduce is shown claims of the whole article, down to its last part.
    [reduce] = [r for r in fake_server.requests if _step(r) == "reduce"]
    shown = set(_claim_lines(reduce).values())
    order = [t for _, t in first]
    assert max(order.index(t) for t in shown if t in order) >= len(first) * 3 / 4
    assert len(shown) == read + sum(map(int, _ASKED.findall(" ".join(
        r.messages[1]["content"] for r in maps[1:]))))  # fmt: skip
    _assert_exact_citations(briefing)


async def test_the_unread_part_is_mapped_again_in_chunks_opening_at_its_facts(
    fake_server: FakeOpenAIServer, llm_settings: MakeSettings, tmp_path: Path
) -> None:
    """The retry of a skimmed article splits what was left unread where its weightiest
    statements are (the extractive rank: names, figures, centrality), so that a model
    that again copies out only the first sentences it is shown copies those; and the
    key points the reduce left empty are those facts, not the filler."""
    facts = {
        22: "Mayor Anna Berg said the Lindholmen tunnel will cost 4.2 billion kronor by 2031.",
        37: "Engineers from Skanska found 140 cracks in the Gota river bridge in March.",
        52: "The Vasttrafik board approved 96 new trams from Alstom for 1.1 billion euros.",
    }
    filler = (
        "The committee met again and talked for a while.",
        "Members said the talks went on much as before.",
        "Some of them felt the meeting was rather long.",
    )
    lines = [facts.get(n, filler[n % 3].replace("while", f"while ({n})")) for n in range(60)]
    path = tmp_path / "city.txt"
    path.write_text("".join(f"{line}\n" for line in lines), "utf-8")

    fake_server.responder = _station_mapper(lambda lines, asked: lines[: max(1, asked // 2)])
    briefing = await build_briefing(load_sources([path]), llm_settings(key_points=4))

    maps = [r for r in fake_server.requests if _step(r) == "map"]
    assert len(maps) > 2
    openings = [_SENTENCE_LINE.findall(r.messages[1]["content"])[0][1] for r in maps[1:]]
    assert set(facts.values()) <= set(openings)
    points = {c.text for c in [*briefing.summary, *briefing.key_points]}
    assert set(facts.values()) <= points
    _assert_exact_citations(briefing)


async def test_claims_spread_over_a_chunk_are_not_mapped_again(
    fake_server: FakeOpenAIServer, llm_settings: MakeSettings, tmp_path: Path
) -> None:
    """A model that picks its claims across the article (S1, S9, S17, ...) read all of it,
    though it gave no more claims than one that copied out S1..S6: one map request."""
    path = tmp_path / "stations.txt"
    path.write_text(
        "".join(f"Station {n} opened in {1900 + n} with {n + 2} platforms.\n" for n in range(60)),
        "utf-8",
    )

    fake_server.responder = _station_mapper(
        lambda lines, asked: lines[:: max(1, len(lines) // asked)][:asked]
    )
    briefing = await build_briefing(load_sources([path]), llm_settings())
    assert [_step(r) for r in fake_server.requests] == ["map", "reduce"]
    assert not [w for w in briefing.warnings if "mapped again" in w]


async def test_a_summary_about_the_briefing_is_dropped_and_claims_stand_in(
    fake_server: FakeOpenAIServer, llm_settings: MakeSettings, tmp_path: Path
) -> None:
    """A small model shown many claims wrote its summary about the briefing ("The briefing
    discusses ..."): no fact of the story to check. Those sentences are dropped, and the
    map step's claims (each source's lead first) stand in for the summary."""
    paths = _harbour_and_ferry(tmp_path)

    def respond(request: RecordedRequest) -> Reply:
        if _step(request) == "map":
            return _each_sentence_a_claim(request)
        ids = list(_claim_lines(request))
        summary = [
            {"text": "The briefing discusses the harbour. The briefing also discusses ferries.",
             "claim_ids": ids[:2]},
            {"text": "The briefing concludes with a summary of the key points.",
             "claim_ids": ids[2:3]},
        ]  # fmt: skip
        points = [{"text": t, "claim_ids": [cid]} for cid, t in _claim_lines(request).items()]
        return _reply({"title": "Harbour", "summary": summary, "key_points": points[-2:]})

    fake_server.responder = respond
    briefing = await build_briefing(load_sources(paths), llm_settings())
    texts = [c.text for c in briefing.claims()]
    assert not [t for t in texts if t.startswith("The briefing")]
    assert "3 sentence(s) of the reduce's answer spoke of the briefing" in " ".join(
        briefing.warnings
    )
    # Each source's first claim (its lead) stands in, none a key point already makes.
    assert [c.text for c in briefing.summary][:2] == [
        "The harbour reopened on Friday after repairs.",
        "The weather was pleasant for most of the week.",
    ]
    assert not {c.text for c in briefing.summary} & {c.text for c in briefing.key_points}
    assert "claims stand in for it" in " ".join(briefing.warnings)
    _assert_exact_citations(briefing)


async def test_map_claims_are_judged_as_their_answer_comes_and_only_once(
    fake_server: FakeOpenAIServer,
    llm_settings: MakeSettings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The comparison judges each map answer's claims while the other requests are out
    (the event loop is idle then), one claim at a time; before the reduce the verdicts are
    reused, not worked out again: every map claim is judged once, and after the reduce the
    briefing's own corroboration judges its claims."""
    paths = _harbour_and_ferry(tmp_path)
    judged: list[list[str]] = []
    original = Comparer.claims

    async def recording(self: Comparer, claims: Sequence[Claim]) -> dict[str, Corroboration]:
        judged.append([c.text for c in claims])
        return await original(self, claims)

    monkeypatch.setattr(Comparer, "claims", recording)
    snapshots: dict[str, list[list[str]]] = {}
    mapped: dict[str, list[str]] = {}

    def respond(request: RecordedRequest) -> Reply:
        if _step(request) == "map":
            reply = _each_sentence_a_claim(request)
            texts = [c["text"] for c in json.loads(reply.content or "")["claims"]]
            source = "ferry" if any("ferry" in t for t in texts) else "harbour"
            mapped[source] = texts
            if source == "ferry":
                time.sleep(0.5)  # the harbour's answer is in long before this one
                snapshots["ferry answered"] = [list(batch) for batch in judged]
            return reply
        snapshots["reduce"] = [list(batch) for batch in judged]
        cid, text = next(iter(_claim_lines(request).items()))
        return _reply({"title": "Harbour", "summary": [{"text": text, "claim_ids": [cid]}],
                       "key_points": []})  # fmt: skip

    fake_server.responder = respond
    briefing = await build_briefing(
        load_sources(paths), llm_settings(key_points=3, chunk_tokens=64, chunk_overlap_tokens=0)
    )
    assert sum(_step(r) == "map" for r in fake_server.requests) == 2
    # While the ferry's request was out, the harbour's claims were judged, one at a time.
    assert snapshots["ferry answered"] == [[t] for t in mapped["harbour"]]
    before = [text for batch in snapshots["reduce"] for text in batch]
    assert sorted(before) == sorted(mapped["harbour"] + mapped["ferry"])
    # After the reduce: the briefing's claims, by `corroborate`, in one batch.
    assert judged[len(snapshots["reduce"]) :] == [[c.text for c in briefing.claims()]]
