"""The crawl folder read back by the ``crawl`` source of extract.sources: only current page content becomes documents,
and its fingerprint changes exactly when those documents do."""

from __future__ import annotations

from pathlib import Path

from catalog.records import Rejection
from catalog.variant import CrawlSource
from extract.crawler import FETCH_RECORDS_FILE, crawl, crawl_into
from extract.sources import open_source
from extract.sources.base import Source
from extract.stage import source_fingerprint


def test_crawl_source_reads_the_pages_back(site, local_config, tmp_path):
    site.page("/", '<a href="/a.html">a</a><a href="/missing.html">404</a><a href="/moved">moved</a>')
    site.page("/a.html", "<html><body>page a</body></html>")
    site.page("/moved", "", status=301, headers={"Location": "/b.txt"})
    site.page("/b.txt", "plain text page", content_type="text/plain")
    result = crawl(local_config(), tmp_path)
    assert result.outcomes() == {"fetched": 3, "not_found": 1}  # a first crawl's 404: nothing was there to be gone

    source = open_source(CrawlSource(type="crawl", path=tmp_path, name="web"))
    items = list(source.iter_documents())
    assert not [i for i in items if isinstance(i, Rejection)]
    docs = {d.url: d for d in items}
    # 2xx pages only: not robots.txt, not the 404, not the 301 hop (its target is a document under its own URL)
    assert set(docs) == {site.url("/"), site.url("/a.html"), site.url("/b.txt")}
    assert all(d.source_doc_id == url for url, d in docs.items())  # a crawled page's id in its source: its URL
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


PAGES = ("/etag.html", "/same.html", "/edit.html", "/doomed.html", "/blocked.html")


def _versioned_site(site) -> None:
    site.page("/", "".join(f'<a href="{p}">{p}</a>' for p in PAGES))
    site.etag_page("/etag.html", '"v1"', "<p>answers 304 to its ETag</p>")  # re-crawls: a revisit record
    site.page("/same.html", "<p>no validators: fetched again, same bytes</p>")
    site.page("/edit.html", "<p>edit: first version</p>")
    site.page("/doomed.html", "<p>doomed: soon 404</p>")
    site.page("/blocked.html", "<p>blocked: robots.txt will disallow it</p>")


def _read_back(folder) -> tuple[str, dict[str, bytes], dict[str, str]]:
    """(extract fingerprint, content by URL path, WARC file name by URL path) of the crawl source on ``folder``."""
    config = CrawlSource(type="crawl", path=folder, name="web")
    items = list(open_source(config).iter_documents())
    assert not [i for i in items if isinstance(i, Rejection)]
    paths = {d.url: d.url.split("/", 3)[3] for d in items}
    contents = {f"/{paths[d.url]}": d.content for d in items}
    files = {f"/{paths[d.url]}": Path(d.input_ref.split("#")[0]).name for d in items}
    return source_fingerprint(config), contents, files


def test_crawl_fingerprint_changes_exactly_when_the_current_pages_do(site, local_config, tmp_path):
    _versioned_site(site)
    first = crawl_into(local_config(), tmp_path)
    fingerprint, contents, _ = _read_back(tmp_path)
    assert set(contents) == {"/", *PAGES}
    file_hashes = Source.fingerprint(open_source(CrawlSource(type="crawl", path=tmp_path, name="web")))

    again = crawl_into(local_config(), tmp_path)  # nothing changed: a second WARC with a revisit and same bytes
    assert again.outcomes() == {"not_modified": 1, "unchanged": 5}
    unchanged_fingerprint, unchanged_contents, files = _read_back(tmp_path)
    assert unchanged_fingerprint == fingerprint and unchanged_contents == contents
    assert Source.fingerprint(open_source(CrawlSource(type="crawl", path=tmp_path, name="web"))) != file_hashes
    # the 304 page comes from the first crawl's WARC; a 200 with the same bytes from the newest one
    assert files["/etag.html"] == first.warc_files[0].name and files["/same.html"] == again.warc_files[0].name

    site.page("/edit.html", "<p>edit: second version</p>")
    crawl_into(local_config(), tmp_path)
    edited_fingerprint, edited_contents, _ = _read_back(tmp_path)
    assert edited_fingerprint != fingerprint
    assert edited_contents == contents | {"/edit.html": b"<p>edit: second version</p>"}

    del site.routes["/doomed.html"]
    crawl_into(local_config(), tmp_path)
    gone_fingerprint, gone_contents, _ = _read_back(tmp_path)
    assert gone_fingerprint != edited_fingerprint
    assert set(gone_contents) == {"/", "/etag.html", "/same.html", "/edit.html", "/blocked.html"}

    # A disallowed page writes nothing to the WARC: only the fetch records say its old copy is no longer current.
    site.page("/robots.txt", "User-agent: *\nDisallow: /blocked.html\n", content_type="text/plain")
    crawl_into(local_config(), tmp_path)
    blocked_fingerprint, blocked_contents, _ = _read_back(tmp_path)
    assert blocked_fingerprint != gone_fingerprint
    assert set(blocked_contents) == {"/", "/etag.html", "/same.html", "/edit.html"}
    assert blocked_contents["/edit.html"] == b"<p>edit: second version</p>"


def test_without_fetch_records_the_newest_answer_wins_and_files_are_hashed(site, local_config, tmp_path):
    _versioned_site(site)
    crawl_into(local_config(), tmp_path)
    site.page("/edit.html", "<p>edit: second version</p>")
    site.page("/robots.txt", "User-agent: *\nDisallow: /blocked.html\n", content_type="text/plain")
    crawl_into(local_config(), tmp_path)
    (tmp_path / FETCH_RECORDS_FILE).unlink()  # WARCs copied by hand

    fingerprint, contents, _ = _read_back(tmp_path)
    assert fingerprint == Source.fingerprint(open_source(CrawlSource(type="crawl", path=tmp_path, name="web")))
    assert contents["/edit.html"] == b"<p>edit: second version</p>"
    assert "/blocked.html" in contents  # nothing newer in the WARCs hides the first crawl's copy


def test_a_current_page_missing_from_the_warcs_is_a_rejection(site, local_config, tmp_path):
    _versioned_site(site)
    first = crawl_into(local_config(), tmp_path)
    crawl_into(local_config(), tmp_path)
    first.warc_files[0].unlink()  # held the content of the page that answered 304 the second time

    source = open_source(CrawlSource(type="crawl", path=tmp_path, name="web"))
    items = list(source.iter_documents())
    [rejection] = [i for i in items if isinstance(i, Rejection)]
    assert (rejection.reason, rejection.input_ref) == ("missing_from_warc", str(first.warc_files[0]))
    assert rejection.detail.startswith(site.url("/etag.html"))
    assert len(items) == 6 and source.stats.counters["rejected_missing_from_warc"] == 1
