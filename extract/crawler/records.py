"""What a crawl returns: one FetchRecord per admitted URL, and the CrawlResult around them."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from catalog.records import Rejection, StageStats

STAGE = "crawl"

# gone: a 404/410 for a page that had content before (its documents are tombstoned); not_found: one that never had.
Outcome = Literal["fetched", "not_modified", "unchanged", "gone", "not_found", "skipped"]
# Relative to a previous crawl: what the refresh flow does with the page (re-extract new/changed, tombstone gone).
Change = Literal["new", "changed", "unchanged", "gone", ""]


# Skip reasons that say nothing about the page itself: its last good content stays current (see CrawlResult.carried).
TRANSIENT_REASONS = frozenset({"timeout", "network_error", "dns_error", "rate_limited"})


class FetchRefused(Exception):
    """A URL the crawler will not (or could not) fetch; ``reason`` is the snake_case skip reason of its record."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class FetchRecord:
    """The catalog row of one URL: where it ended, what came back, and how it compares to the previous crawl."""

    url: str
    final_url: str
    outcome: Outcome
    depth: int
    fetched_at: str  # ISO 8601 UTC
    status: int | None = None
    reason: str = ""  # skip reason (robots_disallowed, out_of_scope, non_public_address, too_large, timeout, ...)
    detail: str = ""
    change: Change = ""
    content_hash: str = ""  # catalog.hashing.content_hash of the decoded body
    content_type: str = ""
    bytes: int = 0
    etag: str = ""
    last_modified: str = ""
    redirects: int = 0
    # WARC file (name, in the crawl folder) holding the page's current content as a response record whose
    # WARC-Target-URI is final_url; for not_modified, the earlier crawl's file (this crawl wrote only a revisit).
    warc_file: str = ""

    def as_row(self) -> dict:
        return asdict(self)

    @classmethod
    def from_row(cls, row: dict) -> FetchRecord:
        return cls(**{k: row[k] for k in cls.__dataclass_fields__ if k in row})

    @property
    def failed_transiently(self) -> bool:
        """Skipped for a reason that may pass (a timeout, a 429, a 5xx), not for what the page is."""
        server_error = self.reason == "http_error" and (self.status or 0) >= 500
        return self.outcome == "skipped" and (self.reason in TRANSIENT_REASONS or server_error)

    @property
    def is_live(self) -> bool:
        """The page existed at fetch time (its content is known, in this crawl's WARC or an earlier one)."""
        return self.outcome in ("fetched", "not_modified", "unchanged")


@dataclass(slots=True)
class CrawlResult:
    """This crawl's records (one per admitted URL), its WARC files and counters.

    ``carried``: records of earlier crawls that stay the latest of their URL (filled by ``crawl_into``, which keeps
    them in the folder's fetch records): tombstones of gone pages this crawl did not revisit, and the last good
    record of a live page this crawl could not fetch for a transient reason (timeout, network, 429, 5xx), so a
    flaky server does not drop a page from the datastore until a later crawl sees it gone.
    """

    records: list[FetchRecord]
    warc_dir: Path
    warc_files: list[Path]
    stats: StageStats = field(default_factory=lambda: StageStats(STAGE))
    elapsed_s: float = 0.0
    carried: list[FetchRecord] = field(default_factory=list)

    def latest_records(self) -> list[FetchRecord]:
        """The latest record of every URL the folder knows: this crawl's, except where an earlier one is carried."""
        carried = {r.url for r in self.carried}
        return [*(r for r in self.records if r.url not in carried), *self.carried]

    def outcomes(self) -> dict[str, int]:
        return dict(sorted(Counter(r.outcome for r in self.records).items()))

    def skipped_by_reason(self) -> dict[str, int]:
        return dict(sorted(Counter(r.reason for r in self.records if r.outcome == "skipped").items()))

    def changed(self) -> list[FetchRecord]:
        """New or changed pages: the only ones a refresh sends through extraction and later stages."""
        return [r for r in self.records if r.change in ("new", "changed")]

    def gone(self) -> list[FetchRecord]:
        """Pages that answered 404/410: tombstone their documents."""
        return [r for r in self.records if r.outcome == "gone"]

    def rejections(self, source: str) -> list[Rejection]:
        return [
            Rejection(stage=STAGE, source=source, input_ref=r.url, reason=r.reason, detail=r.detail)
            for r in self.records
            if r.outcome == "skipped"
        ]

    def summary(self) -> dict:
        return {
            "pages": len(self.records),
            "outcomes": self.outcomes(),
            "skipped_by_reason": self.skipped_by_reason(),
            "changes": dict(sorted(Counter(r.change for r in self.records if r.change).items())),
            "warc_files": [p.name for p in self.warc_files],
            "elapsed_s": round(self.elapsed_s, 3),
            "counters": self.stats.as_dict(),
        }
