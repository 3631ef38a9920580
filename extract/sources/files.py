"""Local files: HTML pages (one document per file) and raw wikitext articles (title from the file name)."""

from __future__ import annotations

import re
from collections.abc import Iterator

from catalog.hashing import relative_name
from catalog.records import Rejection
from extract.records import RawDocument
from extract.sources.base import Source, register_source
from extract.sources.charset import detect_charset
from extract.sources.compressed import CorruptCompressedData, open_maybe_compressed

_REDIRECT = re.compile(r"^\s*#REDIRECT", re.IGNORECASE)


@register_source("html")
class HtmlFileSource(Source):
    """HTML files matching ``pattern`` under ``path`` (``.gz`` / ``.bz2`` are decompressed); charset detected."""

    files_per_shard = 1000  # one document per file: a unit of work per file would be mostly overhead

    def _iter_raw(self) -> Iterator[RawDocument | Rejection]:
        for path in self.files():
            try:
                with open_maybe_compressed(path) as f:
                    data = f.read()
            except CorruptCompressedData as exc:  # one page per file: a damaged one is not half-read
                yield self.reject(str(path), "corrupt_compressed_stream", str(exc))
                continue
            except (OSError, EOFError) as exc:
                yield self.reject(str(path), "unreadable_file", str(exc))
                continue
            yield self.document(
                relative_name(path, self.root),
                data,
                "text/html",
                input_ref=str(path),
                encoding=detect_charset(data),
            )


@register_source("wikitext")
class WikitextFileSource(Source):
    """One raw wikitext article per file; the title is the file stem with underscores as spaces."""

    files_per_shard = 1000

    def _iter_raw(self) -> Iterator[RawDocument | Rejection]:
        for path in self.files():
            try:
                data = path.read_bytes()
            except OSError as exc:
                yield self.reject(str(path), "unreadable_file", str(exc))
                continue
            text = data.decode("utf-8", errors="replace")
            if _REDIRECT.match(text):
                self.skip("redirect")
                continue
            yield self.document(
                relative_name(path, self.root),
                text,
                "text/x-wiki",
                title=path.stem.replace("_", " "),
                input_ref=str(path),
            )
