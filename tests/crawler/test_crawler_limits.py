"""Limits against a real local server: slow-drip and endless bodies cut, wrong types and oversized pages skipped."""

from __future__ import annotations

import gzip
import time

from warcio.archiveiterator import ArchiveIterator

from extract.crawler import crawl


def _drip(handler) -> None:
    """Headers at once, then one byte every 0.1 s for a minute: no read ever times out, the page never ends."""
    handler.send_response(200)
    handler.send_header("Content-Type", "text/html")
    handler.end_headers()
    for _ in range(600):
        handler.wfile.write(b"x")
        handler.wfile.flush()
        time.sleep(0.1)


def _endless(handler) -> None:
    """A body with no length that never ends."""
    handler.send_response(200)
    handler.send_header("Content-Type", "text/html")
    handler.end_headers()
    chunk = b"<p>" + b"a" * 65_536 + b"</p>"
    while True:
        handler.wfile.write(chunk)


def test_slow_drip_is_cut_at_the_page_deadline(site, local_config, tmp_path):
    site.routes["/"] = _drip
    started = time.monotonic()
    result = crawl(local_config(page_deadline_s=1.0, timeout_s=5.0, retries=2), tmp_path)
    elapsed = time.monotonic() - started

    [record] = result.records
    assert (record.outcome, record.reason) == ("skipped", "timeout")
    assert "page_deadline_s=1.0" in record.detail
    assert elapsed < 3.0  # one deadline (not retried), plus setup
    assert len(site.hits_for("/")) == 1


def test_endless_body_is_cut_at_max_bytes(site, local_config, tmp_path):
    site.routes["/"] = _endless
    started = time.monotonic()
    result = crawl(local_config(max_bytes=1_000_000, page_deadline_s=30.0), tmp_path)
    elapsed = time.monotonic() - started

    [record] = result.records
    assert (record.outcome, record.reason) == ("skipped", "too_large")
    assert "max_bytes 1000000" in record.detail
    assert elapsed < 5.0


def test_declared_oversized_page_is_skipped_before_reading(site, local_config, tmp_path):
    site.page("/", "x" * 5_000)
    result = crawl(local_config(max_bytes=1_000), tmp_path)
    [record] = result.records
    assert (record.reason, record.detail) == ("too_large", "Content-Length 5000 > max_bytes 1000")


def test_non_html_content_is_skipped_with_reason(site, local_config, tmp_path):
    site.page("/", '<a href="/doc.pdf">pdf</a><a href="/notes.txt">txt</a><a href="/blob">blob</a>')
    site.page("/doc.pdf", b"%PDF-1.4 ...", content_type="application/pdf")
    site.page("/notes.txt", "plain notes", content_type="text/plain; charset=utf-8")
    site.page("/blob", b"\x00\x01", content_type="")
    result = crawl(local_config(), tmp_path)

    by_url = {r.url: r for r in result.records}
    assert by_url[site.url("/doc.pdf")].reason == "bad_content_type"
    assert "application/pdf" in by_url[site.url("/doc.pdf")].detail
    assert by_url[site.url("/blob")].reason == "bad_content_type"
    assert by_url[site.url("/notes.txt")].outcome == "fetched"
    assert result.skipped_by_reason() == {"bad_content_type": 2}
    rejections = result.rejections("crawl-test")
    assert {(r.input_ref, r.reason) for r in rejections} == {
        (site.url("/doc.pdf"), "bad_content_type"),
        (site.url("/blob"), "bad_content_type"),
    }


def test_cut_fetches_stay_out_of_the_warc(site, local_config, tmp_path):
    site.page("/", '<a href="/big.html">big</a><a href="/doc.pdf">pdf</a>')
    site.page("/big.html", "y" * 5_000)
    site.page("/doc.pdf", b"%PDF", content_type="application/pdf")
    result = crawl(local_config(max_bytes=1_000), tmp_path)

    assert result.skipped_by_reason() == {"bad_content_type": 1, "too_large": 1}
    with open(result.warc_files[0], "rb") as f:
        uris = {r.rec_headers.get_header("WARC-Target-URI") for r in ArchiveIterator(f) if r.rec_type == "response"}
    assert uris == {site.url("/")}


def test_gzip_body_is_stored_decoded(site, local_config, tmp_path):
    html = "<html><body>" + "compressible " * 500 + "</body></html>"
    site.page("/", gzip.compress(html.encode()), headers={"Content-Encoding": "gzip"})
    result = crawl(local_config(max_bytes=100_000), tmp_path)

    [record] = result.records
    assert record.bytes == len(html)
    stored = {}
    with open(result.warc_files[0], "rb") as f:
        for r in ArchiveIterator(f):
            if r.rec_type == "response":
                uri = r.rec_headers.get_header("WARC-Target-URI")
                stored[uri] = (r.http_headers.get_header("Content-Encoding"), r.content_stream().read().decode())
    assert stored[site.url("/")] == (None, html)


def test_compression_bomb_is_cut_at_max_bytes(site, local_config, tmp_path):
    site.page("/", gzip.compress(b"\0" * 20_000_000), headers={"Content-Encoding": "gzip"})
    result = crawl(local_config(max_bytes=1_000_000), tmp_path)
    assert [r.reason for r in result.records] == ["too_large"]
