"""Offline lexical faithfulness checker prototype: P(claim supported by document).

Pipeline: normalise -> split document into sentences -> for each claim sentence retrieve the
best-supporting document sentences (IDF-weighted overlap, BM25-like) -> lexical consistency
features -> logistic regression (weights storable as JSON, applied with numpy alone).

Usage:
  python checker.py eval            # grouped CV on summac-dev + gold set + throughput
  python checker.py fit model.json  # fit on all dev data and write coefficients
"""
from __future__ import annotations

import json
import math
import re
import sys
import time
import unicodedata
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[3]
DATA_DIR = ROOT / "evals" / "datasets" / "summac-dev"
GOLD_PATH = Path(__file__).with_name("data") / "gold_news.jsonl"
DATASETS = ("factcc", "summeval", "xsumfaith")

# ---------------------------------------------------------------- text normalisation

STOPWORDS = frozenset("""
a about above after again against all also am an and any are as at be because been before being
below between both but by can could did do does doing down during each few for from further had has
have having he her here hers herself him himself his how i if in into is it its itself just me
more most my myself nor of off on once only or other our ours ourselves out over own same she
should so some such than that the their theirs them themselves then there these they this those
through to too under until up very was we were what when where which while who whom why will with
would you your yours yourself yourselves said says say told tell according s t will shall may
might must 's one new also last first year years
""".split())
NEGATIONS = frozenset("not no never none nobody nothing neither nor without n't cannot".split())
NUM_WORDS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
    "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18,
    "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60,
    "seventy": 70, "eighty": 80, "ninety": 90, "hundred": 100, "thousand": 1000,
    "million": 10**6, "billion": 10**9, "dozen": 12, "twice": 2, "once": 1, "half": 0.5,
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7,
    "eighth": 8, "ninth": 9, "tenth": 10,
}
MONTHS = frozenset("january february march april may june july august september october november "
                   "december monday tuesday wednesday thursday friday saturday sunday".split())

_TOKEN_RE = re.compile(r"\d+(?:[.,:]\d+)*|[A-Za-z]+(?:'[A-Za-z]+)?|n't")
_SENT_RE = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")


def normalize(text: str) -> str:
    """Unify quotes/dashes and undo PTB-style tokenisation artefacts."""
    text = unicodedata.normalize("NFKC", text)
    text = text.replace("\\'", "'").replace("\u2019", "'").replace("\u2018", "'").replace("`", "'")
    text = text.replace("\u201c", '"').replace("\u201d", '"').replace("\u2014", " - ").replace("\u2013", "-")
    text = re.sub(r"\s+'(s|re|ve|ll|d|m)\b", r"'\1", text)
    text = re.sub(r"\s+n't\b", "n't", text)
    return text


def split_sentences(text: str) -> list[str]:
    """Rule-based sentence splitter tolerant of lower-cased, space-tokenised text."""
    out: list[str] = []
    for para in re.split(r"\n+", text):
        para = para.strip()
        if not para:
            continue
        if para.lower() == para:  # lower-cased text: split on " . " style boundaries
            parts = re.split(r"(?<=[.!?])\s+", para)
        else:
            parts = _SENT_RE.split(para)
        for p in parts:
            p = p.strip()
            if not p:
                continue
            if out and len(p.split()) < 3:
                out[-1] += " " + p
            else:
                out.append(p)
    return out


def stem(tok: str) -> str:
    """Tiny suffix stripper (lower-case input); enough to merge plural/tense variants."""
    if tok.endswith("'s"):
        tok = tok[:-2]
    if len(tok) <= 3 or tok[0].isdigit():
        return tok
    for suf, rep, minlen in (("ies", "y", 5), ("sses", "ss", 5), ("ness", "", 7), ("ments", "", 8),
                             ("ment", "", 7), ("ings", "", 7), ("ing", "", 6), ("edly", "", 7),
                             ("ed", "", 5), ("ly", "", 6), ("es", "", 6), ("s", "", 4)):
        if tok.endswith(suf) and len(tok) >= minlen and not (suf == "s" and tok.endswith("ss")):
            tok = tok[: len(tok) - len(suf)] + rep
            break
    if len(tok) > 4 and tok[-1] == tok[-2] and tok[-1] not in "lsz":  # stopp(ed) -> stop
        tok = tok[:-1]
    if tok.endswith("ise"):  # British/American spelling
        tok = tok[:-3] + "ize"
    return tok


def tokens(text: str) -> list[str]:
    return _TOKEN_RE.findall(text)


def num_value(tok: str) -> str | None:
    t = tok.lower()
    if t[0].isdigit():
        t = t.replace(",", "")
        try:
            v = float(t) if ":" not in t else None
        except ValueError:
            return t
        return t if v is None else ("%g" % v)
    if t in NUM_WORDS:
        return "%g" % NUM_WORDS[t]
    return None


class Text:
    """Pre-processed view of a text span."""

    __slots__ = ("raw", "toks", "low", "stems", "content", "numbers", "neg", "bigrams", "trigrams")

    def __init__(self, raw: str):
        self.raw = raw
        self.toks = tokens(raw)
        self.low = [t.lower() for t in self.toks]
        self.stems = [stem(t) for t in self.low]
        self.content = [s for s, lw in zip(self.stems, self.low) if lw not in STOPWORDS and s not in STOPWORDS]
        self.numbers = {v for v in (num_value(t) for t in self.toks) if v is not None}
        self.neg = sum(1 for t in self.low if t in NEGATIONS or t.endswith("n't"))
        self.bigrams = set(zip(self.stems, self.stems[1:]))
        self.trigrams = set(zip(self.stems, self.stems[1:], self.stems[2:]))


class Document:
    """A document split into sentences with per-sentence stem sets and sentence-level IDF."""

    def __init__(self, text: str):
        text = normalize(text)
        self.sents = [Text(s) for s in split_sentences(text)] or [Text(text)]
        self.full = Text(text)
        self.sent_sets = [set(s.stems) for s in self.sents]
        df = Counter(w for s in self.sent_sets for w in s)
        n = len(self.sents)
        self.idf = {w: math.log((n + 1) / (c + 0.5)) for w, c in df.items()}
        self.max_idf = math.log((n + 1) / 0.5)
        self.stem_set = set(self.full.stems)
        self.low_set = set(self.full.low)
        self.numbers = self.full.numbers
        # casing evidence: lower-cased words the document writes capitalised mid-sentence
        self.proper = {t.lower() for i, t in enumerate(self.full.toks)
                       if t[0].isupper() and i > 0 and self.full.toks[i - 1][-1:] not in ".!?\""}

    def retrieve(self, claim: Text, k: int = 3) -> list[int]:
        """Indices of the k sentences (and window neighbours) best covering the claim."""
        # numbers are left out of the query so a changed number cannot pull in another sentence
        cset = {w for w in claim.content if not w[0].isdigit()} or set(claim.stems)
        scores = []
        for i, sset in enumerate(self.sent_sets):
            scores.append(sum(self.idf.get(w, 0.0) for w in cset if w in sset))
        order = sorted(range(len(scores)), key=lambda i: -scores[i])
        return order[:k]


# ---------------------------------------------------------------- features

def _cov(items, pool) -> float:
    items = list(items)
    if not items:
        return 1.0
    return sum(1 for w in items if w in pool) / len(items)


def _wcov(items, pool, doc: Document) -> float:
    items = list(items)
    if not items:
        return 1.0
    w = [doc.idf.get(x, doc.max_idf) for x in items]
    return sum(wi for wi, x in zip(w, items) if x in pool) / (sum(w) or 1.0)


def _lcs_run(a: list[str], bset_ngrams: set, maxn: int = 12) -> int:
    """Longest contiguous run of `a` that occurs in the document (via n-gram sets up to maxn)."""
    best = 0
    for n in range(1, maxn + 1):
        found = any(tuple(a[i:i + n]) in bset_ngrams for i in range(len(a) - n + 1))
        if not found:
            break
        best = n
    return best


SENT_FEATURES = [
    "cov_top1", "cov_top3", "cov_doc", "wcov_top1", "wcov_top3", "wcov_doc",
    "bi_top3", "bi_doc", "tri_doc", "num_miss_ev", "num_miss_doc", "neg_mismatch",
    "ent_miss_doc", "novel_cnt", "len_ratio",
]
CLAIM_FEATURES = [
    # aggregated over claim sentences
    "min_cov_top1", "mean_cov_top1", "min_cov_top3", "mean_cov_top3", "min_wcov_top3",
    "mean_wcov_top1", "min_bi_top3", "mean_bi_top3", "mean_bi_doc", "mean_tri_doc",
    "cov_doc", "wcov_doc", "any_num_miss_ev", "num_miss_doc", "neg_mismatch",
    "ent_miss_doc", "log_novel_cnt", "log_len", "n_sents", "lcs_frac", "max_len_ratio",
    "has_num",
]


def sentence_features(cs: Text, doc: Document, k: int = 3) -> dict:
    top = doc.retrieve(cs, k)
    ev1 = doc.sent_sets[top[0]]
    ev3 = set().union(*(doc.sent_sets[i] for i in top))
    # window around the top sentence catches pronoun antecedents
    win = set(ev3)
    for i in top[:1]:
        for j in (i - 1, i + 1):
            if 0 <= j < len(doc.sents):
                win |= doc.sent_sets[j]
    ev_texts = [doc.sents[i] for i in top]
    ev_bi = set().union(*(t.bigrams for t in ev_texts))
    ev_nums = set().union(*(t.numbers for t in ev_texts[:1]))
    for j in (top[0] - 1, top[0] + 1):
        if 0 <= j < len(doc.sents):
            ev_nums |= doc.sents[j].numbers
    ev_neg = sum(t.neg for t in ev_texts[:1])
    content = cs.content or cs.stems
    # entity candidates: capitalised non-initial claim tokens, or (lower-cased claims) words the
    # document itself writes capitalised
    ents = [t.lower() for i, t in enumerate(cs.toks) if i > 0 and t[0].isupper()]
    ent_miss = sum(1 for e in ents if e not in doc.low_set and stem(e) not in doc.stem_set)
    novel = [w for w in content if w not in doc.stem_set]
    ev_len = sum(len(t.toks) for t in ev_texts[:1]) or 1
    return {
        "cov_top1": _cov(content, ev1),
        "cov_top3": _cov(content, win),
        "cov_doc": _cov(content, doc.stem_set),
        "wcov_top1": _wcov(content, ev1, doc),
        "wcov_top3": _wcov(content, win, doc),
        "wcov_doc": _wcov(content, doc.stem_set, doc),
        "bi_top3": _cov(cs.bigrams, ev_bi),
        "bi_doc": _cov(cs.bigrams, doc.full.bigrams),
        "tri_doc": _cov(cs.trigrams, doc.full.trigrams),
        "num_miss_ev": sum(1 for n in cs.numbers if n not in ev_nums),
        "num_miss_doc": sum(1 for n in cs.numbers if n not in doc.numbers),
        "neg_mismatch": float((cs.neg > 0) != (ev_neg > 0)),
        "ent_miss_doc": ent_miss,
        "novel_cnt": len(novel),
        "len_ratio": len(cs.toks) / ev_len,
    }


_NGRAM_CACHE_KEY = "_ngrams"


def doc_ngrams(doc: Document, maxn: int = 12) -> set:
    cache = getattr(doc, _NGRAM_CACHE_KEY, None)
    if cache is None:
        cache = set()
        for s in doc.sents:
            st = s.stems
            for n in range(1, maxn + 1):
                cache.update(tuple(st[i:i + n]) for i in range(len(st) - n + 1))
        setattr(doc, _NGRAM_CACHE_KEY, cache)
    return cache


def claim_features(document: str | Document, claim: str) -> dict:
    doc = document if isinstance(document, Document) else Document(document)
    claim = normalize(claim)
    csents = [Text(s) for s in split_sentences(claim)] or [Text(claim)]
    csents = [c for c in csents if c.toks] or [Text(claim)]
    sf = [sentence_features(c, doc) for c in csents]
    full = Text(claim)
    content = full.content or full.stems
    agg = lambda key, fn: float(fn([f[key] for f in sf]))  # noqa: E731
    lcs = [(_lcs_run(c.stems, doc_ngrams(doc)) / max(len(c.stems), 1)) for c in csents]
    return {
        "min_cov_top1": agg("cov_top1", min),
        "mean_cov_top1": agg("cov_top1", np.mean),
        "min_cov_top3": agg("cov_top3", min),
        "mean_cov_top3": agg("cov_top3", np.mean),
        "min_wcov_top3": agg("wcov_top3", min),
        "mean_wcov_top1": agg("wcov_top1", np.mean),
        "min_bi_top3": agg("bi_top3", min),
        "mean_bi_top3": agg("bi_top3", np.mean),
        "mean_bi_doc": agg("bi_doc", np.mean),
        "mean_tri_doc": agg("tri_doc", np.mean),
        "cov_doc": _cov(content, doc.stem_set),
        "wcov_doc": _wcov(content, doc.stem_set, doc),
        "any_num_miss_ev": float(any(f["num_miss_ev"] for f in sf)),
        "num_miss_doc": math.log1p(sum(f["num_miss_doc"] for f in sf)),
        "neg_mismatch": agg("neg_mismatch", max),
        "ent_miss_doc": math.log1p(sum(f["ent_miss_doc"] for f in sf)),
        "log_novel_cnt": math.log1p(sum(f["novel_cnt"] for f in sf)),
        "log_len": math.log1p(len(full.toks)),
        "n_sents": math.log(len(csents)),
        "lcs_frac": float(np.mean(lcs)),
        "max_len_ratio": min(agg("len_ratio", max), 3.0),
        "has_num": float(bool(full.numbers)),
    }


def featurize(rows: list[dict], names: list[str] | None = None) -> np.ndarray:
    names = names or CLAIM_FEATURES
    cache: dict[str, Document] = {}
    X = np.zeros((len(rows), len(names)))
    for i, r in enumerate(rows):
        d = cache.get(r["document"])
        if d is None:
            d = cache[r["document"]] = Document(r["document"])
        f = claim_features(d, r["claim"])
        X[i] = [f[n] for n in names]
    return X



# ---------------------------------------------------------------- synthetic training pairs

_AUX = re.compile(r"\b(is|was|are|were|has|have|had|will|can|could|would|did|does|do|should)\b")


def synthesize(doc_text: str, rng: np.random.Generator, foreign_names: list[str],
               foreign_sents: list[str], n: int = 2) -> list[dict]:
    """FactCC-style pairs from one document: copied/compressed sentences (label 1) and the same
    sentences with a changed number, a foreign name, a flipped negation or an invented addition
    (label 0). Teaches the model weights for errors the dev data rarely shows."""
    sents = [s for s in split_sentences(normalize(doc_text)) if 8 <= len(s.split()) <= 45]
    if not sents:
        return []
    out = []
    for s in rng.choice(sents, size=min(n, len(sents)), replace=False):
        s = str(s)
        words = s.split()
        # positive: sentence, or a compression cut at a comma
        cuts = [i for i, w in enumerate(words) if w.endswith(",") and i >= 6]
        pos = " ".join(words[: cuts[0] + 1]).rstrip(",") + "." if cuts and rng.random() < 0.5 else s
        out.append({"claim": pos, "label": 1})
        negs = []
        nums = [i for i, w in enumerate(words) if re.fullmatch(r"\d[\d,.]*", w.strip(".,;:)"))]
        if nums:
            i = int(rng.choice(nums))
            core = words[i].strip(".,;:)")
            try:
                v = int(core.replace(",", ""))
                nv = v + int(rng.choice([-3, -2, -1, 1, 2, 3, 5, 10])) if v > 1900 and v < 2100 else max(0, v * int(rng.choice([2, 3])) + int(rng.choice([1, 2, 7])))
            except ValueError:
                nv = int(rng.integers(2, 99))
            negs.append(" ".join(words[:i] + [words[i].replace(core, str(nv))] + words[i + 1:]))
        caps = [i for i, w in enumerate(words) if i > 0 and w[:1].isupper() and w.isalpha()]
        if caps and foreign_names:
            i = int(rng.choice(caps))
            negs.append(" ".join(words[:i] + [str(rng.choice(foreign_names))] + words[i + 1:]))
        if re.search(r"\b(not|never)\b|n't", s):
            negs.append(re.sub(r"\s*\b(not|never)\b|n't", "", s, count=1))
        elif _AUX.search(s):
            negs.append(_AUX.sub(lambda m: m.group(0) + " not", s, count=1))
        if foreign_sents:
            fw = str(rng.choice(foreign_sents)).split()
            k = len(words) // 2
            negs.append(" ".join(words[:k] + fw[len(fw) // 2:]))
        if negs:
            out.append({"claim": str(rng.choice(negs)), "label": 0})
    for r in out:
        if rng.random() < 0.4:  # dev claims are often lower-cased / tokenised
            r["claim"] = r["claim"].lower()
    return out


def synth_rows(docs: list[str], seed: int = 0, n: int = 2) -> list[dict]:
    rng = np.random.default_rng(seed)
    names, sents_by_doc = [], []
    for d in docs:
        toks = normalize(d).split()
        names.append([t for i, t in enumerate(toks) if i > 0 and t[:1].isupper() and t.isalpha() and len(t) > 3])
        sents_by_doc.append([s for s in split_sentences(normalize(d)) if len(s.split()) >= 8])
    rows = []
    for i, d in enumerate(docs):
        j = (i + 1 + int(rng.integers(len(docs) - 1))) % len(docs) if len(docs) > 1 else i
        own = set(normalize(d).lower().split())
        foreign = [w for w in names[j] if w.lower() not in own]
        for r in synthesize(d, rng, foreign, sents_by_doc[j], n):
            r.update(document=d, dataset="synth")
            rows.append(r)
    return rows

# ---------------------------------------------------------------- model (numpy-only inference)

class LogReg:
    """Standardised logistic regression; fit with sklearn, apply with numpy; JSON-serialisable."""

    def __init__(self, C: float = 1.0):
        self.C = C

    def fit(self, X, y, w=None):
        from sklearn.linear_model import LogisticRegression

        self.mu = X.mean(0)
        self.sd = X.std(0) + 1e-9
        m = LogisticRegression(C=self.C, max_iter=2000)
        m.fit((X - self.mu) / self.sd, y, sample_weight=w)
        self.coef = m.coef_[0]
        self.bias = float(m.intercept_[0])
        return self

    def predict_proba(self, X):
        z = ((X - self.mu) / self.sd) @ self.coef + self.bias
        return 1.0 / (1.0 + np.exp(-z))

    def to_json(self, names, threshold):
        return {"features": list(names), "mean": self.mu.tolist(), "scale": self.sd.tolist(),
                "coef": self.coef.tolist(), "bias": self.bias, "threshold": threshold}


class GBM:
    def __init__(self, **kw):
        self.kw = dict(max_depth=3, learning_rate=0.05, max_iter=200, min_samples_leaf=10) | kw

    def fit(self, X, y, w=None):
        from sklearn.ensemble import HistGradientBoostingClassifier

        self.m = HistGradientBoostingClassifier(**self.kw).fit(X, y, sample_weight=w)
        return self

    def predict_proba(self, X):
        return self.m.predict_proba(X)[:, 1]


# ---------------------------------------------------------------- evaluation

def load(name: str) -> list[dict]:
    path = GOLD_PATH if name == "gold" else DATA_DIR / f"{name}.jsonl"
    rows = [json.loads(line) for line in open(path, encoding="utf-8")]
    for r in rows:
        r["dataset"] = name
    return rows


def balanced_weights(ds: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Each (dataset, label) cell gets the same total weight."""
    w = np.zeros(len(y))
    cells = {(d, l) for d, l in zip(ds, y)}
    for d, l in cells:
        m = (ds == d) & (y == l)
        w[m] = len(y) / (len(cells) * m.sum())
    return w


def bacc(y, pred) -> float:
    y = np.asarray(y)
    pred = np.asarray(pred)
    tpr = (pred[y == 1] == 1).mean() if (y == 1).any() else np.nan
    tnr = (pred[y == 0] == 0).mean() if (y == 0).any() else np.nan
    return float(np.nanmean([tpr, tnr]))


def best_threshold(p, y, ds) -> float:
    """Single threshold maximising the mean per-dataset balanced accuracy."""
    cands = np.unique(np.quantile(p, np.linspace(0.01, 0.99, 197)))
    names = np.unique(ds)
    scores = [np.mean([bacc(y[ds == d], (p[ds == d] >= t).astype(int)) for d in names]) for t in cands]
    return float(cands[int(np.argmax(scores))])


def cross_validate(X, y, ds, groups, make_model, n_splits=5, repeats=5, seed=0, synth=None,
                   synth_weight=1.0):
    """Grouped, stratified CV. Returns per-dataset BA (global and per-dataset thresholds), AUC."""
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedGroupKFold

    strat = np.array([f"{d}_{l}" for d, l in zip(ds, y)])
    names = list(np.unique(ds))
    res = {d: {"ba_global": [], "ba_perds": [], "auc": []} for d in names}
    for r in range(repeats):
        oof = np.zeros(len(y))
        pred_g = np.zeros(len(y), dtype=int)
        pred_d = np.zeros(len(y), dtype=int)
        cv = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed + r)
        for tr, te in cv.split(X, strat, groups):
            w = balanced_weights(ds[tr], y[tr])
            Xtr, ytr = X[tr], y[tr]
            if synth is not None:  # synthetic pairs from training-fold documents only
                Xs, ys, gs = synth
                ms = np.isin(gs, groups[tr])
                ws = balanced_weights(np.zeros(ms.sum()), ys[ms]) * synth_weight * len(tr) / (3 * ms.sum())
                Xtr, ytr, w = np.vstack([Xtr, Xs[ms]]), np.concatenate([ytr, ys[ms]]), np.concatenate([w, ws])
            m = make_model().fit(Xtr, ytr, w)
            ptr = m.predict_proba(X[tr])
            pte = m.predict_proba(X[te])
            oof[te] = pte
            t = best_threshold(ptr, y[tr], ds[tr])
            pred_g[te] = pte >= t
            for d in names:
                mtr, mte = ds[tr] == d, ds[te] == d
                td = best_threshold(ptr[mtr], y[tr][mtr], ds[tr][mtr])
                pred_d[te[mte]] = pte[mte] >= td
        for d in names:
            mk = ds == d
            res[d]["ba_global"].append(bacc(y[mk], pred_g[mk]))
            res[d]["ba_perds"].append(bacc(y[mk], pred_d[mk]))
            res[d]["auc"].append(roc_auc_score(y[mk], oof[mk]))
    return {d: {k: float(np.mean(v)) for k, v in m.items()} for d, m in res.items()}


def single_feature_baseline(X, y, ds, names):
    from sklearn.metrics import roc_auc_score

    out = {}
    for j, n in enumerate(names):
        out[n] = {d: round(float(roc_auc_score(y[ds == d], X[ds == d, j])), 3) for d in np.unique(ds)}
    return out


BEST = {"C": 0.03, "synth_weight": 0.5, "synth_per_doc": 3}


def _fit_full(X, y, ds, synth, C, sw):
    w = balanced_weights(ds, y)
    if synth is not None and sw > 0:
        Xs, ys, _ = synth
        ws = balanced_weights(np.zeros(len(ys)), ys) * sw * len(y) / (3 * len(ys))
        X, y, w = np.vstack([X, Xs]), np.concatenate([y, ys]), np.concatenate([w, ws])
    return LogReg(C).fit(X, y, w)


def main_eval(repeats: int = 5):
    """Grouped 5-fold CV (x repeats) on summac-dev for each variant, plus the gold set."""
    from sklearn.metrics import roc_auc_score

    rows = [r for d in DATASETS for r in load(d)]
    docs = list(dict.fromkeys(r["document"] for r in rows))
    gid = {d: i for i, d in enumerate(docs)}
    t0 = time.perf_counter()
    X = featurize(rows)
    dt = time.perf_counter() - t0
    y = np.array([r["label"] for r in rows])
    ds = np.array([r["dataset"] for r in rows])
    g = np.array([gid[r["document"]] for r in rows])
    srows = synth_rows(docs, seed=0, n=BEST["synth_per_doc"])
    synth = (featurize(srows), np.array([r["label"] for r in srows]), np.array([gid[r["document"]] for r in srows]))
    gold = load("gold")
    Xg, yg = featurize(gold), np.array([r["label"] for r in gold])
    print(f"featurize+predict throughput: {len(rows) / dt:.1f} pairs/s ({len(rows)} pairs)")
    core = ["min_cov_top1", "mean_tri_doc", "cov_doc", "log_novel_cnt", "num_miss_doc",
            "any_num_miss_ev", "neg_mismatch", "ent_miss_doc"]
    variants = [("LR core8 C=0.1", core, 0.1, 0.0), ("LR all22 C=0.03", CLAIM_FEATURES, 0.03, 0.0),
                ("LR all22 C=0.03 +synth0.5 (BEST)", CLAIM_FEATURES, 0.03, 0.5),
                ("LR all22 C=0.03 +synth1", CLAIM_FEATURES, 0.03, 1.0), ("GBM all22", CLAIM_FEATURES, None, 0.0)]
    for name, feats, C, sw in variants:
        idx = [CLAIM_FEATURES.index(f) for f in feats]
        syn = (synth[0][:, idx], synth[1], synth[2]) if sw > 0 else None
        mk = (lambda C=C: LogReg(C)) if C is not None else (lambda: GBM())
        res = cross_validate(X[:, idx], y, ds, g, mk, repeats=repeats, synth=syn, synth_weight=sw)
        m = _fit_full(X[:, idx], y, ds, syn, C, sw) if C is not None else GBM().fit(X[:, idx], y, balanced_weights(ds, y))
        t = best_threshold(m.predict_proba(X[:, idx]), y, ds)
        pg = m.predict_proba(Xg[:, idx])
        line = " | ".join(f"{d}: BA {v['ba_global']:.3f} (per-ds thr {v['ba_perds']:.3f}) AUC {v['auc']:.3f}" for d, v in res.items())
        print(f"{name}\n   {line} | gold: BA {bacc(yg, (pg >= t).astype(int)):.3f} AUC {roc_auc_score(yg, pg):.3f}", flush=True)
    print("single-feature AUC (<0.5 = higher means less supported):")
    for n, v in single_feature_baseline(X, y, ds, CLAIM_FEATURES).items():
        print(f"   {n:16s}", v)
    m = _fit_full(X, y, ds, synth, BEST["C"], BEST["synth_weight"])
    print("BEST standardised coefficients:", {n: round(float(c), 2) for n, c in sorted(zip(CLAIM_FEATURES, m.coef), key=lambda t: -abs(t[1]))})


def fit_best(path: str):
    """Fit the best variant on all dev data and write a numpy-applicable JSON model."""
    rows = [r for d in DATASETS for r in load(d)]
    docs = list(dict.fromkeys(r["document"] for r in rows))
    gid = {d: i for i, d in enumerate(docs)}
    X, y = featurize(rows), np.array([r["label"] for r in rows])
    ds = np.array([r["dataset"] for r in rows])
    srows = synth_rows(docs, seed=0, n=BEST["synth_per_doc"])
    synth = (featurize(srows), np.array([r["label"] for r in srows]), np.array([gid[r["document"]] for r in srows]))
    m = _fit_full(X, y, ds, synth, BEST["C"], BEST["synth_weight"])
    t = best_threshold(m.predict_proba(X), y, ds)
    Path(path).write_text(json.dumps(m.to_json(CLAIM_FEATURES, t), indent=1))


def predict(model_json: dict, document: str, claim: str) -> float:
    """Apply a JSON model with numpy only."""
    f = claim_features(document, claim)
    x = np.array([f[n] for n in model_json["features"]])
    z = ((x - np.array(model_json["mean"])) / np.array(model_json["scale"])) @ np.array(model_json["coef"]) + model_json["bias"]
    return float(1 / (1 + np.exp(-z)))


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else "eval"
    if cmd == "eval":
        main_eval()
    elif cmd == "fit":
        fit_best(sys.argv[2] if len(sys.argv) > 2 else "model.json")
