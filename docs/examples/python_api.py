"""Build, search, evaluate and compare from Python (a notebook cell each): the example of docs/python-api.md.

    python docs/examples/python_api.py            # the bundled vaswani and vaswani-hnsw variants, ./reread-data

Runs as is from any directory; the tests run ``main`` on small variants they built.
"""

from __future__ import annotations

import os
from pathlib import Path

# The process environment `reread` sets for its commands: no model-hub access, no Prefect telemetry, OpenMP threads
# that sleep when idle. Importing Reread changes no environment variable, so a notebook sets these itself, first.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from catalog.variant import load_variant  # noqa: E402
from flows.build import run_build  # noqa: E402
from flows.datastore import open_retriever  # noqa: E402
from flows.evaluate import compare_variants, evaluate  # noqa: E402
from sample_data import VARIANTS_DIR  # noqa: E402


def main(variant_a: Path, variant_b: Path, data_dir: Path, task: str, build: bool = True) -> dict:
    if build:  # unchanged stages are skipped: a second call only checks
        for variant in (variant_a, variant_b):
            run_build(variant, data_dir)

    retriever = open_retriever(load_variant(variant_a), data_dir)
    hits = retriever.search(["measurement of dielectric constant"], k=5)[0]
    for hit in hits:
        print(hit.rank, round(hit.score, 3), f"{hit.source}:{hit.source_doc_id}", hit.text[:60].replace("\n", " "))

    quality = evaluate(str(variant_a), str(data_dir), [task])
    print(quality["tasks"][task])

    comparison = compare_variants([str(variant_a), str(variant_b)], str(data_dir), task)
    print(comparison["summary"], comparison["differences"], comparison["html"], sep="\n")
    return {"hits": hits, "quality": quality, "comparison": comparison}


if __name__ == "__main__":
    main(VARIANTS_DIR / "vaswani.yaml", VARIANTS_DIR / "vaswani-hnsw.yaml", Path("reread-data"), "vaswani")
