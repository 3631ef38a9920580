"""Prefect flows of the training-data theory: one flow per experiment (result JSON + figure PNG in an output
folder), and the corpus-mixture advice for a built datastore. Orchestration only: the work is in ``eval.theory``."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from prefect import flow, task

from catalog.errors import RereadError
from catalog.hashing import stable_hash
from eval.theory.advisor import AdvisorConfig, MixtureReport, mixture_advice
from eval.theory.experiments import EXPERIMENTS, config_from_overrides
from eval.theory.jsonable import json_safe
from eval.theory.plots import save_figure

THEORY_DIR = "theory"


def default_out_dir(data_dir: Path, experiment: str) -> Path:
    return Path(data_dir) / THEORY_DIR / experiment


@task(name="theory-experiment")
def run_experiment(name: str, config: Any) -> dict:
    return EXPERIMENTS[name].run(config)


@task(name="theory-outputs")
def write_outputs(name: str, config: Any, result: dict, out_dir: Path) -> dict:
    """``<name>.json`` (config, its hash and the result) and ``<name>.png``; returns their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    settings = asdict(config)
    document = {"experiment": name, "config": settings, "config_hash": stable_hash(settings), "result": result}
    json_path = out_dir / f"{name}.json"
    tmp = json_path.with_name(json_path.name + ".tmp")
    tmp.write_text(json.dumps(json_safe(document), indent=1, allow_nan=False), encoding="utf-8")
    tmp.replace(json_path)
    png_path = save_figure(name, result, out_dir / f"{name}.png")
    return {"experiment": name, "config_hash": document["config_hash"], "json": str(json_path), "png": str(png_path)}


def _experiment_flow(name: str) -> Any:
    """The Prefect flow ``theory-<name>`` of a registered experiment: config from overrides, run, write outputs."""

    def run(out_dir: Path, overrides: dict[str, Any] | None = None) -> dict:
        config = config_from_overrides(name, overrides or {})
        return write_outputs(name, config, run_experiment(name, config), out_dir)

    return flow(name=f"theory-{name}", description=EXPERIMENTS[name].summary)(run)


# One flow per registered experiment, so a new experiment needs no edit here.
THEORY_FLOWS = {name: _experiment_flow(name) for name in EXPERIMENTS}


# ---------------------------------------------------------------- corpus-mixture advice for a built datastore
def _benchmark_path(variant: Any, benchmark: str, benchmark_path: Path | None) -> tuple[Path, dict]:
    """The benchmark's path: given, or the one the variant's decontamination section names."""
    for ref in variant.decontamination.benchmarks:
        if ref.name == benchmark:
            return (benchmark_path or ref.path), dict(ref.options)
    if benchmark_path is None:
        raise RereadError(
            f"benchmark {benchmark!r}: no --benchmark-path given and variant {variant.name!r} does not name it "
            "under decontamination.benchmarks"
        )
    return benchmark_path, {}


def run_mixture_advice(
    variant_path: Path,
    benchmark: str,
    data_dir: Path,
    benchmark_path: Path | None = None,
    config: AdvisorConfig | None = None,
    max_per_source: int = 5000,
    max_questions: int | None = None,
) -> MixtureReport:
    """Second moments of a built datastore's chunk embeddings per source against the benchmark's question
    embeddings (same embedder as the datastore) -> hardness, coverage, recommended weights and caveats."""
    from catalog.variant import load_variant
    from eval.benchmarks import load_benchmark
    from eval.theory.datastore_sources import load_source_embeddings
    from flows.datastore import locate_datastore
    from indexing.embed import Embedder

    variant = load_variant(variant_path)
    paths = locate_datastore(variant, data_dir)
    path, options = _benchmark_path(variant, benchmark, benchmark_path)
    items = load_benchmark(benchmark, path, **options)
    if max_questions is not None:
        items = items[:max_questions]
    if len(items) < 2:
        raise RereadError(f"benchmark {benchmark!r} at {path}: {len(items)} questions; the advice needs at least 2")
    sources = load_source_embeddings(paths.chunks, paths.embeddings_dirs(), max_per_source)
    questions = Embedder(variant.embedder).encode_queries([item.question for item in items])
    return mixture_advice(
        sources.embeddings, np.asarray(questions), config or AdvisorConfig(), source_sizes=sources.sizes
    )
