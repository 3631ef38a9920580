"""Crawler throughput, and the cost of a refresh relative to a full build, against generated sites on 127.0.0.1.

    .venv/bin/python benchmarks/crawl.py --pages 300 --setting 1:0 --setting 4:0 --setting 8:0 --setting 2:0.01
    .venv/bin/python benchmarks/crawl.py --refresh-pages 200        # only the refresh-versus-build part

Crawl part: each ``--setting CONCURRENCY:DELAY`` is one per-host politeness setting (requests in flight to the host,
seconds between request starts). For each: a full crawl of the site (pages/s), then a re-crawl with the full crawl's
records (conditional requests, every page answers 304), and its time relative to the full crawl.

Refresh part (``--refresh-pages N``, 0 to skip): the ``refresh`` flow of a variant with one crawl source over a site
of N distinct article pages (one of them a long article of ~48 chunks), four times: from nothing (crawl + full
build), again with no change, again after 10% of the pages changed, and again after one sentence was inserted in the
middle of the long article; each one's wall time relative to the full build, how many chunks it embedded, and how
many vectors the index update added and removed (content-defined chunk ids: the insertion costs the chunks from the
edit until the chunk windows fall back into step, a number that does not grow with the page, updated in place; with
offsets in the id it was every chunk after the edit).

Prints tables and writes ``benchmarks/results/crawl.json``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import multiprocessing.sharedctypes
import os
import platform
import random
import tempfile
import time
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from extract.crawler import CrawlConfig, crawl

RESULTS = Path(__file__).resolve().parent / "results" / "crawl.json"
LINKS_PER_PAGE = 5
PAGE_TEXT = "<p>" + "Retrieval datastores reuse pre-training data at test time. " * 40 + "</p>"
LONG_PAGE, LONG_PAGE_WORDS = 1, 12_000  # one long article (~48 chunks of 254 tokens) for the sentence insertion
INSERTED_SENTENCE = "Reread inserts this one sentence to measure what a small edit costs."
VOCABULARY = (
    "retrieval datastore corpus index vector query passage model training data crawl page refresh shard chunk "
    "embedding token reader answer question benchmark science history river mountain city music language energy "
    "market protein galaxy theorem proof algorithm network protocol weather ocean forest harvest engine bridge"
).split()


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


def article_text(n: int, edition: int, words: int = 300) -> str:
    """A distinct article per page (seeded word salad over a fixed vocabulary), different in each ``edition``."""
    rng = random.Random(f"{n}:{edition}")
    sentences = [" ".join(rng.choices(VOCABULARY, k=12)).capitalize() + "." for _ in range(words // 12)]
    return " ".join(sentences)


def long_article_paragraphs(inserted: bool, words: int = LONG_PAGE_WORDS) -> list[str]:
    """The long article of page ``LONG_PAGE``: paragraphs of 2-8 sentences of 6-18 words (real text varies, and
    chunk windows end at sentence ends); with ``inserted``, one sentence more in the middle paragraph."""
    rng = random.Random("long")
    paragraphs = []
    for _ in range(words // 60):
        sentences = [" ".join(rng.choices(VOCABULARY, k=rng.randint(6, 18))).capitalize() + "." for _ in range(5)]
        paragraphs.append(" ".join(sentences[: rng.randint(2, 5)]))
    if inserted:
        middle = len(paragraphs) // 2
        paragraphs[middle] += " " + INSERTED_SENTENCE
    return paragraphs


def render_article(path: str, pages: int, edition: int, inserted: bool = False) -> tuple[bytes | None, str]:
    """Like ``render_page``, with distinct article text; every 10th page is in its ``edition``, the rest in 0; page
    ``LONG_PAGE`` is the long article (with the inserted sentence when ``inserted``)."""
    body, _ = render_page(path, pages)
    if body is None or path == "/robots.txt":
        return body, '"robots"' if body else ""
    n = int(path[3:-5])
    if n == LONG_PAGE:
        paragraphs = "".join(f"<p>{p}</p>" for p in long_article_paragraphs(inserted))
        return body.replace(PAGE_TEXT.encode(), f"<article>{paragraphs}</article>".encode()), f'"{n}-{inserted:d}"'
    page_edition = edition if n % 10 == 0 else 0
    text = article_text(n, page_edition)
    body = body.replace(PAGE_TEXT.encode(), f"<article><p>{text}</p></article>".encode())
    return body, f'"{n}-{page_edition}"'


def _serve(
    pages: int,
    port_out: multiprocessing.SimpleQueue,
    edition: multiprocessing.sharedctypes.Synchronized | None,
    inserted: multiprocessing.sharedctypes.Synchronized | None,
) -> None:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as real servers do
        disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK stalls

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            if edition is None:
                body, etag = render_page(self.path, pages)
            else:
                body, etag = render_article(self.path, pages, edition.value, bool(inserted.value))
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

    def __init__(self, pages: int, articles: bool = False) -> None:
        context = multiprocessing.get_context("spawn")
        port_out = context.SimpleQueue()
        # articles: distinct page texts, an edition the benchmark bumps to change every 10th page, and a flag that
        # inserts one sentence into the long article
        self.edition = context.Value("i", 0) if articles else None
        self.inserted = context.Value("i", 0) if articles else None
        args = (pages, port_out, self.edition, self.inserted)
        self._process = context.Process(target=_serve, args=args, daemon=True)
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


@dataclass
class RefreshTiming:
    run: str  # full build | no change | 10% changed | 1 sentence inserted
    wall_s: float
    relative_to_full: float
    pages_changed: int
    documents_extracted: int
    chunks_embedded: int
    chunks_total: int
    index_update: str
    vectors_added: int  # by an in-place index update (0 for a full build or no change)
    vectors_removed: int
    stages_executed: int


def _variant(folder: Path, site_url: str, pages: int) -> Path:
    path = folder / "crawled.yaml"
    path.write_text(
        f"name: crawled\nsources:\n  - name: site\n    type: crawl\n    path: crawl\n"
        f"    seeds: ['{site_url}/p/0.html']\n    max_pages: {pages}\n    max_depth: {pages}\n"
        "    allow_addresses: [127.0.0.1]\n    per_host_delay_s: 0\n    per_host_concurrency: 8\n"
        "dedup: {exact: true, near: false}\n"
    )
    return path


def measure_refresh(pages: int) -> list[RefreshTiming]:
    """The refresh flow four times over a fresh site and data dir: from nothing, no change, 10% changed, one
    sentence inserted in the long article."""
    from flows.refresh import refresh
    from flows.runtime import run_flow_with_runner

    site = GeneratedSite(pages, articles=True)
    rows: list[RefreshTiming] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            variant = _variant(Path(tmp), site.url, pages)
            data = Path(tmp) / "data"
            for run in ("full build", "no change", "10% changed", "1 sentence inserted"):
                if run == "10% changed":
                    site.edition.value = 1
                if run == "1 sentence inserted":
                    site.inserted.value = 1
                started = time.perf_counter()
                changes = run_flow_with_runner(refresh, variant, data)["changes"]
                wall = time.perf_counter() - started
                full = rows[0].wall_s if rows else wall
                rows.append(
                    RefreshTiming(
                        run=run,
                        wall_s=round(wall, 2),
                        relative_to_full=round(wall / full, 3),
                        pages_changed=sum(v for k, v in changes["pages"]["site"].items() if k in ("new", "changed")),
                        documents_extracted=changes["extract"]["new_work"],
                        chunks_embedded=changes["embed"]["new_work"],
                        chunks_total=changes["embed"]["rows"],
                        index_update=changes["index"]["update"],
                        vectors_added=changes["index"].get("vectors_added", 0),
                        vectors_removed=changes["index"].get("vectors_removed", 0),
                        stages_executed=len(changes["executed"]),
                    )
                )
    finally:
        site.close()
    return rows


def _warm_up_prefect() -> None:
    """Start Prefect's temporary server before timing, as a deployment's worker would already have it."""
    from prefect import flow

    from flows.runtime import offline_defaults

    offline_defaults()  # before the server starts: no telemetry

    flow(lambda: None, name="warm-up")()


def _setting(text: str) -> tuple[int, float]:
    concurrency, _, delay = text.partition(":")
    return int(concurrency), float(delay or 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=300)
    parser.add_argument("--setting", type=_setting, action="append", help="CONCURRENCY:DELAY per host (repeatable)")
    parser.add_argument("--refresh-pages", type=int, default=200, help="site size of the refresh part; 0 skips it")
    parser.add_argument("--skip-crawl", action="store_true", help="only the refresh part")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    settings = [] if args.skip_crawl else args.setting or [(1, 0.0), (4, 0.0), (8, 0.0), (2, 0.01)]

    rows = [measure_crawl(args.pages, c, d) for c, d in settings]
    if rows:
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
    refreshes: list[RefreshTiming] = []
    if args.refresh_pages:
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
        _warm_up_prefect()
        refreshes = measure_refresh(args.refresh_pages)
        print(f"\nrefresh flow (crawl + build) of a {args.refresh_pages}-article site, relative to the full build")
        print(
            f"{'run':<19} {'wall_s':>7} {'rel':>6} {'pages':>6} {'extracted':>9} {'embedded':>11} {'index':<12} "
            f"{'+vec':>5} {'-vec':>5}"
        )
        for r in refreshes:
            print(
                f"{r.run:<19} {r.wall_s:>7} {r.relative_to_full:>6} {r.pages_changed:>6} {r.documents_extracted:>9} "
                f"{r.chunks_embedded:>5}/{r.chunks_total:<5} {r.index_update:<12} {r.vectors_added:>5} "
                f"{r.vectors_removed:>5}"
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    machine = {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count()}
    results = {"machine": machine, "results": [asdict(r) for r in rows], "refresh": [asdict(r) for r in refreshes]}
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
