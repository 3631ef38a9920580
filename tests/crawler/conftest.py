"""A real HTTP server on 127.0.0.1 (http.server in a thread) whose routes each test sets, with a request log."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from extract.crawler import CrawlConfig

Handler = Callable[[BaseHTTPRequestHandler], None]


@dataclass
class Hit:
    path: str
    at: float  # time.monotonic() when the request arrived
    headers: dict[str, str] = field(default_factory=dict)


def respond(
    handler: BaseHTTPRequestHandler,
    body: bytes | str = b"",
    status: int = 200,
    content_type: str = "text/html; charset=utf-8",
    headers: dict[str, str] | None = None,
) -> None:
    data = body.encode() if isinstance(body, str) else body
    handler.send_response(status)
    if content_type:
        handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(data)))
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(data)


def page(body: str, **kwargs) -> Handler:
    return lambda h: respond(h, body, **kwargs)


class SiteServer:
    """Routes by path (query ignored); unknown paths answer 404. ``hits`` logs every request in order."""

    def __init__(self) -> None:
        self.routes: dict[str, Handler] = {}
        self.hits: list[Hit] = []
        site = self

        class RequestHandler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                path = self.path.split("?", 1)[0]
                site.hits.append(Hit(path, time.monotonic(), dict(self.headers.items())))
                try:
                    site.routes.get(path, lambda h: respond(h, "not here", status=404))(self)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the crawler hung up (a limit cut the body): expected

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), RequestHandler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    respond = staticmethod(respond)

    def page(self, path: str, body: str | bytes, **kwargs) -> None:
        """Serve a fixed response at ``path`` (kwargs as for ``respond``)."""
        self.routes[path] = page(body, **kwargs)

    def etag_page(self, path: str, etag: str, body: str) -> None:
        """Serve ``body`` with ``etag`` at ``path``, and 304 Not Modified to a request with a matching If-None-Match."""

        def handler(h: BaseHTTPRequestHandler) -> None:
            if h.headers.get("If-None-Match") == etag:
                respond(h, b"", status=304, content_type="", headers={"ETag": etag})
            else:
                respond(h, body, headers={"ETag": etag})

        self.routes[path] = handler

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def hits_for(self, path: str) -> list[Hit]:
        return [hit for hit in self.hits if hit.path == path]

    def __enter__(self) -> SiteServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def site() -> Iterator[SiteServer]:
    with SiteServer() as server:
        server.routes["/robots.txt"] = page("User-agent: *\nAllow: /\n", content_type="text/plain")
        yield server


@pytest.fixture
def local_config(site: SiteServer) -> Callable[..., CrawlConfig]:
    """A factory of fast crawls of the test server: allow-listed 127.0.0.1, no politeness delay, short timeouts."""

    def make(*seeds: str, **overrides) -> CrawlConfig:
        settings = {
            "seeds": tuple(site.url(s) for s in (seeds or ("/",))),
            "allow_addresses": ("127.0.0.1",),
            "per_host_delay_s": 0.0,
            "backoff_s": 0.05,
            "retries": 1,
            "timeout_s": 5.0,
            "page_deadline_s": 5.0,
            "concurrency": 4,
        }
        return CrawlConfig(**settings | overrides)

    return make
