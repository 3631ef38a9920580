"""Discovery, scope, records and WARC output of a crawl of a real local server."""

from __future__ import annotations

from warcio.archiveiterator import ArchiveIterator

from catalog.hashing import content_hash
from extract.crawler import crawl
from extract.crawler.links import extract_links
from extract.crawler.urls import normalize_url

HOME = """<html><head><title>home</title></head><body>
<a href="/a.html">a</a> <a href="b.html#frag">b</a> <a href="/private/x.html">private</a>
<a href="http://example.org/elsewhere">external</a> <a href="mailto:x@y.z">mail</a>
<a href="/nofollow.html" rel="nofollow">nf</a></body></html>"""
A = '<html><body><a href="/deep1.html">deeper</a> <a href="/">home</a></body></html>'
DEEP1 = '<html><body><a href="/deep2.html">deeper still</a></body></html>'


def _build_site(site) -> None:
    site.page("/", HOME, headers={"ETag": '"home-v1"'})
    site.page("/a.html", A)
    site.page("/b.html", "<html><body>b</body></html>", headers={"Last-Modified": "Wed, 21 Oct 2015 07:28:00 GMT"})
    site.page("/deep1.html", DEEP1)
    site.page("/deep2.html", "<html><body>too deep</body></html>")
    site.page("/private/x.html", "<html><body>private</body></html>")
    site.page("/nofollow.html", "<html><body>nofollow</body></html>")


def test_crawl_discovers_links_within_scope_and_depth(site, local_config, tmp_path):
    _build_site(site)
    result = crawl(local_config(max_depth=2, deny_paths=(r"^/private/",)), tmp_path)

    by_url = {r.url: r for r in result.records}
    assert set(by_url) == {site.url("/"), site.url("/a.html"), site.url("/b.html"), site.url("/deep1.html")}
    assert all(r.outcome == "fetched" and r.change == "new" for r in result.records)
    assert site.hits_for("/deep2.html") == []  # depth 3
    assert site.hits_for("/private/x.html") == []  # deny pattern
    assert site.hits_for("/nofollow.html") == []  # rel=nofollow
    assert len(site.hits_for("/")) == 1  # linked back from /a.html, fetched once
    home = by_url[site.url("/")]
    assert home.status == 200 and home.depth == 0 and home.etag == '"home-v1"'
    assert home.content_hash == content_hash(HOME.encode()) and home.bytes == len(HOME.encode())
    assert home.content_type == "text/html"
    assert by_url[site.url("/b.html")].last_modified == "Wed, 21 Oct 2015 07:28:00 GMT"
    assert by_url[site.url("/deep1.html")].depth == 2
    assert result.stats.counters["links_out_of_scope"] >= 2  # example.org and /private/


def test_max_pages_bounds_the_frontier(site, local_config, tmp_path):
    _build_site(site)
    result = crawl(local_config(max_pages=2), tmp_path)
    assert len(result.records) == 2
    assert len([h for h in site.hits if h.path != "/robots.txt"]) == 2


def test_warc_holds_request_and_response_per_fetch(site, local_config, tmp_path):
    _build_site(site)
    result = crawl(local_config(max_depth=1), tmp_path)

    assert len(result.warc_files) == 1 and result.warc_files[0].name.endswith(".warc.gz")
    responses, requests = {}, {}
    with open(result.warc_files[0], "rb") as f:
        for record in ArchiveIterator(f):
            uri = record.rec_headers.get_header("WARC-Target-URI")
            if record.rec_type == "response":
                responses[uri] = (record.http_headers.get_statuscode(), record.content_stream().read(), record)
            elif record.rec_type == "request":
                requests[uri] = record
    fetched = {r.url for r in result.records}
    assert fetched == set(responses) == set(requests)  # robots.txt is fetched but not corpus content
    status, body, record = responses[site.url("/")]
    assert status == "200" and body == HOME.encode()
    assert record.rec_headers.get_header("WARC-IP-Address") == "127.0.0.1"
    request = requests[site.url("/")]
    assert request.http_headers.protocol == "GET"
    assert request.http_headers.get_header("User-Agent").startswith("RereadBot")
    assert request.rec_headers.get_header("WARC-Concurrent-To") == record.rec_headers.get_header("WARC-Record-ID")
    assert all(r.warc_file == result.warc_files[0].name for r in result.records)


def test_warc_files_rotate_past_the_size_limit(site, local_config, tmp_path):
    _build_site(site)
    result = crawl(local_config(max_depth=1, warc_file_bytes=1), tmp_path)
    # one exchange per file: /, /a.html, /b.html, /private/x.html
    assert len(result.records) == 4 and len(result.warc_files) == 4
    assert len({r.warc_file for r in result.records}) == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in result.warc_files)


def test_extract_links_resolves_base_and_drops_non_http():
    html = b"""<html><head><base href="http://h.test/dir/"></head><body>
    <a href="page.html#x">1</a><a href="/abs?q=1">2</a><a href="javascript:void(0)">3</a>
    <a href="HTTP://H.TEST:80/dir/page.html">dup</a><a href="https://o.test:8443">4</a></body></html>"""
    assert extract_links(html, "http://ignored.test/") == [
        "http://h.test/dir/page.html",
        "http://h.test/abs?q=1",
        "https://o.test:8443/",
    ]
    assert extract_links(b'<meta name="robots" content="noindex, nofollow"><a href="/x">x</a>', "http://h.test/") == []
    assert extract_links(b"", "http://h.test/") == []


def test_normalize_url():
    assert normalize_url("HTTPS://Example.COM:443") == "https://example.com/"
    assert normalize_url("x?b=2#f", "http://h.test/a/") == "http://h.test/a/x?b=2"
    assert normalize_url("ftp://h.test/") is None
    assert normalize_url("http://h.test:99999/") is None
    assert normalize_url("http://Bücher.example/x") == "http://xn--bcher-kva.example/x"
