"""Streaming Parquet writing in parts, so stages hold a bounded number of rows in memory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

DOCUMENT_SCHEMA = pa.schema(
    [
        ("doc_id", pa.string()),
        ("source_doc_id", pa.string()),  # the document's id in its source (id_field, URI, page id, DOCNO, URL)
        ("source", pa.string()),
        ("url", pa.string()),
        ("title", pa.string()),
        ("text", pa.string()),
        ("extractor", pa.string()),
        ("extractor_version", pa.string()),
        ("raw_hash", pa.string()),
    ]
)

CHUNK_SCHEMA = pa.schema(
    [
        ("chunk_id", pa.string()),
        ("doc_id", pa.string()),
        ("source_doc_id", pa.string()),
        ("source", pa.string()),
        ("url", pa.string()),
        ("title", pa.string()),
        ("text", pa.string()),
        ("char_start", pa.int64()),
        ("char_end", pa.int64()),
        ("n_tokens", pa.int64()),
    ]
)


def write_parquet_atomic(table: pa.Table, path: Path) -> None:
    """Write a whole Parquet file under a temporary name, then rename: readers never see a torn file."""
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, tmp, compression="zstd")
    tmp.rename(path)


class PartWriter:
    """Appends rows and writes ``<prefix>-00000.parquet``, ``<prefix>-00001.parquet``, ... of at most
    ``rows_per_part`` rows each. Parts are written whole (temp name, then rename) so a crash never leaves a torn part."""

    def __init__(self, folder: Path, schema: pa.Schema, prefix: str = "part", rows_per_part: int = 50_000):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.schema = schema
        self.prefix = prefix
        self.rows_per_part = rows_per_part
        self.files: list[str] = []
        self.rows = 0
        self._buffer: list[dict[str, Any]] = []

    def add(self, row: dict[str, Any]) -> None:
        self._buffer.append(row)
        if len(self._buffer) >= self.rows_per_part:
            self._flush()

    def _flush(self) -> None:
        if not self._buffer and self.files:
            return
        name = f"{self.prefix}-{len(self.files):05d}.parquet"
        write_parquet_atomic(pa.Table.from_pylist(self._buffer, schema=self.schema), self.folder / name)
        self.files.append(name)
        self.rows += len(self._buffer)
        self._buffer = []

    def close(self) -> list[str]:
        """Flush the last part (an empty part when nothing was written, so readers always find the schema)."""
        if self._buffer or not self.files:
            self._flush()
        return self.files
