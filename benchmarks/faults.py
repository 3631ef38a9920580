"""Fault figures (issue 14): what a small variant's datastore survives, each fault against a clean build.

Every build is a real ``reread build`` process with its own temporary Prefect server. Faults:

- SIGKILL of the build while a stage is in flight (extract, dedup, chunk, embed, index: the kill is sent as soon as
  that stage's ``.partial`` folder appears), then: processes of the build left running, the killed run's status,
  and a re-run compared with the clean build (index ids, search hits, catalog row counts per table);
- two builds of different variants, and two of the same variant, started together on one data dir; a search and
  ``reread runs`` while a build holds the catalog;
- a truncated ``index.faiss``, embedding shard and chunk Parquet in a copy of the clean data dir: what search says,
  and what a build then makes of it;
- a data dir on a full filesystem (a tmpfs of half the clean build's artifacts; needs root), then space freed and
  the same build run again.

Prints a table and writes JSON (``benchmarks/results/faults.json``). Run it niced: ``nice python benchmarks/faults.py``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "sample_data"
QUERIES = ["digital computer storage", "transistor amplifier circuit", "history of the city", "football match"]
STAGES = ("extract", "dedup", "chunk", "embed", "index")
DATA_TABLES = (
    "stage_outputs", "raw_documents", "extracted_texts", "rejections", "contamination_hits", "contamination_summary",
    "datastores", "sources",
)  # fmt: skip


# ---------------------------------------------------------------- the variant and commands
def write_variants(folder: Path, docs: int) -> tuple[Path, Path]:
    """Variant A (Vaswani abstracts and C4 pages, near-dup dedup) and B (the same sources, other chunking)."""
    folder.mkdir(parents=True, exist_ok=True)
    body = f"""sources:
  - {{name: npl, type: trec, path: {SAMPLE / "vaswani" / "doc-text.trec"}, limit: {docs}}}
  - {{name: c4, type: jsonl, path: {SAMPLE / "jsonl" / "c4_sample.jsonl"}, text_field: text, url_field: url, limit: 40}}
extractor: plain
dedup: {{exact: true, near: true}}
embedder: {{shard_size: 128, checkpoint_rows: 64}}
"""
    a, b = folder / "a.yaml", folder / "b.yaml"
    a.write_text("name: faults-a\n" + body + "chunking: {size: 96, overlap: 8}\n")
    b.write_text("name: faults-b\n" + body + "chunking: {size: 160, overlap: 16}\n")
    return a, b


def _env() -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO), "PREFECT_LOGGING_LEVEL": "WARNING"}
    env.pop("PREFECT_API_URL", None)
    return env


def start(*args: str) -> subprocess.Popen:
    """A ``reread`` command in its own session (so every process it starts can be found by session id)."""
    return subprocess.Popen(
        [sys.executable, "-m", "flows.cli", *args],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def finish(proc: subprocess.Popen, timeout: float = 1200) -> dict:
    out, err = proc.communicate(timeout=timeout)
    return {"rc": proc.returncode, "stdout": out, "stderr": err}


def run(*args: str, timeout: float = 1200) -> dict:
    return finish(start(*args), timeout)


def build(variant: Path, data_dir: Path) -> dict:
    result = run("build", str(variant), "--data-dir", str(data_dir), "--json")
    summary = None
    if result["rc"] == 0:
        summary = json.loads(result["stdout"].strip().splitlines()[-1])
    return result | {"summary": summary}


def error_line(result: dict) -> str:
    lines = [line for line in result["stderr"].splitlines() if line.startswith("error:")]
    return lines[-1][:300] if lines else result["stderr"].strip().splitlines()[-1][:300] if result["stderr"] else ""


# ---------------------------------------------------------------- what a datastore is
def fingerprint(variant: Path, data_dir: Path) -> dict:
    """Index ids, search hits of ``QUERIES`` and catalog row counts of the variant's datastore."""
    import polars as pl

    from catalog import artifacts
    from catalog.db import Catalog
    from catalog.variant import load_variant
    from flows.datastore import locate_datastore, open_retriever

    artifacts.forget_verified()
    v = load_variant(variant)
    paths = locate_datastore(v, data_dir)
    ids = pl.read_parquet(paths.index_dir / "ids.parquet")["chunk_id"].to_list()
    hits = [[h.chunk_id for h in row] for row in open_retriever(v, data_dir).search(QUERIES, 10)]
    with Catalog.in_data_dir(data_dir, read_only=True) as catalog:
        counts = {t: catalog.query_one(f"SELECT count(*) FROM {t}")[0] for t in DATA_TABLES}
        distinct = {
            t: catalog.query_one(f"SELECT count(*) FROM (SELECT DISTINCT * EXCLUDE (run_id) FROM {t})")[0]
            for t in ("rejections", "stage_outputs")
        }
    duplicates = {t: counts[t] - distinct[t] for t in distinct if counts[t] != distinct[t]}
    return {"index_ids": ids, "hits": hits, "rows": counts, "duplicate_rows": duplicates}


def compare(variant: Path, data_dir: Path, clean: dict) -> dict:
    try:
        got = fingerprint(variant, data_dir)
    except Exception as exc:  # reported in the table: the datastore could not even be read
        return {"same_as_clean": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
    same = {
        "index_ids": got["index_ids"] == clean["index_ids"],
        "search_hits": got["hits"] == clean["hits"],
        "catalog_rows": got["rows"] == clean["rows"],
        "no_duplicates": not got["duplicate_rows"],
    }
    return {"same_as_clean": all(same.values()), "checks": same, "rows": got["rows"], "dups": got["duplicate_rows"]}


# ---------------------------------------------------------------- processes and runs
def session_processes(session: int) -> list[str]:
    """Processes still running in a session (the killed build's: its server, workers), as 'pid cmdline'."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_bytes()
            fields = stat.rsplit(b")", 1)[1].split()
            if int(fields[3]) == session and fields[0] != b"Z":  # fields after "(comm)": state, ppid, pgrp, session
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:120]
                found.append(f"{entry.name} {cmd}")
        except (OSError, IndexError, ValueError):
            continue
    return found


def last_run_status(data_dir: Path) -> str:
    from flows.reports import recent_runs

    try:
        runs = recent_runs(data_dir, limit=1)
    except Exception as exc:
        return f"unreadable: {exc}"[:120]
    return runs[0]["status"] if runs else "no run recorded"


def kill_during(stage: str, variant: Path, data_dir: Path, timeout: float = 900) -> dict:
    """Start a build and SIGKILL its process as soon as ``stage`` has a ``.partial`` folder."""
    proc = start("build", str(variant), "--data-dir", str(data_dir))
    folder = data_dir / "artifacts" / stage
    deadline = time.monotonic() + timeout
    partial: list[Path] = []
    while time.monotonic() < deadline and proc.poll() is None:
        if folder.is_dir() and (partial := [p for p in folder.iterdir() if p.name.endswith(".partial")]):
            break
        time.sleep(0.005)
    if proc.poll() is not None:
        proc.communicate()
        return {"killed": False, "why": f"the build ended (rc {proc.returncode}) before {stage} started"}
    os.kill(proc.pid, signal.SIGKILL)  # the build process only: what it started must die with it
    proc.communicate()
    files = sorted(str(p.relative_to(partial[0])) for p in partial[0].rglob("*")) if partial else []
    time.sleep(3)
    return {
        "killed": bool(partial),
        "partial_files": len(files),
        "left_running": session_processes(proc.pid),
        "run_status": last_run_status(data_dir),
    }


# ---------------------------------------------------------------- scenarios
def scenario_kills(a: Path, work: Path, clean: dict, stages: list[str]) -> list[dict]:
    rows = []
    for stage in stages:
        data_dir = work / f"kill-{stage}"
        killed = kill_during(stage, a, data_dir)
        rerun = build(a, data_dir)
        row = {"fault": f"SIGKILL during {stage}", **killed, "rerun_rc": rerun["rc"]}
        if rerun["rc"] == 0:
            row |= compare(a, data_dir, clean)
        else:
            row["error"] = error_line(rerun)
        row["survived"] = bool(
            killed.get("killed")
            and not killed.get("left_running")
            and killed.get("run_status") in ("interrupted", "failed")
            and row.get("same_as_clean")
        )
        rows.append(row)
        print_row(row)
    return rows


def scenario_concurrent(a: Path, b: Path, work: Path, clean: dict) -> list[dict]:
    rows = []
    for label, variants in (("two builds, variants a and b, at once", (a, b)), ("two builds of a at once", (a, a))):
        data_dir = work / ("conc-ab" if variants[1] == b else "conc-aa")
        procs = [start("build", str(v), "--data-dir", str(data_dir), "--json") for v in variants]
        results = [finish(p) for p in procs]
        waited = sum("waiting for the catalog lock" in r["stderr"] for r in results)
        row = {"fault": label, "rcs": [r["rc"] for r in results], "waited_for_lock": waited}
        if all(r["rc"] == 0 for r in results):
            row |= compare(a, data_dir, clean) if variants[1] == a else _compare_a_only(a, data_dir, clean)
        else:
            row["error"] = " | ".join(error_line(r) for r in results if r["rc"])
        row["survived"] = bool(row.get("same_as_clean"))
        rows.append(row)
        print_row(row)

    data_dir = work / "search-during-build"
    shutil.copytree(work / "clean-a", data_dir, ignore=shutil.ignore_patterns("cache"))
    builder = start("build", str(b), "--data-dir", str(data_dir))
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and builder.poll() is None and last_run_status(data_dir) != "running":
        time.sleep(0.5)
    searched = run("search", str(a), "--data-dir", str(data_dir), "--json", QUERIES[0], "-k", "10")
    listed = run("runs", "--data-dir", str(data_dir), "--json")
    during = builder.poll() is None
    built = finish(builder)
    hits = json.loads(searched["stdout"]) if searched["rc"] == 0 else None
    row = {
        "fault": "search and runs while a build holds the catalog",
        "build_still_running": during,
        "search_rc": searched["rc"],
        "runs_rc": listed["rc"],
        "build_rc": built["rc"],
        "search_same_as_clean": hits is not None and [h["chunk_id"] for h in hits] == clean["hits"][0],
    }
    row["survived"] = bool(during and searched["rc"] == 0 and listed["rc"] == 0 and built["rc"] == 0)
    row["survived"] = row["survived"] and row["search_same_as_clean"]
    rows.append(row)
    print_row(row)
    return rows


def _compare_a_only(a: Path, data_dir: Path, clean: dict) -> dict:
    """Variant a's datastore against the clean build of a alone (catalog rows differ: b's are there too)."""
    result = compare(a, data_dir, clean)
    if "checks" in result:
        result["checks"].pop("catalog_rows")
        result["same_as_clean"] = all(result["checks"].values())
    return result


def scenario_damage(a: Path, work: Path, clean: dict) -> list[dict]:
    rows = []
    targets = {
        "truncated index.faiss": "artifacts/index/*/index/index.faiss",
        "truncated embedding shard": "artifacts/embed/*/embeddings/shard-*.npy",
        "truncated chunk Parquet": "artifacts/chunk/*/part-*.parquet",
    }
    for label, pattern in targets.items():
        data_dir = work / label.replace(" ", "-")
        shutil.copytree(work / "clean-a", data_dir, ignore=shutil.ignore_patterns("cache"))
        target = sorted(data_dir.glob(pattern))[0]
        target.write_bytes(target.read_bytes()[: target.stat().st_size // 2])
        searched = run("search", str(a), "--data-dir", str(data_dir), "--json", QUERIES[0], "-k", "10")
        if searched["rc"] == 0:
            hits = [h["chunk_id"] for h in json.loads(searched["stdout"])]
            search = "same hits as clean" if hits == clean["hits"][0] else "WRONG HITS"
        else:
            search = error_line(searched)
        rebuilt = build(a, data_dir)
        row = {
            "fault": label,
            "file": str(target.relative_to(data_dir)),
            "search": search,
            "search_names_file": target.name in search,
            "rebuild_rc": rebuilt["rc"],
        }
        if rebuilt["rc"] == 0:
            row["rebuilt_stages"] = sorted({s["stage"] for s in rebuilt["summary"]["stages"] if not s["cached"]})
            row |= compare(a, data_dir, clean)
        row["survived"] = bool(search != "WRONG HITS" and row.get("same_as_clean"))
        rows.append(row)
        print_row(row)
    return rows


def scenario_full_disk(a: Path, work: Path, clean: dict, clean_bytes: int) -> list[dict]:
    mount = work / "small-fs"
    mount.mkdir()
    # half the artifacts: the build cannot fit (the catalog's WAL fits in much less than its checkpointed file,
    # and DuckDB keeps the WAL when a checkpoint at close finds no space, so the whole data dir is not the measure)
    artifacts_bytes = sum(p.stat().st_blocks * 512 for p in (work / "clean-a" / "artifacts").rglob("*") if p.is_file())
    size_kb = max(256, artifacts_bytes // 2 // 1024)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(mount)], capture_output=True
    )
    if mounted.returncode != 0:
        row = {"fault": "full filesystem", "survived": None, "skipped": mounted.stderr.decode().strip()[:200]}
        print_row(row)
        return [row]
    try:
        data_dir = mount / "data"
        proc = start("build", str(a), "--data-dir", str(data_dir))
        full = finish(proc)
        time.sleep(2)
        left = session_processes(proc.pid)
        row = {
            "fault": f"full filesystem ({size_kb} KiB tmpfs; clean build {clean_bytes // 1024} KiB)",
            "first_rc": full["rc"],
            "error": error_line(full),
            "traceback_printed": "Traceback" in full["stderr"],
            "left_running": left,
            "run_status": last_run_status(data_dir),
        }
        subprocess.run(["mount", "-o", f"remount,size={4 * clean_bytes // 1024 + 65536}k", str(mount)], check=True)
        rerun = build(a, data_dir)
        row["rerun_rc"] = rerun["rc"]
        if rerun["rc"] == 0:
            row |= compare(a, data_dir, clean)
        else:
            row["rerun_error"] = error_line(rerun)
        row["survived"] = bool(
            full["rc"] != 0 and "no space left" in row["error"] and not left and row.get("same_as_clean")
        )
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)
    print_row(row)
    return [row]


# ---------------------------------------------------------------- report
def print_row(row: dict) -> None:
    status = {True: "survived", False: "NOT SURVIVED", None: "skipped"}[row.get("survived")]
    details = {k: v for k, v in row.items() if k not in ("fault", "survived", "rows", "checks", "dups", "file")}
    text = ", ".join(f"{k}={str(v)[:110]}" for k, v in details.items())
    print(f"{row['fault']:<58} {status:<13} {text}", flush=True)


def write_report(args, clean: dict, clean_bytes: int, rows: list[dict], started: float) -> dict:
    report = {
        "variant_docs": args.docs,
        "clean": {"vectors": len(clean["index_ids"]), "bytes": clean_bytes, "rows": clean["rows"]},
        "faults": rows,
        "survived": sum(r.get("survived") is True for r in rows),
        "not_survived": [r["fault"] for r in rows if r.get("survived") is False],
        "seconds": round(time.perf_counter() - started, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=str))
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=60, help="Vaswani abstracts in the variant")
    parser.add_argument("--only", nargs="*", default=["kills", "concurrent", "damage", "full-disk"])
    parser.add_argument("--stages", nargs="*", default=list(STAGES), help="stages to kill a build in")
    parser.add_argument(
        "--reuse-clean", type=Path, help="a clean build of variant a by an earlier run of the same code (copied)"
    )
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "faults.json")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="reread-faults-"))
    a, b = write_variants(work / "variants", args.docs)
    started = time.perf_counter()
    if args.reuse_clean:
        shutil.copytree(args.reuse_clean, work / "clean-a", ignore=shutil.ignore_patterns("cache"))
    elif (clean_build := build(a, work / "clean-a"))["rc"] != 0:
        raise SystemExit(f"the clean build failed: {clean_build['stderr'][-2000:]}")
    # blocks on disk, not st_size (DuckDB's file is sparse): what the build really needs; before any search
    clean_bytes = sum(p.stat().st_blocks * 512 for p in (work / "clean-a").rglob("*") if p.is_file())
    clean = fingerprint(a, work / "clean-a")
    print(f"clean build: {len(clean['index_ids'])} vectors, {clean_bytes // 1024} KiB, rows {clean['rows']}")
    print(f"{'fault':<58} {'result':<13} details")
    rows: list[dict] = []
    scenarios = {
        "kills": lambda: scenario_kills(a, work, clean, args.stages),
        "concurrent": lambda: scenario_concurrent(a, b, work, clean),
        "damage": lambda: scenario_damage(a, work, clean),
        "full-disk": lambda: scenario_full_disk(a, work, clean, clean_bytes),
    }
    for name in args.only:
        rows += scenarios[name]()
        write_report(args, clean, clean_bytes, rows, started)  # after each scenario: a late kill keeps the rest
    report = write_report(args, clean, clean_bytes, rows, started)
    print(f"\n{report['survived']} of {len(rows)} faults survived; not survived: {report['not_survived'] or 'none'}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
