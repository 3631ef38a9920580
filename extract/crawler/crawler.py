"""The crawl loop: a frontier of (url, depth), workers visiting pages, records and WARC files as the result."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from tqdm import tqdm

from catalog.errors import ConfigError
from catalog.records import StageStats
from extract.crawler.config import CrawlConfig
from extract.crawler.fetcher import Fetcher
from extract.crawler.politeness import Politeness
from extract.crawler.records import STAGE, CrawlResult, FetchRecord
from extract.crawler.robots import RobotsCache
from extract.crawler.safety import AddressGuard, PinnedTransport, Resolver, system_resolver
from extract.crawler.scope import Scope
from extract.crawler.sitemap import sitemap_urls
from extract.crawler.urls import normalize_url, origin
from extract.crawler.visit import PageVisitor
from extract.crawler.warc import WarcRecorder


def _ssl_context(config: CrawlConfig) -> ssl.SSLContext | None:
    """Certificates are always verified; ``ca_bundle`` only changes which CAs are trusted."""
    if config.ca_bundle is None:
        return None
    try:
        return ssl.create_default_context(cafile=str(config.ca_bundle))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"{config.ca_bundle}: cannot load the CA bundle ({exc})") from None


class Frontier:
    """URLs waiting to be visited; each normalized URL is admitted once, at most ``max_pages`` in all."""

    def __init__(self, max_pages: int) -> None:
        self.queue: asyncio.Queue[tuple[str, int]] = asyncio.Queue()
        self._seen: set[str] = set()
        self._admitted = 0
        self._max_pages = max_pages

    def add(self, url: str, depth: int) -> bool:
        if url in self._seen or self._admitted >= self._max_pages:
            return False
        self._seen.add(url)
        self._admitted += 1
        self.queue.put_nowait((url, depth))
        return True

    def mark_seen(self, url: str) -> None:
        """A redirect target already fetched under another URL: do not fetch it again."""
        self._seen.add(url)


class Crawler:
    """Crawls from ``config`` seeds and sitemaps into WARC files under ``warc_dir``.

    With ``previous`` (the records of the last crawl, by URL) every live page of that crawl is revisited with
    conditional requests, and each record says whether the page is new, changed, unchanged or gone.
    ``resolver`` replaces DNS resolution (the system's by default).
    """

    def __init__(
        self,
        config: CrawlConfig,
        warc_dir: str | Path,
        previous: Mapping[str, FetchRecord] | None = None,
        *,
        resolver: Resolver = system_resolver,
    ) -> None:
        self.config = config
        self.warc_dir = Path(warc_dir)
        self.previous = {normalize_url(url) or url: record for url, record in (previous or {}).items()}
        self._resolver = resolver

    async def run(self) -> CrawlResult:
        config = self.config
        started = time.monotonic()
        stats = StageStats(STAGE)
        guard = AddressGuard(config.allow_addresses, self._resolver)
        politeness = Politeness(config)
        scope = Scope(config)
        limits = httpx.Limits(max_connections=config.concurrency, max_keepalive_connections=config.concurrency)
        with WarcRecorder(self.warc_dir, max_file_bytes=config.warc_file_bytes) as recorder:
            async with httpx.AsyncClient(
                transport=PinnedTransport(guard, limits, _ssl_context(config)),
                timeout=httpx.Timeout(config.timeout_s),
                follow_redirects=False,
                trust_env=False,
                headers={"User-Agent": config.user_agent},
            ) as client:
                fetcher = Fetcher(client, politeness, config, recorder)
                robots = RobotsCache(fetcher, politeness, config.user_agent)
                visitor = PageVisitor(config, scope, guard, robots, fetcher, self.previous)
                frontier = Frontier(config.max_pages)
                await self._seed(frontier, fetcher, robots, scope, stats)
                records = await self._drain(frontier, visitor, scope, stats)
        return CrawlResult(
            records=records,
            warc_dir=self.warc_dir,
            warc_files=list(recorder.files),
            stats=stats,
            elapsed_s=time.monotonic() - started,
        )

    async def _seed(
        self, frontier: Frontier, fetcher: Fetcher, robots: RobotsCache, scope: Scope, stats: StageStats
    ) -> None:
        config = self.config
        seeds = [normalize_url(seed) or seed for seed in config.seeds]
        for seed in seeds:
            frontier.add(seed, 0)
        sitemaps = list(config.sitemaps)
        if config.robots_sitemaps:
            sitemaps += await self._robots_sitemaps(seeds, robots, stats)
        if sitemaps:
            urls = await sitemap_urls(
                fetcher,
                tuple(dict.fromkeys(sitemaps)),
                config.max_pages,
                config.max_bytes,
                stats,
                in_scope=lambda url: scope.why_out(url, 0) is None,
            )
            for url in urls:
                frontier.add(url, 0)
        for url, record in self.previous.items():
            if record.is_live:  # pages of the last crawl, also those no longer linked: they may be gone
                frontier.add(url, record.depth)

    @staticmethod
    async def _robots_sitemaps(seeds: list[str], robots: RobotsCache, stats: StageStats) -> list[str]:
        """The ``Sitemap:`` URLs of the seed hosts' robots.txt (read through the cache the page visits use).

        A robots.txt that cannot be fetched (refused address, DNS or network error) names none; the seeds' own
        records then say why their site was not crawled.
        """
        sites = list(dict.fromkeys(origin(seed) for seed in seeds))
        found: list[str] = []
        for site, rules in zip(sites, await asyncio.gather(*(robots.rules(site) for site in sites)), strict=True):
            listed = [normalize_url(url, f"{site}/robots.txt") for url in rules.sitemaps()]
            found += [url for url in listed if url]
        stats.add("robots_sitemaps", len(found))
        return found

    async def _drain(
        self, frontier: Frontier, visitor: PageVisitor, scope: Scope, stats: StageStats
    ) -> list[FetchRecord]:
        records: list[FetchRecord] = []
        progress = tqdm(desc="crawl", unit="page", disable=None)

        async def worker() -> None:
            while True:
                url, depth = await frontier.queue.get()
                try:
                    try:
                        record, links = await visitor.visit(url, depth)
                    except Exception as exc:  # a bug on one page must not stop the crawl (or hang the queue)
                        record, links = visitor.failed(url, depth, exc), []
                    records.append(record)
                    stats.add(f"outcome_{record.outcome}")
                    if record.reason:
                        stats.add(f"skipped_{record.reason}")
                    stats.add("bytes", record.bytes)
                    if record.final_url != url:
                        frontier.mark_seen(record.final_url)
                    for link in links:
                        if scope.why_out(link, depth + 1) is None:
                            stats.add("links_admitted" if frontier.add(link, depth + 1) else "links_known")
                        else:
                            stats.add("links_out_of_scope")
                finally:
                    frontier.queue.task_done()
                    progress.update()

        workers = [asyncio.create_task(worker()) for _ in range(self.config.concurrency)]
        try:
            await frontier.queue.join()
        finally:
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            progress.close()
        return sorted(records, key=lambda r: (r.depth, r.url))  # workers finish in any order; results should not


def crawl(
    config: CrawlConfig,
    warc_dir: str | Path,
    previous: Mapping[str, FetchRecord] | None = None,
    *,
    resolver: Resolver = system_resolver,
) -> CrawlResult:
    """Run one crawl to completion (blocking); from async code, ``await Crawler(...).run()`` instead."""
    run = Crawler(config, warc_dir, previous, resolver=resolver).run
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(run())
    # This thread already runs an event loop (a notebook, an async flow): give the crawl its own loop and thread.
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(run())).result()
