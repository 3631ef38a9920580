"""Find a built datastore's artifacts (chunks, embeddings, index) from the catalog, for search and evaluation.

Reading never needs the catalog's write lock (a build may hold it: the reader sees the last committed datastore), and
every artifact is checked against its manifest's sizes and hashes before it is read: a damaged one is an error naming
the file, never an answer."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from catalog.artifacts import ArtifactStore
from catalog.db import Catalog
from catalog.errors import ArtifactError, RereadError
from catalog.hashing import canonical_json
from catalog.variant import Variant
from indexing.stages import EMBEDDINGS_DIR, INDEX_DIR


@dataclass(frozen=True)
class DatastorePaths:
    variant: str
    index_key: str
    chunks: list[Path]  # chunk Parquet files (chunk_id, doc_id, source, url, title, text, char_start, char_end, ...)
    index_dir: Path  # index.faiss + ids.parquet + manifest.json
    data_dir: Path
    embed_keys: list[str]  # one embed artifact per chunk part, in part order

    def embeddings_dirs(self) -> list[Path]:
        """Each chunk part's shard-*.npy + shard-*.ids.parquet + manifest.json, in part order, checked when asked for
        (search does not read them)."""
        store = ArtifactStore(self.data_dir)
        return [store.open("embed", key).folder / EMBEDDINGS_DIR for key in self.embed_keys]


def locate_datastore(variant: Variant, data_dir: str | Path) -> DatastorePaths:
    """The artifacts of the last build of ``variant`` in ``data_dir``; a clear error when it was never built."""
    catalog_path = Path(data_dir) / "catalog.duckdb"
    if not catalog_path.exists():
        raise RereadError(f"{catalog_path}: no catalog; build the datastore first: reread build {variant.path}")
    with Catalog(catalog_path, read_only=True) as catalog:
        record = catalog.datastore(variant.name)
    if record is None:
        raise RereadError(f"variant {variant.name!r} has no datastore in {data_dir}; run: reread build {variant.path}")
    store = ArtifactStore(data_dir)
    try:
        chunk_manifests = [store.open("chunk", key) for key in record["chunk_keys"]]
        index = store.open("index", record["index_key"])
    except ArtifactError as exc:
        raise ArtifactError(
            f"the datastore of {variant.name!r} is damaged: {exc}. `reread build {variant.path}` rebuilds it"
        ) from None
    return DatastorePaths(
        variant=variant.name,
        index_key=index.key,
        chunks=[p for m in chunk_manifests for p in m.file_paths()],
        index_dir=index.folder / INDEX_DIR,
        data_dir=Path(data_dir),
        embed_keys=record["embed_keys"],
    )


def open_retriever(variant: Variant, data_dir: str | Path):
    """A Retriever over the variant's built datastore, with its top-K cache under ``<data-dir>/cache/``, so
    ablations (rerank, MMR, bagging, k) reuse one search per query. One per datastore and process: evaluation
    tasks of several strategies share its loaded index, chunk lookup and embedder."""
    paths = locate_datastore(variant, data_dir)
    embedder_json = canonical_json(variant.embedder)
    return _retriever(
        paths.index_dir,
        tuple(paths.chunks),
        embedder_json,
        Path(data_dir) / "cache" / "retrieve" / paths.index_key,
        variant.index.use_gpu,
        variant.index.search_on_disk,
    )


@lru_cache(maxsize=4)
def _retriever(
    index_dir: Path, chunks: tuple[Path, ...], embedder_json: str, cache_dir: Path, use_gpu: bool, on_disk: bool
):
    from catalog.variant import EmbedderConfig
    from indexing.embed import Embedder
    from indexing.retrieve import Retriever

    embedder = Embedder(EmbedderConfig.model_validate_json(embedder_json))
    return Retriever(index_dir, list(chunks), embedder, cache_dir=cache_dir, use_gpu=use_gpu, mmap=on_disk)
