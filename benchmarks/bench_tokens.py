"""2. Tokens: prompt tokens sent per source token, and output tokens, per briefing.

The project's figures are what the fake provider counted (tiktoken o200k_base over the chat
messages it received). The two baselines are computed with the same tokenizer on the same
sources and the same split into chunks, not run:

- stuff: one call with the briefing prompt and every source's text in it; it only works
  while the whole input fits the model's window (128k tokens for gpt-4o-mini).
- LangChain-style map-reduce (`load_summarize_chain(chain_type="map_reduce")` defaults): a
  "Write a concise summary" call per chunk, then, while the summaries exceed `token_max`
  (3,000 tokens), groups of summaries are collapsed into one summary each, re-sending them
  at every level, and a final combine call. Each map or collapse output is taken to be as
  long as the project's average map output, and the final output as long as its briefing.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

import corpus
from common import llm_settings
from fake_provider import ProviderProcess, chat_tokens, text_tokens

from briefing.models.prompts import PromptLibrary
from briefing.pipeline.build import build_briefing
from briefing.pipeline.chunking import chunk_sentences
from briefing.schema import Source
from briefing.text.segment import segment

NAME = "tokens"
TARGET = 1.2  # issue 20; 1.3 before it
#: The defaults of LangChain's map_reduce summarize chain.
LANGCHAIN_MAP = 'Write a concise summary of the following:\n\n\n"{text}"\n\n\nCONCISE SUMMARY:'
LANGCHAIN_TOKEN_MAX = 3000
STUFF_WINDOW = 128_000
#: The defaults before extract-claims@2 and briefing@2, measured on the same input as the
#: "before" of the same run.
FORMER_DEFAULTS = {"map_prompt": "extract-claims@1", "prompt": "briefing@1", "chunk_tokens": 1200}


def _chunk_texts(sources: list[Source], settings: Any) -> list[str]:
    texts = []
    for source in sources:
        for chunk in chunk_sentences(
            segment(source),
            encoding=settings.encoding,
            max_tokens=settings.chunk_tokens,
            overlap_tokens=settings.chunk_overlap_tokens,
        ):
            texts.append(source.text[chunk.start : chunk.end])
    return texts


def stuff_tokens(sources: list[Source], settings: Any) -> int:
    """Prompt tokens of one call with the briefing prompt and all sources."""
    system = PromptLibrary(settings.prompts_dir).get(settings.prompt).system
    user = "\n\n".join(f'<source title="{s.title}">\n{s.text}\n</source>' for s in sources)
    return chat_tokens([{"content": system}, {"content": user + "\nWrite the briefing as JSON."}])


def langchain_tokens(
    chunk_texts: list[str], summary_tokens: int, final_output_tokens: int
) -> dict[str, int]:
    """Calls and tokens of LangChain-style map-reduce over these chunks."""
    prompt = sum(chat_tokens([{"content": LANGCHAIN_MAP.format(text=t)}]) for t in chunk_texts)
    output = summary_tokens * len(chunk_texts)
    calls = len(chunk_texts)
    summaries = [summary_tokens] * len(chunk_texts)
    levels = 0
    template = chat_tokens([{"content": LANGCHAIN_MAP.format(text="")}])
    while sum(summaries) > LANGCHAIN_TOKEN_MAX and len(summaries) > 1:
        levels += 1
        groups: list[list[int]] = [[]]
        for size in summaries:
            if groups[-1] and sum(groups[-1]) + size > LANGCHAIN_TOKEN_MAX:
                groups.append([])
            groups[-1].append(size)
        prompt += sum(template + sum(g) for g in groups)
        output += summary_tokens * len(groups)
        calls += len(groups)
        summaries = [summary_tokens] * len(groups)
    prompt += template + sum(summaries)
    output += final_output_tokens
    calls += 1
    return {"calls": calls, "prompt_tokens": prompt, "output_tokens": output, "levels": levels}


def measure(n: int, provider: ProviderProcess, settings: Any) -> dict[str, Any]:
    """One briefing of `n` sources; the project's tokens against both baselines."""
    sources = corpus.sources(n)
    provider.stats()
    asyncio.run(build_briefing(sources, settings))
    stats = provider.stats()
    source_tokens = sum(text_tokens(s.text) for s in sources)
    prompt = stats["prompt_tokens"]
    output = stats["completion_tokens"]
    calls = stats["calls"]
    total_prompt = sum(prompt.values())
    total_output = sum(output.values())
    # LangChain summarises each chunk in a call of its own; each summary is taken to be as
    # long as the project's claims of one chunk (map output over chunks, not over requests,
    # since the project sends several short sources in one request).
    chunk_texts = _chunk_texts(sources, settings)
    map_output_mean = output.get("map", 0) // max(1, len(chunk_texts))
    chain = langchain_tokens(chunk_texts, map_output_mean, output["reduce"])
    stuffed = stuff_tokens(sources, settings)
    return {
        "sources": n,
        "source_tokens": source_tokens,
        "calls": calls,
        "prompt_tokens": prompt,
        "output_tokens": output,
        "prompt_per_source_token": round(total_prompt / source_tokens, 3),
        "map_prompt_per_source_token": round(prompt.get("map", 0) / source_tokens, 3),
        "output_tokens_total": total_output,
        "stuff": {
            "prompt_tokens": stuffed,
            "prompt_per_source_token": round(stuffed / source_tokens, 3),
            "output_tokens": output["reduce"],
            "fits_128k": stuffed + output["reduce"] <= STUFF_WINDOW,
        },
        "langchain_map_reduce": {
            **chain,
            "prompt_per_source_token": round(chain["prompt_tokens"] / source_tokens, 3),
        },
        "met": total_prompt / source_tokens <= TARGET,
    }


def run(quick: bool = False) -> dict[str, Any]:
    """Token figures for 1, 10 and 100 sources (no latency: counts do not depend on it)."""
    sizes = [1, 10] if quick else [1, 10, 100]
    with ProviderProcess(0.0) as provider, tempfile.TemporaryDirectory() as tmp:
        settings = llm_settings(provider.base_url, Path(tmp))
        rows = [measure(n, provider, settings) for n in sizes]
        # The same input with the former defaults: what the new prompt versions buy.
        former = llm_settings(provider.base_url, Path(tmp), **FORMER_DEFAULTS)
        variant = {"settings": FORMER_DEFAULTS, **measure(sizes[-1], provider, former)}
    return {
        "encoding": "o200k_base",
        "chunk_tokens": settings.chunk_tokens,
        "target_prompt_per_source_token": TARGET,
        "rows": rows,
        "former_defaults": variant,
        "met": all(r["met"] for r in rows),
    }


def table(result: dict[str, Any]) -> list[list[str]]:
    """Rows of the summary table."""
    out = []
    for r in result["rows"]:
        chain = r["langchain_map_reduce"]
        stuff = r["stuff"]
        out.append(
            [
                "2 tokens",
                f"prompt tokens / source token, {r['sources']} source(s) "
                f"({r['source_tokens']:,} source tokens); map step alone "
                f"{r['map_prompt_per_source_token']:.2f}; output {r['output_tokens_total']:,} "
                f"tokens; stuff {stuff['prompt_per_source_token']:.2f}"
                f"{'' if stuff['fits_128k'] else ' (does not fit 128k)'}; LangChain-style "
                f"{chain['prompt_per_source_token']:.2f} ({chain['calls']} calls, "
                f"{chain['output_tokens']:,} output)",
                f"{r['prompt_per_source_token']:.3f}",
                f"≤ {TARGET}",
                "yes" if r["met"] else "no",
            ]
        )
    v = result["former_defaults"]
    former = ", ".join(f"{k}={val}" for k, val in v["settings"].items())
    out.append(
        [
            "2 tokens",
            f"before: the same {v['sources']} sources with the former defaults ({former}): "
            f"map step alone {v['map_prompt_per_source_token']:.2f}, "
            f"{sum(v['calls'].values())} calls",
            f"{v['prompt_per_source_token']:.3f}",
            f"≤ {TARGET}",
            "yes" if v["met"] else "no",
        ]
    )
    return out
