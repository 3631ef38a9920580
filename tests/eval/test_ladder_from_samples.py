"""Ladder assembly from stored samples: per-question accuracy, common questions only, categories, correctness."""

from __future__ import annotations

import polars as pl
import pytest

from catalog.errors import ConfigError
from eval.ladder import LadderModel, LadderSpec, ladder_from_samples
from eval.multiplier import MultiplierSettings, compute_multipliers


def _samples() -> pl.DataFrame:
    rows = []
    # three rungs; q3 is missing for the largest model's method run, so it is dropped everywhere
    truth = {"small": (0.25, 0.5), "mid": (0.5, 0.75), "large": (0.75, 1.0)}
    for reader, (base, method) in truth.items():
        for strategy, acc in (("closed-book", base), ("retrieval", method)):
            for q in range(4):
                correct = [s < round(acc * 4) for s in range(4)]  # acc of the 4 samples are correct
                rows += [
                    {"reader": reader, "strategy": strategy, "question_id": f"q{q}", "correct": c} for c in correct
                ]
    rows.append({"reader": "large", "strategy": "retrieval", "question_id": "q9", "correct": True})
    return pl.DataFrame(rows)


SPEC = LadderSpec(
    benchmark="mmlu", base="closed-book", methods=("retrieval",),
    models=(LadderModel(name="S", reader="small", flops=1e21), LadderModel(name="M", reader="mid", flops=1e22),
            LadderModel(name="L", reader="large", flops=1e23)),
)  # fmt: skip


def test_ladder_rows_and_correctness():
    ladder, correctness = ladder_from_samples(
        _samples(), SPEC, {"q0": "STEM", "q1": "STEM", "q2": "other", "q3": "other"}
    )
    overall = ladder.filter(pl.col("category") == "all").sort("flops")
    assert overall["base_acc"].to_list() == [0.25, 0.5, 0.75]
    assert overall["method_acc"].to_list() == [0.5, 0.75, 1.0]
    assert overall["n_questions"].to_list() == [4, 4, 4]  # q9 is not common to every rung
    assert set(ladder["category"]) == {"all", "STEM", "other"}
    assert correctness.height == 3 * 2 * 4 and set(correctness["method"]) == {"", "retrieval"}
    report = compute_multipliers(
        ladder.filter(pl.col("category") == "all"), MultiplierSettings(form="piecewise", bootstrap="none")
    )
    assert len(report.rows) == 3


def test_categories_without_common_questions_have_no_rows():
    categories = {"q0": "STEM", "q1": "STEM", "q2": "other", "q3": "other", "q9": "law", "q7": "history"}
    ladder, _ = ladder_from_samples(_samples(), SPEC, categories)
    assert set(ladder["category"]) == {"all", "STEM", "other"}  # q9 is not common; q7 was never asked
    stem = ladder.filter(pl.col("category") == "STEM").sort("flops")
    assert stem["n_questions"].to_list() == [2, 2, 2] and stem["base_acc"].to_list() == [0.25, 0.5, 0.75]


def test_missing_runs_are_a_clear_error():
    with pytest.raises(ConfigError, match="no stored samples"):
        ladder_from_samples(_samples().filter(pl.col("reader") != "mid"), SPEC)


def test_ladder_spec_file_errors_name_the_file_and_field(tmp_path):
    from eval.ladder import load_ladder_spec

    spec = tmp_path / "ladder.yaml"
    spec.write_text(
        "benchmark: mmlu\nbase: closed-book\nmethods: [retrieval]\nmodels: [{name: S, reader: s, flops: -1}]\n"
    )
    with pytest.raises(
        ConfigError,
        match=r"ladder.yaml: invalid ladder spec: field 'models.0.flops': Input should be greater than 0; field 'models'",
    ):
        load_ladder_spec(spec)
    with pytest.raises(ConfigError, match=r"missing.yaml: cannot read ladder spec"):
        load_ladder_spec(tmp_path / "missing.yaml")
    spec.write_text(SPEC.model_dump_json())  # JSON is YAML
    assert load_ladder_spec(spec) == SPEC
