"""The theory flows and CLI wiring, and reading a real embedding folder grouped by source for the advisor."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from catalog.errors import ConfigError
from catalog.hashing import content_hash
from eval.theory.experiments import EXPERIMENTS, config_from_overrides
from flows.commands._common import parse_key_values


def test_trade_flow_writes_result_and_figure(tmp_path, prefect_harness):
    from flows.theory import THEORY_FLOWS

    outputs = THEORY_FLOWS["trade"](tmp_path / "trade", {"reps": 4, "kmax": 6})
    document = json.loads(Path(outputs["json"]).read_text())
    assert document["config"]["reps"] == 4 and document["config_hash"] == outputs["config_hash"]
    result = document["result"]
    assert result["steps_to_match_longest_direct"] == {"10": 3, "20": 2, "30": 1}
    assert result["curves"]["20"]["population"][0] == pytest.approx(1.2477, abs=1e-4)  # docs/theory.md oracle 3
    ten = result["curves"]["10"]
    assert ten["lsa_monte_carlo"][-1] < ten["lsa_monte_carlo"][0]
    assert Path(outputs["png"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_every_experiment_has_a_flow_and_a_figure():
    from eval.theory.plots import PLOTTERS
    from flows.theory import THEORY_FLOWS

    assert set(EXPERIMENTS) == set(THEORY_FLOWS) == set(PLOTTERS)


def test_overrides_are_parsed_as_data_and_checked():
    assert parse_key_values(["d=10", "ns=[10,40]", "trace_normalised=false", "name=abc"], "--set") == {
        "d": 10,
        "ns": [10, 40],
        "trace_normalised": False,
        "name": "abc",
    }
    assert config_from_overrides("overthinking", {"ns": [10, 40]}).ns == (10, 40)
    with pytest.raises(ValueError, match="has no setting bogus"):
        config_from_overrides("overthinking", {"bogus": 1})
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        parse_key_values(["no-equals-sign"], "--set")


def test_cli_lists_theory_commands_and_mixture():
    from flows.cli import app

    runner = CliRunner()
    theory = runner.invoke(app, ["theory", "--help"])
    assert theory.exit_code == 0
    for name in EXPERIMENTS:
        assert name in theory.output
    mixture = runner.invoke(app, ["mixture", "--help"])
    assert mixture.exit_code == 0 and "--benchmark" in mixture.output


def test_unknown_setting_is_a_clean_cli_error_before_any_flow_runs(tmp_path, monkeypatch):
    from flows.cli import app
    from flows.theory import THEORY_FLOWS

    def flow_must_not_run(*args, **kwargs):  # a flow would start Prefect's temporary server first
        raise AssertionError("the flow ran with an unknown setting")

    monkeypatch.setitem(THEORY_FLOWS, "selection", flow_must_not_run)
    result = CliRunner().invoke(app, ["theory", "selection", "--data-dir", str(tmp_path), "--set", "bogus=1"])
    assert isinstance(result.exception, ConfigError) and "bogus" in str(result.exception)


@pytest.mark.slow
def test_source_embeddings_from_a_real_embedding_folder(tmp_path, shared_data):
    from catalog.variant import EmbedderConfig
    from eval.theory.advisor import mixture_advice
    from eval.theory.datastore_sources import load_source_embeddings
    from indexing.embed import Embedder, embed_chunks

    lines = (shared_data / "pretraining_samples" / "c4_sample.jsonl").read_text().splitlines()[:40]
    texts = [json.loads(line)["text"][:300] for line in lines]
    rows = [
        {"chunk_id": content_hash(t), "source": "c4-a" if i % 4 else "c4-b", "text": t} for i, t in enumerate(texts)
    ]
    chunk_file = tmp_path / "chunks.parquet"
    pq.write_table(pa.Table.from_pylist(rows), chunk_file)
    embedder = Embedder(EmbedderConfig(device="cpu"))
    embed_chunks([chunk_file], tmp_path / "emb", embedder, shard_size=16)

    full = load_source_embeddings([chunk_file], tmp_path / "emb")
    assert full.sizes == {"c4-a": 30, "c4-b": 10} and full.missing_ids == 0
    assert full.embeddings["c4-a"].shape == (30, 384)
    expected = embedder.encode_documents([r["text"] for r in rows if r["source"] == "c4-b"])
    assert np.allclose(np.sort(full.embeddings["c4-b"], axis=0), np.sort(expected, axis=0), atol=1e-4)

    sampled = load_source_embeddings([chunk_file], tmp_path / "emb", max_per_source=10)
    assert 3 <= len(sampled.embeddings["c4-a"]) <= 20 and len(sampled.embeddings["c4-b"]) == 10
    assert sampled.sizes == full.sizes
    again = load_source_embeddings([chunk_file], tmp_path / "emb", max_per_source=10)
    assert np.array_equal(again.embeddings["c4-a"], sampled.embeddings["c4-a"])  # deterministic sample

    report = mixture_advice(full.embeddings, embedder.encode_queries(texts[:20]), source_sizes=full.sizes)
    assert set(report.recommended) == {"c4-a", "c4-b"}
    assert report.weightings[2].weights["c4-a"] == pytest.approx(0.75)
