"""robots.txt (RFC 9309) through protego: fetched once per origin, through the same guarded, polite fetcher."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from protego import Protego

from extract.crawler.fetcher import Fetcher
from extract.crawler.politeness import Politeness
from extract.crawler.records import FetchRefused
from extract.crawler.urls import normalize_url, origin

ROBOTS_MAX_REDIRECTS = 5  # RFC 9309 2.3.1.2: follow at least five


@dataclass(frozen=True, slots=True)
class RobotsRules:
    """What one origin's robots.txt says; ``parser`` None means allow all, ``disallow_all`` means unavailable.

    ``unreachable`` keeps why robots.txt could not be fetched at all (timeout, TLS or connection failure, address
    refused): the site's pages fail the same way, and their records should say so rather than "disallowed".
    """

    parser: Protego | None = None
    disallow_all: bool = False
    note: str = ""
    unreachable: FetchRefused | None = None

    def allows(self, url: str, user_agent: str) -> bool:
        if self.disallow_all:
            return False
        return self.parser is None or self.parser.can_fetch(url, user_agent)

    def sitemaps(self) -> list[str]:
        """The ``Sitemap:`` lines, as written (possibly relative to robots.txt)."""
        return [] if self.parser is None else list(self.parser.sitemaps)

    def crawl_delay_s(self, user_agent: str) -> float | None:
        if self.parser is None:
            return None
        delay = self.parser.crawl_delay(user_agent)
        rate = self.parser.request_rate(user_agent)
        rate_delay = rate.seconds / rate.requests if rate and rate.requests else None
        candidates = [float(d) for d in (delay, rate_delay) if d is not None]
        return max(candidates) if candidates else None


class RobotsCache:
    """Rules per origin. 2xx: parsed; 4xx: allow all; 5xx, 429 or unreachable: disallow all (RFC 9309 2.3.1)."""

    def __init__(self, fetcher: Fetcher, politeness: Politeness, user_agent: str) -> None:
        self._fetcher = fetcher
        self._politeness = politeness
        self._user_agent = user_agent
        self._rules: dict[str, asyncio.Future[RobotsRules]] = {}

    async def rules(self, url: str) -> RobotsRules:
        key = origin(url)
        if key not in self._rules:
            self._rules[key] = asyncio.ensure_future(self._load(key))
        return await asyncio.shield(self._rules[key])

    async def _load(self, site: str) -> RobotsRules:
        rules = await self._fetch_rules(f"{site}/robots.txt")
        self._politeness.apply_crawl_delay(site, rules.crawl_delay_s(self._user_agent))
        return rules

    async def _fetch_rules(self, url: str) -> RobotsRules:
        for _ in range(ROBOTS_MAX_REDIRECTS + 1):
            try:
                exchange = await self._fetcher.get(url, archive=False)
            except FetchRefused as exc:
                return RobotsRules(disallow_all=True, note=f"robots.txt unreachable: {exc}", unreachable=exc)
            if exchange.is_redirect:
                url = normalize_url(exchange.header("location"), url) or ""
                if not url:
                    return RobotsRules(note="robots.txt redirects to a non-http URL: allow all")
                continue
            if 200 <= exchange.status < 300:
                return RobotsRules(parser=Protego.parse(exchange.body.decode("utf-8", errors="replace")))
            if 400 <= exchange.status < 500 and exchange.status != 429:
                return RobotsRules(note=f"robots.txt HTTP {exchange.status}: allow all")
            return RobotsRules(disallow_all=True, note=f"robots.txt HTTP {exchange.status}: disallow all")
        return RobotsRules(note="robots.txt redirect loop: allow all")
