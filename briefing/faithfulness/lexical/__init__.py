"""Offline lexical faithfulness check: P(claim supported by document), with evidence spans.

A document is split into sentences once (offsets into the original text), and an inverted
index maps word stems to the sentences that hold them. Each claim sentence retrieves its
best-supporting sentences by IDF-weighted overlap (numbers left out of the query); features
compare it with that bounded window only, plus the aligned sentence's paragraph context:

- support: content-word coverage by the best sentence (exact stems and shared 6-letter
  prefixes), trigram coverage and longest copied run within the top ten sentences, coverage
  by the document's vocabulary, the count of content words the document never uses, and the
  claim's length relative to its best sentence;
- alignment: numbers missing from the aligned evidence; the claim's subject or quoted speaker
  missing from the evidence's paragraph context; other names (for a lower-cased claim: words
  the document writes as names) absent from the document; absolutes ("every", "always") the
  context does not state;
- `conflict` (also returned as `contradiction`), when the evidence covers at least half the
  claim: a number or year the evidence states differently, a number counting the same thing
  differently, a word negated on one side only, a reversed direction word ("rose"/"fell"),
  or a name bound to another person's verb or title ("Clinton invited" vs "Bush invited").

A logistic regression stored in `lexical_model.json` turns `FEATURES` into a probability.
Pure Python at run time. The code: `text` (tokens and sentences), `index` (the prepared
document), `features`, and `model` (the stored logistic regression); `evals/train_checker.py`
refits the model.
"""

from __future__ import annotations

from briefing.faithfulness.lexical.features import FEATURES, claim_features, has_words
from briefing.faithfulness.lexical.index import IndexedDocument
from briefing.faithfulness.lexical.model import (
    METHOD_NAME,
    THRESHOLD,
    LexicalScore,
    probability,
    score_claim,
)
from briefing.faithfulness.lexical.text import split_sentences

__all__ = [
    "FEATURES",
    "METHOD_NAME",
    "THRESHOLD",
    "IndexedDocument",
    "LexicalScore",
    "claim_features",
    "has_words",
    "probability",
    "score_claim",
    "split_sentences",
]
