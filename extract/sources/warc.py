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
from typing import TYPE_CHECKING

from warcio.archiveiterator import ArchiveIterator
from warcio.exceptions import ArchiveLoadFailed
from warcio.recordloader import ArcWarcRecord

from catalog.hashing import combine_hashes, content_hash
from catalog.records import Rejection
from catalog.variant import WarcSource as WarcConfig
from extract.records import RawDocument
from extract.sources.base import Source, register_source
from extract.sources.charset import charset_from_content_type, detect_charset

if TYPE_CHECKING:
    from extract.crawler.records import FetchRecord

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
                    if mime and self._accept(path, record, payload):
                        yield self._document(record, mime, payload, f"{path}#{offset}")
        except (ArchiveLoadFailed, EOFError, OSError, zlib.error, ValueError) as exc:
            yield self.reject(f"{path}#{next_offset}", "truncated_warc", f"{type(exc).__name__}: {exc}")
        except Exception as exc:  # warcio meets malformed headers with AttributeError, TypeError, ...: the file ends
            yield self.reject(f"{path}#{next_offset}", "malformed_warc", f"{type(exc).__name__}: {exc}")

    def _accept(self, path: Path, record: ArcWarcRecord, payload: bytes) -> bool:
        """Whether a wanted record (read from ``path``) becomes a document; a hook for checks that need the payload."""
        return True

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
            source_doc_id=uri,
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
    """The WARC folder Reread's crawler writes, across its incremental re-crawls: only the current answer per URL.

    With the folder's ``fetch-records.parquet`` (written by ``extract.crawler.crawl_into``) the records decide: the
    documents are exactly the live pages (``extract.crawler.current_pages``), each read from the response its record
    names (WARC file, URL, content hash); a page whose content is missing from the WARCs is a ``missing_from_warc``
    Rejection. Older copies, pages gone (404/410), skipped or no longer crawled are not documents, and
    ``fingerprint`` hashes the same (URL, content hash) pairs, so a re-crawl that changed nothing leaves it as it was.

    Without fetch records (WARCs copied by hand) files are read newest first (their names start with the crawl's
    start time) and the first ``response`` met for a URL wins: a newer 2xx supersedes older copies, and a newer
    non-2xx answer (404, 410) hides the older copies of a page that is gone. A ``revisit`` (304 Not Modified)
    claims nothing, so the older response it points at is still read. The fingerprint then hashes the files.

    The doc_id is the URL, so a changed page keeps its id.
    """

    pattern = "**/*.warc*"
    content_types = WarcConfig.model_fields["content_types"].default
    _pages: dict[str, FetchRecord] | None  # the current pages by final_url; None without fetch records
    _found: set[str]  # URLs of the pages yielded so far in this pass

    def files(self) -> list[Path]:
        return sorted(super().files(), key=lambda p: (p.name, str(p)), reverse=True)

    def current_pages(self) -> dict[str, FetchRecord] | None:
        """The live pages of the folder's fetch records whose content type this source reads, by the URL their
        response is stored under; None when the folder has no fetch records."""
        # Imported here: the crawler's modules (httpx, protego, lxml) are only needed for crawl folders.
        from extract.crawler.store import FETCH_RECORDS_FILE, current_pages, load_fetch_records

        if not (self.root / FETCH_RECORDS_FILE).is_file():
            return None
        wanted = {_mime(t) for t in self.content_types}
        pages = current_pages(load_fetch_records(self.root).values())
        return {url: record for url, record in pages.items() if record.content_type in wanted}

    def fingerprint(self) -> str:
        pages = self.current_pages()
        if pages is None:
            return super().fingerprint()
        return combine_hashes(sorted(f"{content_hash(url)}:{r.content_hash}" for url, r in pages.items()))

    def _iter_raw(self) -> Iterator[RawDocument | Rejection]:
        self._pages = self.current_pages()
        self._found = set()
        yield from super()._iter_raw()
        for url, record in (self._pages or {}).items():
            if url not in self._found:
                detail = f"{url}: no response with content hash {record.content_hash} in {record.warc_file}"
                yield self.reject(str(self.root / record.warc_file), "missing_from_warc", detail)

    def _wanted_mime(self, record: ArcWarcRecord, wanted: set[str]) -> str | None:
        if record.rec_type == "response" and self._superseded(record.rec_headers.get_header("WARC-Target-URI") or ""):
            self.skip("superseded")
            return None
        if self._pages is not None and record.rec_type != "response":
            return None  # the crawler stores pages as responses; its records name which ones are current
        return super()._wanted_mime(record, wanted)

    def _superseded(self, uri: str) -> bool:
        """Whether a response for ``uri`` is not the current copy of its page."""
        if self._pages is not None:
            return uri not in self._pages or uri in self._found
        key = content_hash(uri)
        if key in self._seen_uris:
            return True
        self._seen_uris.add(key)
        return False

    def _accept(self, path: Path, record: ArcWarcRecord, payload: bytes) -> bool:
        if self._pages is None:
            return True
        uri = record.rec_headers.get_header("WARC-Target-URI") or ""
        page = self._pages[uri]
        if path.name != page.warc_file or content_hash(payload) != page.content_hash:
            self.skip("superseded")
            return False
        self._found.add(uri)
        return True

    def _native_id(self, record: ArcWarcRecord, uri: str) -> str:
        return uri
