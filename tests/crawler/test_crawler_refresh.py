"""Incremental re-crawl: conditional requests, unchanged by hash, changed, new and gone pages; sitemaps (listed or
from robots.txt) as seeds."""

from __future__ import annotations

import gzip

from warcio.archiveiterator import ArchiveIterator

from extract.crawler import FetchRecord, crawl

HOME = '<html><body><a href="/etag.html">e</a><a href="/same.html">s</a><a href="/edit.html">c</a><a href="/gone.html">g</a></body></html>'
HOME_V2 = '<html><body><a href="/etag.html">e</a><a href="/same.html">s</a><a href="/edit.html">c</a><a href="/fresh.html">n</a></body></html>'


def test_refresh_classifies_not_modified_unchanged_changed_new_and_gone(site, local_config, tmp_path):
    site.page("/", HOME)
    site.etag_page("/etag.html", '"v1"', "<p>stable with validator</p>")
    site.page("/same.html", "<p>stable without validators</p>")
    site.page("/edit.html", "<p>first version</p>")
    site.page("/gone.html", "<p>soon gone</p>")
    first = crawl(local_config(), tmp_path / "first")
    assert first.outcomes() == {"fetched": 5}
    assert {r.change for r in first.records} == {"new"}

    site.page("/", HOME_V2)
    site.page("/edit.html", "<p>second version</p>")
    del site.routes["/gone.html"]
    site.page("/fresh.html", "<p>brand new</p>")
    site.hits.clear()
    previous = {r.url: r for r in first.records}
    second = crawl(local_config(), tmp_path / "second", previous=previous)

    by_path = {r.url.removeprefix(site.url("")): r for r in second.records}
    assert {p: (r.outcome, r.change) for p, r in by_path.items()} == {
        "/": ("fetched", "changed"),
        "/etag.html": ("not_modified", "unchanged"),
        "/same.html": ("unchanged", "unchanged"),
        "/edit.html": ("fetched", "changed"),
        "/gone.html": ("gone", "gone"),  # no longer linked, revisited because it was in the last crawl
        "/fresh.html": ("fetched", "new"),
    }
    assert site.hits_for("/etag.html")[0].headers["If-None-Match"] == '"v1"'
    not_modified = by_path["/etag.html"]
    assert not_modified.status == 304
    assert not_modified.content_hash == previous[site.url("/etag.html")].content_hash
    assert not_modified.warc_file == previous[site.url("/etag.html")].warc_file  # the content is still there
    assert by_path["/edit.html"].warc_file == second.warc_files[0].name
    assert by_path["/edit.html"].content_hash != previous[site.url("/edit.html")].content_hash
    assert {r.url for r in second.changed()} == {site.url(p) for p in ("/", "/edit.html", "/fresh.html")}
    assert [r.url for r in second.gone()] == [site.url("/gone.html")]

    with open(second.warc_files[0], "rb") as f:
        kinds = {(r.rec_type, r.rec_headers.get_header("WARC-Target-URI")) for r in ArchiveIterator(f)}
    assert ("revisit", site.url("/etag.html")) in kinds and ("request", site.url("/etag.html")) in kinds


def test_if_modified_since_is_sent_from_last_modified(site, local_config, tmp_path):
    stamp = "Wed, 21 Oct 2015 07:28:00 GMT"

    def handler(h):
        if h.headers.get("If-Modified-Since") == stamp:
            site.respond(h, b"", status=304, content_type="")
        else:
            site.respond(h, "<p>dated</p>", headers={"Last-Modified": stamp})

    site.routes["/"] = handler
    first = crawl(local_config(), tmp_path / "a")
    second = crawl(local_config(), tmp_path / "b", previous={r.url: r for r in first.records})
    [record] = second.records
    assert (record.outcome, record.last_modified, record.bytes) == ("not_modified", stamp, len("<p>dated</p>"))


def test_fetch_records_round_trip_through_rows(site, local_config, tmp_path):
    site.page("/", "<p>x</p>", headers={"ETag": '"a"'})
    [record] = crawl(local_config(), tmp_path).records
    assert FetchRecord.from_row(record.as_row()) == record


def test_sitemaps_seed_the_crawl(site, local_config, tmp_path):
    index = f"""<?xml version="1.0" encoding="UTF-8"?>
<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
  <sitemap><loc>{site.url("/pages.xml.gz")}</loc></sitemap>
</sitemapindex>"""
    pages = f"""<?xml version="1.0" encoding="UTF-8"?>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
  <url><loc>{site.url("/s1.html")}</loc></url><url><loc>{site.url("/s2.html")}</loc></url>
  <url><loc>http://elsewhere.test/x.html</loc></url>
</urlset>"""
    site.page("/sitemap.xml", index, content_type="application/xml")
    site.page("/pages.xml.gz", gzip.compress(pages.encode()), content_type="application/gzip")
    site.page("/s1.html", "<p>one</p>")
    site.page("/s2.html", "<p>two</p>")
    config = local_config(sitemaps=(site.url("/sitemap.xml"),)).model_copy(update={"seeds": ()})
    result = crawl(config, tmp_path)

    by_url = {r.url: r for r in result.records}
    assert set(by_url) == {site.url("/s1.html"), site.url("/s2.html")}
    assert by_url[site.url("/s1.html")].outcome == by_url[site.url("/s2.html")].outcome == "fetched"
    # an out-of-scope entry is counted like an out-of-scope link, not admitted (it would take a max_pages slot)
    assert result.stats.counters["sitemap_urls_out_of_scope"] == 1
    assert result.stats.counters["sitemaps_read"] == 2


def _robots_with_sitemaps(site) -> None:
    robots = f"User-agent: *\nAllow: /\nSitemap: /sitemap.xml\nSitemap: {site.url('/more.xml')}\n"
    robots += "Sitemap: http://10.0.0.1/private.xml\n"  # not allow-listed: refused by the address guard
    site.page("/robots.txt", robots, content_type="text/plain")
    site.page("/", "<p>the home page links nowhere</p>")
    for name, page in (("/sitemap.xml", "/listed.html"), ("/more.xml", "/also-listed.html")):
        site.page(name, f"<urlset><url><loc>{site.url(page)}</loc></url></urlset>", content_type="application/xml")
        site.page(page, f"<p>{page}</p>")


def test_robots_txt_sitemaps_seed_the_crawl_through_the_polite_fetcher(site, local_config, tmp_path):
    _robots_with_sitemaps(site)
    result = crawl(local_config(per_host_delay_s=0.15), tmp_path)

    assert {r.url: r.outcome for r in result.records} == {
        site.url(p): "fetched" for p in ("/", "/listed.html", "/also-listed.html")
    }
    counters = result.stats.counters
    assert (counters["robots_sitemaps"], counters["sitemaps_read"], counters["sitemap_unreadable"]) == (3, 2, 1)
    # the crawler's own address guard refused 10.0.0.1 before any connection (the test-wide guard would fail the test)
    assert counters["sitemap_unreadable_non_public_address"] == 1
    assert [h.path for h in site.hits].count("/robots.txt") == 1  # read once, for the seed and its pages
    # sitemaps wait their host's turn like pages (gaps measured at the server, with a loaded machine's jitter)
    gaps = [b.at - a.at for a, b in zip(site.hits, site.hits[1:], strict=False)]
    assert len(gaps) == 5 and min(gaps) >= 0.1 and sum(gaps) >= 5 * 0.15 - 0.05, gaps


def test_robots_txt_sitemaps_can_be_turned_off(site, local_config, tmp_path):
    _robots_with_sitemaps(site)
    result = crawl(local_config(robots_sitemaps=False), tmp_path)
    assert [r.url for r in result.records] == [site.url("/")]
    assert site.hits_for("/sitemap.xml") == site.hits_for("/more.xml") == []
    assert "robots_sitemaps" not in result.stats.counters


def test_robots_txt_sitemaps_of_a_refused_seed_are_not_read(site, local_config, tmp_path):
    _robots_with_sitemaps(site)
    result = crawl(local_config(allow_addresses=()), tmp_path)
    assert [(r.outcome, r.reason) for r in result.records] == [("skipped", "non_public_address")]
    assert site.hits == []


def test_a_first_crawl_labels_404s_not_found_and_only_a_page_that_was_live_becomes_gone(site, local_config, tmp_path):
    site.page("/", '<html><body><a href="/broken.html">b</a><a href="/later.html">l</a></body></html>')
    first = crawl(local_config(), tmp_path / "first")
    by_path = {r.url.removeprefix(site.url("")): (r.outcome, r.change) for r in first.records}
    # nothing was ever at these URLs: not "gone", and nothing to tombstone
    assert by_path["/broken.html"] == ("not_found", "") and by_path["/later.html"] == ("not_found", "")
    assert first.gone() == []

    site.page("/later.html", "<p>now it exists</p>")
    second = crawl(local_config(), tmp_path / "second", previous={r.url: r for r in first.records})
    del site.routes["/later.html"]
    third = crawl(local_config(), tmp_path / "third", previous={r.url: r for r in second.records})
    by_path = {r.url.removeprefix(site.url("")): (r.outcome, r.change) for r in third.records}
    assert by_path["/later.html"] == ("gone", "gone")  # it had content in the last crawl
    assert by_path["/broken.html"] == ("not_found", "")  # still never found
