"""The datastore stages as plain functions over artifact folders: documents -> decontaminated -> deduplicated ->
chunks -> embeddings -> index. Each reads its inputs' Parquet files, writes into the folder it is given and returns a
``StageResult``; orchestration (caching, retries, the catalog) is the caller's job."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from catalog.artifacts import ArtifactManifest, StageResult
from catalog.errors import ConfigError
from catalog.hashing import combine_hashes, content_hash
from catalog.parquet import write_parquet_atomic
from catalog.records import ProgressCallback, StageStats
from catalog.variant import Variant
from indexing.chunk import CHUNK_COLUMNS, CHUNK_SCHEMA, Chunker, chunk_documents, load_tokenizer
from indexing.decontaminate import BenchmarkQuestions, DecontaminationFilter
from indexing.dedup import (
    BANDS_FILE,
    HASHES_FILE,
    SIGNATURES_FILE,
    ShardHasher,
    document_batches,
    find_duplicates,
    removed_rows,
)
from indexing.embed import Embedder, ShardInfo, embed_chunks, model_dimension, resolve_model_path
from indexing.embed_reuse import ReusingEmbedder
from indexing.index_update import apply_index_update, plan_index_update
from indexing.vector_index import EmbeddingSet, build_index, new_index

# decontaminate 2 and chunk 2: documents and chunks carry source_doc_id; chunk 2: content-defined chunk ids;
# dedup 3: out of core from per-shard signatures, kept documents per input shard, removals recorded;
# embed 2: one artifact per chunk part, keyed by the part's content; index 2: over the list of embed artifacts
STAGE_VERSIONS = {"decontaminate": "2", "dedup_signatures": "1", "dedup": "3", "chunk": "2", "embed": "2", "index": "2"}
EMBEDDINGS_DIR = "embeddings"
INDEX_DIR = "index"
# What a document's chunks are made of: a document equal in these to an earlier one has the earlier one's chunks.
_DOCUMENT_MAKES_CHUNKS = ["doc_id", "text", "source_doc_id", "source", "url", "title"]
_ROW, _CHUNK_ROW, _PART = "_row", "_chunk_row", "_part"  # scratch columns
REMOVALS_FILE = "dedup_removals.parquet"


def check_build_config(variant: Variant) -> None:
    """What a build would otherwise find out only after extraction and embedding: the embedder exists here, and
    faiss can build the index factory for its vectors. Raises ConfigError naming the variant file."""
    try:
        model_path = resolve_model_path(variant.embedder.model)
        dim = model_dimension(model_path)
        if variant.index.factory != "auto" and dim is not None:
            new_index(variant.index.factory, dim, variant.index.metric)
    except ConfigError as exc:
        raise ConfigError(f"{variant.path}: {exc}") from None


def read_parts(manifests: list[ArtifactManifest]) -> pl.DataFrame:
    """All rows of the Parquet parts of some document or chunk artifacts (parts always carry their schema, even
    when empty, so an input without rows still has its columns)."""
    return pl.read_parquet([str(p) for m in manifests for p in m.file_paths()])


def _write_frame(frame: pl.DataFrame, out_dir: Path, name: str = "part-00000.parquet") -> str:
    write_parquet_atomic(frame.to_arrow(), out_dir / name)
    return name


def _frame_hash(frame: pl.DataFrame, id_column: str) -> str:
    """Content hash of a documents/chunks frame: ids and text hashes in row order (sha256, so artifact keys
    downstream do not change with the dataframe library's version, as polars' own hash may)."""
    return combine_hashes(
        f"{i}:{content_hash(t)}" for i, t in zip(frame[id_column].to_list(), frame["text"].to_list(), strict=True)
    )


def _read_columns(manifests: list[ArtifactManifest], columns: list[str], table: str | None = None) -> pl.DataFrame:
    """Some columns of the Parquet parts of artifacts, or with ``table`` of their detail files for that catalog
    table (an artifact may have none: an empty frame of those string columns then)."""
    paths = [str(m.folder / f) for m in manifests for f in (m.detail_files.get(table, []) if table else m.files)]
    if not paths:
        return pl.DataFrame(schema=dict.fromkeys(columns, pl.String))
    return pl.scan_parquet(paths).select(columns).collect()


def _counters(**counts: int) -> StageStats:
    """Counters to merge into a step's: the rows a stage took from an earlier run instead of passing to the step."""
    return StageStats("reused", dict(counts))


def _required(questions: Sequence[BenchmarkQuestions], variant: Variant) -> Sequence[BenchmarkQuestions]:
    """The benchmarks' questions, which the caller must hand in when the variant names benchmarks."""
    names = sorted(b.benchmark for b in questions)
    if names != sorted(b.name for b in variant.decontamination.benchmarks):
        raise ConfigError(
            f"{variant.path}: decontamination needs the questions of {[b.name for b in variant.decontamination.benchmarks]},"
            f" got {names} (load them with buildplan.questions.load_questions)"
        )
    return questions


def _write_details(out_dir: Path, tables: dict[str, pl.DataFrame]) -> dict[str, list[str]]:
    return {t: [_write_frame(f, out_dir, f"{t}.parquet")] for t, f in tables.items() if f.height}


def run_decontaminate(
    variant: Variant,
    docs_in: ArtifactManifest,
    out_dir: Path,
    previous: ArtifactManifest | None = None,
    questions: Sequence[BenchmarkQuestions] = (),
) -> StageResult:
    """Drop documents that share an n-gram with a benchmark question (``drop_document``); with ``drop_chunk`` the
    documents pass through and the chunk stage removes contaminated chunks instead.

    With ``previous`` (an earlier output of this stage under the same config) a document whose text it kept is kept
    without a scan: that text had no hit, so skipping it loses no hit row. Every other document (new, changed, or
    dropped before) is scanned, so the output, hits and summary equal a full run's; ``documents_reused`` counts the
    documents not scanned. ``questions``: the configured benchmarks' (``buildplan.questions.load_questions``)."""
    docs = read_parts([docs_in])
    cfg = variant.decontamination
    if cfg.action == "drop_chunk" or not cfg.benchmarks or docs.height == 0:
        kept, tables, stats = docs, {}, {"documents_in": docs.height, "documents_out": docs.height}
    else:
        step = DecontaminationFilter.from_questions(_required(questions, variant))
        rows = docs.with_row_index(_ROW)
        clean_texts = _read_columns([previous] if previous is not None else [], ["text"]).unique()
        reused = rows.join(clean_texts, on="text", how="semi")[_ROW]
        scanned_kept = step.run(rows.filter(~pl.col(_ROW).is_in(reused.implode()))).kept[_ROW]
        kept = rows.filter(pl.col(_ROW).is_in(pl.concat([reused, scanned_kept]).implode())).drop(_ROW)
        if previous is not None:
            n_docs = reused.len()
            step.stats.merge(_counters(documents_in=n_docs, documents_out=n_docs, documents_reused=n_docs))
        stats = step.stats.as_dict()
        tables = {"contamination_hits": step.hits(), "contamination_summary": step.summary()}
    return StageResult(
        files=[_write_frame(kept, out_dir)],
        rows=kept.height,
        content_hash=_frame_hash(kept, "doc_id"),
        stats=stats,
        detail_files=_write_details(out_dir, tables),
    )


def run_dedup_signatures(
    variant: Variant, docs_in: ArtifactManifest, out_dir: Path, on_progress: ProgressCallback | None = None
) -> StageResult:
    """One shard's dedup keys: exact hashes, MinHash signatures and LSH band buckets (never the texts), read and
    hashed a batch at a time (``on_progress`` after each)."""
    paths = docs_in.file_paths()
    rows = sum(pq.ParquetFile(p).metadata.num_rows for p in paths)
    stats = ShardHasher(variant.dedup).run(document_batches(paths), rows, out_dir, on_progress)
    return StageResult(
        files=[HASHES_FILE, BANDS_FILE, SIGNATURES_FILE],
        rows=rows,
        content_hash=combine_hashes([docs_in.content_hash, variant.stage_hash("dedup_signatures")]),
        stats=stats.as_dict(),
    )


def run_dedup(
    variant: Variant,
    docs_in: list[ArtifactManifest],
    signatures_in: list[ArtifactManifest],
    out_dir: Path,
    on_progress: ProgressCallback | None = None,
) -> StageResult:
    """Exact and near-duplicate removal across every shard of the variant (duplicates cross sources), out of core
    from the shards' signatures; then each shard's kept documents, in input order, as parts of at most
    ``sharding.documents_per_part`` rows, the chunk and embed units (``on_progress(shards written, shards)`` after
    each). Every removal is recorded (``dedup_removals``: which duplicate of which)."""
    removals = out_dir / REMOVALS_FILE
    report = find_duplicates([m.folder for m in signatures_in], variant.dedup, removals)
    parts: list[str] = []
    per_part = variant.sharding.documents_per_part

    def kept_documents():
        """Each shard's kept rows written as parts; yields their "id:text hash" (one shard in memory at a time)."""
        for shard, manifest in enumerate(docs_in):
            docs = read_parts([manifest])
            kept = docs.filter(~pl.int_range(pl.len()).is_in(removed_rows(removals, shard).implode()))
            for offset in range(0, kept.height, per_part):
                parts.append(_write_frame(kept.slice(offset, per_part), out_dir, f"part-{len(parts):05d}.parquet"))
            yield from (f"{i}:{content_hash(t)}" for i, t in zip(kept["doc_id"], kept["text"], strict=True))
            if on_progress is not None:
                on_progress(shard + 1, len(docs_in))

    content = combine_hashes(kept_documents())
    if not parts:  # downstream stages always get a part, with the documents' schema
        schema = pl.read_parquet_schema(docs_in[0].file_paths()[0])
        parts.append(_write_frame(pl.DataFrame(schema=schema), out_dir))
    stats = report.stats.as_dict()
    return StageResult(
        files=parts,
        rows=stats["documents_out"],
        content_hash=content,
        stats={**stats, "cluster_sizes": report.cluster_sizes},
        detail_files={"dedup_removals": [REMOVALS_FILE]},
    )


def run_chunk(
    variant: Variant,
    docs_in: ArtifactManifest,
    part: str,
    out_dir: Path,
    previous: tuple[ArtifactManifest, list[ArtifactManifest]] | None = None,
    questions: Sequence[BenchmarkQuestions] = (),
    on_progress: ProgressCallback | None = None,
) -> StageResult:
    """Chunk one part of the documents in the embedder's tokens (``on_progress`` after each batch of documents
    tokenized); with ``drop_chunk``, drop contaminated chunks (those with an n-gram of ``questions``).

    With ``previous`` (an earlier document artifact and its chunk artifacts, one per part, under this chunk config)
    a document it held unchanged takes its earlier chunks instead of being tokenized (and scanned) again, see
    ``_reusable_chunks``; the chunks, hits, summary, rejections and counters equal a full run's, and
    ``documents_reused`` / ``chunks_reused`` count what was taken."""
    docs = pl.read_parquet(docs_in.folder / part)
    chunker = Chunker(load_tokenizer(variant.embedder.model), variant.chunking)
    reused = _reusable_chunks(docs, *previous) if previous is not None else pl.DataFrame(schema=CHUNK_SCHEMA)
    to_chunk = docs.filter(~pl.col("doc_id").is_in(reused["doc_id"].implode()).fill_null(False))
    fresh = chunk_documents(to_chunk, chunker, on_progress)
    if previous is not None:
        n_docs, n_chunks = reused["doc_id"].n_unique(), reused.height
        chunker.stats.merge(_counters(documents_in=n_docs, documents_out=n_docs, documents_reused=n_docs))
        chunker.stats.merge(_counters(chunks_out=n_chunks, chunks_reused=n_chunks))
    longest = max(int(fresh["n_tokens"].max() or 0), int(reused["n_tokens"].max() or 0))
    stats = {**chunker.stats.as_dict(), "max_chunk_tokens": longest}
    tables: dict[str, pl.DataFrame] = {}
    cfg = variant.decontamination
    if cfg.action == "drop_chunk" and cfg.benchmarks and fresh.height + reused.height:
        step = DecontaminationFilter.from_questions(_required(questions, variant), cfg.action)
        fresh = step.run(fresh).kept
        step.stats.merge(_counters(chunks_in=reused.height, chunks_out=reused.height))  # reused: no hit, all kept
        stats.update({f"decontamination_{k}": v for k, v in step.stats.as_dict().items()})
        tables = {"contamination_hits": step.hits(), "contamination_summary": step.summary()}
    chunks = _in_document_order(docs, fresh, reused)
    return StageResult(
        files=[_write_frame(chunks, out_dir)],
        rows=chunks.height,
        content_hash=_frame_hash(chunks, "chunk_id"),
        stats=stats,
        rejections=list(chunker.rejections),
        detail_files=_write_details(out_dir, tables),
    )


def _reusable_chunks(
    docs: pl.DataFrame, previous_docs: ArtifactManifest, previous_chunks: list[ArtifactManifest]
) -> pl.DataFrame:
    """The earlier chunks of the documents of ``docs`` that ``previous_docs`` held with the same id, text and
    provenance (all a document's chunks are made of), read from the chunk artifact of the part each was in.

    Left to the chunker: documents with no earlier chunk (rejected, so chunking them again records the rejection
    again), documents with an earlier contamination hit (``drop_chunk``: scanned again, so the new artifact's hit rows
    stay complete), and every document when ``docs`` repeats a doc_id (chunks are matched to documents by id)."""
    empty = pl.DataFrame(schema=CHUNK_SCHEMA)
    if docs["doc_id"].is_duplicated().any():
        return empty
    chunked = {m.shard: m for m in previous_chunks}
    parts = [p for p in previous_docs.files if p in chunked]
    if not parts:
        return empty
    ids = docs["doc_id"].implode()
    earlier = pl.concat(
        [
            pl.scan_parquet(previous_docs.folder / p)
            .select(_DOCUMENT_MAKES_CHUNKS)
            .filter(pl.col("doc_id").is_in(ids))
            .with_columns(pl.lit(p).alias(_PART))
            for p in parts
        ]
    ).collect()
    contaminated = _read_columns([chunked[p] for p in parts], ["doc_id"], "contamination_hits")["doc_id"].implode()
    same = (
        earlier.filter(pl.col("doc_id").is_unique() & ~pl.col("doc_id").is_in(contaminated))
        .join(docs.select(_DOCUMENT_MAKES_CHUNKS), on=_DOCUMENT_MAKES_CHUNKS, how="semi", nulls_equal=True)
        .select("doc_id", _PART)
    )
    frames = [
        pl.scan_parquet(chunked[p].file_paths()).filter(pl.col("doc_id").is_in(group["doc_id"].implode())).collect()
        for (p,), group in same.group_by(_PART, maintain_order=True)
    ]
    return pl.concat(frames).cast(CHUNK_SCHEMA) if frames else empty


def _in_document_order(docs: pl.DataFrame, fresh: pl.DataFrame, reused: pl.DataFrame) -> pl.DataFrame:
    """Fresh and reused chunks in a full run's order: by document, each document's chunks in the order they were
    made (every document's chunks come from one of the two frames; doc ids are unique when ``reused`` has rows)."""
    if reused.height == 0:
        return fresh
    doc_rows = docs.select(pl.col("doc_id").cast(pl.String)).with_row_index(_ROW)
    return (
        pl.concat([fresh, reused])
        .with_row_index(_CHUNK_ROW)
        .join(doc_rows, on="doc_id", how="left")
        .sort(_ROW, _CHUNK_ROW)
        .select(CHUNK_COLUMNS)
    )


def run_embed(
    variant: Variant,
    chunks_in: ArtifactManifest,
    out_dir: Path,
    on_shard: Callable[[ShardInfo, bool], None] | None = None,
    previous: tuple[list[ArtifactManifest], list[ArtifactManifest]] | None = None,
    on_rows: Callable[[int], None] | None = None,
) -> StageResult:
    """Embed one chunk part into memory-mapped shards; a re-run after a crash skips the shards already finished (and
    the finished checkpoint pieces of the shard it was in); ``on_rows(n)`` is called after each batch of ``n`` chunks;
    with ``previous`` (the chunk and embedding artifacts of the datastore being refreshed) chunks whose text is
    unchanged, in whichever part they were, take their earlier vectors instead of being embedded again."""
    embedder = Embedder(variant.embedder)
    paths = chunks_in.file_paths()
    if previous is not None:
        previous_chunks, previous_embed = previous
        embedder = ReusingEmbedder(
            embedder,
            [p for m in previous_chunks for p in m.file_paths()],
            [m.folder / EMBEDDINGS_DIR for m in previous_embed],
            pl.read_parquet(paths, columns=["text"])["text"].drop_nulls(),
        )
    longest = int(chunks_in.stats.get("max_chunk_tokens", 0))
    if embedder.max_chunk_tokens is not None and longest > embedder.max_chunk_tokens:
        raise ConfigError(
            f"{variant.path}: chunking.size allows {longest}-token chunks but {variant.embedder.model} reads at most "
            f"{embedder.max_chunk_tokens}; set chunking.size <= {embedder.max_chunk_tokens}"
        )
    manifest = embed_chunks(
        paths, out_dir / EMBEDDINGS_DIR, embedder, variant.embedder.shard_size, on_shard=on_shard, on_rows=on_rows
    )
    return StageResult(
        files=[EMBEDDINGS_DIR],
        rows=manifest.rows,
        content_hash=manifest.content_hash,
        stats={
            **manifest.stats.as_dict(),
            **(embedder.stats.as_dict() if previous is not None else {}),
            "dim": manifest.dim,
            "model": manifest.model_id,
        },
    )


def run_index(
    variant: Variant, embed_in: list[ArtifactManifest], out_dir: Path, previous: ArtifactManifest | None = None
) -> StageResult:
    """Build the FAISS index described by the variant's factory string over the embeddings of every chunk part (in
    part order, vectors added shard by shard from the memory-mapped shards); with ``previous`` (the index of the
    datastore being refreshed) update that index in place instead when the change is small enough (see
    indexing.index_update), recording in ``index_update`` which of the two happened and why."""
    shutil.rmtree(out_dir / INDEX_DIR, ignore_errors=True)  # a crashed earlier attempt: an index is written whole
    cfg = variant.index
    embeddings_dirs = [m.folder / EMBEDDINGS_DIR for m in embed_in]
    stats: dict = {"embeddings_keys": [m.key for m in embed_in]}
    manifest = None
    if previous is not None:
        embeddings = EmbeddingSet.open(embeddings_dirs)
        delta, why = plan_index_update(previous.folder / INDEX_DIR, embeddings, cfg)
        if delta is not None:
            update = apply_index_update(delta, embeddings, out_dir / INDEX_DIR, cfg)
            manifest = update.manifest
            stats.update(update.stats, updated_from=previous.key)
        else:
            stats["index_update"] = f"full build: {why}"
    if manifest is None:
        manifest = build_index(embeddings_dirs, out_dir / INDEX_DIR, cfg)
    return StageResult(
        files=[INDEX_DIR],
        rows=manifest.ntotal,
        content_hash=manifest.manifest_hash,
        stats={
            **stats,
            "vectors": manifest.ntotal,
            "index_type": manifest.factory,
            "shards": len(manifest.shards),
            "recall_at_10": manifest.recall_at_10,
            **manifest.search_params,
        },
    )
