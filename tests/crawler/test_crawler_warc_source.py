"""The crawl folder read back by the ``crawl`` source of extract.sources: only page content becomes documents."""

from __future__ import annotations

from catalog.records import Rejection
from catalog.variant import CrawlSource
from extract.crawler import crawl, crawl_into
from extract.sources import open_source


def test_crawl_source_reads_the_pages_back(site, local_config, tmp_path):
    site.page("/", '<a href="/a.html">a</a><a href="/missing.html">404</a><a href="/moved">moved</a>')
    site.page("/a.html", "<html><body>page a</body></html>")
    site.page("/moved", "", status=301, headers={"Location": "/b.txt"})
    site.page("/b.txt", "plain text page", content_type="text/plain")
    result = crawl(local_config(), tmp_path)
    assert result.outcomes() == {"fetched": 3, "gone": 1}

    source = open_source(CrawlSource(type="crawl", path=tmp_path, name="web"))
    items = list(source.iter_documents())
    assert not [i for i in items if isinstance(i, Rejection)]
    docs = {d.url: d for d in items}
    # 2xx pages only: not robots.txt, not the 404, not the 301 hop (its target is a document under its own URL)
    assert set(docs) == {site.url("/"), site.url("/a.html"), site.url("/b.txt")}
    assert docs[site.url("/a.html")].content == b"<html><body>page a</body></html>"
    assert docs[site.url("/b.txt")].content_type == "text/plain"


def test_recrawls_read_back_newest_answer_per_url(site, local_config, tmp_path):
    calls = []

    def flaky(handler):
        calls.append(1)
        if len(calls) == 2:  # the re-crawl's first attempt
            site.respond(handler, "busy", status=503, headers={"Retry-After": "0"})
        else:
            site.respond(handler, f"<p>version {len(calls)}</p>")

    site.page("/", '<a href="/flaky.html">f</a><a href="/doomed.html">d</a>')
    site.routes["/flaky.html"] = flaky
    site.page("/doomed.html", "<p>doomed</p>")
    crawl_into(local_config(retries=1), tmp_path)
    del site.routes["/doomed.html"]
    crawl_into(local_config(retries=1), tmp_path)  # the 503 is retried: only the 200 after it is archived

    docs = [d for d in open_source(CrawlSource(type="crawl", path=tmp_path, name="web")).iter_documents()]
    assert {d.url: d.content for d in docs} == {
        site.url("/"): b'<a href="/flaky.html">f</a><a href="/doomed.html">d</a>',
        site.url("/flaky.html"): b"<p>version 3</p>",
    }
