"""Scope rules: which URLs a crawl may follow (domains, path patterns, depth)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from extract.crawler.config import CrawlConfig


class Scope:
    """Decides whether a URL belongs to the crawl; ``why_out`` returns a detail for the record, or None if in scope."""

    def __init__(self, config: CrawlConfig) -> None:
        seed_hosts = tuple((urlsplit(u).hostname or "").lower() for u in (*config.seeds, *config.sitemaps))
        self.domains = config.allowed_domains or tuple(h for h in dict.fromkeys(seed_hosts) if h)
        self.allow = [re.compile(p) for p in config.allow_paths]
        self.deny = [re.compile(p) for p in config.deny_paths]
        self.max_depth = config.max_depth

    def _domain_ok(self, host: str) -> bool:
        return any(host == d or host.endswith("." + d) for d in self.domains)

    def why_out(self, url: str, depth: int) -> str | None:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        if depth > self.max_depth:
            return f"depth {depth} > max_depth {self.max_depth}"
        if self.domains and not self._domain_ok(host):
            return f"host {host} not in allowed domains {', '.join(self.domains)}"
        if self.allow and not any(p.search(target) for p in self.allow):
            return f"path {target} matches no allow pattern"
        for pattern in self.deny:
            if pattern.search(target):
                return f"path {target} matches deny pattern {pattern.pattern!r}"
        return None
