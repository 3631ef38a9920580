"""WARC / WARC.gz files (Common Crawl style) and the crawler's WARC folders.

``response`` and ``resource`` records become documents when their content type is wanted and (for HTTP responses) the
status is 2xx. warcio returns a short payload without complaint when a file is cut off, so every record's raw stream
is drained and checked against its Content-Length: a short record ends the file as a ``truncated_warc`` Rejection,
after every good record before it has been yielded.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from pathlib import Path

from warcio.archiveiterator import ArchiveIterator
from warcio.exceptions import ArchiveLoadFailed
from warcio.recordloader import ArcWarcRecord

from catalog.hashing import content_hash
from catalog.records import Rejection
from catalog.variant import WarcSource as WarcConfig
from extract.records import RawDocument
from extract.sources.base import Source, register_source
from extract.sources.charset import charset_from_content_type, detect_charset

_DOCUMENT_RECORDS = ("response", "resource")
_DRAIN_BYTES = 1 << 16


def _mime(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _payload_content_type(record: ArcWarcRecord) -> str | None:
    """HTTP Content-Type for a response, the WARC Content-Type for a resource record."""
    if record.http_headers is not None and record.rec_type == "response":
        return record.http_headers.get_header("Content-Type")
    return record.rec_headers.get_header("Content-Type")


def _record_is_complete(record: ArcWarcRecord) -> bool:
    """Read what is left of the record and report whether it had all of its declared bytes."""
    while record.raw_stream.read(_DRAIN_BYTES):
        pass
    return getattr(record.raw_stream, "limit", 0) <= 0


class _WarcReader(Source):
    """Shared reader; subclasses say which files (``pattern``) and which payload types (``content_types``) to take."""

    content_types: tuple[str, ...]
    _seen_uris: set[str]  # hashes of the URIs met so far in this pass (hashes keep memory small on big crawls)

    def _iter_raw(self) -> Iterator[RawDocument | Rejection]:
        wanted = {_mime(t) for t in self.content_types}
        self._seen_uris = set()
        for path in self.files():
            yield from self._iter_file(path, wanted)

    def _native_id(self, record: ArcWarcRecord, uri: str) -> str:
        """The URI; a URI seen before in this source (or none) adds the record id so ids stay distinct."""
        key = content_hash(uri)
        repeated = key in self._seen_uris or not uri
        self._seen_uris.add(key)
        return f"{uri}\x00{record.rec_headers.get_header('WARC-Record-ID')}" if repeated else uri

    def _iter_file(self, path: Path, wanted: set[str]) -> Iterator[RawDocument | Rejection]:
        next_offset = 0  # where the record after the last complete one starts: the place to look when it breaks
        try:
            with open(path, "rb") as f:
                records = ArchiveIterator(f)
                for record in records:
                    mime = self._wanted_mime(record, wanted)
                    payload = record.content_stream().read() if mime else b""
                    complete = _record_is_complete(record)
                    offset = records.get_record_offset()  # warcio knows it only once the record is read
                    if not complete:
                        detail = f"record shorter than its {record.length} declared bytes"
                        yield self.reject(f"{path}#{offset}", "truncated_warc", detail)
                        return
                    next_offset = offset + records.get_record_length()
                    if mime:
                        yield self._document(record, mime, payload, f"{path}#{offset}")
        except (ArchiveLoadFailed, EOFError, OSError, zlib.error, ValueError) as exc:
            yield self.reject(f"{path}#{next_offset}", "truncated_warc", f"{type(exc).__name__}: {exc}")

    def _wanted_mime(self, record: ArcWarcRecord, wanted: set[str]) -> str | None:
        """The payload's MIME type when the record is a document to keep, else None (and the skip is counted)."""
        if record.rec_type not in _DOCUMENT_RECORDS:
            return None
        http = record.http_headers
        if http is not None and record.rec_type == "response":
            status = http.get_statuscode() or ""
            if not status.startswith("2"):
                self.skip("http_status")
                return None
        mime = _mime(_payload_content_type(record))
        if mime not in wanted:
            self.skip("content_type")
            return None
        return mime

    def _document(self, record: ArcWarcRecord, mime: str, payload: bytes, input_ref: str) -> RawDocument:
        uri = record.rec_headers.get_header("WARC-Target-URI") or ""
        native_id = self._native_id(record, uri)
        return self.document(
            native_id,
            payload,
            mime,
            url=uri,
            input_ref=input_ref,
            encoding=detect_charset(payload, charset_from_content_type(_payload_content_type(record))),
            meta={"warc_date": record.rec_headers.get_header("WARC-Date") or ""},
        )


@register_source("warc")
class WarcSource(_WarcReader):
    def __init__(self, cfg) -> None:
        super().__init__(cfg)
        self.content_types = cfg.content_types


@register_source("crawl")
class CrawlSource(_WarcReader):
    """The WARC folder Reread's crawler writes, across its incremental re-crawls: only the newest answer per URL counts.

    Files are read newest first (their names start with the crawl's start time). The first ``response`` met for a
    URL wins: a newer 2xx supersedes older copies (the doc_id is the URL, so a changed page keeps its id), and a newer
    non-2xx answer (404, 410) hides the older copies of a page that is gone. A ``revisit`` (304 Not Modified) claims
    nothing, so the older response it points at is still read.
    """

    pattern = "**/*.warc*"
    content_types = WarcConfig.model_fields["content_types"].default

    def files(self) -> list[Path]:
        return sorted(super().files(), key=lambda p: (p.name, str(p)), reverse=True)

    def _wanted_mime(self, record: ArcWarcRecord, wanted: set[str]) -> str | None:
        if record.rec_type == "response":
            key = content_hash(record.rec_headers.get_header("WARC-Target-URI") or "")
            if key in self._seen_uris:
                self.skip("superseded")
                return None
            self._seen_uris.add(key)
        return super()._wanted_mime(record, wanted)

    def _native_id(self, record: ArcWarcRecord, uri: str) -> str:
        return uri
