"""One URL from frontier to FetchRecord: scope, address and robots checked at every redirect hop, then classified."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from urllib.parse import urlsplit

from catalog.hashing import content_hash
from extract.crawler.config import HTML_TYPES, CrawlConfig
from extract.crawler.exchange import HttpExchange
from extract.crawler.fetcher import Fetcher
from extract.crawler.links import extract_links
from extract.crawler.records import Change, FetchRecord, FetchRefused
from extract.crawler.robots import RobotsCache
from extract.crawler.safety import AddressGuard
from extract.crawler.scope import Scope
from extract.crawler.urls import DEFAULT_PORTS, normalize_url, origin

GONE_STATUSES = frozenset({404, 410})


def conditional_headers(previous: FetchRecord | None) -> dict[str, str]:
    """If-None-Match / If-Modified-Since from the previous fetch of a live page."""
    if previous is None or not previous.is_live:
        return {}
    headers = {}
    if previous.etag:
        headers["If-None-Match"] = previous.etag
    if previous.last_modified:
        headers["If-Modified-Since"] = previous.last_modified
    return headers


class PageVisitor:
    """Fetches one URL, following redirects by hand so every hop is re-checked; returns its record and its links."""

    def __init__(
        self,
        config: CrawlConfig,
        scope: Scope,
        guard: AddressGuard,
        robots: RobotsCache,
        fetcher: Fetcher,
        previous: Mapping[str, FetchRecord],
    ) -> None:
        self._config = config
        self._scope = scope
        self._guard = guard
        self._robots = robots
        self._fetcher = fetcher
        self._previous = previous

    async def visit(self, url: str, depth: int) -> tuple[FetchRecord, list[str]]:
        previous = self._previous.get(url)
        headers = conditional_headers(previous)
        current = url
        for hops in range(self._config.max_redirects + 1):
            try:
                exchange = await self._hop(current, depth, headers)
            except FetchRefused as refused:
                return self._skipped(url, current, depth, hops, refused.reason, refused.detail), []
            if not exchange.is_redirect:
                return self._classify(url, depth, hops, exchange, previous)
            target = normalize_url(exchange.header("location"), current)
            if target is None:
                detail = f"{current} redirects to a non-http(s) URL {exchange.header('location')!r}"
                return self._skipped(url, current, depth, hops + 1, "bad_redirect", detail), []
            current = target
            headers = {}  # validators belong to the URL they came from
        detail = f"more than max_redirects={self._config.max_redirects} redirects, last {current}"
        return self._skipped(url, current, depth, self._config.max_redirects + 1, "too_many_redirects", detail), []

    async def _hop(self, url: str, depth: int, headers: dict[str, str]) -> HttpExchange:
        why_out = self._scope.why_out(url, depth)
        if why_out:
            raise FetchRefused("out_of_scope", f"{url}: {why_out}")
        parts = urlsplit(url)
        await self._guard.resolve(parts.hostname or "", parts.port or DEFAULT_PORTS[parts.scheme])
        rules = await self._robots.rules(url)
        if rules.unreachable is not None:
            raise FetchRefused(rules.unreachable.reason, f"{origin(url)}/robots.txt: {rules.unreachable.detail}")
        if not rules.allows(url, self._config.user_agent):
            raise FetchRefused("robots_disallowed", f"{origin(url)}/robots.txt disallows {url} {rules.note}".strip())
        return await self._fetcher.get(url, headers, content_types=self._config.content_types)

    def failed(self, url: str, depth: int, exc: Exception) -> FetchRecord:
        """The record of a page whose visit raised an unexpected error."""
        return self._skipped(url, url, depth, 0, "internal_error", f"{type(exc).__name__}: {exc}")

    @staticmethod
    def _skipped(url: str, current: str, depth: int, hops: int, reason: str, detail: str) -> FetchRecord:
        return FetchRecord(
            url=url,
            final_url=current,
            outcome="skipped",
            depth=depth,
            fetched_at=datetime.now(UTC).isoformat(),
            reason=reason,
            detail=detail,
            redirects=hops,
        )

    def _classify(
        self, url: str, depth: int, hops: int, exchange: HttpExchange, previous: FetchRecord | None
    ) -> tuple[FetchRecord, list[str]]:
        common = {
            "url": url,
            "final_url": exchange.url,
            "depth": depth,
            "fetched_at": exchange.started_at.isoformat(),
            "status": exchange.status,
            "redirects": hops,
            "warc_file": exchange.warc_file,
            "etag": exchange.header("etag"),
            "last_modified": exchange.header("last-modified"),
        }
        was_live = previous is not None and previous.is_live
        if exchange.status == 304 and was_live:
            assert previous is not None
            return FetchRecord(
                # A 304 may omit validators: keep the previous ones for the next conditional request. The content
                # is still where the previous crawl stored it (this crawl's WARC has only a revisit record).
                **common
                | {
                    "etag": common["etag"] or previous.etag,
                    "last_modified": common["last_modified"] or previous.last_modified,
                    "warc_file": previous.warc_file,
                },
                outcome="not_modified",
                change="unchanged",
                content_hash=previous.content_hash,
                content_type=previous.content_type,
                bytes=previous.bytes,
            ), []
        if 200 <= exchange.status < 300:
            digest = content_hash(exchange.body)
            unchanged = was_live and previous is not None and previous.content_hash == digest
            change: Change = "unchanged" if unchanged else ("changed" if was_live else "new")
            links = []
            if exchange.content_type in HTML_TYPES and depth < self._config.max_depth:
                links = extract_links(exchange.body, exchange.url)
            record = FetchRecord(
                **common,
                outcome="unchanged" if unchanged else "fetched",
                change=change,
                content_hash=digest,
                content_type=exchange.content_type,
                bytes=len(exchange.body),
            )
            return record, links
        if exchange.status in GONE_STATUSES:
            if was_live or (previous is not None and previous.outcome == "gone"):
                return FetchRecord(**common, outcome="gone", change="gone" if was_live else ""), []
            return FetchRecord(**common, outcome="not_found"), []  # never had content here: nothing is gone
        reason = "rate_limited" if exchange.status == 429 else "http_error"
        return FetchRecord(**common, outcome="skipped", reason=reason, detail=f"HTTP {exchange.status}"), []
