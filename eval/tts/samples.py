"""The samples table: every generation a test-time analysis needs, stored once and re-analysed without new generation.

One row per generated candidate:

| column | type | meaning |
| --- | --- | --- |
| ``question_id`` | str | the benchmark item |
| ``sample_idx`` | int | index of the sample (position in its chain for ``revision`` rows) |
| ``answer`` | str | extracted final answer; empty when none could be extracted (the sample then abstains from votes) |
| ``correct`` | bool | graded against the reference |
| ``verifier_score`` | float | outcome verifier's score in [0, 1] (null: not scored) |
| ``step_scores`` | list[float] | process reward model's score of each step prefix (optional) |
| ``tokens`` | int | completion tokens (for search outputs: this candidate's share of the whole search's tokens) |
| ``prompt_tokens`` | int | prompt tokens, including retrieved context (optional, default 0) |
| ``retrieval`` | str | retrieval setting the sample was generated under (``none``, ``k=5``, ``k=20,rerank``, ...) |
| ``source`` | str | ``parallel`` (independent samples), ``revision`` (sequential chains) or a search (``beam_search``...) |
| ``chain`` | int | revision chain id (default: ``sample_idx``) |
| ``budget`` | int | for search outputs, the sample budget the search ran with (default 0) |
| ``split`` | str | optional ``val`` / ``test`` assignment; otherwise assigned by a hash of ``question_id`` |
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from catalog.errors import RereadError
from catalog.records import Rejection, StageStats

STAGE = "tts"
PARALLEL = "parallel"
REVISION = "revision"
NO_RETRIEVAL = "none"

REQUIRED = {"question_id": pl.Utf8, "sample_idx": pl.Int64, "answer": pl.Utf8, "correct": pl.Boolean}
OPTIONAL = {
    "verifier_score": (pl.Float64, None),
    "tokens": (pl.Int64, 0),
    "prompt_tokens": (pl.Int64, 0),
    "retrieval": (pl.Utf8, NO_RETRIEVAL),
    "source": (pl.Utf8, PARALLEL),
    "budget": (pl.Int64, 0),
    "split": (pl.Utf8, None),
}
STEP_SCORES = "step_scores"


def from_reader_samples(frame: pl.DataFrame) -> pl.DataFrame:
    """Stored reader-evaluation samples (``eval_samples`` rows: strategy, question_id, sample_index, answer,
    correct, token counts, chunk_ids) as a samples table: one ``retrieval`` setting per strategy, named after it,
    except that the strategy without passages that has the most samples per question is ``none`` (the base setting
    difficulty bins are computed from); ``source`` parallel, ``tokens`` the completion tokens."""
    missing = [c for c in ("strategy", "question_id", "sample_index", "answer", "correct") if c not in frame.columns]
    if missing:
        raise SamplesError(f"reader samples: missing columns {', '.join(missing)}")
    passages = pl.col("chunk_ids").list.len().fill_null(0).max() if "chunk_ids" in frame.columns else pl.lit(1)
    per_strategy = frame.group_by("strategy").agg(
        passages.alias("passages"), (pl.len() / pl.col("question_id").n_unique()).alias("per_question")
    )
    closed = per_strategy.filter(pl.col("passages") == 0).sort(["per_question", "strategy"], descending=[True, False])
    base = closed["strategy"][0] if closed.height else None
    tokens = pl.col("completion_tokens") if "completion_tokens" in frame.columns else pl.lit(0)
    prompt_tokens = pl.col("prompt_tokens") if "prompt_tokens" in frame.columns else pl.lit(0)
    return frame.select(
        pl.col("question_id").cast(pl.Utf8),
        pl.col("sample_index").cast(pl.Int64).alias("sample_idx"),
        pl.col("answer").cast(pl.Utf8).fill_null(""),
        pl.col("correct").cast(pl.Boolean).fill_null(False),
        tokens.cast(pl.Int64).alias("tokens"),
        prompt_tokens.cast(pl.Int64).alias("prompt_tokens"),
        pl.when(pl.col("strategy") == base).then(pl.lit(NO_RETRIEVAL)).otherwise(pl.col("strategy")).alias("retrieval"),
        pl.lit(PARALLEL).alias("source"),
    ).sort("retrieval", "question_id", "sample_idx")


class SamplesError(RereadError):
    """A samples table that cannot be analysed: the message names the file and the reason."""


@dataclass
class SampleTable:
    """A validated samples table (all columns present and typed) and the rows that were set aside."""

    frame: pl.DataFrame
    rejections: list[Rejection] = field(default_factory=list)
    stats: StageStats = field(default_factory=lambda: StageStats(STAGE))

    @property
    def question_ids(self) -> list[str]:
        return sorted(self.frame["question_id"].unique().to_list())


def answer_key_expr(column: str = "answer") -> pl.Expr:
    """Answer equivalence for votes: whitespace-collapsed, lower-cased, without a trailing period.

    Producers that need mathematical equivalence (Math-Verify) store an already canonical ``answer``.
    """
    return (
        pl.col(column)
        .fill_null("")
        .str.replace_all(r"\s+", " ")
        .str.strip_chars()
        .str.to_lowercase()
        .str.strip_chars_end(".")
    )


def validate_samples(frame: pl.DataFrame, source: str = "samples") -> SampleTable:
    """Type and default every column; rows without a question id, index or grade become rejections."""
    if "sample_idx" not in frame.columns and "sample_index" in frame.columns:  # eval.sample_metrics' name
        frame = frame.rename({"sample_index": "sample_idx"})
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise SamplesError(f"{source}: samples table lacks columns {', '.join(missing)} (have {frame.columns})")
    try:
        typed = frame.with_columns(
            *[pl.col(c).cast(t) for c, t in REQUIRED.items()],
            *[
                (pl.col(c).cast(t) if c in frame.columns else pl.lit(None, dtype=t)).fill_null(default).alias(c)
                if default is not None
                else (pl.col(c).cast(t) if c in frame.columns else pl.lit(None, dtype=t)).alias(c)
                for c, (t, default) in OPTIONAL.items()
            ],
            (
                pl.col(STEP_SCORES).cast(pl.List(pl.Float64))
                if STEP_SCORES in frame.columns
                else pl.lit(None, dtype=pl.List(pl.Float64))
            ).alias(STEP_SCORES),
        )
    except pl.exceptions.PolarsError as exc:
        raise SamplesError(f"{source}: samples columns have the wrong types ({exc})") from exc
    if "chain" in frame.columns:
        typed = typed.with_columns(pl.col("chain").cast(pl.Int64).fill_null(pl.col("sample_idx")))
    else:
        typed = typed.with_columns(pl.col("sample_idx").alias("chain"))
    typed = typed.with_columns(pl.int_range(pl.len()).alias("_row"))

    stats = StageStats(STAGE)
    stats.add("rows_in", len(typed))
    problems = {
        "missing_question_id": pl.col("question_id").is_null() | (pl.col("question_id") == ""),
        "missing_sample_idx": pl.col("sample_idx").is_null(),
        "missing_grade": pl.col("correct").is_null(),
        "invalid_verifier_score": pl.col("verifier_score").is_not_null() & ~pl.col("verifier_score").is_finite(),
    }
    rejections = []
    bad = pl.lit(False)
    for reason, condition in problems.items():
        hits = typed.filter(condition & ~bad)
        for row in hits.select("_row", "question_id").iter_rows():
            rejections.append(Rejection(STAGE, source, f"row {row[0] + 1}", reason, f"question {row[1]!r}"))
        stats.add(f"rejected_{reason}", len(hits))
        bad = bad | condition
    kept = typed.filter(~bad).drop("_row")
    duplicated = kept.select("question_id", "retrieval", "source", "budget", "chain", "sample_idx").is_duplicated()
    if duplicated.any():
        for qid in kept.filter(duplicated)["question_id"].unique().to_list():
            rejections.append(Rejection(STAGE, source, str(qid), "duplicate_sample", "same key stored twice"))
        stats.add("rejected_duplicate_sample", int(duplicated.sum()))
        kept = kept.filter(~duplicated)
    stats.add("rows_out", len(kept))
    if kept.is_empty():
        raise SamplesError(f"{source}: no usable samples ({len(rejections)} rows rejected)")
    return SampleTable(kept.with_columns(answer_key_expr().alias("answer_key")), rejections, stats)


def read_samples(path: str | Path) -> SampleTable:
    """Read and validate a samples table (Parquet; CSV/JSONL also accepted, without ``step_scores``)."""
    path = Path(path)
    if not path.is_file():
        raise SamplesError(f"{path}: samples file not found")
    readers = {".parquet": pl.read_parquet, ".csv": pl.read_csv, ".jsonl": pl.read_ndjson}
    reader = readers.get(path.suffix.lower())
    if reader is None:
        raise SamplesError(f"{path}: unsupported samples format {path.suffix!r} (use .parquet, .csv, .jsonl)")
    try:
        frame = reader(path)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise SamplesError(f"{path}: cannot read samples ({exc})") from exc
    return validate_samples(frame, str(path))


def write_samples(frame: pl.DataFrame, path: str | Path) -> Path:
    """Write a samples table as Parquet (to a temporary name first, so a crash leaves no half file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    frame.write_parquet(tmp)
    tmp.replace(path)
    return path
