"""Ranking metrics against relevance judgments (qrels), as trec_eval computes them.

Gains are the judged relevance grades (trec_eval's ``ndcg_cut``); documents without a judgment count as
non-relevant. Queries without any relevant document are skipped when averaging (they have no ideal ranking).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from catalog.errors import ArtifactError

Qrels = dict[str, dict[str, int]]  # query id -> document id -> relevance grade


def load_trec_qrels(path: str | Path) -> Qrels:
    """TREC qrels lines ``qid iteration docno relevance``; a malformed line raises ArtifactError naming it."""
    qrels: Qrels = {}
    path = Path(path)
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 4 or not parts[3].lstrip("-").isdigit():
            raise ArtifactError(f"{path}:{number}: not a qrels line 'qid iter docno relevance': {line!r}")
        qrels.setdefault(parts[0], {})[parts[2]] = int(parts[3])
    return qrels


def dcg(gains: Sequence[float]) -> float:
    return sum(g / math.log2(i + 2) for i, g in enumerate(gains))


def ndcg_at_k(ranked: Sequence[str], relevance: Mapping[str, int], k: int) -> float:
    """Normalized discounted cumulative gain of the first ``k`` ranked ids."""
    ideal = dcg(sorted((g for g in relevance.values() if g > 0), reverse=True)[:k])
    if ideal == 0:
        return 0.0
    return dcg([max(relevance.get(doc, 0), 0) for doc in ranked[:k]]) / ideal


def recall_at_k(ranked: Sequence[str], relevance: Mapping[str, int], k: int) -> float:
    """Fraction of the relevant ids found in the first ``k`` ranked ids."""
    relevant = {doc for doc, g in relevance.items() if g > 0}
    if not relevant:
        return 0.0
    return len(relevant.intersection(ranked[:k])) / len(relevant)


def mean_metric(
    metric: Callable[[Sequence[str], Mapping[str, int], int], float],
    runs: Mapping[str, Sequence[str]],
    qrels: Qrels,
    k: int,
) -> float:
    """``metric`` averaged over the queries of ``runs`` that have at least one relevant judgment."""
    judged = [q for q in runs if any(g > 0 for g in qrels.get(q, {}).values())]
    if not judged:
        return 0.0
    return sum(metric(runs[q], qrels[q], k) for q in judged) / len(judged)
