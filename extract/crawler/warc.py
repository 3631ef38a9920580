"""WARC output: a request and a response record per complete page fetch (a revisit for 304), gzip, rotated files.

Bodies are stored decoded: httpx undoes any Content-Encoding while reading (so byte limits count what the page really
is), and the stored headers say so (Content-Encoding and Transfer-Encoding dropped, Content-Length set to the stored
length), so any WARC reader can extract the payload as is. Fetches cut at a limit are not written: a WARC here holds
complete responses only; the cut ones are in the crawl's FetchRecords with their reason.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from extract.crawler.exchange import HttpExchange

NOT_MODIFIED_PROFILE = "http://netpreserve.org/warc/1.1/revisit/server-not-modified"
DROPPED_RESPONSE_HEADERS = frozenset({"content-encoding", "transfer-encoding", "content-length"})


def _warc_date(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class WarcRecorder:
    """Writes exchanges to ``<warc_dir>/<prefix>-<start time>-<n>.warc.gz``, starting a new file past ``max_file_bytes``."""

    def __init__(self, warc_dir: str | Path, *, prefix: str = "crawl", max_file_bytes: int = 1_000_000_000) -> None:
        self.warc_dir = Path(warc_dir)
        self.warc_dir.mkdir(parents=True, exist_ok=True)
        self._stem = f"{prefix}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%fZ')}"
        self._max_file_bytes = max_file_bytes
        self.files: list[Path] = []
        self._file: BinaryIO | None = None
        self._writer: WARCWriter | None = None

    def _open_next(self) -> None:
        self.close()
        path = self.warc_dir / f"{self._stem}-{len(self.files):05d}.warc.gz"
        self._file = open(path, "xb")  # "x": never overwrite an earlier crawl's file; closed by close()
        self._writer = WARCWriter(self._file, gzip=True, warc_version="1.1")
        self.files.append(path)
        info = {"software": "reread-crawler", "format": "WARC File Format 1.1"}
        self._writer.write_record(self._writer.create_warcinfo_record(path.name, info))

    def write(self, exchange: HttpExchange) -> str:
        """Write one exchange; returns the file name it went to."""
        if self._writer is None:
            self._open_next()
        assert self._writer is not None and self._file is not None
        date = _warc_date(exchange.started_at)
        response_id = f"<urn:uuid:{uuid.uuid4()}>"
        target = exchange.url
        warc_headers = {"WARC-Date": date, "WARC-Record-ID": response_id}
        if exchange.ip:
            warc_headers["WARC-IP-Address"] = exchange.ip
        if exchange.status == 304:
            warc_headers |= {"WARC-Profile": NOT_MODIFIED_PROFILE, "WARC-Refers-To-Target-URI": target}
            response = self._writer.create_warc_record(
                target, "revisit", http_headers=self._response_headers(exchange), warc_headers_dict=warc_headers
            )
        else:
            response = self._writer.create_warc_record(
                target,
                "response",
                payload=BytesIO(exchange.body),
                length=len(exchange.body),
                http_headers=self._response_headers(exchange),
                warc_headers_dict=warc_headers,
            )
        request = self._writer.create_warc_record(
            target,
            "request",
            http_headers=self._request_headers(exchange),
            warc_headers_dict={"WARC-Date": date, "WARC-Concurrent-To": response_id},
        )
        self._writer.write_record(request)
        self._writer.write_record(response)
        name = self.files[-1].name
        if self._file.tell() >= self._max_file_bytes:
            self.close()
        return name

    @staticmethod
    def _protocol(exchange: HttpExchange) -> str:
        return exchange.http_version if exchange.http_version.startswith("HTTP/") else "HTTP/1.1"

    def _request_headers(self, exchange: HttpExchange) -> StatusAndHeaders:
        parts = urlsplit(exchange.url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return StatusAndHeaders(
            f"GET {target} {self._protocol(exchange)}", list(exchange.request_headers), is_http_request=True
        )

    def _response_headers(self, exchange: HttpExchange) -> StatusAndHeaders:
        headers = [(k, v) for k, v in exchange.response_headers if k.lower() not in DROPPED_RESPONSE_HEADERS]
        headers.append(("Content-Length", str(len(exchange.body))))
        status = f"{exchange.status} {exchange.reason_phrase}".strip()
        return StatusAndHeaders(status, headers, protocol=self._protocol(exchange))

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        self._file = None
        self._writer = None

    def __enter__(self) -> WarcRecorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
