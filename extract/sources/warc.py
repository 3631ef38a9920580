"""WARC / WARC.gz files (Common Crawl style) and the crawler's WARC folders.

``response`` and ``resource`` records become documents when their content type is wanted and (for HTTP responses) the
status is 2xx. warcio returns a short payload without complaint when a file is cut off, so every record's raw stream
is drained and checked against its Content-Length: a short record ends the file as a ``truncated_warc`` Rejection,
after every good record before it has been yielded.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from warcio.archiveiterator import ArchiveIterator
from warcio.recordloader import ArcWarcRecord

from catalog.hashing import combine_hashes, content_hash
from catalog.records import Rejection
from catalog.variant import WarcSource as WarcConfig
from extract.records import RawDocument
from extract.sources.base import Source, register_source
from extract.sources.charset import charset_from_content_type, detect_charset
from extract.sources.compressed import find_next, next_gzip_member

if TYPE_CHECKING:
    from extract.crawler.records import FetchRecord

_DOCUMENT_RECORDS = ("response", "resource")
_DRAIN_BYTES = 1 << 16
_RECORD_BREAK = b"\r\n\r\nWARC/1."  # the end of one uncompressed record and the version line of the next


def _mime(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _payload_content_type(record: ArcWarcRecord) -> str | None:
    """HTTP Content-Type for a response, the WARC Content-Type for a resource record."""
    if record.http_headers is not None and record.rec_type == "response":
        return record.http_headers.get_header("Content-Type")
    return record.rec_headers.get_header("Content-Type")


def _past_separator(f: BinaryIO, offset: int) -> int:
    """``offset`` moved past the blank lines (and gzip's zero padding) that may follow a record."""
    f.seek(offset)
    head = f.read(_DRAIN_BYTES)
    return offset + len(head) - len(head.lstrip(b"\r\n\x00"))


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
        """Every record of the file; a damaged one is a Rejection and reading resumes at the next record header
        (the next gzip member in a ``.gz``, the next ``WARC/1.`` line otherwise). Damage from which no record
        follows (a cut file) is a ``truncated_warc``; one after which reading resumed, a ``corrupt_warc_record``."""
        start = 0
        damage: tuple[int, str, int | None] | None = None  # (offset, error, resumed at), reported once
        while True:
            segment = self._read_records(path, wanted, start)
            while True:
                try:
                    item = next(segment)
                except StopIteration as stop:
                    failure, records_read = stop.value
                    break
                if damage is not None:
                    yield self._damage_rejection(path, *damage)
                    damage = None
                yield item
            if failure is None:
                break
            if damage is not None and not records_read:  # a false start: still the same damaged span
                at, error = damage[0], damage[1]
            else:
                if damage is not None:
                    yield self._damage_rejection(path, *damage)
                at, error = failure
            with open(path, "rb") as f:
                resume = self._next_record(f, path, failure[0] + 1)
            if resume is not None and resume <= failure[0]:  # never read the same spot twice
                resume = None
            damage = (at, error, resume)
            if resume is None:
                break
            start = resume
        if damage is not None:
            yield self._damage_rejection(path, *damage)

    def _damage_rejection(self, path: Path, at: int, error: str, resumed_at: int | None) -> Rejection:
        if resumed_at is None:
            return self.reject(f"{path}#{at}", "truncated_warc", f"{error}; the rest of the file is unreadable")
        detail = f"{error}; bytes {at} to {resumed_at} skipped, reading resumed at the next record"
        return self.reject(f"{path}#{at}", "corrupt_warc_record", detail)

    @staticmethod
    def _next_record(f: BinaryIO, path: Path, start: int) -> int | None:
        if path.name.endswith(".gz"):
            return next_gzip_member(f, start)
        blank = len(_RECORD_BREAK) - len(b"WARC/1.")  # the blank line before a record's version line
        found = find_next(f, max(0, start - blank), _RECORD_BREAK)
        return None if found is None else found + blank

    def _read_records(
        self, path: Path, wanted: set[str], start: int
    ) -> Generator[RawDocument, None, tuple[tuple[int, str] | None, int]]:
        """The documents of the records from byte ``start``; returns ((offset, error) of the record that broke, or
        None at the end of the file; how many records were read whole)."""
        next_offset = start  # where the record after the last complete one starts: the place to look when it breaks
        read = 0
        with open(path, "rb") as f:
            f.seek(start)
            records = ArchiveIterator(f)
            try:
                for record in records:
                    mime = self._wanted_mime(record, wanted)
                    payload = record.content_stream().read() if mime else b""
                    complete = _record_is_complete(record)
                    offset = records.get_record_offset()  # warcio knows it only once the record is read
                    if not complete:
                        return (offset, f"record shorter than its {record.length} declared bytes"), read
                    read += 1
                    next_offset = offset + records.get_record_length()
                    if mime and self._accept(path, record, payload):
                        yield self._document(record, mime, payload, f"{path}#{offset}")
            except Exception as exc:  # warcio meets damage with zlib.error, ArchiveLoadFailed, AttributeError, ...
                return (_past_separator(f, next_offset), f"{type(exc).__name__}: {exc}"), read
            # warcio ends quietly when a file is cut inside a record's headers: what is left must be blank
            end = _past_separator(f, next_offset)
            if f.seek(0, 2) > end:
                return (end, "bytes after the last complete record are no record (cut or damaged file)"), read
        return None, read

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
    def __init__(self, cfg, files: Sequence[str] | None = None) -> None:
        super().__init__(cfg, files)
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
    files_per_shard = None  # the current copy of a page may be in any WARC of the folder
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
