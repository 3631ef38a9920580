"""Reporting commands over a real catalog file: ``reread runs`` (readable times, durations, state) and ``reread
rejections`` (counts per reason, then examples), as text (tab-separated when piped) and as JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from catalog.db import Catalog, StageOutput
from catalog.records import Rejection
from flows.cli import app


def _output(key: str, variant: str, stage: str, shard: str, run_id: str, seconds: float) -> StageOutput:
    return StageOutput(
        artifact_key=key, stage=stage, stage_version="1", config_hash="c", input_hash="i", variant=variant,
        shard=shard, path=f"artifacts/{stage}/{key}", row_count=1234, content_hash="h",
        stats={"documents_read": 1300, "timing": {"started_at": 1.7e9, "seconds": seconds}}, run_id=run_id,
    )  # fmt: skip


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    with Catalog.in_data_dir(data) as catalog:
        run_id = catalog.start_run("sample", "build")
        broken = [Rejection("extract", "cc", f"a.warc.gz#{i}", "truncated_record", f"offset {i}") for i in range(3)]
        empty = [Rejection("extract", "cc", "b.html", "empty_text", "no main text")]
        catalog.register_output(_output("k1", "sample", "extract", "cc", run_id, 75.5), rejections=broken + empty)
        catalog.register_output(_output("k2", "sample", "chunk", "part-0", run_id, 2.25))
        catalog.finish_run(run_id, "completed", {})
    return data


def _invoke(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_rejections_of_a_variant_count_reasons_then_show_examples(data_dir: Path) -> None:
    report = json.loads(_invoke("rejections", "sample", "--data-dir", str(data_dir), "--json", "-n", "2"))
    assert report["variant"] == "sample" and report["total"] == 4
    assert [(r["reason"], r["count"]) for r in report["reasons"]] == [("truncated_record", 3), ("empty_text", 1)]
    assert report["reasons"][0]["examples"] == [
        {"source": "cc", "input_ref": "a.warc.gz#0", "detail": "offset 0"},
        {"source": "cc", "input_ref": "a.warc.gz#1", "detail": "offset 1"},
    ]
    text = _invoke("rejections", "sample", "--data-dir", str(data_dir))
    assert "extract\ttruncated_record\t3" in text.splitlines()
    assert "extract\tempty_text\tcc\tb.html\tno main text" in text.splitlines()


def test_rejections_of_a_run_and_of_an_unknown_name(data_dir: Path) -> None:
    with Catalog.in_data_dir(data_dir, read_only=True) as catalog:
        run_id = catalog.recent_runs(1)["run_id"][0]
    report = json.loads(_invoke("rejections", run_id, "--data-dir", str(data_dir), "--json"))
    assert report["run"] == run_id and report["total"] == 4
    result = CliRunner().invoke(app, ["rejections", "nothing-here", "--data-dir", str(data_dir)])
    assert result.exit_code != 0
    assert "'nothing-here': no run with this id and no variant of this name" in str(result.exception)


def test_runs_show_state_readable_times_and_durations(data_dir: Path) -> None:
    lines = _invoke("runs", "--data-dir", str(data_dir)).splitlines()
    header = lines.index("run\tcommand\tvariant\tstate\tstarted (UTC)\ttook\tstage outputs")
    run_id, command, variant, state, started, took, outputs = lines[header + 1].split("\t")
    assert (command, variant, state, outputs) == ("build", "sample", "completed", "2")
    assert len(started) == 19 and started[4] == "-" and started[13] == ":"
    assert took.endswith(" s")
    stages = lines[lines.index("stage\tshard\trows\ttook\tstats") + 1 :]
    assert stages[0] == "extract\tcc\t1,234\t1 min 16 s\tdocuments_read=1,300"
    assert stages[1].startswith("chunk\tpart-0\t1,234\t2.25 s\t")
    runs = json.loads(_invoke("runs", "--data-dir", str(data_dir), "--json"))
    assert runs[0]["status"] == "completed" and [s["stage"] for s in runs[0]["stages"]] == ["extract", "chunk"]


def test_retrieval_quality_is_a_metric_by_task_table_that_fits_100_columns() -> None:
    """``reread eval`` and ``reread demo``: the demo's two QA tasks (13 metrics) printed as one line each ran to 208
    columns; as a table they fit a 100-column terminal, and piped they are tab-separated."""
    import io

    from rich.console import Console

    from flows.commands._common import print_table
    from flows.commands.evaluate import quality_table

    recall = {f"answer_recall@{k}": 0.005 * k for k in (1, 5, 10, 100)}
    tasks = {
        "simpleqa": {"cached": False, "n": 200, **recall, "contaminated": 0.0, "gold_url@1": 0.0},
        "mmlu": {"cached": True, "n": 120, "answer_recall@5": 0.0125, "contaminated": 0.0},
    }
    screen = Console(width=100, force_terminal=True, color_system=None, record=True, file=io.StringIO())
    print_table(quality_table("retrieval quality of sample", tasks), screen)
    lines = screen.export_text().splitlines()
    assert max(len(line) for line in lines) <= 100
    piped = Console(file=io.StringIO(), force_terminal=False)
    print_table(quality_table("retrieval quality of sample", tasks), piped)
    rows = [line.split("\t") for line in piped.file.getvalue().splitlines()]
    assert rows[:3] == [["# retrieval quality of sample"], ["metric", "simpleqa", "mmlu"], ["n", "200", "120"]]
    assert ["answer_recall@1", "0.0050", "-"] in rows and ["answer_recall@5", "0.0250", "0.0125"] in rows
    assert [r[0] for r in rows[3:]] == [*recall, "contaminated", "gold_url@1"]  # the report's order
