"""Text datasets: JSON Lines and Parquet files with configurable field names (dotted paths reach nested fields,
e.g. ``meta.url`` in RedPajama arXiv or ``metadata.url`` in C4)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from catalog.hashing import relative_name
from catalog.records import Rejection
from extract.records import RawDocument
from extract.sources.base import FileSource, register_source
from extract.sources.compressed import Damage, iter_lines

_PARQUET_BATCH_ROWS = 1024
_MISSING = object()
# A JSON ``\\ud800`` escape decodes to a lone surrogate, which no UTF-8 encoder (hashing, Arrow, Parquet) accepts.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def valid_text(value: str) -> str:
    """``value`` with each lone surrogate replaced by U+FFFD, as undecodable bytes are elsewhere."""
    return _LONE_SURROGATE.sub("\ufffd", value)


def field_value(row: dict[str, Any], dotted: str) -> Any:
    """The value at ``a.b.c`` in nested dicts, or ``_MISSING``."""
    value: Any = row
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return _MISSING
        value = value[part]
    return value


class _RecordSource(FileSource):
    """Turns dict records into documents using the configured ``*_field`` names."""

    def _from_record(self, row: Any, native_fallback: str, input_ref: str) -> RawDocument | Rejection:
        if not isinstance(row, dict):
            return self.reject(input_ref, "bad_record", f"expected an object, got {type(row).__name__}")
        text = field_value(row, self.cfg.text_field)
        if text is _MISSING or text is None:
            return self.reject(input_ref, "missing_text", f"no field {self.cfg.text_field!r}")
        if not isinstance(text, str):
            return self.reject(input_ref, "bad_record", f"field {self.cfg.text_field!r} is {type(text).__name__}")
        native_id = native_fallback
        if self.cfg.id_field:
            value = field_value(row, self.cfg.id_field)
            if value is _MISSING or value is None:
                return self.reject(input_ref, "missing_id", f"no field {self.cfg.id_field!r}")
            native_id = valid_text(str(value))
        return self.document(
            native_id,
            valid_text(text),
            "text/plain",
            url=self._optional(row, self.cfg.url_field),
            title=self._optional(row, self.cfg.title_field),
            input_ref=input_ref,
        )

    @staticmethod
    def _optional(row: dict[str, Any], dotted: str | None) -> str:
        if not dotted:
            return ""
        value = field_value(row, dotted)
        return "" if value is _MISSING or value is None else valid_text(str(value))


@register_source("jsonl")
class JsonlSource(_RecordSource):
    """One JSON object per line (``.gz`` / ``.bz2`` decompressed); a bad line is a Rejection, the rest goes on.
    A damaged gzip member is one ``corrupt_compressed_stream`` Rejection; reading resumes at the next member."""

    pattern = "**/*.jsonl*"
    splits_lines = True

    def _iter_file(self, path: Path) -> Iterator[RawDocument | Rejection]:
        name = relative_name(path, self.root)
        span = self.spans.get(name)
        lineno = 0 if span is None else span.first_line - 1
        try:
            for item in iter_lines(path, span):
                if isinstance(item, Damage):
                    yield self.reject(f"{path}:{lineno + 1}", "corrupt_compressed_stream", item.describe())
                    continue
                lineno, line = item
                if not line.strip():
                    continue
                ref = f"{path}:{lineno}"
                try:
                    row = json.loads(line)
                except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
                    yield self.reject(ref, "bad_json", str(exc))
                    continue
                except RecursionError:  # e.g. 100,000 "[": the C parser gives up instead of overflowing the stack
                    yield self.reject(ref, "bad_json", f"nested too deeply ({len(line)} bytes)")
                    continue
                yield self._from_record(row, f"{name}:{lineno}", ref)
        except OSError as exc:
            yield self.reject(f"{path}:{lineno + 1}", "unreadable_file", str(exc))


@register_source("parquet")
class ParquetSource(_RecordSource):
    """Parquet files read in record batches (only the configured columns), never whole, row group by row group: a
    corrupt page loses its row group (a ``corrupt_row_group`` Rejection with its row range), not the file."""

    pattern = "**/*.parquet"

    def _columns(self, schema_names: list[str]) -> list[str]:
        fields = (self.cfg.text_field, self.cfg.id_field, self.cfg.url_field, self.cfg.title_field)
        tops = {f.split(".", 1)[0] for f in fields if f}
        return [name for name in schema_names if name in tops]

    def _iter_file(self, path: Path) -> Iterator[RawDocument | Rejection]:
        name = relative_name(path, self.root)
        try:
            parquet = pq.ParquetFile(path)
            columns = self._columns(parquet.schema_arrow.names)
        except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
            yield self.reject(str(path), "unreadable_file", f"{type(exc).__name__}: {exc}")
            return
        first_row = 0
        for group in range(parquet.metadata.num_row_groups):
            rows = parquet.metadata.row_group(group).num_rows
            # Decoded whole before any row is yielded, so a bad page cannot leave a row group half-read.
            try:
                batches = list(
                    parquet.iter_batches(batch_size=_PARQUET_BATCH_ROWS, row_groups=[group], columns=columns)
                )
            except (OSError, ValueError) as exc:
                detail = f"rows {first_row}-{first_row + rows - 1}: {type(exc).__name__}: {exc}"
                yield self.reject(f"{path}#rowgroup{group}", "corrupt_row_group", detail)
            else:
                row_number = first_row
                for batch in batches:
                    try:
                        records = batch.to_pylist()
                    except ValueError as exc:  # e.g. a damaged page without a checksum: invalid UTF-8 in a string
                        detail = f"rows {row_number}-{row_number + batch.num_rows - 1}: {type(exc).__name__}: {exc}"
                        yield self.reject(f"{path}#rowgroup{group}", "corrupt_row_group", detail)
                        records = []
                    for row in records:
                        yield self._from_record(row, f"{name}:{row_number}", f"{path}:{row_number}")
                        row_number += 1
                    row_number += batch.num_rows - len(records)
            first_row += rows
