"""Chunking in the real all-MiniLM-L6-v2 tokenizer: exact offsets, size and overlap bounds, boundary preference."""

from __future__ import annotations

import json
import re

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from catalog.errors import ArtifactError, ConfigError
from catalog.ids import chunk_id
from catalog.parquet import CHUNK_SCHEMA as CATALOG_CHUNK_SCHEMA
from catalog.variant import DEFAULT_EMBEDDER, ChunkingConfig
from indexing.chunk import (
    CHUNK_COLUMNS,
    PARAGRAPH_GAP,
    SENTENCE_GAP,
    TOKEN_GAP,
    WORD_GAP,
    Chunker,
    chunk_documents,
    gap_strengths,
    load_tokenizer,
)

SIZE, OVERLAP = 64, 16


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(DEFAULT_EMBEDDER)


@pytest.fixture
def chunker(tokenizer) -> Chunker:
    return Chunker(tokenizer, ChunkingConfig(size=SIZE, overlap=OVERLAP))


@pytest.fixture(scope="module")
def arxiv_docs(shared_data) -> list[dict]:
    """Three real arXiv LaTeX papers, cut to 20k characters each to keep the test fast."""
    path = shared_data / "pretraining_samples" / "arxiv_redpajama_sample.jsonl"
    with path.open(encoding="utf-8") as f:
        rows = [json.loads(line) for _, line in zip(range(3), f, strict=False)]
    return [
        {"doc_id": row["meta"]["arxiv_id"], "text": row["text"][:20_000], "source": "arxiv", "url": row["meta"]["url"]}
        for row in rows
    ]


def token_spans(tokenizer, text: str) -> np.ndarray:
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    return np.asarray(encoded["offset_mapping"]).reshape(-1, 2)


def test_real_text_offsets_sizes_overlap_and_coverage(chunker, tokenizer, arxiv_docs):
    for doc in arxiv_docs:
        chunks = chunker.chunk(doc["doc_id"], doc["text"], source=doc["source"], url=doc["url"], title=None)
        assert len(chunks) > 20
        spans = token_spans(tokenizer, doc["text"])
        starts, ends = spans[:, 0].tolist(), spans[:, 1].tolist()
        overlaps = []
        for prev, nxt in zip(chunks, chunks[1:], strict=False):
            # Token index of each chunk's first and (one past) last token in the document's tokenization.
            prev_end = ends.index(prev.char_end) + 1
            next_start = starts.index(nxt.char_start)
            assert next_start < prev_end, "consecutive chunks must overlap"
            overlaps.append(prev_end - next_start)
        for chunk in chunks:
            assert doc["text"][chunk.char_start : chunk.char_end] == chunk.text
            assert 0 < chunk.n_tokens <= SIZE
            first, last = starts.index(chunk.char_start), ends.index(chunk.char_end)
            assert last - first + 1 == chunk.n_tokens
            # What the embedder will see: re-tokenizing the chunk text never exceeds the size.
            assert len(token_spans(tokenizer, chunk.text)) <= SIZE
            assert (chunk.doc_id, chunk.source, chunk.url) == (doc["doc_id"], "arxiv", doc["url"])
        assert chunks[0].char_start == starts[0] and chunks[-1].char_end == ends[-1]
        # About `overlap` tokens: moved to a word start, rarely longer (a long word), never over twice.
        assert 0.75 * OVERLAP <= np.median(overlaps) <= OVERLAP
        assert max(overlaps) <= 2 * OVERLAP
        # Windows fill at least half the size (except a document's last one).
        assert min(c.n_tokens for c in chunks[:-1]) >= SIZE // 2


def test_chunk_ids_are_stable_and_unique(tokenizer, arxiv_docs):
    cfg = ChunkingConfig(size=SIZE, overlap=OVERLAP)
    first = Chunker(tokenizer, cfg).chunk_many(arxiv_docs)
    second = Chunker(load_tokenizer(DEFAULT_EMBEDDER), cfg).chunk_many(arxiv_docs)
    assert [c.chunk_id for c in first] == [c.chunk_id for c in second]
    assert len({c.chunk_id for c in first}) == len(first)
    chunk = first[5]
    assert chunk.chunk_id == chunk_id(chunk.doc_id, chunk.text)


def test_one_sentence_inserted_changes_only_the_chunks_it_touches(tokenizer, arxiv_docs):
    """Issue reproduction: with offsets in the id, one inserted sentence kept most chunk texts but renamed every
    chunk after it (229 of 233 texts kept, 76 ids), so a refresh removed and re-added ~160 vectors. Ids are made of
    the text (and its occurrence among equal texts), so every chunk whose text survives keeps its id."""
    chunker = Chunker(tokenizer, ChunkingConfig(size=SIZE, overlap=OVERLAP))
    doc = arxiv_docs[0]
    before = chunker.chunk_many([doc])
    cut = doc["text"].index(". ", len(doc["text"]) // 3) + 2  # a sentence start a third into the paper
    edited = {**doc, "text": doc["text"][:cut] + "We add one sentence here for the refresh. " + doc["text"][cut:]}
    after = chunker.chunk_many([edited])
    assert len(before) > 40
    assert [c.char_start for c in after][-1] != [c.char_start for c in before][-1]  # later offsets all moved
    kept_texts = {c.text for c in before} & {c.text for c in after}
    kept_ids = {c.chunk_id for c in before} & {c.chunk_id for c in after}
    assert len(kept_ids) == len(kept_texts) >= len(before) - 3
    assert len({c.chunk_id for c in after} - kept_ids) <= 3  # O(1) new vectors to embed and add


def test_repeated_chunk_texts_in_one_document_get_distinct_ids(tokenizer):
    chunker = Chunker(tokenizer, ChunkingConfig(size=SIZE, overlap=0))
    paragraph = ("the cat sat on the mat. " * 8).strip()  # 56 tokens: one window per paragraph
    chunks = chunker.chunk("doc", "\n\n".join([paragraph] * 3))
    assert len(chunks) == 3 and len({c.text for c in chunks}) == 1
    assert [c.chunk_id for c in chunks] == [chunk_id("doc", paragraph, n) for n in range(3)]


def words(n: int, word: str = "token") -> str:
    return " ".join(f"{word}{i % 10}" if i % 7 else word for i in range(n))


def test_paragraph_break_inside_the_window_is_used(chunker, tokenizer):
    first_paragraph = "Alpha beta gamma. " * 11  # 44 tokens: past half the window, with sentence ends after it
    text = first_paragraph.strip() + "\n\n" + "Delta epsilon zeta. " * 30
    n_first = len(token_spans(tokenizer, first_paragraph))
    assert SIZE // 2 < n_first < SIZE
    chunks = chunker.chunk("d", text)
    assert chunks[0].text == first_paragraph.strip()
    assert chunks[0].n_tokens == n_first


def test_sentence_end_preferred_over_word_boundary(chunker):
    sentence = "the quick brown fox jumps over the lazy dog and runs far away. "
    chunks = chunker.chunk("d", sentence * 20)
    assert len(chunks) > 3
    assert all(c.text.endswith(".") for c in chunks)


def test_word_boundaries_without_punctuation(chunker):
    text = words(400)
    chunks = chunker.chunk("d", text)
    for chunk in chunks:
        assert chunk.char_start == 0 or text[chunk.char_start - 1] == " "
        assert chunk.char_end == len(text) or text[chunk.char_end] == " "


def test_one_giant_word_is_split_at_tokens(chunker):
    text = "https://example.org/" + "ab/cd." * 300  # no whitespace at all: only token boundaries exist
    chunks = chunker.chunk("blob", text)
    assert len(chunks) > 1
    assert all(c.n_tokens <= SIZE for c in chunks)
    assert all(text[c.char_start : c.char_end] == c.text for c in chunks)


def test_unicode_offsets_are_character_offsets(chunker):
    text = "Ünïcödé façade — naïve café 東京 🎉 résumé. " * 40
    chunks = chunker.chunk("u", text, title="Unicode")
    assert all(text[c.char_start : c.char_end] == c.text and c.title == "Unicode" for c in chunks)
    assert chunks[-1].char_end == len(text.rstrip())


def test_chunk_documents_frame_and_rejections(tokenizer):
    chunker = Chunker(tokenizer, ChunkingConfig(size=SIZE, overlap=OVERLAP))
    docs = pl.DataFrame(
        {
            "doc_id": ["a", "empty", "b", "null"],
            "text": [words(150), "   \n ", "Short one.", None],
            "source": ["s1", "s1", "s2", "s2"],
            "url": ["http://a", None, "http://b", None],
        }
    )
    frame = chunk_documents(docs, chunker)
    assert tuple(frame.columns) == CHUNK_COLUMNS
    assert frame.schema == pl.from_arrow(CATALOG_CHUNK_SCHEMA.empty_table()).schema  # every part reads together
    assert set(frame["doc_id"]) == {"a", "b"}
    assert frame.filter(pl.col("doc_id") == "b")["text"].to_list() == ["Short one."]
    assert frame["title"].null_count() == frame.height  # no title column in: null titles out
    assert set(frame.filter(pl.col("doc_id") == "a")["url"]) == {"http://a"}
    counters = chunker.stats.as_dict()
    assert counters["documents_in"] == 4 and counters["documents_out"] == 2
    assert counters["rejected_empty_text"] == 1 and counters["rejected_missing_text"] == 1
    assert counters["chunks_out"] == frame.height
    assert {(r.input_ref, r.reason) for r in chunker.rejections} == {("empty", "empty_text"), ("null", "missing_text")}


def test_chunk_documents_on_empty_frame(chunker):
    frame = chunk_documents(pl.DataFrame(schema={"doc_id": pl.String, "text": pl.String}), chunker)
    assert frame.height == 0 and tuple(frame.columns) == CHUNK_COLUMNS


def test_chunk_documents_reports_progress_per_tokenizer_batch(chunker):
    """The chunk unit's dashboard progress moves per batch of documents tokenized (not once at the end)."""
    from indexing.chunk import TOKENIZE_BATCH_DOCS

    n_docs = 2 * TOKENIZE_BATCH_DOCS + 3
    docs = pl.DataFrame({"doc_id": [f"d{i}" for i in range(n_docs)], "text": [f"Document {i}." for i in range(n_docs)]})
    reports: list[tuple[int, int | None]] = []
    chunk_documents(docs, chunker, on_progress=lambda done, total: reports.append((done, total)))
    assert reports == [(TOKENIZE_BATCH_DOCS, n_docs), (2 * TOKENIZE_BATCH_DOCS, n_docs), (n_docs, n_docs)]


def test_frame_without_doc_id_is_an_artifact_error(chunker):
    with pytest.raises(ArtifactError, match="documents frame: documents lack column\\(s\\) doc_id"):
        chunk_documents(pl.DataFrame({"text": ["x"]}), chunker)


def test_unknown_tokenizer_name_is_a_config_error():
    with pytest.raises(ConfigError, match="cannot be downloaded"):
        load_tokenizer("bert-base-uncased")


@pytest.mark.slow
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    text=st.lists(st.sampled_from([*"ab .,!?\n\té—東", "word", "\n\n", "x1"]), max_size=200).map("".join),
    size=st.integers(16, 40),
    overlap_frac=st.floats(0, 0.9),
)
def test_any_text_chunks_exactly_within_size(tokenizer, text, size, overlap_frac):
    cfg = ChunkingConfig(size=size, overlap=int(size * overlap_frac))
    chunks = Chunker(tokenizer, cfg).chunk("h", text)
    spans = token_spans(tokenizer, text)
    assert (len(chunks) == 0) == (len(spans) == 0)
    for chunk in chunks:
        assert text[chunk.char_start : chunk.char_end] == chunk.text
        assert 0 < chunk.n_tokens <= size
    if chunks:
        assert chunks[0].char_start == spans[0, 0] and chunks[-1].char_end == spans[-1, 1]
        assert all(a.char_start < b.char_start <= a.char_end for a, b in zip(chunks, chunks[1:], strict=False))


def _gap_strength_by_definition(text: str, offsets: np.ndarray) -> np.ndarray:
    """The rule of ``gap_strengths`` gap by gap, as the module docstring states it (the oracle of its vectorised
    form): a blank line in the gap is a paragraph gap; a line break in it, or a sentence end in the four characters
    before it, a sentence gap; any other whitespace a word gap; no gap a token gap."""
    strengths = np.full(len(offsets), TOKEN_GAP, dtype=np.int8)
    for k in range(1, len(offsets)):
        before, after = int(offsets[k - 1, 1]), int(offsets[k, 0])
        if after <= before:
            continue
        gap = text[before:after]
        if re.search(r"\n[^\S\n]*\n", gap):
            strengths[k] = PARAGRAPH_GAP
        elif "\n" in gap or re.search(r"[.!?][\"'”’)\]]*$", text[max(0, before - 4) : before]):
            strengths[k] = SENTENCE_GAP
        else:
            strengths[k] = WORD_GAP
    return strengths


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(alphabet=st.sampled_from(list("ab .!?\"'”’)]\n\t\u00e9\U0001f600")), max_size=60), data=st.data())
def test_gap_strengths_follow_the_rule_gap_by_gap(tokenizer, text, data):
    offsets = np.asarray(
        tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"], dtype=np.int64
    ).reshape(-1, 2)
    assert np.array_equal(gap_strengths(text, offsets), _gap_strength_by_definition(text, offsets))
    # any token spans, not only the tokenizer's: cut points of the text, with gaps of 0-2 characters
    cuts = sorted(
        data.draw(st.lists(st.integers(0, len(text)), min_size=min(2, len(text) + 1), max_size=10, unique=True))
    )
    spans = np.array(
        [(a, max(a, b - data.draw(st.integers(0, 2)))) for a, b in zip(cuts, cuts[1:], strict=False)], dtype=np.int64
    ).reshape(-1, 2)
    assert np.array_equal(gap_strengths(text, spans), _gap_strength_by_definition(text, spans))
