"""robots.txt and politeness against a real local server: disallow, crawl-delay gaps, 429 Retry-After, retries."""

from __future__ import annotations

import threading
import time

import pytest

from extract.crawler import crawl

LINKS = '<html><body><a href="/p1.html">1</a><a href="/p2.html">2</a><a href="/p3.html">3</a></body></html>'


def _page_gaps(site, paths) -> list[float]:
    times = sorted(hit.at for hit in site.hits if hit.path in paths)
    return [b - a for a, b in zip(times, times[1:], strict=False)]


def test_robots_disallow_is_honoured(site, local_config, tmp_path):
    site.page("/robots.txt", "User-agent: *\nDisallow: /secret\n", content_type="text/plain")
    site.page("/", '<a href="/secret/a.html">s</a><a href="/open.html">o</a>')
    site.page("/open.html", "open")
    site.page("/secret/a.html", "secret")
    result = crawl(local_config(), tmp_path)

    by_url = {r.url: r for r in result.records}
    assert by_url[site.url("/secret/a.html")].outcome == "skipped"
    assert by_url[site.url("/secret/a.html")].reason == "robots_disallowed"
    assert by_url[site.url("/open.html")].outcome == "fetched"
    assert site.hits_for("/secret/a.html") == []
    assert len(site.hits_for("/robots.txt")) == 1  # cached per origin


def test_robots_rules_for_our_user_agent_win(site, local_config, tmp_path):
    robots = "User-agent: RereadBot\nDisallow: /\n\nUser-agent: *\nAllow: /\n"
    site.page("/robots.txt", robots, content_type="text/plain")
    site.page("/", "home")
    result = crawl(local_config(), tmp_path)
    assert [r.reason for r in result.records] == ["robots_disallowed"]


def test_robots_server_error_means_disallow_all(site, local_config, tmp_path):
    site.page("/robots.txt", "down", status=503)
    site.page("/", "home")
    result = crawl(local_config(retries=0), tmp_path)
    assert [r.reason for r in result.records] == ["robots_disallowed"]
    assert site.hits_for("/") == []


def test_missing_robots_allows_all(site, local_config, tmp_path):
    del site.routes["/robots.txt"]  # 404
    site.page("/", "home")
    result = crawl(local_config(), tmp_path)
    assert [r.outcome for r in result.records] == ["fetched"]


@pytest.mark.slow
def test_crawl_delay_spaces_requests_to_a_host(site, local_config, tmp_path):
    site.page("/robots.txt", "User-agent: *\nCrawl-delay: 0.4\n", content_type="text/plain")
    site.page("/", LINKS)
    for n in (1, 2, 3):
        site.page(f"/p{n}.html", f"page {n}")
    # Four concurrent workers and two slots per host: only the delay can space the requests out.
    result = crawl(local_config(per_host_delay_s=0.0, per_host_concurrency=2, concurrency=4), tmp_path)

    assert result.outcomes() == {"fetched": 4}
    gaps = _page_gaps(site, {"/", "/p1.html", "/p2.html", "/p3.html"})
    # Gaps are measured where they matter, at the server, so they carry network and thread-start jitter of a
    # loaded machine: every gap is clearly above zero, and together they add up to the delays.
    assert len(gaps) == 3
    assert min(gaps) >= 0.3 and sum(gaps) >= 3 * 0.4 - 0.05, gaps


def test_configured_delay_applies_when_larger_than_robots(site, local_config, tmp_path):
    site.page("/robots.txt", "User-agent: *\nCrawl-delay: 0.05\n", content_type="text/plain")
    site.page("/", LINKS)
    for n in (1, 2, 3):
        site.page(f"/p{n}.html", f"page {n}")
    crawl(local_config(per_host_delay_s=0.3), tmp_path)
    gaps = _page_gaps(site, {"/robots.txt", "/", "/p1.html", "/p2.html", "/p3.html"})
    assert len(gaps) == 4 and min(gaps) >= 0.2 and sum(gaps) >= 4 * 0.3 - 0.05, gaps


def test_429_retry_after_is_respected(site, local_config, tmp_path):
    calls = []

    def limited(handler):
        calls.append(1)
        if len(calls) == 1:
            site.respond(handler, "slow down", status=429, headers={"Retry-After": "1"})
        else:
            site.respond(handler, "<html>finally</html>")

    site.routes["/"] = limited
    result = crawl(local_config(retries=2), tmp_path)

    assert [(r.outcome, r.status) for r in result.records] == [("fetched", 200)]
    first, second = site.hits_for("/")
    assert second.at - first.at >= 0.95  # Retry-After: 1 (not the 0.05 s backoff)


def test_retry_after_beyond_budget_gives_the_page_up(site, local_config, tmp_path):
    site.page("/", "slow down", status=429, headers={"Retry-After": "3600"})
    result = crawl(local_config(retries=3, max_retry_wait_s=5), tmp_path)
    assert [(r.reason, r.status) for r in result.records] == [("rate_limited", 429)]
    assert len(site.hits_for("/")) == 1


def test_server_errors_are_retried_with_backoff_then_reported(site, local_config, tmp_path):
    site.page("/", "broken", status=500)
    result = crawl(local_config(retries=2, backoff_s=0.1), tmp_path)

    assert [(r.outcome, r.reason, r.status) for r in result.records] == [("skipped", "http_error", 500)]
    first, second, third = site.hits_for("/")
    assert second.at - first.at >= 0.08 and third.at - second.at >= 0.17  # 0.1 s, then doubled (less jitter)


def test_per_host_concurrency_bounds_requests_in_flight(site, local_config, tmp_path):
    lock = threading.Lock()
    in_flight = [0]
    most = [0]

    def slow(handler):
        with lock:
            in_flight[0] += 1
            most[0] = max(most[0], in_flight[0])
        time.sleep(0.15)
        with lock:
            in_flight[0] -= 1
        site.respond(handler, "<p>slow</p>")

    site.page("/", "".join(f'<a href="/s{n}.html">{n}</a>' for n in range(6)))
    for n in range(6):
        site.routes[f"/s{n}.html"] = slow
    result = crawl(local_config(concurrency=8, per_host_concurrency=2), tmp_path)

    assert result.outcomes() == {"fetched": 7}
    assert most[0] == 2  # 8 workers, 6 slow pages ready at once: the host never sees more than 2


def test_robots_is_checked_again_on_redirect(site, local_config, tmp_path):
    site.page("/robots.txt", "User-agent: *\nDisallow: /secret\n", content_type="text/plain")
    site.page("/", "", status=302, headers={"Location": "/secret/inside.html"})
    site.page("/secret/inside.html", "secret")
    [record] = crawl(local_config(), tmp_path).records
    assert (record.reason, record.redirects, record.final_url) == (
        "robots_disallowed",
        1,
        site.url("/secret/inside.html"),
    )
    assert site.hits_for("/secret/inside.html") == []
