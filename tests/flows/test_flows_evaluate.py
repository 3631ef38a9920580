"""Evaluation flows on a real built datastore: retrieval quality with qrels, variant comparison with paired tests,
reader evaluation with stored samples (a tiny Llama the test builds), and the CLI commands over them."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from catalog.db import Catalog
from catalog.ids import make_doc_id

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "sample_data"


def _variant(folder: Path, name: str, extra: str = "") -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(
        f"""name: {name}
sources:
  - {{name: npl, type: trec, path: {SAMPLE / "vaswani" / "doc-text.trec"}, limit: 600}}
extractor: plain
dedup: {{exact: true, near: false}}
{extra}
"""
    )
    return path


def _tasks(folder: Path) -> Path:
    tasks = folder / "tasks"
    tasks.mkdir()
    (tasks / "vaswani.yaml").write_text(
        f"name: vaswani\nkind: qrels\nqueries: {SAMPLE / 'vaswani' / 'query-text.trec'}\n"
        f"qrels: {SAMPLE / 'vaswani' / 'qrels'}\nsource: npl\nks: [10, 100]\nlimit: 30\n"
    )
    (tasks / "mmlu.yaml").write_text(
        f"name: mmlu\nkind: qa\nbenchmark: mmlu\npath: {SAMPLE / 'benchmarks' / 'mmlu' / 'test'}\nks: [5]\nlimit: 4\n"
    )
    return tasks


@pytest.fixture(scope="module")
def built(tmp_path_factory, prefect_harness):
    from flows.build import run_build

    root = tmp_path_factory.mktemp("evaluate")
    flat = _variant(root, "npl-flat")
    hnsw = _variant(root, "npl-hnsw", "chunking: {size: 64, overlap: 8}\nindex: {factory: HNSW32}")
    data_dir = root / "data"
    for variant in (flat, hnsw):
        run_build(variant, data_dir)
    mp = pytest.MonkeyPatch()
    mp.setenv("REREAD_TASKS_DIR", str(_tasks(root)))
    yield root, data_dir, flat, hnsw
    mp.undo()


def test_retrieval_quality_with_qrels_is_cached(built):
    from flows.evaluate import evaluate

    root, data_dir, flat, _ = built
    first = evaluate(str(flat), str(data_dir), ["vaswani"])
    metrics = first["tasks"]["vaswani"]
    assert not metrics["cached"] and metrics["n"] > 0
    # 600 of 11,429 documents are indexed, so most relevant documents are missing: low but not zero quality
    assert 0.0 < metrics["recall@100"] <= 1.0 and 0.0 < metrics["ndcg@10"] < 1.0
    again = evaluate(str(flat), str(data_dir), ["vaswani"])
    assert again["tasks"]["vaswani"]["cached"] and again["tasks"]["vaswani"]["ndcg@10"] == metrics["ndcg@10"]


def test_compare_variants_writes_report_with_paired_tests(built):
    from flows.evaluate import compare_variants

    root, data_dir, flat, hnsw = built
    report = compare_variants([str(flat), str(hnsw)], str(data_dir), "vaswani", str(root / "report"))
    assert [row["variant"] for row in report["summary"]] == ["npl-flat", "npl-hnsw"]
    assert {t["metric"] for t in report["tests"]} == {"ndcg@10", "recall@10", "ndcg@100", "recall@100"}
    for test in report["tests"]:
        assert test["ci_low"] <= test["diff"] <= test["ci_high"] and 0 < test["p_value"] <= 1
    html = Path(report["html"]).read_text()
    assert "npl-hnsw" in html and "data:image/png;base64," in html
    # what differs and what it costs
    differences = {d["setting"]: (d["npl-flat"], d["npl-hnsw"]) for d in report["differences"]}
    assert differences["index.factory"] == ("Flat", "HNSW32") and differences["chunking.size"][1] == 64
    flat_facts, hnsw_facts = report["datastores"]["npl-flat"], report["datastores"]["npl-hnsw"]
    assert flat_facts["documents"] == hnsw_facts["documents"] > 0
    assert hnsw_facts["chunks"] > flat_facts["chunks"] == flat_facts["vectors"]  # 64-token chunks: more of them
    assert "HNSW" in hnsw_facts["index_type"] and flat_facts["index_type"] == "Flat"
    for facts in (flat_facts, hnsw_facts):
        assert facts["bytes"] > 0 and facts["build_s"] > 0 and facts["qps"] > 0 and facts["latency_ms_median"] > 0
        assert facts["queries"] == 30
    for variant in ("npl-flat", "npl-hnsw"):
        for low, high in report["intervals"][variant].values():
            assert 0 <= low <= high <= 1
    markdown = (Path(report["html"]).with_name("compare.md")).read_text()
    assert "## What differs" in markdown and "| index.factory | Flat | HNSW32 |" in markdown


def test_python_api_example_runs(built):
    """docs/examples/python_api.py, the notebook example of docs/python-api.md, on the built datastores."""
    import runpy

    root, data_dir, flat, hnsw = built
    example = runpy.run_path(str(Path(__file__).resolve().parents[2] / "docs" / "examples" / "python_api.py"))
    result = example["main"](flat, hnsw, data_dir, "vaswani", build=False)
    assert result["hits"] and result["hits"][0].source == "npl" and result["hits"][0].source_doc_id
    assert 0 < result["quality"]["tasks"]["vaswani"]["ndcg@10"] < 1
    assert [row["variant"] for row in result["comparison"]["summary"]] == ["npl-flat", "npl-hnsw"]


def _reader_config(root: Path, build_tiny_model) -> Path:
    config = root / "reader.yaml"
    if config.exists():
        return config
    model = build_tiny_model(root / "tiny-llama", max_positions=4096)
    config.write_text(
        f"""reader: {{kind: transformers, model_path: {model}}}
n_samples: 3
max_tokens: 4
strategies:
  - {{name: closed-book, retrieval: false}}
  - {{name: bagged, k: 2, candidates: 10, bags: 2}}
sizes: {{reader_params: 50000, embedder_params: 22700000}}
"""
    )
    return config


def test_reader_evaluation_stores_samples_and_scores_every_k(built, build_tiny_model):
    from flows.evaluate import evaluate_reader

    root, data_dir, flat, _ = built
    config = _reader_config(root, build_tiny_model)
    report = evaluate_reader(str(flat), str(data_dir), "mmlu", str(config))
    scores = pl.DataFrame(report["scores"])
    assert sorted(set(zip(scores["strategy"], scores["metric"], scores["k"], strict=True))) == sorted(
        (s, m, k) for s in ("bagged", "closed-book") for m in ("maj@k", "pass@k") for k in (1, 2, 3)
    )
    assert report["flops"]["bagged"]["total_per_question"] > report["flops"]["closed-book"]["total_per_question"] > 0
    with Catalog.in_data_dir(data_dir, read_only=True) as catalog:
        samples = catalog.query("SELECT * FROM eval_samples WHERE variant = 'npl-flat'")
    assert samples.height == 4 * 3 * 2  # items x samples x strategies, sampled once
    bagged = samples.filter(pl.col("strategy") == "bagged")
    assert set(bagged["prompt_index"].to_list()) == {0, 1}  # two bags of passages per question
    assert all(len(ids) == 2 for ids in bagged["chunk_ids"].to_list())
    # every passage of a sample is named by its document's id in the source too (Vaswani DOCNOs)
    assert [len(ids) for ids in samples["source_doc_ids"]] == [len(ids) for ids in samples["chunk_ids"]]
    assert all(i.isdigit() for ids in bagged["source_doc_ids"].to_list() for i in ids)
    assert samples["seed"].n_unique() >= 3 and (samples["completion_tokens"] > 0).all()
    again = evaluate_reader(str(flat), str(data_dir), "mmlu", str(config))
    assert again["scores"] == report["scores"]  # stored samples re-scored, nothing generated again


def test_samples_export_feeds_tts_report_and_a_grader_change_keeps_the_samples(built, build_tiny_model, tmp_path):
    from flows.cli import app
    from flows.evaluate import evaluate_reader

    root, data_dir, flat, _ = built
    config = _reader_config(root, build_tiny_model)
    report = evaluate_reader(str(flat), str(data_dir), "mmlu", str(config))  # stored by the test above, or now
    summary = {row["strategy"]: row for row in report["summary"]}
    assert summary["closed-book"]["samples"] == 3 and "diff" not in summary["closed-book"]
    bagged = summary["bagged"]
    assert bagged["diff_ci_low"] <= bagged["diff"] <= bagged["diff_ci_high"]
    assert bagged["diff"] == pytest.approx(bagged["accuracy"] - summary["closed-book"]["accuracy"])
    # greedy and sampled strategies in one file: a strategy's own n_samples and temperature
    mixed = tmp_path / "mixed.yaml"
    mixed.write_text(config.read_text().replace(
        "  - {name: bagged, k: 2, candidates: 10, bags: 2}",
        "  - {name: bagged, k: 2, candidates: 10, bags: 2}\n  - {name: greedy, retrieval: false, n_samples: 1, temperature: 0}",
    ).replace("strategies:", "grader: {name: choice}\nstrategies:"))  # fmt: skip
    again = evaluate_reader(str(flat), str(data_dir), "mmlu", str(mixed))
    assert {r["strategy"]: r["samples"] for r in again["summary"]} == {"closed-book": 3, "bagged": 3, "greedy": 1}
    with Catalog.in_data_dir(data_dir, read_only=True) as catalog:
        stages = catalog.query("SELECT stage, count(*) AS n FROM stage_outputs WHERE variant = 'npl-flat' "
                               "AND stage IN ('reader_eval', 'reader_grades') GROUP BY stage ORDER BY stage")  # fmt: skip
    # the named grader is the template's (choice): same grader key, so no new grading of the stored strategies;
    # the greedy strategy is new: three sample artifacts, three gradings
    assert stages.rows() == [("reader_eval", 3), ("reader_grades", 3)]
    out = tmp_path / "samples.parquet"
    result = CliRunner().invoke(
        app, ["samples", "export", str(flat), "-b", "mmlu", "--out", str(out), "--data-dir", str(data_dir)]
    )
    assert result.exit_code == 0, result.output
    table = pl.read_parquet(out)
    # closed-book (3 samples) is the base setting; greedy also reads no passages but has one sample per question
    assert set(table["retrieval"]) == {"none", "bagged", "greedy"}
    assert {"question_id", "sample_idx", "answer", "correct", "tokens", "prompt_tokens", "source"} <= set(table.columns)
    assert table.filter(pl.col("retrieval") == "bagged").height == 4 * 3
    result = CliRunner().invoke(app, ["tts-report", str(out), "--budgets", "1,2", "--json"])
    assert result.exit_code == 0, result.output


def test_compare_with_reader_strategies_plots_accuracy_against_flops(built, build_tiny_model):
    from flows.evaluate import compare_variants

    root, data_dir, flat, hnsw = built
    config = _reader_config(root, build_tiny_model)
    report = compare_variants([str(flat), str(hnsw)], str(data_dir), "mmlu", str(root / "reader-compare"), str(config))
    points = {(p["variant"], p["strategy"]) for p in report["accuracy_vs_flops"]}
    assert points == {(v, s) for v in ("npl-flat", "npl-hnsw") for s in ("closed-book", "bagged")}
    tested = {t["metric"] for t in report["tests"]}
    assert {"closed-book maj@3", "bagged maj@3", "bagged acc", "answer_recall@5"} <= tested
    assert len(report["plots"]) == 2 and all(Path(p).stat().st_size > 0 for p in report["plots"])


def test_cli_search_runs_and_contamination(built):
    from flows.cli import app

    root, data_dir, flat, _ = built
    runner = CliRunner()
    result = runner.invoke(
        app, ["search", str(flat), "measurement of dielectric constant of liquids", "-k", "3", "--json",
              "--data-dir", str(data_dir)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    hits = json.loads(result.stdout.strip().splitlines()[-1])
    assert len(hits) == 3 and set(hits[0]) >= {"chunk_id", "doc_id", "source_doc_id", "url", "title", "score", "text"}
    # each hit names its document as the collection does (the Vaswani DOCNO) beside Reread's hashed doc_id
    assert all(h["source_doc_id"].isdigit() and h["doc_id"] == make_doc_id("npl", h["source_doc_id"]) for h in hits)
    shown = runner.invoke(
        app,
        ["search", str(flat), "measurement of dielectric constant of liquids", "-k", "3", "--data-dir", str(data_dir)],
    )
    assert shown.exit_code == 0 and all(f"npl:{h['source_doc_id']}" in shown.stdout for h in hits)
    assert hits[0]["doc_id"] not in shown.stdout  # the user's own ids, not Reread's hashes
    assert hits[0]["score"] >= hits[1]["score"] >= hits[2]["score"]
    queries = root / "queries.txt"
    queries.write_text("microwave waveguide\ndigital computer memory\n")
    result = runner.invoke(app, ["search", str(flat), "--queries", str(queries), "--json", "--data-dir", str(data_dir)])
    lines = [json.loads(line) for line in result.stdout.strip().splitlines() if line.startswith("{")]
    assert [line["query"] for line in lines] == ["microwave waveguide", "digital computer memory"]
    assert all(len(line["hits"]) == 10 for line in lines)
    result = runner.invoke(app, ["runs", "--json", "-n", "100", "--data-dir", str(data_dir)])  # every run of the module
    runs = json.loads(result.stdout.strip().splitlines()[-1])
    assert {r["command"] for r in runs} >= {"build", "evaluate"}
    result = runner.invoke(app, ["contamination", str(flat), "--json", "--data-dir", str(data_dir)])
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {
        "variant": "npl-flat", "action": "drop_document", "benchmarks": [], "removed": [],
    }  # fmt: skip


def test_cli_mixture_advice_on_the_built_datastore(built):
    from flows.cli import app

    root, data_dir, flat, _ = built
    result = CliRunner().invoke(
        app, ["mixture", str(flat), "--benchmark", "mmlu", "--benchmark-path", str(SAMPLE / "benchmarks" / "mmlu" / "test"),
              "--max-questions", "200", "--json", "--data-dir", str(data_dir)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout[result.stdout.index("{") :])
    text = json.dumps(report)
    assert "npl" in text and "caveat" in text.lower()


def _strings_on_disk(folder: Path) -> list[tuple[Path, str]]:
    """Every file's bytes (as text) plus the decoded strings inside compressed containers: each Parquet file's
    string columns and each DuckDB catalog's VARCHAR columns, so compression cannot hide a leaked text."""
    import duckdb
    import pyarrow as pa
    import pyarrow.parquet as pq

    found = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        found.append((path, path.read_bytes().decode("utf-8", errors="replace")))
        if path.suffix == ".parquet":
            table = pq.read_table(path)
            strings = [c for c, t in zip(table.column_names, table.schema.types, strict=True) if pa.types.is_string(t)]
            found += [(path, "\n".join(str(v) for v in table[c].to_pylist())) for c in strings]
        elif path.suffix == ".duckdb":
            with duckdb.connect(str(path), read_only=True) as con:
                columns = con.execute(
                    "SELECT table_name, column_name FROM information_schema.columns WHERE data_type = 'VARCHAR'"
                ).fetchall()
                for table_name, column in columns:
                    values = con.execute(f'SELECT "{column}" FROM "{table_name}"').fetchall()
                    found.append((path, "\n".join(str(v[0]) for v in values)))
    return found


def test_gpqa_question_text_never_reaches_the_data_dir(built, shared_data, monkeypatch):
    """GPQA is published encrypted so its questions stay out of crawls: a retrieval-only evaluation decrypts them in
    memory, and neither the top-K cache nor any artifact or catalog row may hold their text (issue: 7 of 8 phrases
    were found in the top-K cache's JSON files)."""
    from eval.benchmarks import load_benchmark
    from eval.benchmarks.gpqa import PASSWORD_ENV
    from flows.evaluate import evaluate

    root, data_dir, flat, _ = built
    monkeypatch.setenv(PASSWORD_ENV, "deserted-untie-orchid")  # published by the GPQA authors; never in a file here
    (root / "tasks" / "gpqa.yaml").write_text(
        f"name: gpqa\nkind: qa\nbenchmark: gpqa\npath: {shared_data / 'gpqa'}\nks: [5]\nlimit: 8\nretrieve_k: 5\n"
    )
    questions = [item.question for item in load_benchmark("gpqa", shared_data / "gpqa")[:8]]
    report = evaluate(str(flat), str(data_dir), ["gpqa"])
    assert report["tasks"]["gpqa"]["n"] == 8
    assert list((data_dir / "cache" / "retrieve").rglob("topk/*/*.json")), "the evaluation searched through the cache"
    phrases = [" ".join(q.split()[:8]) for q in questions]  # 8-word phrases: long enough to be GPQA's own text
    assert all(len(p) > 30 for p in phrases)
    leaks = [
        (str(path), p) for path, text in _strings_on_disk(data_dir) for p in phrases if p in " ".join(text.split())
    ]
    assert leaks == []
