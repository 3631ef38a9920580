"""Sources: stream RawDocuments from the inputs a variant names (a registry keyed by the config's ``type``).

source = open_source(cfg)            # cfg: one of catalog.variant's source configs
for item in source.iter_documents():  # RawDocument, or Rejection for an unreadable input
    ...
source.stats.as_dict()               # documents, skipped_<why>, rejected_<reason>
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pydantic import TypeAdapter, ValidationError

from catalog.errors import ConfigError
from catalog.variant import SourceConfig
from extract.sources import datasets, files, mediawiki, trec, warc  # noqa: F401  (register the source types)
from extract.sources.base import SOURCE_TYPES, Source
from extract.sources.compressed import LineSpan

__all__ = ["SOURCE_TYPES", "Source", "open_source", "source_config_for_path"]

_SOURCE_CONFIG = TypeAdapter(SourceConfig)


def open_source(cfg, only_files: Sequence[str | LineSpan] | None = None) -> Source:
    """The reader for one source config (``cfg.type`` picks the registered Source class); ``only_files``: only
    these of its files (one shard, see ``Source.shards``)."""
    try:
        cls = SOURCE_TYPES[cfg.type]
    except KeyError:
        known = ", ".join(sorted(SOURCE_TYPES))
        raise ConfigError(f"source {cfg.name!r}: unknown type {cfg.type!r}; known: {known}") from None
    return cls(cfg, only_files)


def _type_for_path(path: Path) -> str:
    name = path.name.lower()
    if ".warc" in name:
        return "warc"
    if name.endswith((".xml", ".xml.bz2", ".xml.gz")):
        return "mediawiki"
    if name.endswith((".jsonl", ".jsonl.gz", ".jsonl.bz2")):
        return "jsonl"
    if name.endswith(".parquet"):
        return "parquet"
    if name.endswith((".wiki", ".wikitext")):
        return "wikitext"
    if name.endswith((".trec", ".sgml")):
        return "trec"
    return "html"


def source_config_for_path(path: str | Path, **fields) -> SourceConfig:
    """A source config for a single file, its type guessed from the file name (``x.warc.gz`` -> warc,
    ``x.xml.bz2`` -> mediawiki, ``x.jsonl`` -> jsonl, anything else -> html). Used by the CLI."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: no such file")
    raw = {"type": _type_for_path(path), "path": path, "name": str(path), **fields}
    try:
        return _SOURCE_CONFIG.validate_python(raw)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {exc.errors()[0]['msg']}") from None
