"""Classification figures of the eval suites."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["balanced_accuracy", "roc_auc", "unsupported_precision_recall"]


def balanced_accuracy(labels: Sequence[int], predicted: Sequence[int]) -> float:
    """Mean of the true-positive and true-negative rates (0.5 is chance)."""
    rates = []
    for cls in (1, 0):
        idx = [i for i, y in enumerate(labels) if y == cls]
        if idx:
            rates.append(sum(1 for i in idx if predicted[i] == cls) / len(idx))
    return sum(rates) / len(rates) if rates else float("nan")


def roc_auc(labels: Sequence[int], scores: Sequence[float]) -> float:
    """Probability that a supported pair scores above an unsupported one (ties count half)."""
    order = sorted(range(len(scores)), key=lambda i: scores[i])
    ranks = [0.0] * len(scores)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and scores[order[j + 1]] == scores[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    pos = [ranks[i] for i, y in enumerate(labels) if y == 1]
    n_pos, n_neg = len(pos), len(labels) - len(pos)
    if not n_pos or not n_neg:
        return float("nan")
    return (sum(pos) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def unsupported_precision_recall(
    labels: Sequence[int], predicted: Sequence[int]
) -> tuple[float, float]:
    """Precision and recall of the checker at finding unsupported claims (label 0)."""
    flagged = [i for i, p in enumerate(predicted) if p == 0]
    actual = [i for i, y in enumerate(labels) if y == 0]
    hits = sum(1 for i in flagged if labels[i] == 0)
    precision = hits / len(flagged) if flagged else float("nan")
    recall = hits / len(actual) if actual else float("nan")
    return precision, recall


def reliability(
    labels: Sequence[int], scores: Sequence[float], bins: int = 10
) -> tuple[float, list[tuple[float, float, int, float, float]]]:
    """Expected calibration error of `scores` read as P(supported), and the reliability
    curve: per non-empty equal-width bin (low, high, pairs, mean score, share supported).
    ECE is the pairs-weighted mean gap between a bin's mean score and its share."""
    if not labels:
        return 0.0, []
    grouped: list[list[tuple[float, int]]] = [[] for _ in range(bins)]
    for label, score in zip(labels, scores, strict=True):
        clamped = min(max(score, 0.0), 1.0)
        grouped[min(int(clamped * bins), bins - 1)].append((clamped, label))
    curve = []
    gap = 0.0
    for n, members in enumerate(grouped):
        if not members:
            continue
        mean = sum(s for s, _ in members) / len(members)
        share = sum(lab for _, lab in members) / len(members)
        gap += len(members) * abs(mean - share)
        curve.append((n / bins, (n + 1) / bins, len(members), mean, share))
    return gap / len(labels), curve
