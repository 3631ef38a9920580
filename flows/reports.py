"""Read-only reports over the catalog (runs, contamination), shared by the CLI and the dashboard artifacts."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from catalog import queries
from catalog.db import Catalog
from catalog.errors import RereadError
from catalog.variant import Variant


def recent_runs(data_dir: str | Path, limit: int = 10) -> list[dict]:
    with Catalog.in_data_dir(data_dir, read_only=True) as catalog:
        runs = catalog.recent_runs(limit).to_dicts()
        now = datetime.now(UTC).replace(tzinfo=None)
        for run in runs:
            # a run in flight: so far; one found dead: until its last heartbeat
            last_sign = run.get("heartbeat_at") or run["started_at"]  # no heartbeat: a run recorded before them
            end = run["finished_at"] or (last_sign if run["status"] == "interrupted" else now)
            run["seconds"] = (end - run["started_at"]).total_seconds()
            run["stats"] = json.loads(run["stats"] or "{}")
            stages = queries.run_stage_outputs(catalog, run["run_id"]).to_dicts()
            run["stages"] = [{**s, "stats": json.loads(s["stats"] or "{}")} for s in stages]
    return runs


def rejections_report(target: str, data_dir: str | Path, examples: int = 5) -> dict:
    """The rejections of a run (``target`` is a run id) or of a variant's current outputs (``target`` is a variant
    name or YAML): counts per stage and reason, most frequent first, then up to ``examples`` examples of each with
    their input and detail."""
    from catalog.variant import load_variant

    with Catalog.in_data_dir(data_dir, read_only=True) as catalog:
        if queries.run_exists(catalog, target):
            kind, name, frame = "run", target, queries.run_rejections(catalog, target)
        else:
            path = Path(target)
            name = load_variant(path).name if path.suffix in (".yaml", ".yml") and path.is_file() else target
            kind, frame = "variant", queries.variant_rejections(catalog, name)
            if frame.height == 0 and not queries.variant_known(catalog, name):
                raise RereadError(f"{target!r}: no run with this id and no variant of this name in {data_dir}")
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in frame.iter_rows(named=True):
        groups.setdefault((row["stage"], row["reason"]), []).append(row)
    ordered = sorted(groups.items(), key=lambda item: (-len(item[1]), item[0]))
    return {
        kind: name,
        "total": frame.height,
        "reasons": [
            {
                "stage": stage,
                "reason": reason,
                "count": len(rows),
                "examples": [{k: r[k] for k in ("source", "input_ref", "detail")} for r in rows[:examples]],
            }
            for (stage, reason), rows in ordered
        ],
    }


def contamination_report(variant: Variant, data_dir: str | Path) -> dict:
    """Per benchmark: items checked, items found, rate; and the removed documents or chunks with the items that
    matched them, each named as its source knows it (source, URL, file:line or file#record) beside Reread's id."""
    action = variant.decontamination.action
    stage = "chunk" if action == "drop_chunk" else "decontaminate"
    with Catalog.in_data_dir(data_dir, read_only=True) as catalog:
        record = catalog.datastore(variant.name)
        keys = queries.output_keys(catalog, variant.name, stage, variant.stage_hash(stage))
        if record is None and not keys:
            raise RereadError(f"variant {variant.name!r} was not built in {data_dir}; run: reread build {variant.path}")
        if not keys:
            return {"variant": variant.name, "action": action, "benchmarks": [], "removed": []}
        summary = queries.contamination_summary(catalog, keys)
        # items found in several shards count once: recount distinct items from the hits
        hits = queries.contamination_hits(catalog, keys)
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
    for name, value in sorted((str(k), v) for k, v in stats.items()):  # keys may be ints (dedup's cluster sizes)
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
