"""The decontaminate and chunk stages reusing an earlier run's output: only new, changed or contaminated documents
are scanned or chunked again, and the output (rows in order, hits, summary, rejections, counters) equals a full run's
on the same input. Real MiniLM tokenizer, real MMLU slice, real artifact folders."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import polars as pl

from buildplan.questions import load_questions
from catalog.artifacts import ArtifactManifest, ArtifactStore, StageResult
from catalog.parquet import DOCUMENT_SCHEMA
from catalog.stage_runner import StageSpec, execute_stage, read_rejections
from catalog.variant import Variant
from indexing.stages import run_chunk, run_decontaminate

SAMPLE = Path(__file__).resolve().parents[2] / "sample_data"
MMLU = SAMPLE / "benchmarks" / "mmlu" / "test"
REUSE_COUNTERS = ("documents_reused", "chunks_reused", "timing")


def _questions() -> list[str]:
    with open(MMLU / "astronomy_test.csv", newline="") as f:
        return [row[0] for row in csv.reader(f)]


QUESTIONS = _questions()


def _benchmark_questions(variant: Variant):
    """The benchmark questions a build hands to the stages (loaded by the build plan, not by indexing)."""
    return load_questions(variant.decontamination)


def _variant(action: str) -> Variant:
    return Variant.model_validate(
        {
            "name": "reuse",
            "sources": [{"name": "c4", "type": "jsonl", "path": "docs.jsonl"}],
            "decontamination": {"action": action, "benchmarks": [{"name": "mmlu", "path": str(MMLU), "ngram": 16}]},
            "chunking": {"size": 64, "overlap": 8},
        }
    )


def _texts(n: int) -> list[str]:
    lines = (SAMPLE / "jsonl" / "c4_sample.jsonl").read_text().splitlines()[:n]
    return [json.loads(line)["text"][:1500] for line in lines]


def _docs(texts: dict[str, str], urls: dict[str, str] | None = None) -> pl.DataFrame:
    """Documents frames as the extract and dedup stages write them (``doc_id -> text``, in that order)."""
    urls = urls or {}
    rows = [
        {
            "doc_id": doc_id,
            "source_doc_id": f"c4-{doc_id}",
            "source": "c4",
            "url": urls.get(doc_id, f"https://c4.test/{doc_id}"),
            "title": None,
            "text": text,
            "extractor": "plain",
            "extractor_version": "1",
            "raw_hash": doc_id,
        }
        for doc_id, text in texts.items()
    ]
    return pl.from_arrow(DOCUMENT_SCHEMA.empty_table()).vstack(
        pl.DataFrame(rows, schema_overrides={"title": pl.String})
    )


def _artifact(root: Path, stage: str, name: str, fn, shard: str = "") -> ArtifactManifest:
    manifest, cached = execute_stage(ArtifactStore(root), StageSpec(stage, "1", "test", name, shard), fn)
    assert not cached
    return manifest


def _documents(root: Path, name: str, parts: list[pl.DataFrame]) -> ArtifactManifest:
    def write(out: Path) -> StageResult:
        files = [f"part-{i:05d}.parquet" for i in range(len(parts))]
        for frame, file in zip(parts, files, strict=True):
            frame.write_parquet(out / file)
        return StageResult(files=files, rows=sum(f.height for f in parts), content_hash=name)

    return _artifact(root, "dedup", name, write)


def _details(manifest: ArtifactManifest, table: str) -> pl.DataFrame:
    return pl.concat([pl.read_parquet(manifest.folder / f) for f in manifest.detail_files.get(table, [])])


def _without_reuse(stats: dict) -> dict:
    return {k: v for k, v in stats.items() if k not in REUSE_COUNTERS}


def test_decontaminate_scans_only_documents_the_previous_output_did_not_keep(tmp_path):
    variant = _variant("drop_document")
    texts = dict(enumerate(_texts(12)))
    before = {f"d{i}": t for i, t in texts.items()}
    before["d2"] = f"{before['d2']} {QUESTIONS[0]}"  # contaminated before and after: scanned again
    after = dict(before)
    after["d5"] = f"Changed page. {QUESTIONS[1]} {after['d5']}"  # changed and now contaminated
    after["d7"] = "Changed page. " + after["d7"][::-1]  # changed, clean
    del after["d9"]  # removed
    after["d12"] = "A new page about gingerbread and the cards people send at the holidays, with recipes."
    previous = _artifact(
        tmp_path,
        "decontaminate",
        "v1",
        lambda out: run_decontaminate(
            variant, _documents(tmp_path, "in1", [_docs(before)]), out, questions=_benchmark_questions(variant)
        ),
    )
    assert previous.rows == 11 and _details(previous, "contamination_hits")["doc_id"].to_list() == ["d2"]

    docs = _documents(tmp_path, "in2", [_docs(after)])
    reused = _artifact(
        tmp_path,
        "decontaminate",
        "reused",
        lambda out: run_decontaminate(variant, docs, out, previous, _benchmark_questions(variant)),
    )
    full = _artifact(
        tmp_path,
        "decontaminate",
        "full",
        lambda out: run_decontaminate(variant, docs, out, questions=_benchmark_questions(variant)),
    )

    # 12 documents: d2 (dropped before), d5 and d7 (changed) and d12 (new) are scanned; the other 8 are reused
    assert reused.stats["documents_reused"] == 8
    assert [reused.stats[f"documents_{n}"] for n in ("in", "out", "removed")] == [12, 10, 2]
    assert _without_reuse(reused.stats) == _without_reuse(full.stats)
    kept = pl.read_parquet(reused.file_paths())
    assert kept.equals(pl.read_parquet(full.file_paths()))
    assert kept["doc_id"].to_list() == [d for d in after if d not in ("d2", "d5")]  # the input's order
    assert reused.content_hash == full.content_hash
    for table in ("contamination_hits", "contamination_summary"):
        assert _details(reused, table).equals(_details(full, table))
    hits = _details(reused, "contamination_hits")
    assert hits.select("doc_id", "item_id").rows() == [("d2", "astronomy/0"), ("d5", "astronomy/1")]
    assert _details(reused, "contamination_summary")["items_found"].to_list() == [2]


def _chunk(variant: Variant, docs: ArtifactManifest, part: str, root: Path, name: str, previous=None):
    return _artifact(
        root,
        "chunk",
        name,
        lambda out: run_chunk(variant, docs, part, out, previous, _benchmark_questions(variant)),
        part,
    )


def test_chunk_reuses_unchanged_documents_across_parts_and_equals_a_full_run_under_drop_chunk(tmp_path):
    variant = _variant("drop_chunk")
    base = {f"d{i}": t for i, t in enumerate(_texts(12))}
    base["d3"] = f"{base['d3']}\n\n{QUESTIONS[0]}"  # a contaminated chunk, dropped before and after
    base["d10"] = "   "  # no tokens: rejected before and after
    before = [_docs(dict(list(base.items())[:6])), _docs(dict(list(base.items())[6:]))]  # two dedup parts
    previous_docs = _documents(tmp_path, "docs1", before)
    previous_chunks = [
        _chunk(variant, previous_docs, part, tmp_path, f"chunks1-{part}") for part in previous_docs.files
    ]
    assert sum(len(read_rejections(m)) for m in previous_chunks) == 1
    assert sum(m.stats["decontamination_chunks_removed"] for m in previous_chunks) == 1

    after = dict(base)
    after["d4"] = "Changed page. " + after["d4"][::-1]
    after["d8"] = f"{after['d8']}\n\n{QUESTIONS[1]}"  # changed and now contaminated
    del after["d1"]
    after["d12"] = "A new page about travel insurance for music festival tickets and what it covers abroad."
    order = ["d11", "d12", "d0", "d7", "d2", "d3", "d4", "d5", "d6", "d8", "d9", "d10"]  # documents moved parts
    urls = {"d5": "https://c4.test/moved"}  # same text, new url: its chunks carry the url, so chunked again
    docs = _documents(tmp_path, "docs2", [_docs({d: after[d] for d in order}, urls)])
    part = docs.files[0]

    reused = _chunk(variant, docs, part, tmp_path, "reused", (previous_docs, previous_chunks))
    full = _chunk(variant, docs, part, tmp_path, "full")

    # reused: d11, d0, d7, d2, d6, d9 (unchanged, clean, chunked before); chunked: d12, d3, d4, d5, d8, d10
    assert reused.stats["documents_reused"] == 6
    reused_ids = ["d11", "d0", "d7", "d2", "d6", "d9"]
    chunks = pl.read_parquet(reused.file_paths())
    assert reused.stats["chunks_reused"] == chunks.filter(pl.col("doc_id").is_in(reused_ids)).height > 6
    assert chunks.equals(pl.read_parquet(full.file_paths()))  # same chunk ids, texts and order
    assert chunks["doc_id"].unique(maintain_order=True).to_list() == [d for d in order if d != "d10"]
    assert reused.content_hash == full.content_hash
    assert _without_reuse(reused.stats) == _without_reuse(full.stats)
    assert reused.stats["max_chunk_tokens"] == 64
    assert read_rejections(reused) == read_rejections(full) and [r.input_ref for r in read_rejections(full)] == ["d10"]
    for table in ("contamination_hits", "contamination_summary"):
        assert _details(reused, table).equals(_details(full, table))
    hits = _details(reused, "contamination_hits")
    assert hits.select("doc_id", "item_id").unique(maintain_order=True).rows() == [
        ("d3", "astronomy/0"),
        ("d8", "astronomy/1"),
    ]


def test_chunk_part_repeating_a_doc_id_is_chunked_in_full(tmp_path):
    variant = _variant("drop_document")
    texts = _texts(3)
    previous_docs = _documents(tmp_path, "docs1", [_docs({"a": texts[0], "b": texts[1]})])
    previous = (previous_docs, [_chunk(variant, previous_docs, previous_docs.files[0], tmp_path, "chunks1")])
    repeated = pl.concat([_docs({"a": texts[0], "b": texts[1]}), _docs({"a": texts[2]})])
    docs = _documents(tmp_path, "docs2", [repeated])
    reused = _chunk(variant, docs, docs.files[0], tmp_path, "reused", previous)
    full = _chunk(variant, docs, docs.files[0], tmp_path, "full")
    assert reused.stats["documents_reused"] == 0
    assert pl.read_parquet(reused.file_paths()).equals(pl.read_parquet(full.file_paths()))


def test_decontaminate_under_drop_chunk_passes_every_document_through(tmp_path):
    variant = _variant("drop_chunk")
    docs = _documents(tmp_path, "docs", [_docs({"a": f"{QUESTIONS[0]} and more words", "b": "clean text"})])
    previous = _artifact(
        tmp_path,
        "decontaminate",
        "v1",
        lambda out: run_decontaminate(variant, docs, out, questions=_benchmark_questions(variant)),
    )
    again = _artifact(
        tmp_path,
        "decontaminate",
        "v2",
        lambda out: run_decontaminate(variant, docs, out, previous, _benchmark_questions(variant)),
    )
    assert again.rows == 2 and again.detail_files == {}
    assert {k: v for k, v in again.stats.items() if k != "timing"} == {"documents_in": 2, "documents_out": 2}
