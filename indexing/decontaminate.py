"""Decontamination against benchmark *question text* with exact word n-grams.

For every benchmark question (MMLU question without its options, MATH-500 problem, SimpleQA problem, GPQA
question) the normalized word n-grams (``indexing.normalize``) are hashed to 64 bits and stored with the item(s)
they came from. A corpus text is contaminated by an item when any of its n-grams equals one of the item's.

- n defaults to 16 for MMLU, 26 for MATH-500 and 13 otherwise (``BenchmarkRef.ngram`` overrides it).
- A question shorter than n tokens contributes one key: the whole question (so a 10-token MMLU question is
  found wherever those 10 tokens occur in a row).
- A question shorter than ``KeyPolicy.min_question_tokens`` (default 8) is not indexed: "The auditory tube" or
  "Osteoclasts" (real MMLU questions) would otherwise flag every anatomy page. Each such question becomes a
  ``question_too_short`` rejection and is reported, so the gap is visible. ``min_question_tokens=1`` indexes
  every question.
- An n-gram shared by more than ``KeyPolicy.max_items_per_key`` (default 6) items of one benchmark is an
  instruction template, not question content, and is not a key: MMLU's moral_scenarios boilerplate ("For which of
  these two scenarios does the main character ... as of 2020?") is shared by 895 questions and formal_logic's
  truth-table instructions by dozens; a page quoting one would otherwise count hundreds of items as found. Passages
  shared by a handful of questions (high_school_us_history's, up to 6) stay keys of each of those items.

Matching the question rather than the answer is deliberate: answers (MMLU option letters, SimpleQA entities)
are short and common, so answer-anchored n-grams remove almost nothing (a MassiveDS/datatrove pitfall).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Protocol

import numpy as np
import polars as pl
from tqdm.auto import tqdm

from catalog.errors import ConfigError
from catalog.hashing import combine_hashes, content_hash, stable_hash
from catalog.records import Rejection, StageStats
from indexing.normalize import TokenizedBatch, require_columns, tokenize_batch, window_hashes, window_hashes_at

STAGE = "decontaminate"


class Question(Protocol):
    """What decontamination reads of a benchmark item (``eval.benchmarks.BenchmarkItem`` is one)."""

    item_id: str
    question: str


@dataclass(frozen=True)
class BenchmarkQuestions:
    """One benchmark's questions, handed in by the caller that loaded them (``buildplan.questions``), with the n of
    its n-gram keys and the loader's rejections. Picklable: units carry it to their workers."""

    benchmark: str
    items: tuple[Question, ...]
    ngram: int
    rejections: tuple[Rejection, ...] = ()

    @property
    def fingerprint(self) -> str:
        """Content hash of the name, n, item ids and question texts: equal question sets index the same keys."""
        head = [f"{self.benchmark}:{self.ngram}"]
        return combine_hashes(head + [f"{i.item_id}:{content_hash(i.question)}" for i in self.items])


@dataclass(frozen=True, slots=True)
class KeyPolicy:
    """Which question n-grams become keys (see the module docstring for why)."""

    min_question_tokens: int = 8
    max_items_per_key: int = 6


HIT_SCHEMA = {
    "benchmark": pl.String,
    "item_id": pl.String,
    "doc_id": pl.String,
    "chunk_id": pl.String,
    "n_hits": pl.Int64,
}
SUMMARY_SCHEMA = {
    "benchmark": pl.String,
    "items_checked": pl.Int64,
    "items_found": pl.Int64,
    "rate": pl.Float64,
    "items_too_short": pl.Int64,
    "template_keys": pl.Int64,
}


@dataclass(frozen=True, slots=True)
class Match:
    """One benchmark n-gram found in a text: which item, and where (in normalized word tokens)."""

    benchmark: str
    item_id: str
    offset: int  # token offset in the text where the matching n-gram starts
    length: int  # tokens in the matching n-gram: n, or the whole question when it is shorter than n


@dataclass(frozen=True, slots=True)
class WindowHits:
    """Matched windows of a tokenized batch: text index, token offset in that text, item index, window length."""

    text: np.ndarray
    offset: np.ndarray
    item: np.ndarray
    length: np.ndarray


@dataclass(slots=True)
class _KeySet:
    """Sorted unique n-gram hashes of one window length, each with the items it came from (CSR layout)."""

    keys: np.ndarray  # uint64, sorted, unique
    indptr: np.ndarray  # int64, len(keys) + 1
    items: np.ndarray  # int64 item indices
    n_dropped: int = 0  # template hashes left out (shared by too many items)

    @classmethod
    def build(cls, hashes: np.ndarray, items: np.ndarray, max_items_per_key: int) -> _KeySet:
        """Keys from (hash, item) pairs; a hash shared by more than ``max_items_per_key`` items is left out."""
        pairs = np.unique(np.stack([hashes, items.astype(np.uint64)]), axis=1)
        keys, counts = np.unique(pairs[0], return_counts=True)
        kept = counts <= max_items_per_key
        pairs = pairs[:, np.repeat(kept, counts)]
        indptr = np.concatenate([[0], np.cumsum(counts[kept])]).astype(np.int64)
        return cls(keys=keys[kept], indptr=indptr, items=pairs[1].astype(np.int64), n_dropped=int((~kept).sum()))

    def lookup(self, hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(index into ``hashes``, item) for every hash that is a key, one row per item the key came from."""
        if len(self.keys) == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        pos = np.minimum(np.searchsorted(self.keys, hashes), len(self.keys) - 1)
        found = np.flatnonzero(self.keys[pos] == hashes)
        key_idx = pos[found]
        counts = self.indptr[key_idx + 1] - self.indptr[key_idx]
        within = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        return np.repeat(found, counts), self.items[np.repeat(self.indptr[key_idx], counts) + within]


class _PrefixFilter:
    """Membership test for many 64-bit hashes against a large key set.

    A bitmap over the top bits of the keys rejects almost every non-key in one cache-friendly gather, so the
    binary search only runs on the few survivors (about 6x faster than searching every window).
    """

    BITS = 24  # 16 MiB of bools: ~3% of random hashes survive against ~500k keys

    def __init__(self, keys: np.ndarray):
        self.keys = np.unique(keys.astype(np.uint64))
        self.bitmap = np.zeros(1 << self.BITS, dtype=bool)
        self.bitmap[self.keys >> np.uint64(64 - self.BITS)] = True

    def positions_of_keys(self, hashes: np.ndarray) -> np.ndarray:
        """Indices of ``hashes`` that are keys."""
        if len(self.keys) == 0:
            return np.zeros(0, dtype=np.int64)
        survivors = np.flatnonzero(self.bitmap[hashes >> np.uint64(64 - self.BITS)])
        pos = np.minimum(np.searchsorted(self.keys, hashes[survivors]), len(self.keys) - 1)
        return survivors[self.keys[pos] == hashes[survivors]]


def _ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Concatenation of ``range(s, s + c)`` for each start and count."""
    return np.repeat(starts, counts) + np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)


@dataclass(slots=True)
class BenchmarkNgramIndex:
    """The question n-gram hashes of one benchmark, by window length (n, plus shorter whole questions)."""

    benchmark: str
    ngram: int
    item_ids: list[str]
    key_sets: dict[int, _KeySet]
    questions: TokenizedBatch  # the indexed questions' tokens, to derive key prefixes
    key_starts: dict[int, np.ndarray]  # window length -> flat start of every key window in ``questions``
    rejections: list[Rejection] = field(default_factory=list)

    @property
    def items_checked(self) -> int:
        return len(self.item_ids)

    @property
    def min_key_length(self) -> int | None:
        return min(self.key_sets, default=None)

    @classmethod
    def build(
        cls,
        benchmark: str,
        items: Sequence[Question],
        ngram: int,
        policy: KeyPolicy = KeyPolicy(),
    ) -> BenchmarkNgramIndex:
        usable_items, rejections = [], []
        lengths = tokenize_batch([item.question for item in items]).lengths.tolist()
        for item, n_tokens in zip(items, lengths, strict=True):
            if n_tokens >= max(policy.min_question_tokens, 1):
                usable_items.append(item)
            else:
                detail = f"{n_tokens} tokens < {policy.min_question_tokens}"
                rejections.append(Rejection(STAGE, benchmark, item.item_id, "question_too_short", detail))
        questions = tokenize_batch([item.question for item in usable_items])
        key_starts = _question_key_starts(questions, ngram)
        key_sets = {
            length: _KeySet.build(
                window_hashes_at(questions.hashes, starts, length), questions.owner[starts], policy.max_items_per_key
            )
            for length, starts in key_starts.items()
        }
        return cls(
            benchmark=benchmark,
            ngram=ngram,
            item_ids=[item.item_id for item in usable_items],
            key_sets=key_sets,
            questions=questions,
            key_starts=key_starts,
            rejections=rejections,
        )

    def key_prefixes(self, length: int) -> np.ndarray:
        """The hashes of the first ``length`` tokens of every key (``length`` <= the shortest key)."""
        starts = np.concatenate([np.zeros(0, dtype=np.int64), *self.key_starts.values()])
        return window_hashes_at(self.questions.hashes, starts, length)

    def match(self, batch: TokenizedBatch, candidates: np.ndarray) -> WindowHits:
        """The windows starting at flat positions ``candidates`` of ``batch`` that equal one of the keys."""
        parts = []
        for length, key_set in self.key_sets.items():
            starts = candidates[batch.windows_inside_texts(candidates, length)]
            where, items = key_set.lookup(window_hashes_at(batch.hashes, starts, length))
            pos = starts[where]
            text = batch.owner[pos]
            parts.append((text, pos - batch.offsets[text], items, np.full(len(pos), length, dtype=np.int64)))
        if not parts:
            empty = np.zeros(0, dtype=np.int64)
            return WindowHits(empty, empty, empty, empty)
        return WindowHits(*(np.concatenate(cols) for cols in zip(*parts, strict=True)))


def _question_key_starts(questions: TokenizedBatch, ngram: int) -> dict[int, np.ndarray]:
    """Flat starts of the key windows by length: every n-gram of questions with at least n tokens, and for a
    shorter question one window, the whole question."""
    lengths = questions.lengths
    long_texts = np.flatnonzero(lengths >= ngram)
    by_length = {ngram: _ranges(questions.offsets[long_texts], lengths[long_texts] - ngram + 1)}
    for length in np.unique(lengths[lengths < ngram]).tolist():
        by_length[length] = questions.offsets[np.flatnonzero(lengths == length)]
    return {length: starts for length, starts in by_length.items() if len(starts)}


_RECENT: dict[str, Decontaminator] = {}  # stable_hash(benchmarks, policy) -> built decontaminator
_RECENT_MAX = 4


class Decontaminator:
    """Question n-gram indexes of several benchmarks; finds which benchmark items a text contains.

    A text is scanned in two passes: every window of the shortest key length is looked up among the prefixes
    of all keys (one vectorized pass whatever the number of benchmarks and key lengths), then only those rare
    candidate positions are hashed at each full key length and looked up exactly.
    """

    def __init__(self, indexes: Sequence[BenchmarkNgramIndex], loader_rejections: Sequence[Rejection] = ()):
        names = [ix.benchmark for ix in indexes]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ConfigError(f"decontamination.benchmarks: each benchmark may appear once, repeated: {repeated}")
        self.indexes = list(indexes)
        self.rejections = [*loader_rejections, *(r for ix in indexes for r in ix.rejections)]
        self.prefix_length = min((ix.min_key_length for ix in indexes if ix.key_sets), default=None)
        prefixes = [ix.key_prefixes(self.prefix_length) for ix in indexes if ix.key_sets]
        self.prefix_filter = _PrefixFilter(np.concatenate([np.zeros(0, dtype=np.uint64), *prefixes]))

    @classmethod
    def from_questions(
        cls, benchmarks: Sequence[BenchmarkQuestions], *, policy: KeyPolicy = KeyPolicy()
    ) -> Decontaminator:
        """Index the questions of some benchmarks. Built indexes are read-only, so the few most recent are kept per
        process by content: units calling this once per shard or part build once per worker."""
        key = stable_hash({"benchmarks": [b.fingerprint for b in benchmarks], "policy": asdict(policy)})
        if key not in _RECENT:
            indexes = [BenchmarkNgramIndex.build(b.benchmark, b.items, b.ngram, policy) for b in benchmarks]
            _RECENT[key] = cls(indexes, [r for b in benchmarks for r in b.rejections])
            while len(_RECENT) > _RECENT_MAX:
                _RECENT.pop(next(iter(_RECENT)))
        return _RECENT[key]

    def _scan(self, batch: TokenizedBatch) -> Iterator[tuple[BenchmarkNgramIndex, WindowHits]]:
        if self.prefix_length is None or len(batch.hashes) < self.prefix_length:
            return
        window = window_hashes(batch.hashes, [self.prefix_length])[self.prefix_length]
        candidates = self.prefix_filter.positions_of_keys(window)
        for ix in self.indexes:
            yield ix, ix.match(batch, candidates)

    def find(self, text: str) -> list[Match]:
        """All benchmark n-grams in ``text``, ordered by offset then benchmark and item."""
        matches = []
        for ix, hits in self._scan(tokenize_batch([text])):
            matches.extend(
                Match(ix.benchmark, ix.item_ids[item], offset, length)
                for offset, item, length in zip(
                    hits.offset.tolist(), hits.item.tolist(), hits.length.tolist(), strict=True
                )
            )
        return sorted(matches, key=lambda m: (m.offset, m.benchmark, m.item_id))

    def scan(self, texts: pl.Series | Iterable[str]) -> pl.DataFrame:
        """Per (text row, benchmark, item): ``n_hits``, the number of matching n-gram windows."""
        frames = []
        for ix, hits in self._scan(tokenize_batch(texts)):
            if len(hits.text) == 0:
                continue
            pair, n_hits = np.unique(hits.text * ix.items_checked + hits.item, return_counts=True)
            frames.append(
                pl.DataFrame(
                    {
                        "row": pair // ix.items_checked,
                        "benchmark": pl.repeat(ix.benchmark, len(pair), eager=True),
                        "item_id": pl.Series(ix.item_ids, dtype=pl.String).gather(pair % ix.items_checked),
                        "n_hits": n_hits.astype(np.int64),
                    }
                )
            )
        empty = pl.DataFrame(schema={"row": pl.Int64, "benchmark": pl.String, "item_id": pl.String, "n_hits": pl.Int64})
        return pl.concat(frames).sort("row", "benchmark", "item_id") if frames else empty


@dataclass(frozen=True, slots=True)
class RowUnit:
    """What one row of the filtered table is: its id column, and whether it is a chunk of a document."""

    id_column: str
    is_chunk: bool

    @property
    def required(self) -> tuple[str, ...]:
        return ("doc_id", "chunk_id", "text") if self.is_chunk else ("doc_id", "text")


# decontamination.action -> what a removed row is.
ACTIONS: dict[str, RowUnit] = {
    "drop_document": RowUnit(id_column="doc_id", is_chunk=False),
    "drop_chunk": RowUnit(id_column="chunk_id", is_chunk=True),
}


@dataclass(frozen=True, slots=True)
class FilterResult:
    kept: pl.DataFrame
    hits: pl.DataFrame  # benchmark, item_id, doc_id, chunk_id (null for documents), n_hits


class DecontaminationFilter:
    """The decontamination step: drops every row (document or chunk) that contains a benchmark question n-gram.

    ``run`` filters one batch; ``run_stream`` filters many. Hits and counters accumulate over all batches, so
    ``hits()`` and ``summary()`` describe the whole stream.
    """

    def __init__(self, decontaminator: Decontaminator, action: str = "drop_document"):
        if action not in ACTIONS:
            raise ConfigError(f"decontamination.action: unknown action {action!r}; choose one of {sorted(ACTIONS)}")
        self.decontaminator = decontaminator
        self.unit = ACTIONS[action]
        self.stats = StageStats(STAGE)
        self._hits: list[pl.DataFrame] = []

    @classmethod
    def from_questions(
        cls, benchmarks: Sequence[BenchmarkQuestions], action: str = "drop_document", *, policy: KeyPolicy = KeyPolicy()
    ) -> DecontaminationFilter:
        return cls(Decontaminator.from_questions(benchmarks, policy=policy), action)

    def run(self, table: pl.DataFrame) -> FilterResult:
        require_columns(table, self.unit.required, STAGE)
        found = self.decontaminator.scan(table["text"])
        ids = table.select(
            pl.col("doc_id").cast(pl.String),
            (pl.col("chunk_id").cast(pl.String) if self.unit.is_chunk else pl.lit(None, pl.String)).alias("chunk_id"),
        ).with_row_index("row")
        hits = (
            found.with_columns(pl.col("row").cast(pl.UInt32))
            .join(ids, on="row", how="left")
            .select(list(HIT_SCHEMA))
            .cast(HIT_SCHEMA)
        )
        dirty_rows = found["row"].unique().to_numpy()
        keep = np.ones(table.height, dtype=bool)
        keep[dirty_rows] = False
        kept = table.filter(pl.Series(keep))
        self._hits.append(hits)
        noun = "chunks" if self.unit.is_chunk else "documents"
        self.stats.add(f"{noun}_in", table.height)
        self.stats.add(f"{noun}_out", kept.height)
        self.stats.add(f"{noun}_removed", table.height - kept.height)
        return FilterResult(kept=kept, hits=hits)

    def run_stream(self, batches: Iterable[pl.DataFrame]) -> Iterator[pl.DataFrame]:
        """Filter a stream of batches, yielding the kept rows of each."""
        for batch in tqdm(batches, desc="decontaminate", unit="batch", disable=None):
            yield self.run(batch).kept

    def hits(self) -> pl.DataFrame:
        """Every (benchmark, item, document/chunk) hit so far."""
        return pl.concat(self._hits) if self._hits else pl.DataFrame(schema=HIT_SCHEMA)

    def summary(self) -> pl.DataFrame:
        """Per benchmark: items checked, items found in at least one row, their rate, questions too short to
        check, and template n-grams left out."""
        found = self.hits().group_by("benchmark").agg(pl.col("item_id").n_unique().alias("items_found"))
        found_by_name = dict(zip(found["benchmark"].to_list(), found["items_found"].to_list(), strict=True))
        rows = []
        for ix in self.decontaminator.indexes:
            n_found = found_by_name.get(ix.benchmark, 0)
            rows.append(
                {
                    "benchmark": ix.benchmark,
                    "items_checked": ix.items_checked,
                    "items_found": n_found,
                    "rate": n_found / ix.items_checked if ix.items_checked else 0.0,
                    "items_too_short": len(ix.rejections),
                    "template_keys": sum(k.n_dropped for k in ix.key_sets.values()),
                }
            )
        return pl.DataFrame(rows, schema=SUMMARY_SCHEMA)
