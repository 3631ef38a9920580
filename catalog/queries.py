"""Read queries over the catalog that reports, evaluation and the CLI share: the SQL lives here, in ``catalog/``,
next to the schema it reads (``catalog.db``); callers get data frames or plain values."""

from __future__ import annotations

import polars as pl

from catalog.db import Catalog


def run_stage_outputs(catalog: Catalog, run_id: str) -> pl.DataFrame:
    """The stage outputs a run registered, in the order it made them: stage, shard, row_count, stats (JSON text)."""
    return catalog.query(
        "SELECT stage, shard, row_count, stats FROM stage_outputs WHERE run_id = ? ORDER BY created_at", [run_id]
    )


def output_keys(catalog: Catalog, variant: str, stage: str, config_hash: str) -> list[str]:
    """Artifact keys of a variant's outputs of ``stage`` made with ``config_hash``."""
    return catalog.query(
        "SELECT artifact_key FROM stage_outputs WHERE stage = ? AND config_hash = ? AND variant = ?",
        [stage, config_hash, variant],
    )["artifact_key"].to_list()


def contamination_summary(catalog: Catalog, keys: list[str]) -> pl.DataFrame:
    """Per benchmark over the artifacts ``keys``: items checked (max over shards) and items found (summed)."""
    return catalog.query(
        "SELECT benchmark, max(items_checked) AS items_checked, sum(items_found) AS items_found"
        " FROM contamination_summary WHERE list_contains(?, artifact_key) GROUP BY benchmark ORDER BY benchmark",
        [keys],
    )


def contamination_hits(catalog: Catalog, keys: list[str]) -> pl.DataFrame:
    """Every contamination hit of the artifacts ``keys`` with where its document came from: the latest raw-document
    row of that doc_id (a refreshed document may have moved in its file): benchmark, item_id, doc_id, chunk_id,
    source, url, input_ref."""
    return catalog.query(
        "SELECT h.benchmark, h.item_id, h.doc_id, h.chunk_id, r.source, r.url, r.input_ref"
        " FROM contamination_hits h LEFT JOIN ("
        "   SELECT d.doc_id, arg_max(d.source, o.created_at) AS source, arg_max(d.url, o.created_at) AS url,"
        "   arg_max(d.input_ref, o.created_at) AS input_ref"
        "   FROM raw_documents d JOIN stage_outputs o USING (artifact_key) GROUP BY d.doc_id"
        " ) r USING (doc_id) WHERE list_contains(?, h.artifact_key)",
        [keys],
    )


def contaminated_items(catalog: Catalog, variant: str, benchmark: str) -> set[str]:
    """Benchmark item ids found in any of the variant's decontamination outputs."""
    frame = catalog.query(
        "SELECT DISTINCT h.item_id FROM contamination_hits h JOIN stage_outputs o USING (artifact_key)"
        " WHERE o.variant = ? AND h.benchmark = ?",
        [variant, benchmark],
    )
    return set(frame["item_id"].to_list()) if frame.height else set()


def sample_outcomes(catalog: Catalog, task: str, variant: str | None = None) -> pl.DataFrame:
    """Stored reader samples of a task (optionally of one variant): reader, strategy, question_id, correct."""
    query = "SELECT reader, strategy, question_id, correct FROM eval_samples WHERE task = ?"
    params = [task]
    if variant:
        query += " AND variant = ?"
        params.append(variant)
    return catalog.query(query, params)


def run_exists(catalog: Catalog, run_id: str) -> bool:
    return catalog.query_one("SELECT 1 FROM runs WHERE run_id = ?", [run_id]) is not None


def variant_known(catalog: Catalog, variant: str) -> bool:
    """Whether any run or stage output of this variant name is in the catalog."""
    return (
        catalog.query_one(
            "SELECT 1 FROM runs WHERE variant = ? UNION ALL SELECT 1 FROM stage_outputs WHERE variant = ? LIMIT 1",
            [variant, variant],
        )
        is not None
    )


def run_rejections(catalog: Catalog, run_id: str) -> pl.DataFrame:
    """Rejections recorded by one run's stages: stage, source, input_ref, reason, detail."""
    return catalog.query(
        "SELECT stage, source, input_ref, reason, detail FROM rejections WHERE run_id = ?"
        " ORDER BY stage, source, input_ref",
        [run_id],
    )


def variant_rejections(catalog: Catalog, variant: str) -> pl.DataFrame:
    """Rejections of a variant's current outputs: for each (stage, shard) its latest registered artifact, so a
    rebuilt stage's old rejections do not count twice. Columns as ``run_rejections``."""
    return catalog.query(
        "WITH latest AS (SELECT arg_max(artifact_key, created_at) AS artifact_key FROM stage_outputs"
        "   WHERE variant = ? GROUP BY stage, shard)"
        " SELECT r.stage, r.source, r.input_ref, r.reason, r.detail FROM rejections r JOIN latest USING (artifact_key)"
        " ORDER BY r.stage, r.source, r.input_ref",
        [variant],
    )


def datastore_outputs(catalog: Catalog, variant: str) -> pl.DataFrame:
    """Every stage output (extract to index) the variant's current datastore was built from, whichever run or variant
    registered it first: what its build run made or took as it was: artifact_key, stage, shard, row_count, stats (JSON
    text), path. (A catalog from before ``run_artifacts`` gives only the outputs the build run registered itself.)"""
    return catalog.query(
        "WITH build AS (SELECT run_id FROM datastores WHERE variant = ?)"
        " SELECT artifact_key, stage, shard, row_count, stats, path FROM stage_outputs"
        " WHERE run_id IN (SELECT run_id FROM build)"
        "   OR artifact_key IN (SELECT artifact_key FROM run_artifacts JOIN build USING (run_id))"
        " ORDER BY created_at",
        [variant],
    )
