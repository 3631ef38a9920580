"""Benchmark loaders on the real files (../shared/data) and on fixtures with planted malformed rows."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from eval.benchmarks import BENCHMARKS, BenchmarkError, load_benchmark, read_benchmark
from eval.benchmarks.gpqa import PASSWORD_ENV, shuffle_choices
from eval.benchmarks.mmlu import SUBCATEGORIES, supercategory

# Published in the GPQA authors' README; the loader never hardcodes it, the tests hand it over.
GPQA_PASSWORD = "deserted-untie-orchid"


@pytest.fixture(scope="module")
def mmlu_test(shared_data: Path):
    return read_benchmark("mmlu", shared_data / "mmlu", split="test")


def test_registry_names_the_benchmarks_with_their_ngram_defaults():
    assert {name: loader.default_ngram for name, loader in BENCHMARKS.items()} == {
        "gpqa": 13,
        "math500": 26,
        "mmlu": 16,
        "nq_open": 13,
        "simpleqa": 13,
    }


def test_mmlu_test_split_counts_ids_and_categories(mmlu_test):
    items = mmlu_test.items
    assert len(items) == 14042 and not mmlu_test.rejections
    assert len({i.item_id for i in items}) == 14042
    first = items[0]
    assert first.item_id == "abstract_algebra/0"
    assert first.question.startswith("Find the degree for the given field extension Q(sqrt(2)")
    assert first.choices == ("0", "4", "2", "6") and first.answer == "B"
    assert len({i.category for i in items}) == 57
    supers = Counter(i.metadata["supercategory"] for i in items)
    # Standard MMLU category sizes of the test split.
    assert supers == {"STEM": 3018, "humanities": 4705, "social sciences": 3077, "other": 3242}


def test_mmlu_splits_from_a_folder_holding_dev_val_test(shared_data: Path):
    assert len(load_benchmark("mmlu", shared_data / "mmlu", split="val")) == 1531
    assert len(load_benchmark("mmlu", shared_data / "mmlu", split="dev")) == 285
    only = load_benchmark("mmlu", shared_data / "mmlu", subjects=["anatomy", "virology"])
    assert Counter(i.category for i in only) == {"anatomy": 135, "virology": 166}


def test_mmlu_supercategory_map_is_complete():
    assert len(SUBCATEGORIES) == 57
    assert Counter(supercategory(s) for s in SUBCATEGORIES) == {
        "STEM": 18,
        "humanities": 13,
        "social sciences": 12,
        "other": 14,
    }
    assert supercategory("not_a_subject") == "unknown"


def test_mmlu_parquet_layout_gives_the_same_items_as_the_csvs(mmlu_test, tmp_path: Path):
    subset = [i for i in mmlu_test.items if i.category in ("anatomy", "astronomy")]
    table = pa.table(
        {
            "question": [i.question for i in subset],
            "subject": [i.category for i in subset],
            "choices": [list(i.choices) for i in subset],
            "answer": [i.answer_index for i in subset],
        }
    )
    (tmp_path / "all").mkdir()
    pq.write_table(table, tmp_path / "all" / "test-00000-of-00001.parquet")
    loaded = load_benchmark("mmlu", tmp_path, split="test")
    assert [(i.item_id, i.question, i.choices, i.answer) for i in loaded] == [
        (i.item_id, i.question, i.choices, i.answer) for i in subset
    ]


def test_math500_counts_and_ids(shared_data: Path):
    items = load_benchmark("math500", shared_data / "math500" / "test.jsonl")
    assert len(items) == 500
    assert items[0].item_id == "test/precalculus/807.json"
    assert items[0].answer == "\\left( 3, \\frac{\\pi}{2} \\right)"
    assert Counter(i.category for i in items)["Algebra"] == 124
    assert Counter(i.metadata["level"] for i in items) == {"1": 43, "2": 90, "3": 105, "4": 128, "5": 134}


def test_simpleqa_counts_and_metadata(shared_data: Path):
    loaded = read_benchmark("simpleqa", shared_data / "simpleqa")
    assert len(loaded.items) == 4326 and not loaded.rejections
    first = loaded.items[0]
    assert first.question == "Who received the IEEE Frank Rosenblatt Award in 2010?"
    assert first.answer == "Michio Sugeno"
    assert first.category == first.metadata["topic"] == "Science and technology"
    assert first.metadata["urls"].split("\n")[0] == "https://en.wikipedia.org/wiki/IEEE_Frank_Rosenblatt_Award"
    assert len({i.item_id for i in loaded.items}) == 4326


@pytest.mark.parametrize(("subset", "count"), [("diamond", 198), ("main", 448), ("extended", 546)])
def test_gpqa_subsets_from_the_encrypted_zip_with_the_password_from_env(
    shared_data: Path, monkeypatch: pytest.MonkeyPatch, subset: str, count: int
):
    monkeypatch.setenv(PASSWORD_ENV, GPQA_PASSWORD)
    items = load_benchmark("gpqa", shared_data / "gpqa", subset=subset)
    assert len(items) == count
    assert len({i.item_id for i in items}) == count
    assert all(len(i.choices) == 4 and i.answer in "ABCD" for i in items)


def test_gpqa_default_subset_is_diamond_and_the_gold_choice_is_the_correct_answer(shared_data: Path):
    items = load_benchmark("gpqa", shared_data / "gpqa" / "dataset.zip", password=GPQA_PASSWORD)
    assert len(items) == 198
    first = next(i for i in items if i.item_id == "rec06pnAkLOr2t2mp")
    assert first.choices[first.answer_index] == "10^-4 eV"  # the published correct answer
    assert first.category == "Physics" and first.metadata["subdomain"] == "Physics (general)"


def test_gpqa_shuffle_is_seeded_per_record_id_not_by_the_global_rng(shared_data: Path):
    random.seed(1)
    first = load_benchmark("gpqa", shared_data / "gpqa", password=GPQA_PASSWORD)
    random.seed(2)
    second = load_benchmark("gpqa", shared_data / "gpqa", password=GPQA_PASSWORD)
    assert [(i.choices, i.answer) for i in first] == [(i.choices, i.answer) for i in second]
    # Same id, same order wherever the item appears; different ids give different orders.
    options = ["right", "wrong 1", "wrong 2", "wrong 3"]
    assert shuffle_choices("recA", options) == shuffle_choices("recA", options)
    orders = {shuffle_choices(f"rec{i}", options)[0] for i in range(50)}
    assert len(orders) > 10
    # The gold letter is spread over A-D rather than stuck in one position.
    letters = Counter(i.answer for i in first)
    assert set(letters) == set("ABCD") and min(letters.values()) > 25


def test_gpqa_without_or_with_a_wrong_password_is_a_clear_error(shared_data: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    with pytest.raises(BenchmarkError, match=PASSWORD_ENV):
        load_benchmark("gpqa", shared_data / "gpqa")
    with pytest.raises(BenchmarkError, match="cannot decrypt"):
        load_benchmark("gpqa", shared_data / "gpqa", password="not-the-password")
    with pytest.raises(BenchmarkError, match="unknown subset"):
        load_benchmark("gpqa", shared_data / "gpqa", password=GPQA_PASSWORD, subset="experts")


def test_malformed_mmlu_rows_are_skipped_counted_and_ids_stay_stable(fixtures_dir: Path):
    loaded = read_benchmark("mmlu", fixtures_dir / "benchmarks" / "mmlu")
    assert [i.item_id for i in loaded.items] == ["anatomy/0", "anatomy/1", "anatomy/2", "anatomy/6", "anatomy/7"]
    assert loaded.rejection_counts() == {"bad_answer": 1, "empty_question": 1, "wrong_field_count": 1}
    assert [r.input_ref.rsplit(":", 1)[1] for r in loaded.rejections] == ["row 3", "row 4", "row 5"]


def test_malformed_math500_lines_are_skipped_and_counted(fixtures_dir: Path):
    loaded = read_benchmark("math500", fixtures_dir / "benchmarks" / "math500")
    assert len(loaded.items) == 3
    assert loaded.rejection_counts() == {"malformed_json": 2, "missing_field": 1}


def test_simpleqa_metadata_is_parsed_as_a_literal_never_executed(fixtures_dir: Path, tmp_path: Path):
    loaded = read_benchmark("simpleqa", fixtures_dir / "benchmarks" / "simpleqa")
    assert len(loaded.items) == 3
    assert loaded.rejection_counts() == {"malformed_metadata": 2, "missing_field": 1}
    assert not Path("/tmp/reread-pwned").exists()  # the planted metadata would create it if evaluated


def test_load_benchmark_logs_rejections(fixtures_dir: Path, caplog: pytest.LogCaptureFixture):
    items = load_benchmark("math500", fixtures_dir / "benchmarks" / "math500")
    assert len(items) == 3
    assert "skipped 3 malformed rows" in caplog.text


def test_unknown_benchmark_missing_path_and_bad_option_are_clear_errors(fixtures_dir: Path, tmp_path: Path):
    with pytest.raises(BenchmarkError, match="unknown benchmark 'hellaswag'"):
        load_benchmark("hellaswag", tmp_path)
    with pytest.raises(BenchmarkError, match="does not exist"):
        load_benchmark("mmlu", tmp_path / "missing")
    with pytest.raises(BenchmarkError, match="bad loader options"):
        load_benchmark("math500", fixtures_dir / "benchmarks" / "math500", subset="diamond")
    with pytest.raises(BenchmarkError, match="no test CSV or Parquet"):
        load_benchmark("mmlu", tmp_path)
