"""Per-host politeness: at most N requests in flight per host and a minimum gap between request starts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from extract.crawler.config import CrawlConfig


class HostGate:
    """One host's slots: a semaphore for concurrency and a clock for the delay (which Retry-After can push back)."""

    def __init__(self, concurrency: int, delay_s: float) -> None:
        self._slots = asyncio.Semaphore(concurrency)
        self._clock = asyncio.Lock()
        self._next_start = 0.0
        self._last_start = float("-inf")
        self.delay_s = delay_s

    def set_delay(self, delay_s: float) -> None:
        """Change the gap; it applies from the last start already made (robots.txt is read after one request)."""
        self.delay_s = delay_s
        self._next_start = max(self._next_start, self._last_start + delay_s)

    def pause_until(self, when: float) -> None:
        """Start no request before ``when`` (event-loop time): a 429/503 Retry-After or a backoff."""
        self._next_start = max(self._next_start, when)

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        async with self._slots:
            async with self._clock:  # waiters take turns, so the gap holds between every pair of starts
                loop = asyncio.get_running_loop()
                wait = self._next_start - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                self._last_start = loop.time()
                self._next_start = self._last_start + self.delay_s
            yield


class Politeness:
    """The gates of all hosts (keyed by origin), with the configured delay or robots.txt's Crawl-delay if larger."""

    def __init__(self, config: CrawlConfig) -> None:
        self._config = config
        self._gates: dict[str, HostGate] = {}

    def gate(self, origin: str) -> HostGate:
        if origin not in self._gates:
            self._gates[origin] = HostGate(self._config.per_host_concurrency, self._config.per_host_delay_s)
        return self._gates[origin]

    def apply_crawl_delay(self, origin: str, crawl_delay_s: float | None) -> None:
        if crawl_delay_s is None:
            return
        delay = max(self._config.per_host_delay_s, min(crawl_delay_s, self._config.max_crawl_delay_s))
        self.gate(origin).set_delay(delay)
