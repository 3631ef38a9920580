"""Text normalization, word tokenization and 64-bit n-gram hashing shared by decontamination and dedup.

Normalization is: Unicode NFKC, lowercase, every run of punctuation/whitespace becomes one word break. So
"The  Cat's\\nhat." and "the cat s hat" tokenize the same: ``["the", "cat", "s", "hat"]``. Benchmark questions
and corpus text go through exactly the same polars expressions, so both sides always agree.

Hashes are stable across processes, machines and library versions (they key nothing on disk, but dedup output
must not change silently under an artifact key): each distinct token is hashed once with blake2b (8 bytes), and
an n-gram hash is a polynomial over its token hashes modulo 2**64, computed for all windows at once in numpy.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import polars as pl

from catalog.errors import RereadError

# A word is a run of letters/digits; underscores and all punctuation split words.
WORD_PATTERN = r"[^\W_]+"
_NON_ASCII = r"[^\x00-\x7F]"
# Odd 64-bit multiplier (the golden-ratio constant): polynomial n-gram hashing modulo 2**64.
_ROLL_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)


class InputTableError(RereadError):
    """A table handed to a text step (decontamination, dedup) lacks the columns the step needs."""


def require_columns(table: pl.DataFrame, columns: Iterable[str], stage: str) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise InputTableError(f"{stage}: input table lacks column(s) {missing}; it has {table.columns}")


def normalize_series(texts: pl.Series) -> pl.Series:
    """NFKC + lowercase. NFKC is the slow part and a no-op on ASCII, so only non-ASCII rows pay for it."""
    texts = texts.cast(pl.String).fill_null("")
    non_ascii = texts.str.contains(_NON_ASCII)
    if non_ascii.any():
        idx = non_ascii.arg_true()
        texts = texts.scatter(idx, texts.gather(idx).str.normalize("NFKC"))
    return texts.str.to_lowercase()


def tokenize_series(texts: pl.Series) -> pl.Series:
    """A list of normalized word tokens per text."""
    return normalize_series(texts).str.extract_all(WORD_PATTERN).fill_null([])


def word_tokens(text: str) -> list[str]:
    """Normalized word tokens of one text."""
    return tokenize_series(pl.Series([text])).to_list()[0]


def normalize_text(text: str) -> str:
    """The normalized form of one text: its tokens joined by single spaces."""
    return " ".join(word_tokens(text))


def _blake64(token: str) -> int:
    return int.from_bytes(hashlib.blake2b(token.encode("utf-8"), digest_size=8).digest(), "little")


def hash_tokens(tokens: pl.Series) -> np.ndarray:
    """uint64 hash of each token of a flat string series.

    Each distinct token is hashed once: a Categorical cast numbers the distinct tokens (far faster than a string
    ``unique`` + join), the blake2b hash of each number's token fills a lookup table, and one gather maps all.
    """
    if len(tokens) == 0:
        return np.zeros(0, dtype=np.uint64)
    # A fresh category namespace per call: codes start at 0 and the global string cache does not grow with the
    # corpus vocabulary (it would over a long build: URLs and numbers make the vocabulary unbounded).
    categorical = tokens.cast(pl.Categorical(pl.Categories.random()))
    distinct = categorical.unique()
    codes = distinct.to_physical().to_numpy()
    table = np.zeros(int(codes.max()) + 1, dtype=np.uint64)
    table[codes] = [_blake64(t) for t in distinct.cast(pl.String).to_list()]
    return table[categorical.to_physical().to_numpy()]


@dataclass(frozen=True, slots=True)
class TokenizedBatch:
    """The tokens of a batch of texts, flattened: ``hashes[offsets[i]:offsets[i+1]]`` are text i's token hashes."""

    hashes: np.ndarray  # uint64, all texts' tokens concatenated
    offsets: np.ndarray  # int64, len = n_texts + 1
    owner: np.ndarray  # int64, the index of the text each flat token belongs to

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    @property
    def n_texts(self) -> int:
        return len(self.offsets) - 1

    def windows_inside_texts(self, starts: np.ndarray, length: int) -> np.ndarray:
        """Mask of the windows of ``length`` tokens at flat ``starts`` that end inside the text they start in."""
        ends = starts + length - 1
        in_range = ends < len(self.hashes)
        return in_range & (self.owner[starts] == self.owner[np.where(in_range, ends, starts)])

    def window_starts(self, length: int) -> np.ndarray:
        """Flat starts of every window of ``length`` tokens that lies inside one text."""
        n_windows = max(len(self.hashes) - length + 1, 0)
        return np.flatnonzero(self.owner[:n_windows] == self.owner[length - 1 : length - 1 + n_windows])


def tokenize_batch(texts: pl.Series | Iterable[str]) -> TokenizedBatch:
    """Tokenize and hash a batch of texts in one vectorized pass."""
    series = texts if isinstance(texts, pl.Series) else pl.Series(list(texts), dtype=pl.String)
    return batch_from_token_lists(tokenize_series(series))


def batch_from_token_lists(token_lists: pl.Series) -> TokenizedBatch:
    """Flatten and hash the token lists made by ``tokenize_series``."""
    lengths = token_lists.list.len().to_numpy().astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    flat = token_lists.explode().drop_nulls() if offsets[-1] else pl.Series([], dtype=pl.String)
    owner = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)
    return TokenizedBatch(hashes=hash_tokens(flat), offsets=offsets, owner=owner)


def window_hashes(token_hashes: np.ndarray, lengths: Iterable[int]) -> dict[int, np.ndarray]:
    """For each n in ``lengths``: the hash of every n-token window, ``out[n][i]`` = hash of tokens ``i..i+n-1``.

    Windows of all sizes up to max(lengths) are built incrementally (h_n = h_{n-1} * M + t), so asking for many
    sizes costs one pass per size up to the largest. Windows crossing text boundaries are the caller's to mask.
    """
    wanted = sorted(set(lengths))
    out: dict[int, np.ndarray] = {}
    if not wanted:
        return out
    current = token_hashes.astype(np.uint64, copy=True)
    with np.errstate(over="ignore"):
        for n in range(1, wanted[-1] + 1):
            if n > 1:
                if len(current) <= 1:
                    current = np.zeros(0, dtype=np.uint64)
                else:
                    current = current[:-1] * _ROLL_MULTIPLIER + token_hashes[n - 1 :]
            if n in wanted:
                out[n] = current
    return out


def window_hashes_at(token_hashes: np.ndarray, starts: np.ndarray, length: int) -> np.ndarray:
    """The hashes of the ``length``-token windows at ``starts`` only (same values as ``window_hashes``).

    Cheap when few windows are asked for: ``length`` gathers of ``len(starts)`` values.
    """
    out = np.zeros(len(starts), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(length):
            out = out * _ROLL_MULTIPLIER + token_hashes[starts + j]
    return out
