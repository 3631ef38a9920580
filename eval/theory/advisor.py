"""Corpus-mixture advisor: the task-selection theory applied, as a heuristic prior, to a retrieval datastore.

Each corpus source is a "task" whose covariance is the second moment of its chunk embeddings; the target is the second
moment of a benchmark's question embeddings. Everything is projected onto the target's top-``r`` eigen-directions
(benchmarks have far fewer questions than embedding dimensions) and the target is shrunk towards isotropy there.
The caveats of docs/theory.md ("Caveats of the datastore mapping") travel with every report: the mapping is an
analogy, not a consequence of the theory.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from catalog.records import Rejection
from eval.theory.jsonable import json_safe
from eval.theory.mixture import (
    CoverageInfeasibleError,
    coverage_constraints,
    diagnose,
    mixture_weights,
    qp_coeffs,
    size_proportional_weights,
    uniform_weights,
)

ADVISOR_STAGE = "mixture_advice"
MIN_CHUNKS_PER_DIRECTION = 10  # docs/theory.md caveat 4: "at least about 10 r chunks per source"
MIN_QUESTIONS_PER_DIRECTION = 5  # r <~ N_questions / 5

CAVEATS = (
    "Heuristic analogy, not a theorem: the theory holds for a preconditioned linear solver whose preconditioner is "
    "set by training-input second moments, with sources differing only in input covariance. None of that holds for "
    "an LLM with retrieval; use these weights as a cheap prior and validate against a downstream metric.",
    "Datastore as training data vs as retrieved context: the QP speaks to training mixtures. For RAG, retrieved chunks "
    "play the test prompt; the theory then says more retrieved examples stabilise long CoT, and content in directions "
    "the model never trained on (mu > 2) predicts longer CoT degrades answers.",
    "Mixture model: chunks of several sources in one context behave like the pooled model, where the plain QP can be "
    "catastrophic for an under-covered target direction; the coverage constraints and max mu diagnostic guard this.",
    "Reweighting cannot create missing skills: a target direction no source covers stays uncovered whatever the "
    "weights (listed as uncoverable directions).",
    "Rank and noise: the target is projected onto its top-r directions (r <= questions/5) and shrunk towards "
    "isotropy; sources need about 10 r chunks; hardness is reported in that subspace (tr / lambda_r) with the "
    "effective rank, never from a raw lambda_min.",
    "Centring and scale: all second moments use one common centre (recorded) and the same embedding model and "
    "normalisation; the mu > 2 threshold is scale-dependent.",
    "Metric mismatch: the objective weights every direction equally (weight recovery); QA accuracy is closer to a "
    "Sigma-weighted error that de-emphasises weak directions.",
    "n (items per training context) enters only through the ridge tr(Lambda)/n: long contexts reduce the gamma "
    "variant to the reported QP; short ones favour harder-than-target sources.",
    "Ignored: source size, duplication, label quality and noise, and whether chunks contain the answers. Start "
    "ablations from these weights and compare with the uniform and size-proportional baselines shown.",
)


@dataclass(frozen=True)
class AdvisorConfig:
    rank: int | None = None  # target directions kept; None: min(questions / 5, dim)
    shrinkage: float = 0.1  # Sigma <- (1 - a) Sigma + a tr(Sigma)/r I in the subspace
    center: str = "union"  # "union" (mean of all sources and the target), "target", or "none"
    variant: str = "reported"  # QP variant (eval.theory.mixture.QP_VARIANTS)
    n: float = np.inf  # training items per context; inf: long contexts
    model: str = "pooled"  # mixture model for the forward diagnostic
    coverage_margin: float | None = 0.25  # keep every target direction at mu < 2 - margin; None: plain QP
    kmax: int = 20


@dataclass(frozen=True)
class SourceProfile:
    name: str
    chunks: int
    hardness: float  # tr(Lambda_r) / lambda_min(Lambda_r) in the target subspace; inf when fewer chunks than r
    effective_rank: float  # exp(entropy of the normalised eigenvalues) in the target subspace
    relevance: float  # c_l = tr(Sigma^-1 Lambda_l): energy in target-whitened space
    coverage: list[float]  # u_j^T Lambda u_j / sigma_j per target direction (>= 0.5 keeps mu <= 2 alone)
    covered_fraction: float  # share of target directions with coverage >= 0.5
    few_chunks: bool  # fewer than MIN_CHUNKS_PER_DIRECTION * rank chunks: a noisy estimate


@dataclass(frozen=True)
class WeightingResult:
    name: str  # qp, uniform, size_proportional
    weights: dict[str, float]
    objective: float
    max_mu: float
    overthinking: bool
    k_star: int | None
    errors: list[float]  # Err(k), k = 1..kmax, under the diagnostic's mixture model


@dataclass(frozen=True)
class MixtureReport:
    config: dict
    rank: int
    dim: int
    questions: int
    center: str
    sources: list[SourceProfile]
    weightings: list[WeightingResult]
    uncoverable_directions: list[int]  # target directions (descending sigma) that no source reaches
    coverage_margin_held: float | None  # margin the recommended weights satisfy; None: no mixture covers the target
    rejections: list[Rejection] = field(default_factory=list)
    caveats: tuple[str, ...] = CAVEATS

    @property
    def recommended(self) -> dict[str, float]:
        return self.weightings[0].weights

    def as_dict(self) -> dict:
        """Valid JSON data: infinite values (a singular source's hardness, n = inf) become the strings "inf"."""
        out = asdict(self)
        out["rejections"] = [r.as_row() for r in self.rejections]
        out["recommended"] = self.recommended
        out["caveats"] = list(self.caveats)
        return json_safe(out)


def second_moment(embeddings: np.ndarray, center: np.ndarray | None = None) -> np.ndarray:
    """``E[(e - c)(e - c)^T]`` over the rows (``c = 0`` when ``center`` is None), in float64."""
    x = np.asarray(embeddings, dtype=np.float64)
    if center is not None:
        x = x - center
    return x.T @ x / len(x)


def target_subspace(sigma: np.ndarray, rank: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-``rank`` eigenvalues (descending) and eigenvectors ``U_r`` of the target second moment."""
    vals, vecs = np.linalg.eigh(sigma)
    order = np.argsort(vals)[::-1][:rank]
    return vals[order], vecs[:, order]


def shrink(sigma_r: np.ndarray, alpha: float) -> np.ndarray:
    """Shrink towards the isotropic matrix of equal trace; regularises a second moment estimated from few rows."""
    r = sigma_r.shape[0]
    return (1 - alpha) * sigma_r + alpha * np.trace(sigma_r) / r * np.eye(r)


def _center(name: str, sources: dict[str, np.ndarray], target: np.ndarray) -> np.ndarray | None:
    if name == "none":
        return None
    if name == "target":
        return target.mean(axis=0)
    if name == "union":
        stacked = [*sources.values(), target]
        return sum(s.sum(axis=0, dtype=np.float64) for s in stacked) / sum(len(s) for s in stacked)
    raise ValueError(f"unknown centre {name!r}; choose union, target or none")


def _valid_sources(source_embeddings: dict[str, np.ndarray], dim: int) -> tuple[dict[str, np.ndarray], list[Rejection]]:
    """Keep sources with at least two finite rows of the target's dimension; reject the rest by reason."""
    kept, rejected = {}, []
    for name, emb in source_embeddings.items():
        emb = np.asarray(emb)
        if emb.ndim != 2 or emb.shape[1] != dim:
            reason, detail = "dimension_mismatch", f"shape {emb.shape}, target dimension {dim}"
        elif len(emb) < 2:
            reason, detail = "too_few_chunks", f"{len(emb)} chunk embeddings; need at least 2"
        elif not np.all(np.isfinite(emb)):
            reason, detail = "non_finite_embedding", "NaN or infinite values"
        else:
            kept[name] = emb
            continue
        rejected.append(Rejection(ADVISOR_STAGE, name, name, reason, detail))
    return kept, rejected


def _profile(name: str, chunks: int, lam_r: np.ndarray, sigma_r: np.ndarray, rank: int) -> SourceProfile:
    eig = np.clip(np.linalg.eigvalsh(lam_r), 0.0, None)
    probs = eig / eig.sum() if eig.sum() > 0 else np.full(rank, 1.0 / rank)
    entropy = -np.sum(probs[probs > 0] * np.log(probs[probs > 0]))
    coverage = np.diag(lam_r) / np.diag(sigma_r)  # sigma_r is diagonal in its own eigenbasis (before shrinkage too)
    return SourceProfile(
        name=name,
        chunks=chunks,
        hardness=float(eig.sum() / eig[0]) if eig[0] > 0 else float("inf"),
        effective_rank=float(np.exp(entropy)),
        relevance=float(np.trace(np.linalg.solve(sigma_r, lam_r))),
        coverage=[float(c) for c in coverage],
        covered_fraction=float(np.mean(coverage >= 0.5)),
        few_chunks=chunks < MIN_CHUNKS_PER_DIRECTION * rank,
    )


def mixture_advice(
    source_embeddings: dict[str, np.ndarray],
    target_embeddings: np.ndarray,
    config: AdvisorConfig = AdvisorConfig(),
    source_sizes: dict[str, float] | None = None,
) -> MixtureReport:
    """Hardness, coverage of the target's top directions and recommended weights per source, next to the uniform and
    size-proportional baselines and the caveats of docs/theory.md. ``source_sizes`` default to the embedding counts (pass the
    full chunk counts when the embeddings are a sample)."""
    target = np.asarray(target_embeddings)
    if target.ndim != 2 or len(target) < 2 or not np.all(np.isfinite(target)):
        raise ValueError(
            f"target embeddings must be a finite (questions, dim) array with >= 2 rows, got {target.shape}"
        )
    sources, rejections = _valid_sources(source_embeddings, target.shape[1])
    if not sources:
        raise ValueError(f"no usable source embeddings: {[f'{r.source}: {r.reason}' for r in rejections]}")
    center = _center(config.center, sources, target)
    rank = min(config.rank or max(1, len(target) // MIN_QUESTIONS_PER_DIRECTION), target.shape[1])
    sigma_vals, basis = target_subspace(second_moment(target, center), rank)
    sigma_raw = np.diag(sigma_vals)
    sigma = shrink(sigma_raw, config.shrinkage)
    lams = {name: basis.T @ second_moment(emb, center) @ basis for name, emb in sources.items()}
    names = list(lams)
    lam_list = [lams[name] for name in names]
    profiles = [_profile(name, len(sources[name]), lams[name], sigma, rank) for name in names]

    weights, margin_held, uncoverable = _recommended_weights(lam_list, sigma, config)
    sizes = [float((source_sizes or {}).get(name, len(sources[name]))) for name in names]
    baselines = {
        "qp": weights,
        "uniform": uniform_weights(len(names)),
        "size_proportional": size_proportional_weights(sizes),
    }
    coeffs = qp_coeffs(lam_list, sigma, config.variant, config.n)
    weightings = []
    for label, pi in baselines.items():
        diag = diagnose(lam_list, pi, sigma, config.n, config.model, config.kmax, config.coverage_margin or 0.0)
        weightings.append(
            WeightingResult(
                name=label,
                weights={name: float(p) for name, p in zip(names, pi, strict=True)},
                objective=coeffs.objective(pi),
                max_mu=diag.max_mu,
                overthinking=diag.overthinking,
                k_star=diag.k_star,
                errors=[float(e) for e in diag.errors],
            )
        )
    return MixtureReport(
        config=asdict(config),
        rank=rank,
        dim=int(target.shape[1]),
        questions=len(target),
        center=config.center,
        sources=profiles,
        weightings=weightings,
        uncoverable_directions=uncoverable,
        coverage_margin_held=margin_held,
        rejections=rejections,
    )


def _recommended_weights(
    lams: list[np.ndarray], sigma: np.ndarray, config: AdvisorConfig
) -> tuple[np.ndarray, float | None, list[int]]:
    """The QP under coverage constraints at the configured margin, else at margin 0 (``mu < 2``), else the plain QP;
    returns the weights, the margin that held (None: unconstrained) and the directions no source reaches.

    ``sigma`` is diagonal in the target's own basis, so direction j is the target's j-th top direction."""
    if config.coverage_margin is None:
        return mixture_weights(lams, sigma, config.variant, config.n).pi, None, []
    uncoverable = coverage_constraints(lams, sigma, config.n, config.coverage_margin).uncoverable()
    for margin in dict.fromkeys((config.coverage_margin, 0.0)):
        try:
            return mixture_weights(lams, sigma, config.variant, config.n, margin).pi, margin, uncoverable.tolist()
        except CoverageInfeasibleError:
            continue
    return mixture_weights(lams, sigma, config.variant, config.n).pi, None, uncoverable.tolist()
