"""Bring an index up to date with a new embedding set instead of building it again: the refresh path of the index
stage.

A refresh changes a few chunks of a large corpus. Chunk ids are content hashes, so the difference between the previous
index (its ``ids.parquet``) and the new embedding set is exact: ids only in the index were removed, ids only in the
embeddings were added. The update touches only what changed:

- an index shard without removed rows is reused as it is (hard-linked into the new folder);
- a shard with removed rows loses them in place with ``remove_ids`` when faiss stores its codes in row order (Flat,
  PQ, SQ: removal compacts the codes and keeps the order), and is otherwise rebuilt from its remaining vectors on a
  reset copy of itself (IVF, HNSW), which keeps its training: no retraining, only that shard's vectors re-added;
- added vectors are appended with ``add`` to the last shard while it stays within the shard size, and fill new shards
  past that.

Trained structures (IVF centroids, PQ codebooks) are kept, so a large change drifts from what training on the new
corpus would give: past ``IndexConfig.refresh_max_change`` of the index, :func:`plan_index_update` says why and the
caller builds from scratch. The updated folder has the same format as a built one, with ``updated_from`` set.
"""

from __future__ import annotations

import math
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import faiss
import numpy as np
import polars as pl
import pyarrow as pa

from catalog.errors import ArtifactError
from catalog.variant import IndexConfig
from indexing.embedding_store import EmbeddingSet
from indexing.vector_index import (
    IDS_FILE,
    IndexManifest,
    IndexShard,
    add_in_batches,
    check_empty_out_dir,
    choose_factory,
    configure_threads,
    finish_index_folder,
    index_config_hash,
    inner_index,
    read_ids,
    read_index_manifest,
    staged_index_folder,
    write_ids,
)


@dataclass(frozen=True)
class IndexDelta:
    """What a refresh changes in an index: previous rows to remove, embedding rows to add."""

    previous_dir: Path
    previous: IndexManifest
    previous_ids: list[str]  # chunk id of each previous global row
    removed_rows: np.ndarray  # sorted previous global rows whose chunk is gone
    added: pl.DataFrame  # chunk_id, shard (embedding shard position), row (in that shard), in embedding order
    locations: pl.DataFrame  # the same three columns for every chunk of the new embedding set

    @property
    def changed_fraction(self) -> float:
        return (len(self.removed_rows) + self.added.height) / max(self.previous.ntotal, 1)


@dataclass
class UpdatedShard:
    """One shard of the updated index: either a previous file reused unchanged, or a faiss index to write."""

    chunk_ids: list[str]
    how: str  # reused | removed_in_place | rebuilt | appended | new
    reused_file: Path | None = None
    index: faiss.Index | None = None


@dataclass
class IndexUpdateResult:
    manifest: IndexManifest
    stats: dict = field(default_factory=dict)


def _embedding_locations(embeddings: EmbeddingSet) -> pl.DataFrame:
    frames = []
    for position, shard in enumerate(embeddings.shards):
        ids = shard.chunk_ids()
        frames.append(
            pl.DataFrame(
                {
                    "chunk_id": pl.Series(ids.cast(pa.string()).to_pylist(), dtype=pl.String),
                    "shard": pl.Series([position] * shard.rows, dtype=pl.Int64),
                    "row": pl.Series(np.arange(shard.rows, dtype=np.int64)),
                }
            )
        )
    return (
        pl.concat(frames)
        if frames
        else pl.DataFrame(schema={"chunk_id": pl.String, "shard": pl.Int64, "row": pl.Int64})
    )


def plan_index_update(
    previous_dir: str | Path, embeddings: EmbeddingSet, cfg: IndexConfig
) -> tuple[IndexDelta | None, str]:
    """The delta from the index in ``previous_dir`` to ``embeddings``, or (None, why it must be built whole)."""
    previous_dir = Path(previous_dir)
    previous = read_index_manifest(previous_dir)
    if previous.config_hash != index_config_hash(cfg):
        return None, "the index config changed"
    if (previous.model, previous.dim) != (embeddings.model, embeddings.dim):
        return None, f"the embedding model changed ({previous.model} -> {embeddings.model})"
    if embeddings.ntotal == 0:
        return None, "no embeddings to index"
    if cfg.factory == "auto":
        now = choose_factory(embeddings.ntotal, embeddings.dim, cfg.memory_budget_mb)
        if now != previous.factory:
            return None, f"auto now chooses {now} for {embeddings.ntotal} vectors (the index is {previous.factory})"
    previous_ids = read_ids(previous_dir / IDS_FILE, previous.ntotal).to_pylist()
    locations = _embedding_locations(embeddings)
    if locations["chunk_id"].n_unique() != locations.height:
        return None, "the embedding set repeats chunk ids"
    old = pl.DataFrame({"chunk_id": pl.Series(previous_ids, dtype=pl.String)}).with_row_index("old_row")
    removed = old.join(locations, on="chunk_id", how="anti")["old_row"].cast(pl.Int64).sort().to_numpy()
    added = locations.join(old, on="chunk_id", how="anti", maintain_order="left")
    delta = IndexDelta(previous_dir, previous, previous_ids, removed, added, locations)
    if delta.changed_fraction > cfg.refresh_max_change:
        return None, (
            f"{len(removed)} removed + {added.height} added vectors are {delta.changed_fraction:.0%} of the index, "
            f"over refresh_max_change {cfg.refresh_max_change:.0%}"
        )
    return delta, ""


def gather_vectors(embeddings: EmbeddingSet, locations: pl.DataFrame) -> np.ndarray:
    """float32 vectors of ``locations`` (columns shard, row), in their order."""
    shard_of = locations["shard"].to_numpy()
    row_of = locations["row"].to_numpy()
    out = np.empty((locations.height, embeddings.dim), dtype=np.float32)
    for position in np.unique(shard_of):
        mask = shard_of == position
        out[mask] = embeddings.shards[position].vectors()[row_of[mask]]
    return out


def _stores_codes_in_order(index: faiss.Index) -> bool:
    """Flat-code indexes (Flat, PQ, SQ, also under a pre-transform) compact in row order on ``remove_ids``."""
    return isinstance(inner_index(index), faiss.IndexFlatCodes)


def _empty_copy(index: faiss.Index) -> faiss.Index:
    """The index with its training (quantizers, codebooks, transforms) and no vectors."""
    empty = faiss.clone_index(index)
    empty.reset()
    return empty


def _shard_without(
    delta: IndexDelta, embeddings: EmbeddingSet, shard: IndexShard, dead: np.ndarray
) -> UpdatedShard | None:
    ids = delta.previous_ids[shard.row_offset : shard.row_offset + shard.rows]
    path = delta.previous_dir / shard.file
    if len(dead) == 0:
        return UpdatedShard(ids, "reused", reused_file=path)
    if len(dead) == shard.rows:
        return None
    keep = np.ones(shard.rows, dtype=bool)
    keep[dead] = False
    live_ids = [chunk_id for chunk_id, kept in zip(ids, keep.tolist(), strict=True) if kept]
    index = faiss.read_index(str(path))
    if _stores_codes_in_order(index):
        index.remove_ids(dead.astype(np.int64))
        how = "removed_in_place"
    else:
        index = _empty_copy(index)
        live = pl.DataFrame({"chunk_id": pl.Series(live_ids, dtype=pl.String)})
        add_in_batches(
            index, gather_vectors(embeddings, live.join(delta.locations, on="chunk_id", maintain_order="left"))
        )
        how = "rebuilt"
    if index.ntotal != len(live_ids):
        raise ArtifactError(f"{path}: {index.ntotal} vectors after removing {len(dead)} of {shard.rows}")
    return UpdatedShard(live_ids, how, index=index)


def _rows_per_shard(cfg: IndexConfig, ntotal: int) -> int | None:
    if cfg.rows_per_shard is not None:
        return cfg.rows_per_shard
    if cfg.shards is not None:
        return math.ceil(ntotal / cfg.shards)
    return None  # one shard


def _append(
    shards: list[UpdatedShard], delta: IndexDelta, embeddings: EmbeddingSet, cfg: IndexConfig, template: faiss.Index
) -> None:
    """Add the new vectors to the last shard while it has room, then to new shards of at most the shard size."""
    added = delta.added
    limit = _rows_per_shard(cfg, embeddings.ntotal)
    start = 0
    if shards:
        last = shards[-1]
        room = added.height if limit is None else max(0, limit - len(last.chunk_ids))
        if room:
            if last.index is None:
                last.index = faiss.read_index(str(last.reused_file))
                last.reused_file = None
                last.how = "appended"
            part = added.slice(0, room)
            add_in_batches(last.index, gather_vectors(embeddings, part))
            last.chunk_ids += part["chunk_id"].to_list()
            start = part.height
    while start < added.height:
        part = added.slice(start, limit or added.height)
        index = _empty_copy(template)
        add_in_batches(index, gather_vectors(embeddings, part))
        shards.append(UpdatedShard(part["chunk_id"].to_list(), "new", index=index))
        start += part.height


def _write(shards: list[UpdatedShard], tmp_dir: Path, locations: pl.DataFrame, names: list[str]) -> list[IndexShard]:
    """Write (or link) every shard; each records the embedding shards its vectors came from."""
    shard_of = dict(zip(locations["chunk_id"].to_list(), locations["shard"].to_list(), strict=True))
    entries, offset = [], 0
    for g, shard in enumerate(shards):
        name = "index.faiss" if len(shards) == 1 else f"index-{g:05d}.faiss"
        target = tmp_dir / name
        if shard.index is None:
            try:
                os.link(shard.reused_file, target)  # immutable artifacts: sharing the bytes is safe
            except OSError:
                shutil.copy2(shard.reused_file, target)
        else:
            faiss.write_index(shard.index, str(target))
        sources = sorted({shard_of[c] for c in shard.chunk_ids})
        entries.append(
            IndexShard(
                file=name,
                rows=len(shard.chunk_ids),
                row_offset=offset,
                bytes=target.stat().st_size,
                embedding_shards=[names[p] for p in sources],
            )
        )
        offset += len(shard.chunk_ids)
    return entries


def apply_index_update(
    delta: IndexDelta,
    embeddings: EmbeddingSet,
    out_dir: str | Path,
    cfg: IndexConfig,
    *,
    threads: int | None = None,
    seed: int = 0,
) -> IndexUpdateResult:
    """Write the updated index into ``out_dir`` (staged and renamed like a build); the previous folder is untouched."""
    out_dir = Path(out_dir)
    check_empty_out_dir(out_dir)
    configure_threads(threads)
    previous = delta.previous
    dead_by_shard = [
        delta.removed_rows[(delta.removed_rows >= s.row_offset) & (delta.removed_rows < s.row_offset + s.rows)]
        - s.row_offset
        for s in previous.shards
    ]
    shards = [
        updated
        for s, dead in zip(previous.shards, dead_by_shard, strict=True)
        if (updated := _shard_without(delta, embeddings, s, dead)) is not None
    ]
    template = _empty_copy(faiss.read_index(str(delta.previous_dir / previous.shards[-1].file)))
    _append(shards, delta, embeddings, cfg, template)

    chunk_ids = [c for s in shards for c in s.chunk_ids]
    if len(chunk_ids) != embeddings.ntotal:
        raise ArtifactError(f"{out_dir}: updated index holds {len(chunk_ids)} vectors, embeddings {embeddings.ntotal}")
    # embedding global row -> index row, to measure recall against exact search over the embeddings
    index_row = dict(zip(chunk_ids, range(len(chunk_ids)), strict=True))
    index_row_of = np.array([index_row[c] for c in delta.locations["chunk_id"].to_list()], dtype=np.int64)
    with staged_index_folder(out_dir) as tmp_dir:
        entries = _write(shards, tmp_dir, delta.locations, embeddings.shard_labels)
        write_ids(tmp_dir, pa.array(chunk_ids, type=pa.string()))
        manifest = previous.model_copy(
            update={
                "embeddings_manifest_hash": embeddings.manifest_hash,
                "ntotal": len(chunk_ids),
                "shards": entries,
                "updated_from": previous.manifest_hash,
                "recall_at_10": None,
                "recall_queries": 0,
            }
        )
        manifest = finish_index_folder(tmp_dir, manifest, embeddings, cfg, template, seed, index_row_of)
    hows = [s.how for s in shards]
    stats = {
        "index_update": "incremental",
        "vectors_removed": int(len(delta.removed_rows)),
        "vectors_added": delta.added.height,
        "changed_fraction": round(delta.changed_fraction, 4),
        **{f"shards_{how}": hows.count(how) for how in ("reused", "removed_in_place", "rebuilt", "appended", "new")},
        "shards_dropped": sum(len(d) == s.rows for s, d in zip(previous.shards, dead_by_shard, strict=True)),
    }
    return IndexUpdateResult(manifest, stats)
