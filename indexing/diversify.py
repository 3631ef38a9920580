"""Shaping a candidate pool: near-duplicate removal, MMR diversification and bagging for self-consistency.

All functions work on positions in a ranked candidate list, so they apply to any hit type.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import numpy as np

T = TypeVar("T")


def _unit_rows(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def unit_scale(scores: np.ndarray) -> np.ndarray:
    """Scores mapped linearly onto [0, 1] (all ones when they are all equal), e.g. reranker logits for MMR."""
    scores = np.asarray(scores, dtype=np.float64)
    span = scores.max() - scores.min() if len(scores) else 0.0
    return (scores - scores.min()) / span if span > 0 else np.ones_like(scores)


def near_duplicate_free(vectors: np.ndarray, threshold: float) -> list[int]:
    """Positions to keep, in rank order: a candidate is dropped when its cosine with a better-ranked kept candidate
    is at least ``threshold`` (so of each group of near-copies the best-ranked one stays)."""
    if not 0 < threshold <= 1:
        raise ValueError(f"near-duplicate threshold must be in (0, 1], got {threshold}")
    unit = _unit_rows(vectors)
    similarity = unit @ unit.T
    kept: list[int] = []
    for i in range(len(unit)):
        if not kept or similarity[i, kept].max() < threshold:
            kept.append(i)
    return kept


def mmr(
    query_vec: np.ndarray, cand_vecs: np.ndarray, lambda_: float, k: int, relevance: np.ndarray | None = None
) -> list[int]:
    """Maximal marginal relevance: ``k`` candidate positions, each maximising
    ``lambda_ * relevance - (1 - lambda_) * max cosine to those already picked``.

    ``relevance`` defaults to the cosine of each candidate with the query; ``lambda_=1`` is pure relevance order,
    lower values trade relevance for diversity. Ties go to the better-ranked candidate."""
    if not 0 <= lambda_ <= 1:
        raise ValueError(f"MMR lambda must be in [0, 1], got {lambda_}")
    cands = _unit_rows(cand_vecs)
    if relevance is None:
        relevance = cands @ _unit_rows(query_vec.reshape(1, -1))[0]
    relevance = np.asarray(relevance, dtype=np.float64)
    similarity = cands @ cands.T
    picked: list[int] = []
    max_sim = np.full(len(cands), -np.inf)
    available = np.ones(len(cands), dtype=bool)
    for _ in range(min(k, len(cands))):
        redundancy = np.where(np.isfinite(max_sim), max_sim, 0.0)
        score = np.where(available, lambda_ * relevance - (1 - lambda_) * redundancy, -np.inf)
        best = int(np.argmax(score))  # argmax returns the first maximum: the better-ranked candidate
        picked.append(best)
        available[best] = False
        max_sim = np.maximum(max_sim, similarity[best])
    return picked


def bag(items: Sequence[T], n_bags: int, bag_size: int, seed: int) -> list[list[T]]:
    """``n_bags`` random subsets of ``bag_size`` items each (without replacement inside a bag, rank order kept),
    reproducible from ``seed``: different contexts for self-consistency samples over one candidate pool."""
    if n_bags < 1 or bag_size < 1:
        raise ValueError(f"bagging needs n_bags >= 1 and bag_size >= 1, got {n_bags} and {bag_size}")
    rng = np.random.default_rng(seed)
    size = min(bag_size, len(items))
    return [[items[i] for i in np.sort(rng.choice(len(items), size=size, replace=False))] for _ in range(n_bags)]
