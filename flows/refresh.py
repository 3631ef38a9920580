"""``refresh``: bring a variant's datastore up to date with its sources, and report what changed.

Crawl sources are re-fetched first with conditional requests (see docs/crawler.md); their fetch records go to the
catalog's ``fetch_records`` table. Then the datastore is rebuilt, which costs in proportion to the change: dump sources
(WARC, JSONL, Parquet, MediaWiki, files) and crawl folders are fingerprinted by content, so an unchanged source is not
read again; in a changed one only documents whose bytes changed are extracted, only new chunk texts are embedded, and
the previous FAISS index is updated in place (see indexing/index_update.py). The report (returned, logged, and a
markdown artifact on the dashboard) says, per stage, how much was new work and how much was reused.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from catalog.db import Catalog
from catalog.variant import CrawlSource, load_variant
from flows.build import build_datastore
from flows.runtime import (
    artifact_key_name,
    current_flow_run_id,
    make_task_runner,
    prepare_flow_process,
    retry_condition,
)


@task(
    name="crawl",
    task_run_name="crawl-{source.name}",
    retries=1,
    retry_delay_seconds=30,
    retry_condition_fn=retry_condition,
)
def crawl_task(source: CrawlSource) -> tuple[dict, list[dict], list[str]]:
    """Re-crawl one crawl source into its folder: (summary, fetch records as rows, URLs this crawl visited)."""
    from extract.crawler import crawl_source

    result = crawl_source(source)
    records = [r.as_row() for r in result.latest_records()]
    return (
        {"source": source.name, "path": str(source.path), **result.summary()},
        records,
        [r.url for r in result.records],
    )


class PendingChanges:
    """Page changes crawled but not yet in a completed build of the variant, kept in a file of the data dir.

    A refresh writes them right after its crawl, before anything that can fail (a locked catalog, a failed build),
    and deletes them once its build completed. A refresh that failed after crawling has fetched the new pages
    already, so its retry's crawl sees them ``unchanged``; the changes it keeps here are what its report shows.
    """

    _KEEP = ("new", "changed", "gone")  # what a page can be relative to the datastore; "unchanged" is no news

    def __init__(self, data_dir: str, variant: str) -> None:
        self.path = Path(data_dir) / "refresh" / f"{variant}.pending.json"
        self.changes: dict[str, dict[str, str]] = json.loads(self.path.read_text()) if self.path.exists() else {}

    def merge(self, source: str, summary: dict, records: list[dict], visited: list[str]) -> dict:
        """Fold one crawl's records into the pending changes; returns ``summary`` with its ``changes`` counted
        against the datastore (a page changed by an unbuilt crawl and unchanged since stays ``changed``), and
        ``records`` (the catalog rows) carry the same."""
        pending, visited = self.changes.setdefault(source, {}), set(visited)
        for row in records:
            before, now = pending.get(row["url"]), row["change"]
            if before and now in ("unchanged", "") and row["url"] in visited:
                row["change"] = before  # still not built: as it was for the datastore
            elif before == "new" and now == "changed":
                row["change"] = "new"  # new to the datastore, whatever happened since
            if row["change"] in self._KEEP and row["url"] in visited:
                pending[row["url"]] = row["change"]
        changes = Counter(r["change"] for r in records if r["change"] and r["url"] in visited)
        return {**summary, "changes": dict(sorted(changes.items()))}

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".partial")
        partial.write_text(json.dumps(self.changes, sort_keys=True))
        partial.replace(self.path)  # atomic: a crash leaves the old file or the new one

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


def _stage_work(stages: list[dict], stage: str, total: str | None, reused: str) -> dict:
    """Rows that went through ``stage`` as new work versus rows taken from an earlier run: ``total`` (a stats key,
    or the output rows) minus ``reused`` per task that ran; a cached task did no work at all."""
    runs = [s for s in stages if s["stage"] == stage]
    worked = [s for s in runs if not s["cached"]]
    reused_rows = sum(int(s["stats"].get(reused, 0)) for s in worked)
    total_rows = sum(int(s["stats"].get(total, 0)) if total else s["rows"] for s in worked)
    return {
        "tasks": len(runs),
        "cached_tasks": len(runs) - len(worked),
        "new_work": total_rows - reused_rows,
        "reused": reused_rows,
        "rows": sum(s["rows"] for s in runs),
    }


def change_report(variant: str, crawls: list[dict], build: dict) -> dict:
    """What a refresh changed: pages per crawl source, and per stage the rows of new work and the rows reused."""
    stages = build["stages"]
    index = next((s for s in stages if s["stage"] == "index"), None)
    if index is None or index["cached"]:
        index_update = "unchanged"
    else:
        index_update = index["stats"].get("index_update", "full build")
    return {
        "variant": variant,
        "pages": {c["source"]: {**c["changes"], "skipped": sum(c["skipped_by_reason"].values())} for c in crawls},
        "extract": _stage_work(stages, "extract", "documents_read", "documents_reused"),
        "decontaminate": _stage_work(stages, "decontaminate", "documents_in", "documents_reused"),
        "chunk": _stage_work(stages, "chunk", "documents_in", "documents_reused"),
        "embed": _stage_work(stages, "embed", None, "chunks_reused_by_text"),
        "index": {
            "update": index_update,
            **{k: index["stats"][k] for k in ("vectors_added", "vectors_removed") if index and k in index["stats"]},
            "vectors": index["rows"] if index else 0,
        },
        "executed": [f"{s['stage']}:{s['shard']}" if s["shard"] else s["stage"] for s in stages if not s["cached"]],
    }


def report_markdown(report: dict) -> str:
    lines = [f"# Refresh of {report['variant']}", ""]
    if report["pages"]:
        lines += ["| crawl source | pages by change |", "| --- | --- |"]
        for source, counts in report["pages"].items():
            lines.append(f"| {source} | {', '.join(f'{k}: {v}' for k, v in sorted(counts.items()))} |")
        lines.append("")
    lines += [
        "| stage | new work (rows) | reused (rows) | output rows | cached tasks |",
        "| --- | --- | --- | --- | --- |",
    ]
    for stage in ("extract", "decontaminate", "chunk", "embed"):
        w = report[stage]
        lines.append(f"| {stage} | {w['new_work']} | {w['reused']} | {w['rows']} | {w['cached_tasks']}/{w['tasks']} |")
    ix = report["index"]
    changes = f" (+{ix['vectors_added']} / -{ix['vectors_removed']} vectors)" if "vectors_added" in ix else ""
    lines += ["", f"Index: {ix['update']}{changes}, {ix['vectors']} vectors.", ""]
    lines.append(f"Executed: {', '.join(report['executed']) or 'nothing (everything was up to date)'}.")
    return "\n".join(lines)


@flow(name="refresh", log_prints=True)
def refresh(
    variant_path: str, data_dir: str, runner: str = "threads", workers: int | None = None, address: str | None = None
) -> dict:
    """Re-crawl, register the crawl, rebuild what changed (with the ``runner`` task runner), report the changes."""
    variant = load_variant(variant_path)
    crawl_sources = [s for s in variant.sources if isinstance(s, CrawlSource) and s.seeds]
    crawled = [f.result() for f in [crawl_task.submit(s) for s in crawl_sources]]
    pending = PendingChanges(data_dir, variant.name)
    summaries = [pending.merge(summary["source"], summary, records, visited) for summary, records, visited in crawled]
    pending.save()  # before anything that can fail: a retry reports these pages as changed, not unchanged
    if crawled:
        with Catalog.in_data_dir(data_dir) as catalog:
            run_id = catalog.start_run(variant.name, "crawl", flow_run_id=current_flow_run_id())
            for summary, (_, records, _) in zip(summaries, crawled, strict=True):
                catalog.register_fetch_records(variant.name, summary["source"], run_id, records)
            catalog.finish_run(run_id, "completed", {"crawled": summaries})
    build_flow = build_datastore.with_options(task_runner=make_task_runner(runner, workers, address))
    build = build_flow(variant_path, data_dir)
    pending.clear()  # the datastore now holds every crawled change
    report = change_report(variant.name, summaries, build)
    markdown = report_markdown(report)
    get_run_logger().info("%s", markdown)
    create_markdown_artifact(markdown, key=artifact_key_name(f"{variant.name}-refresh"), description="what changed")
    return {"variant": variant.name, "crawled": summaries, "build": build, "changes": report}


def run_refresh(
    variant_path, data_dir, runner: str = "threads", workers: int | None = None, address: str | None = None
) -> dict:
    """``refresh`` in this process (against ``PREFECT_API_URL`` when set), paths made absolute."""
    prepare_flow_process()
    return refresh(str(Path(variant_path).resolve()), str(Path(data_dir).resolve()), runner, workers, address)
