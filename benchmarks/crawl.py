"""Crawler throughput and the cost of a no-change refresh, against a generated site on 127.0.0.1.

    .venv/bin/python benchmarks/crawl.py --pages 300 --setting 1:0 --setting 4:0 --setting 8:0 --setting 2:0.01

Each ``--setting CONCURRENCY:DELAY`` is one per-host politeness setting (requests in flight to the host, seconds
between request starts). For each: a full crawl of the site (pages/s), then a refresh of it with the full crawl's
records (conditional requests, every page answers 304), and the refresh's time relative to the full crawl. Prints a
table and writes ``benchmarks/results/crawl.json``. ``measure_crawl`` returns the timings for reuse (the lead adds
"relative to a full build" once the refresh flow exists).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import tempfile
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from extract.crawler import CrawlConfig, crawl

RESULTS = Path(__file__).resolve().parent / "results" / "crawl.json"
LINKS_PER_PAGE = 5
PAGE_TEXT = "<p>" + "Retrieval datastores reuse pre-training data at test time. " * 40 + "</p>"


def render_page(path: str, pages: int) -> tuple[bytes | None, str]:
    """Body and ETag of ``/p/<n>.html`` (n < pages), which links to the next LINKS_PER_PAGE pages."""
    if path == "/robots.txt":
        return b"User-agent: *\nAllow: /\n", '"robots"'
    if not (path.startswith("/p/") and path.endswith(".html") and path[3:-5].isdigit()):
        return None, ""
    n = int(path[3:-5])
    if n >= pages:
        return None, ""
    links = "".join(f'<a href="/p/{(n + k) % pages}.html">page</a> ' for k in range(1, LINKS_PER_PAGE + 1))
    return f"<html><head><title>page {n}</title></head><body>{PAGE_TEXT}{links}</body></html>".encode(), f'"{n}"'


def _serve(pages: int, port_out: multiprocessing.SimpleQueue) -> None:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as real servers do
        disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK stalls

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            body, etag = render_page(self.path, pages)
            if body is None:
                self._send(404, b"not found", "")
            elif self.headers.get("If-None-Match") == etag:
                self._send(304, b"", etag)
            else:
                self._send(200, body, etag)

        def _send(self, status: int, body: bytes, etag: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            if etag:
                self.send_header("ETag", etag)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    port_out.put(server.server_address[1])
    server.serve_forever()


class GeneratedSite:
    """The site served by its own process, so the server's threads do not compete with the crawler for the GIL."""

    def __init__(self, pages: int) -> None:
        context = multiprocessing.get_context("spawn")
        port_out = context.SimpleQueue()
        self._process = context.Process(target=_serve, args=(pages, port_out), daemon=True)
        self._process.start()
        self.url = f"http://127.0.0.1:{port_out.get()}"

    def close(self) -> None:
        self._process.terminate()
        self._process.join()


@dataclass
class CrawlTiming:
    pages: int
    per_host_concurrency: int
    per_host_delay_s: float
    full_s: float
    full_pages_per_s: float
    refresh_s: float
    refresh_pages_per_s: float
    refresh_over_full: float
    refresh_not_modified: int
    warc_bytes_full: int


def measure_crawl(pages: int, per_host_concurrency: int, per_host_delay_s: float) -> CrawlTiming:
    """Full crawl, then a no-change refresh (conditional requests), of a fresh generated site."""
    site = GeneratedSite(pages)
    try:
        config = CrawlConfig(
            seeds=(f"{site.url}/p/0.html",),
            max_pages=pages,
            max_depth=pages,  # a chain: every page is reachable
            concurrency=max(16, per_host_concurrency),
            per_host_concurrency=per_host_concurrency,
            per_host_delay_s=per_host_delay_s,
            allow_addresses=("127.0.0.1",),
        )
        with tempfile.TemporaryDirectory() as tmp:
            full = crawl(config, Path(tmp) / "full")
            refresh = crawl(config, Path(tmp) / "refresh", previous={r.url: r for r in full.records})
            warc_bytes = sum(p.stat().st_size for p in full.warc_files)
    finally:
        site.close()
    fetched = full.outcomes().get("fetched", 0)
    if fetched != pages:
        raise RuntimeError(f"full crawl fetched {fetched} of {pages} pages: {full.summary()}")
    return CrawlTiming(
        pages=pages,
        per_host_concurrency=per_host_concurrency,
        per_host_delay_s=per_host_delay_s,
        full_s=round(full.elapsed_s, 3),
        full_pages_per_s=round(pages / full.elapsed_s, 1),
        refresh_s=round(refresh.elapsed_s, 3),
        refresh_pages_per_s=round(pages / refresh.elapsed_s, 1),
        refresh_over_full=round(refresh.elapsed_s / full.elapsed_s, 3),
        refresh_not_modified=refresh.outcomes().get("not_modified", 0),
        warc_bytes_full=warc_bytes,
    )


def _setting(text: str) -> tuple[int, float]:
    concurrency, _, delay = text.partition(":")
    return int(concurrency), float(delay or 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=300)
    parser.add_argument("--setting", type=_setting, action="append", help="CONCURRENCY:DELAY per host (repeatable)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    settings = args.setting or [(1, 0.0), (4, 0.0), (8, 0.0), (2, 0.01)]

    rows = [measure_crawl(args.pages, c, d) for c, d in settings]
    header = (
        f"{'conc':>4} {'delay_s':>7} {'full_s':>7} {'pages/s':>8} {'refresh_s':>9} {'refr p/s':>8} {'refr/full':>9}"
    )
    print(f"crawl of a generated {args.pages}-page site on 127.0.0.1 (one host)")
    print(header)
    for r in rows:
        print(
            f"{r.per_host_concurrency:>4} {r.per_host_delay_s:>7} {r.full_s:>7} {r.full_pages_per_s:>8} "
            f"{r.refresh_s:>9} {r.refresh_pages_per_s:>8} {r.refresh_over_full:>9}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    machine = {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count()}
    args.out.write_text(json.dumps({"machine": machine, "results": [asdict(r) for r in rows]}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
