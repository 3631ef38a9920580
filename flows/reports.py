"""Read-only reports over the catalog (runs, contamination), shared by the CLI and the dashboard artifacts."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from catalog.db import Catalog
from catalog.errors import RereadError
from catalog.variant import Variant


def recent_runs(data_dir: str | Path, limit: int = 10) -> list[dict]:
    with Catalog.in_data_dir(data_dir, read_only=True) as catalog:
        runs = catalog.recent_runs(limit).to_dicts()
        now = datetime.now(UTC).replace(tzinfo=None)
        for run in runs:
            # a run in flight: so far; one found dead: until its last heartbeat
            end = run["finished_at"] or (run.get("heartbeat_at") if run["status"] == "interrupted" else now)
            run["seconds"] = (end - run["started_at"]).total_seconds()
            run["stats"] = json.loads(run["stats"] or "{}")
            stages = catalog.query(
                "SELECT stage, shard, row_count, stats FROM stage_outputs WHERE run_id = ? ORDER BY created_at",
                [run["run_id"]],
            ).to_dicts()
            run["stages"] = [{**s, "stats": json.loads(s["stats"] or "{}")} for s in stages]
    return runs


def contamination_report(variant: Variant, data_dir: str | Path) -> dict:
    """Per benchmark: items checked, items found, rate; and the removed documents or chunks with the items that
    matched them, each named as its source knows it (source, URL, file:line or file#record) beside Reread's id."""
    action = variant.decontamination.action
    stage = "chunk" if action == "drop_chunk" else "decontaminate"
    with Catalog.in_data_dir(data_dir, read_only=True) as catalog:
        record = catalog.datastore(variant.name)
        keys = catalog.query(
            "SELECT artifact_key FROM stage_outputs WHERE stage = ? AND config_hash = ? AND variant = ?",
            [stage, variant.stage_hash(stage), variant.name],
        )["artifact_key"].to_list()
        if record is None and not keys:
            raise RereadError(f"variant {variant.name!r} was not built in {data_dir}; run: reread build {variant.path}")
        if not keys:
            return {"variant": variant.name, "action": action, "benchmarks": [], "removed": []}
        summary = catalog.query(
            "SELECT benchmark, max(items_checked) AS items_checked, sum(items_found) AS items_found"
            " FROM contamination_summary WHERE list_contains(?, artifact_key) GROUP BY benchmark ORDER BY benchmark",
            [keys],
        )
        # items found in several shards count once: recount distinct items from the hits. Where each document came
        # from: its latest raw-document row (a refreshed document may have moved in its file).
        hits = catalog.query(
            "SELECT h.benchmark, h.item_id, h.doc_id, h.chunk_id, r.source, r.url, r.input_ref"
            " FROM contamination_hits h LEFT JOIN ("
            "   SELECT d.doc_id, arg_max(d.source, o.created_at) AS source, arg_max(d.url, o.created_at) AS url,"
            "   arg_max(d.input_ref, o.created_at) AS input_ref"
            "   FROM raw_documents d JOIN stage_outputs o USING (artifact_key) GROUP BY d.doc_id"
            " ) r USING (doc_id) WHERE list_contains(?, h.artifact_key)",
            [keys],
        )
    found = {b: set() for b in summary["benchmark"].to_list()}
    removed: dict[tuple[str, str], set[str]] = {}
    origin: dict[tuple[str, str], dict] = {}
    for h in hits.iter_rows(named=True):
        found.setdefault(h["benchmark"], set()).add(h["item_id"])
        kind, ident = ("chunk", h["chunk_id"]) if action == "drop_chunk" else ("document", h["doc_id"])
        removed.setdefault((kind, ident), set()).add(f"{h['benchmark']}/{h['item_id']}")
        origin[kind, ident] = {"doc_id": h["doc_id"], **{k: h[k] or "" for k in ("source", "url", "input_ref")}}
    benchmarks = [
        {
            "benchmark": row["benchmark"],
            "items_checked": int(row["items_checked"]),
            "items_found": len(found[row["benchmark"]]),
            "rate": len(found[row["benchmark"]]) / max(int(row["items_checked"]), 1),
        }
        for row in summary.iter_rows(named=True)
    ]
    return {
        "variant": variant.name,
        "action": action,
        "benchmarks": benchmarks,
        "removed": [{"kind": k, "id": i, **origin[k, i], "items": sorted(v)} for (k, i), v in sorted(removed.items())],
    }


# ---------------------------------------------------------------- dashboard tables
def readable(name: str, value: object) -> str:
    """A stat value as a person reads it: epoch times (``*_at``) as UTC dates, durations (``seconds``, ``*_s``) in
    s/min/h, counts with thousands separators, ratios to 4 significant digits, lists joined."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float) and name.endswith("_at"):
        return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    if isinstance(value, int | float) and (name == "seconds" or name.endswith(("_s", "_seconds"))):
        return _duration(float(value))
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list | tuple):
        text = ", ".join(readable(name, v) for v in value)
        return text if len(text) <= 200 else text[:197] + "..."
    return str(value)


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.2f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"


def stat_rows(stats: dict, prefix: str = "") -> list[dict[str, str]]:
    """``{"metric", "value"}`` rows of a stats dict, nested dicts flattened (``timing: started_at``), readable."""
    rows = []
    for name, value in sorted(stats.items()):
        if isinstance(value, dict):
            rows += stat_rows(value, f"{prefix}{name}: ")
        else:
            rows.append({"metric": f"{prefix}{name}", "value": readable(name, value)})
    return rows


def stage_table_rows(manifest, cached: bool) -> list[dict[str, str]]:
    """The dashboard table of one stage output: its stats, rows out, cached or not, rejections by reason."""
    from catalog.stage_runner import rejection_counts

    rows = stat_rows(manifest.stats)
    rows += [{"metric": "rows out", "value": f"{manifest.rows:,}"}, {"metric": "cached", "value": readable("", cached)}]
    rows += [{"metric": f"rejected: {r}", "value": f"{n:,}"} for r, n in sorted(rejection_counts(manifest).items())]
    return rows
