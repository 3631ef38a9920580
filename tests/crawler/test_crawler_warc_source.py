"""The crawl folder read back by the ``crawl`` source of extract.sources: only page content becomes documents."""

from __future__ import annotations

from catalog.records import Rejection
from catalog.variant import CrawlSource
from extract.crawler import crawl
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
