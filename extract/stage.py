"""The extract stage: one source -> Parquet documents with extracted text, raw-document metadata and rejections."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from pathlib import Path

import polars as pl
import pyarrow as pa

from catalog.artifacts import ArtifactManifest, StageResult
from catalog.hashing import combine_hashes, content_hash
from catalog.parquet import DOCUMENT_SCHEMA, PartWriter
from catalog.records import ProgressCallback, Rejection, StageStats
from catalog.variant import Variant
from extract.records import ExtractedDocument, RawDocument
from extract.runner import ExtractionRunner
from extract.sources import open_source
from extract.sources.compressed import LineSpan

EXTRACT_STAGE_VERSION = "2"  # 2: source_doc_id column; MediaWiki doc_ids unique per dump file

RAW_SCHEMA = pa.schema(
    [
        ("doc_id", pa.string()),
        ("raw_hash", pa.string()),
        ("source", pa.string()),
        ("url", pa.string()),
        ("title", pa.string()),
        ("input_ref", pa.string()),
        ("n_bytes", pa.int64()),
        ("content_type", pa.string()),
    ]
)
TEXTS_SCHEMA = pa.schema(
    [
        ("doc_id", pa.string()),
        ("raw_hash", pa.string()),
        ("extractor", pa.string()),
        ("extractor_version", pa.string()),
        ("text_hash", pa.string()),
        ("n_chars", pa.int64()),
    ]
)


def source_fingerprint(source_cfg, files: Sequence[str | LineSpan] | None = None) -> str:
    """The extract stage's input hash: the content fingerprint of the source (``Source.fingerprint``), or of the
    shard of it made of ``files`` (names, or spans of a file)."""
    return open_source(source_cfg, files).fingerprint()


def extractor_for(variant: Variant, source_cfg) -> tuple[str, dict]:
    name = source_cfg.extractor or variant.extractor
    options = source_cfg.extractor_options if source_cfg.extractor_options is not None else variant.extractor_options
    return name, dict(options)


def _previous_texts(previous: ArtifactManifest | None) -> dict[tuple[str, str], dict]:
    """(doc_id, raw_hash) -> document row of an earlier extraction of the same source with the same config."""
    if previous is None:
        return {}
    rows = pl.concat([pl.read_parquet(p) for p in previous.file_paths()], how="diagonal_relaxed")
    return {(r["doc_id"], r["raw_hash"]): r for r in rows.iter_rows(named=True)}


def run_extract(
    variant: Variant,
    source_name: str,
    out_dir: Path,
    rows_per_part: int = 50_000,
    previous: ArtifactManifest | None = None,
    files: Sequence[str | LineSpan] | None = None,
    on_progress: ProgressCallback | None = None,
) -> StageResult:
    """Read one source of a variant (or with ``files`` one shard of it), extract every document, write documents and
    catalog detail rows to ``out_dir``; ``on_progress(done, None)`` after each document (extracted or rejected:
    how many a source holds is known only at its end).

    With ``previous`` (this source's last extraction under the same config), documents whose raw bytes are
    unchanged take their earlier text instead of going through an extractor again; output order is the source's."""
    source_cfg = next(s for s in variant.sources if s.name == source_name)
    reusable = _previous_texts(previous)
    extractor, options = extractor_for(variant, source_cfg)
    source = open_source(source_cfg, files)
    runner = ExtractionRunner(extractor, options, variant.extraction)
    stats = StageStats("extract")
    rejections: list[Rejection] = []
    docs = PartWriter(out_dir, DOCUMENT_SCHEMA, "part", rows_per_part)
    raw_rows = PartWriter(out_dir, RAW_SCHEMA, "raw_documents", rows_per_part)
    text_rows = PartWriter(out_dir, TEXTS_SCHEMA, "extracted_texts", rows_per_part)
    doc_hashes: list[str] = []

    # Documents bypassing the runner wait in ``reused`` under their position, so output keeps the source order.
    reused: dict[int, ExtractedDocument] = {}
    sent: deque[int] = deque()

    def raw_documents():
        for position, item in enumerate(source.iter_documents()):
            if isinstance(item, RawDocument):
                stats.add("documents_read")
                content = item.content_bytes()
                raw_hash = content_hash(content)
                earlier = reusable.get((item.doc_id, raw_hash))
                if earlier is not None:
                    reused[position] = ExtractedDocument(**{f: earlier[f] for f in DOCUMENT_SCHEMA.names})
                raw_rows.add(
                    {
                        "doc_id": item.doc_id,
                        "raw_hash": raw_hash,
                        "source": item.source,
                        "url": item.url,
                        "title": item.title,
                        "input_ref": item.input_ref,
                        "n_bytes": len(content),
                        "content_type": item.content_type,
                    }
                )
                if earlier is not None:
                    continue
            sent.append(position)
            yield item

    def in_source_order():
        next_position = 0
        for item in runner.run(raw_documents()):
            position = sent.popleft()
            while next_position < position:
                if next_position in reused:
                    stats.add("documents_reused")
                    yield reused.pop(next_position)
                next_position += 1
            next_position = position + 1
            yield item
        for position in sorted(reused):
            stats.add("documents_reused")
            yield reused.pop(position)

    for done, item in enumerate(in_source_order(), start=1):
        if on_progress is not None:
            on_progress(done, None)
        if isinstance(item, Rejection):
            rejections.append(item)
            stats.add(f"rejected_{item.reason}")
            continue
        assert isinstance(item, ExtractedDocument)
        stats.add("documents_extracted")
        text_hash = content_hash(item.text)
        doc_hashes.append(f"{item.doc_id}:{text_hash}")
        docs.add({name: getattr(item, name) for name in DOCUMENT_SCHEMA.names})
        text_rows.add(
            {
                "doc_id": item.doc_id,
                "raw_hash": item.raw_hash,
                "extractor": item.extractor,
                "extractor_version": item.extractor_version,
                "text_hash": text_hash,
                "n_chars": len(item.text),
            }
        )
    stats.add("documents_rejected", len(rejections))
    files = docs.close()
    raw_files = raw_rows.close()
    text_files = text_rows.close()
    return StageResult(
        files=files,
        rows=docs.rows,
        content_hash=combine_hashes(doc_hashes),
        stats=stats.as_dict(),
        rejections=rejections,
        detail_files={"raw_documents": raw_files, "extracted_texts": text_files},
    )
