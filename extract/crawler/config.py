"""What a crawl may fetch and how politely: one frozen pydantic model, hashed like every other stage config."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

DEFAULT_USER_AGENT = "RereadBot/0.1 (retrieval datastore research crawler)"
HTML_TYPES = ("text/html", "application/xhtml+xml")


class CrawlConfig(BaseModel):
    """One crawl: seeds, scope, politeness, limits and the safety allow-list.

    Times are seconds. ``per_host_delay_s`` is the minimum gap between request starts on one host; a robots.txt
    ``Crawl-delay`` wins when it is larger (capped at ``max_crawl_delay_s`` so a hostile robots.txt cannot stall
    the crawl forever). ``allow_addresses`` lists CIDRs (``127.0.0.0/8``), single addresses (``127.0.0.1``) or host
    names (``intranet.example``) for which the refusal of non-public addresses is turned off.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    seeds: tuple[str, ...] = ()
    sitemaps: tuple[str, ...] = ()
    robots_sitemaps: bool = Field(default=True, description="also the Sitemap: lines of the seeds' robots.txt")
    allowed_domains: tuple[str, ...] = Field(default=(), description="hosts (and their subdomains); empty: the seeds'")
    allow_paths: tuple[str, ...] = Field(default=(), description="regexes; when any, path?query must match one")
    deny_paths: tuple[str, ...] = Field(default=(), description="regexes; path?query matching any is out of scope")
    max_depth: int = Field(default=2, ge=0, description="link hops from a seed")
    max_pages: int = Field(default=1000, ge=1, description="URLs admitted to the frontier (each gets one record)")
    concurrency: int = Field(default=16, ge=1, description="fetches in flight over all hosts")
    per_host_concurrency: int = Field(default=2, ge=1)
    per_host_delay_s: float = Field(default=1.0, ge=0)
    max_crawl_delay_s: float = Field(default=60.0, ge=0)
    max_redirects: int = Field(default=5, ge=0)
    max_bytes: int = Field(default=10_000_000, gt=0, description="decoded body bytes; longer pages are skipped")
    timeout_s: float = Field(default=15.0, gt=0, description="connect / read / write timeout of one network step")
    page_deadline_s: float = Field(default=60.0, gt=0, description="wall time of one request+body (slow-drip cut)")
    content_types: tuple[str, ...] = (*HTML_TYPES, "text/plain")
    user_agent: str = DEFAULT_USER_AGENT
    retries: int = Field(default=3, ge=0, description="extra attempts on 429, 5xx and network errors")
    backoff_s: float = Field(default=1.0, ge=0, description="first retry wait; doubles per attempt")
    max_retry_wait_s: float = Field(default=120.0, ge=0, description="a longer Retry-After gives up the page")
    allow_addresses: tuple[str, ...] = ()
    ca_bundle: Path | None = Field(default=None, description="PEM of CAs to trust instead of certifi's (intranets)")
    warc_file_bytes: int = Field(default=1_000_000_000, gt=0, description="rotate WARC files past this size")

    @field_validator("seeds", "sitemaps")
    @classmethod
    def _http_urls(cls, urls: tuple[str, ...]) -> tuple[str, ...]:
        for url in urls:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"{url!r} is not an absolute http(s) URL")
        return urls

    @field_validator("allow_paths", "deny_paths")
    @classmethod
    def _regexes(cls, patterns: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{pattern!r} is not a valid regex: {exc}") from None
        return patterns

    @field_validator("allowed_domains")
    @classmethod
    def _lower_domains(cls, domains: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(d.strip().lower().lstrip(".") for d in domains if d.strip())

    @field_validator("content_types")
    @classmethod
    def _lower_types(cls, types: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(t.strip().lower() for t in types)

    @field_validator("allow_addresses")
    @classmethod
    def _addresses(cls, entries: tuple[str, ...]) -> tuple[str, ...]:
        for entry in entries:
            if "/" in entry:
                try:
                    ipaddress.ip_network(entry, strict=False)
                except ValueError as exc:
                    raise ValueError(f"{entry!r} is not a valid CIDR: {exc}") from None
        return tuple(e.strip().lower() for e in entries)
