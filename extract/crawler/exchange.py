"""One HTTP request and its complete response: what the fetcher returns and the WARC recorder writes (so it lives
below both)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


def media_type(content_type: str) -> str:
    """``text/html; charset=utf-8`` -> ``text/html``."""
    return content_type.split(";", 1)[0].strip().lower()


@dataclass(slots=True)
class HttpExchange:
    """A complete request and response (body decoded from any Content-Encoding)."""

    url: str
    request_headers: list[tuple[str, str]]
    status: int
    reason_phrase: str
    http_version: str
    response_headers: list[tuple[str, str]]
    body: bytes
    started_at: datetime
    ip: str = ""
    warc_file: str = field(default="")

    def header(self, name: str) -> str:
        name = name.lower()
        return next((v for k, v in self.response_headers if k.lower() == name), "")

    @property
    def content_type(self) -> str:
        return media_type(self.header("content-type"))

    @property
    def is_redirect(self) -> bool:
        return self.status in REDIRECT_STATUSES and bool(self.header("location"))
