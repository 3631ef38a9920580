"""MMLU (Hendrycks et al.): the original headerless CSVs or the HF ``cais/mmlu`` Parquet layout.

CSV: a folder of ``<subject>_<split>.csv`` files (or a folder holding ``dev/ val/ test/`` subfolders, or one file),
rows ``question, A, B, C, D, answer-letter``. Parquet: columns ``question, subject, choices, answer`` (answer an
index 0-3 or a letter). ``item_id`` is ``<subject>/<row within the subject>`` in both formats, so the two layouts
of the same release give the same ids.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Iterator, Sequence
from pathlib import Path

import pyarrow.parquet as pq

from catalog.records import Rejection
from eval.benchmarks.registry import BenchmarkError, register_benchmark, reject
from eval.benchmarks.types import LETTERS, BenchmarkItem

NAME = "mmlu"
N_CHOICES = 4
SPLITS = ("test", "val", "dev", "validation", "auxiliary_train")

# The standard MMLU subject -> subcategory map (hendrycks/test categories.py) and subcategory -> category.
SUBCATEGORIES = {
    "abstract_algebra": "math",
    "anatomy": "health",
    "astronomy": "physics",
    "business_ethics": "business",
    "clinical_knowledge": "health",
    "college_biology": "biology",
    "college_chemistry": "chemistry",
    "college_computer_science": "computer science",
    "college_mathematics": "math",
    "college_medicine": "health",
    "college_physics": "physics",
    "computer_security": "computer science",
    "conceptual_physics": "physics",
    "econometrics": "economics",
    "electrical_engineering": "engineering",
    "elementary_mathematics": "math",
    "formal_logic": "philosophy",
    "global_facts": "other",
    "high_school_biology": "biology",
    "high_school_chemistry": "chemistry",
    "high_school_computer_science": "computer science",
    "high_school_european_history": "history",
    "high_school_geography": "geography",
    "high_school_government_and_politics": "politics",
    "high_school_macroeconomics": "economics",
    "high_school_mathematics": "math",
    "high_school_microeconomics": "economics",
    "high_school_physics": "physics",
    "high_school_psychology": "psychology",
    "high_school_statistics": "math",
    "high_school_us_history": "history",
    "high_school_world_history": "history",
    "human_aging": "health",
    "human_sexuality": "culture",
    "international_law": "law",
    "jurisprudence": "law",
    "logical_fallacies": "philosophy",
    "machine_learning": "computer science",
    "management": "business",
    "marketing": "business",
    "medical_genetics": "health",
    "miscellaneous": "other",
    "moral_disputes": "philosophy",
    "moral_scenarios": "philosophy",
    "nutrition": "health",
    "philosophy": "philosophy",
    "prehistory": "history",
    "professional_accounting": "other",
    "professional_law": "law",
    "professional_medicine": "health",
    "professional_psychology": "psychology",
    "public_relations": "politics",
    "security_studies": "politics",
    "sociology": "culture",
    "us_foreign_policy": "politics",
    "virology": "health",
    "world_religions": "philosophy",
}
SUPERCATEGORIES = {
    "STEM": ("physics", "chemistry", "biology", "computer science", "math", "engineering"),
    "humanities": ("history", "philosophy", "law"),
    "social sciences": ("politics", "culture", "economics", "geography", "psychology"),
    "other": ("other", "business", "health"),
}
_SUPERCATEGORY_OF = {sub: sup for sup, subs in SUPERCATEGORIES.items() for sub in subs}
UNKNOWN = "unknown"


def supercategory(subject: str) -> str:
    """STEM / humanities / social sciences / other for a standard subject, ``unknown`` for any other."""
    return _SUPERCATEGORY_OF.get(SUBCATEGORIES.get(subject, ""), UNKNOWN)


def _item(subject: str, row: int, question: str, choices: Sequence[str], answer: str) -> BenchmarkItem:
    return BenchmarkItem(
        benchmark=NAME,
        item_id=f"{subject}/{row}",
        question=question,
        answer=answer,
        choices=tuple(choices),
        category=subject,
        metadata={"supercategory": supercategory(subject), "subcategory": SUBCATEGORIES.get(subject, UNKNOWN)},
    )


def _subject_of_csv(path: Path) -> str:
    stem = path.stem
    for split in SPLITS:
        if stem.endswith(f"_{split}"):
            return stem.removesuffix(f"_{split}")
    return stem


def _read_csv(path: Path) -> Iterator[BenchmarkItem | Rejection]:
    subject = _subject_of_csv(path)
    with open(path, encoding="utf-8", newline="") as f:
        rows = csv.reader(f)
        row = 0
        while True:
            ref = f"{path}:row {row}"
            try:
                fields = next(rows)
            except StopIteration:
                return
            except csv.Error as exc:
                yield reject(NAME, ref, "malformed_csv", str(exc))
                row += 1
                continue
            except UnicodeDecodeError as exc:
                yield reject(NAME, ref, "bad_encoding", str(exc))
                return
            row += 1
            if len(fields) != 2 + N_CHOICES:
                yield reject(NAME, ref, "wrong_field_count", f"expected 6 fields, got {len(fields)}")
            elif fields[-1].strip() not in LETTERS[:N_CHOICES]:
                yield reject(NAME, ref, "bad_answer", f"answer {fields[-1]!r} is not one of A-D")
            elif not fields[0].strip():
                yield reject(NAME, ref, "empty_question")
            else:
                yield _item(subject, row - 1, fields[0], fields[1:-1], fields[-1].strip())


def _parquet_answer(value: object) -> str | None:
    if isinstance(value, int) and 0 <= value < N_CHOICES:
        return LETTERS[value]
    if isinstance(value, str) and value.strip() in LETTERS[:N_CHOICES]:
        return value.strip()
    return None


def _read_parquet(path: Path) -> Iterator[BenchmarkItem | Rejection]:
    try:
        table = pq.read_table(path, columns=["question", "subject", "choices", "answer"])
    except (OSError, KeyError, ValueError) as exc:
        yield reject(NAME, str(path), "unreadable_parquet", str(exc))
        return
    row_in_subject: dict[str, int] = defaultdict(int)
    for i, rec in enumerate(table.to_pylist()):
        ref = f"{path}:row {i}"
        subject = rec["subject"] or _subject_of_csv(path.parent)
        row = row_in_subject[subject]
        row_in_subject[subject] += 1
        choices = rec["choices"] or []
        answer = _parquet_answer(rec["answer"])
        if not rec["question"] or not str(rec["question"]).strip():
            yield reject(NAME, ref, "empty_question")
        elif len(choices) != N_CHOICES or any(c is None for c in choices):
            yield reject(NAME, ref, "wrong_choice_count", f"expected 4 choices, got {len(choices)}")
        elif answer is None:
            yield reject(NAME, ref, "bad_answer", f"answer {rec['answer']!r} is not 0-3 or A-D")
        else:
            yield _item(subject, row, rec["question"], choices, answer)


def _parquet_files(folder: Path, split: str) -> list[Path]:
    # HF layout: all/<split>-*.parquet beside <subject>/<split>-*.parquet; "all" alone avoids reading twice.
    root = folder / "all" if (folder / "all").is_dir() else folder
    return sorted(p for p in root.rglob("*.parquet") if p.name.startswith(split))


def _files(path: Path, split: str) -> list[Path]:
    if path.is_file():
        return [path]
    folder = path / split if (path / split).is_dir() else path
    csvs = sorted(folder.glob(f"*_{split}.csv")) or sorted(folder.glob("*.csv"))
    files = csvs or _parquet_files(folder, split)
    if not files:
        raise BenchmarkError(f"{NAME}: no {split} CSV or Parquet files under {path}")
    return files


@register_benchmark(NAME, default_ngram=16)
def read_mmlu(
    path: Path, *, split: str = "test", subjects: Sequence[str] | None = None
) -> Iterator[BenchmarkItem | Rejection]:
    """MMLU questions of one split (``test`` by default), optionally only some ``subjects``."""
    wanted = set(subjects) if subjects else None
    for file in _files(path, split):
        records = _read_parquet(file) if file.suffix == ".parquet" else _read_csv(file)
        for record in records:
            if wanted is None or isinstance(record, Rejection) or record.category in wanted:
                yield record
