"""Chunking in the embedder's own tokens.

A chunk is a window of at most ``size`` tokens of the embedder's tokenizer (no special tokens), so nothing the
embedder sees is silently truncated by a mismatched word count. Each document is tokenized once (many documents per
tokenizer call) and the fast tokenizer's offset mapping turns token windows back into exact character spans, so
``text[char_start:char_end] == chunk.text`` always holds.

Where a window ends is chosen by boundary preference: the last paragraph break in the second half of the window,
else the last sentence end there, else the last word boundary, else (one giant "word", e.g. a base64 blob) a plain
token boundary. The next window starts ``overlap`` tokens before the previous end, moved to a word start.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
from tqdm import tqdm

from catalog.errors import ArtifactError, ConfigError
from catalog.ids import chunk_ids
from catalog.parquet import CHUNK_SCHEMA as CATALOG_CHUNK_SCHEMA
from catalog.records import ProgressCallback, Rejection, StageStats
from catalog.variant import ChunkingConfig
from indexing.embed import offline_hub, resolve_model_path

STAGE = "chunk"

# Boundary strength of the gap before a token; a window prefers to end at the strongest gap it can.
TOKEN_GAP = 0  # inside a word ("wörld" + "." or word pieces): only when nothing better exists
WORD_GAP = 1  # whitespace between tokens
SENTENCE_GAP = 2  # whitespace after . ! ? (closing quotes/brackets allowed), or a single line break
PARAGRAPH_GAP = 3  # a blank line

_PARAGRAPH_BREAK = re.compile(r"\n[^\S\n]*\n")
_SENTENCE_END = re.compile(r"[.!?][\"'”’)\]]*$")
_SENTENCE_END_LOOKBACK = 4  # chars before a gap inspected for a sentence end (the mark plus closing quotes)

# Documents per tokenizer call: large enough to amortise the call, small enough to keep memory flat.
TOKENIZE_BATCH_DOCS = 256

# The chunk artifact's columns and types, as the catalog defines them for every chunk Parquet part.
CHUNK_SCHEMA = pl.from_arrow(CATALOG_CHUNK_SCHEMA.empty_table()).schema
CHUNK_COLUMNS = tuple(CHUNK_SCHEMA.names())
_PROVENANCE = ("source_doc_id", "source", "url", "title")


@dataclass(frozen=True, slots=True)
class Chunk:
    chunk_id: str
    doc_id: str
    source_doc_id: str | None
    source: str | None
    url: str | None
    title: str | None
    text: str
    char_start: int
    char_end: int
    n_tokens: int

    def as_row(self) -> dict[str, Any]:
        # the fields are flat strings and ints: no need for asdict's recursive deep copy (a third of chunking's time)
        return {name: getattr(self, name) for name in self.__slots__}


def load_tokenizer(model_name: str) -> Any:
    """The fast tokenizer of an embedder (bundled name or local path), loaded offline."""
    path = resolve_model_path(model_name)
    with offline_hub():
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(path)
    if not tokenizer.is_fast:
        raise ConfigError(f"embedder {model_name!r}: chunking needs a fast tokenizer (offset mapping), got a slow one")
    return tokenizer


def gap_strengths(text: str, offsets: np.ndarray) -> np.ndarray:
    """Boundary strength of the gap *before* each token (index 0 is the document start, never a cut point).

    ``offsets`` is the ``[n, 2]`` character span of each token. Vectorised over the text's code points (this runs on
    every document of a corpus): a gap with two or more line breaks is checked for a blank line by ``_PARAGRAPH_BREAK``,
    one line break is a sentence gap, and otherwise the ``_SENTENCE_END_LOOKBACK`` characters before the gap decide
    (``_SENTENCE_END``: a mark, closing quotes/brackets, the end; Python's ``$`` also allows one final newline).
    """
    n = len(offsets)
    strengths = np.full(n, TOKEN_GAP, dtype=np.int8)
    if n < 2:
        return strengths
    gaps = np.flatnonzero(offsets[1:, 0] > offsets[:-1, 1]) + 1  # only whitespace gaps can be more than a token gap
    if not len(gaps):
        return strengths
    ends, starts = offsets[gaps - 1, 1], offsets[gaps, 0]  # each gap is text[ends:starts]
    points = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4")
    newlines_before = np.concatenate([[0], np.cumsum(points == _NEWLINE)])
    newlines = newlines_before[starts] - newlines_before[ends]
    strength = np.where(newlines == 1, SENTENCE_GAP, WORD_GAP).astype(np.int8)
    strength[(newlines == 0) & _sentence_ends_at(points, ends)] = SENTENCE_GAP
    for i in np.flatnonzero(newlines >= 2):  # rare: a blank line, or line breaks with other text between them
        strength[i] = PARAGRAPH_GAP if _PARAGRAPH_BREAK.search(text, ends[i], starts[i]) else SENTENCE_GAP
    strengths[gaps] = strength
    return strengths


_NEWLINE = ord("\n")
_MARK, _CLOSER = 1, 2  # classes of the code points _SENTENCE_END reads: [.!?] and the closing quotes/brackets after it
_CLASS_OF_POINT = np.zeros(ord("”") + 1, dtype=np.int8)
_CLASS_OF_POINT[[ord(c) for c in ".!?"]] = _MARK
_CLASS_OF_POINT[[ord(c) for c in "\"'”’)]"]] = _CLOSER


def _sentence_ends_at(points: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Whether ``_SENTENCE_END`` matches the ``_SENTENCE_END_LOOKBACK`` code points before each of ``ends``."""
    classes = np.where(points < len(_CLASS_OF_POINT), _CLASS_OF_POINT[np.minimum(points, len(_CLASS_OF_POINT) - 1)], 0)
    found = np.zeros(len(ends), dtype=bool)
    for tail in (0, 1):  # tail 1: the window ends with a newline, which ``$`` may stand before
        end = ends - tail
        closers_after = (end >= 0) & ((tail == 0) | (points[np.maximum(end, 0)] == _NEWLINE))
        for back in range(1, _SENTENCE_END_LOOKBACK + 1 - tail):
            pos = end - back
            inside = pos >= np.maximum(ends - _SENTENCE_END_LOOKBACK, 0)
            cls = classes[np.maximum(pos, 0)]
            found |= inside & closers_after & (cls == _MARK)
            closers_after &= inside & (cls == _CLOSER)
    return found


def token_windows(strengths: np.ndarray, size: int, overlap: int) -> Iterator[tuple[int, int]]:
    """Token windows ``[start, end)`` of at most ``size`` tokens covering all tokens, consecutive ones overlapping by
    about ``overlap`` tokens, each ending at the strongest boundary in its second half."""
    n = len(strengths)
    min_fill = max(1, size // 2)  # never cut a window below half its size just to reach a nicer boundary
    start = 0
    while start < n:
        if start + size >= n:
            yield start, n
            return
        candidates = strengths[start + min_fill : start + size + 1]  # the gap before token k ends a window at k
        best = candidates.max()
        end = start + min_fill + int(np.flatnonzero(candidates == best)[-1])
        yield start, end
        start = _next_start(strengths, start, end, overlap)


def _next_start(strengths: np.ndarray, start: int, end: int, overlap: int) -> int:
    """``overlap`` tokens before ``end``, moved to a word start: forward when one is inside the overlap, else back
    by at most another ``overlap`` tokens (a longer overlap beats starting mid-word), else (one word spans it all)
    the plain token position."""
    target = max(end - overlap, start + 1)
    if overlap == 0 or target >= end:
        return target
    forward = np.flatnonzero(strengths[target:end] > TOKEN_GAP)
    if len(forward):
        return target + int(forward[0])
    lowest = max(end - 2 * overlap, start + 1)
    backward = np.flatnonzero(strengths[lowest:target] > TOKEN_GAP)
    return lowest + int(backward[-1]) if len(backward) else target


class Chunker:
    """Splits documents into overlapping windows of the embedder's tokens. Keeps counters and rejections."""

    def __init__(self, tokenizer: Any, cfg: ChunkingConfig):
        self.tokenizer = tokenizer
        self._backend = copy.deepcopy(tokenizer.backend_tokenizer)
        self._backend.no_truncation()
        self._backend.no_padding()
        self.cfg = cfg
        self.stats = StageStats(STAGE)
        self.rejections: list[Rejection] = []

    def _offsets(self, texts: list[str]) -> list[np.ndarray]:
        # the Rust tokenizer directly: transformers' wrapper converts every encoding to Python lists first (a fifth
        # of chunking's time). Its own copy, so no truncation or padding state set by another caller applies.
        encodings = self._backend.encode_batch(texts, add_special_tokens=False)
        return [np.array(e.offsets, dtype=np.int64).reshape(-1, 2) for e in encodings]

    def _chunks_of(self, doc: Mapping[str, Any], offsets: np.ndarray) -> list[Chunk]:
        doc_id, text = doc["doc_id"], doc["text"]
        self.stats.add("documents_in")
        if len(offsets) == 0:
            self._reject(doc, "empty_text", "the text has no tokens (empty or whitespace only)")
            return []
        provenance = {key: doc.get(key) for key in _PROVENANCE}
        spans = [
            (int(offsets[start, 0]), int(offsets[end - 1, 1]), end - start)
            for start, end in token_windows(gap_strengths(text, offsets), self.cfg.size, self.cfg.overlap)
        ]
        texts = [text[char_start:char_end] for char_start, char_end, _ in spans]
        chunks = [
            Chunk(
                chunk_id=chunk_id,
                doc_id=doc_id,
                text=chunk_text,
                char_start=char_start,
                char_end=char_end,
                n_tokens=n_tokens,
                **provenance,
            )
            for chunk_id, chunk_text, (char_start, char_end, n_tokens) in zip(
                chunk_ids(doc_id, texts), texts, spans, strict=True
            )
        ]
        self.stats.add("documents_out")
        self.stats.add("chunks_out", len(chunks))
        return chunks

    def _reject(self, doc: Mapping[str, Any], reason: str, detail: str) -> None:
        self.stats.add(f"rejected_{reason}")
        self.rejections.append(Rejection(STAGE, str(doc.get("source") or ""), str(doc.get("doc_id")), reason, detail))

    def chunk(self, doc_id: str, text: str, **provenance: Any) -> list[Chunk]:
        """Chunks of one document; ``provenance`` (source_doc_id, source, url, title) is copied to every chunk."""
        return self.chunk_many([{"doc_id": doc_id, "text": text, **provenance}])

    def chunk_many(self, docs: Iterable[Mapping[str, Any]]) -> list[Chunk]:
        """Chunks of many documents (dicts with doc_id, text and optional source_doc_id, source, url, title), one
        tokenizer call."""
        valid = []
        for doc in docs:
            if not isinstance(doc.get("text"), str) or not isinstance(doc.get("doc_id"), str):
                self.stats.add("documents_in")
                self._reject(doc, "missing_text", "doc_id or text is missing or not a string")
                continue
            valid.append(doc)
        if not valid:
            return []
        chunks: list[Chunk] = []
        for doc, offsets in zip(valid, self._offsets([d["text"] for d in valid]), strict=True):
            chunks.extend(self._chunks_of(doc, offsets))
        return chunks


def _document_columns(docs: pl.DataFrame) -> pl.DataFrame:
    """doc_id, text and the provenance columns as strings (null when absent); ArtifactError without doc_id/text."""
    missing = sorted({"doc_id", "text"} - set(docs.columns))
    if missing:
        raise ArtifactError(f"documents frame: documents lack column(s) {', '.join(missing)}")
    provenance = [
        pl.col(c).cast(pl.String) if c in docs.columns else pl.lit(None, pl.String).alias(c) for c in _PROVENANCE
    ]
    return docs.select(pl.col("doc_id").cast(pl.String), pl.col("text").cast(pl.String), *provenance)


def chunk_documents(docs: pl.DataFrame, chunker: Chunker, on_progress: ProgressCallback | None = None) -> pl.DataFrame:
    """The chunk step: documents (doc_id, text, and source_doc_id, source, url, title when present) to a chunks frame with
    ``CHUNK_COLUMNS`` (an empty frame of that schema when nothing is left). Documents are tokenized
    ``TOKENIZE_BATCH_DOCS`` at a time; ``on_progress(documents done, documents)`` after each batch."""
    docs = _document_columns(docs)
    rows: list[dict[str, Any]] = []
    done = 0
    with tqdm(total=docs.height, desc="chunk", unit="doc", disable=None) as bar:
        for batch in docs.iter_slices(TOKENIZE_BATCH_DOCS):
            rows.extend(chunk.as_row() for chunk in chunker.chunk_many(batch.iter_rows(named=True)))
            bar.update(batch.height)
            done += batch.height
            if on_progress is not None:
                on_progress(done, docs.height)
    return pl.DataFrame(rows, schema=CHUNK_SCHEMA)
