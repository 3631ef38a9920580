"""``reread crawl`` and the crawl folder (WARCs + fetch-records.parquet) used for incremental re-crawls."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from catalog.errors import ArtifactError, ConfigError
from extract.crawler import FETCH_RECORDS_FILE, crawl_into, load_fetch_records
from flows.cli import app

runner = CliRunner()


def _two_pages(site) -> None:
    site.page("/", '<a href="/two.html">two</a>', headers={"ETag": '"home"'})
    site.page("/two.html", "<p>two</p>")


def test_cli_crawls_seeds_into_the_data_dir(site, tmp_path):
    _two_pages(site)
    args = ["crawl", site.url("/"), "--allow", "127.0.0.1", "--delay", "0", "--data-dir", str(tmp_path), "--json"]
    result = runner.invoke(app, args)

    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    folder = tmp_path / "crawl" / f"127.0.0.1_{site.port}"
    assert payload["summary"]["folder"] == str(folder)
    assert payload["summary"]["outcomes"] == {"fetched": 2}
    assert {r["url"] for r in payload["records"]} == {site.url("/"), site.url("/two.html")}
    assert len(list(folder.glob("*.warc.gz"))) == 1 and (folder / FETCH_RECORDS_FILE).exists()

    # The second run is incremental: this server ignores If-None-Match, so both pages are unchanged by hash.
    again = json.loads(runner.invoke(app, args).output)
    assert again["summary"]["changes"] == {"unchanged": 2}


def test_cli_without_allow_list_refuses_loopback_and_prints_the_reason(site, tmp_path):
    _two_pages(site)
    result = runner.invoke(app, ["crawl", site.url("/"), "--out", str(tmp_path / "out"), "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "skipped: non_public_address" in result.output
    assert site.hits == []


def test_cli_uses_the_variants_crawl_source(site, tmp_path):
    _two_pages(site)
    variant = tmp_path / "v.yaml"
    variant.write_text(
        "name: crawled\n"
        "sources:\n"
        f"  - {{type: crawl, name: local, path: warcs, seeds: ['{site.url('/')}'], max_depth: 0}}\n"
    )
    result = runner.invoke(
        app, ["crawl", "--variant", str(variant), "--allow", "127.0.0.1", "--data-dir", str(tmp_path), "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["summary"]["outcomes"] == {"fetched": 1}  # max_depth 0: the seed only
    assert len(list((tmp_path / "warcs").glob("*.warc.gz"))) == 1
    from catalog.db import Catalog

    with Catalog.in_data_dir(tmp_path) as catalog:  # the variant source's fetch metadata is in the catalog
        [record] = catalog.fetch_records("crawled", "local")
    assert (record["url"], record["status"], record["etag"], record["change"]) == (site.url("/"), 200, '"home"', "new")


def test_cli_errors_name_the_problem(tmp_path):
    result = runner.invoke(app, ["crawl", "--data-dir", str(tmp_path)])
    assert isinstance(result.exception, ConfigError) and "give SEEDS" in str(result.exception)
    result = runner.invoke(app, ["crawl", "ftp://x.test/", "--data-dir", str(tmp_path)])
    assert isinstance(result.exception, ConfigError) and "not an absolute http(s) URL" in str(result.exception)
    variant = tmp_path / "v.yaml"
    variant.write_text("name: plain\nsources:\n  - {type: jsonl, path: docs.jsonl}\n")
    result = runner.invoke(app, ["crawl", "--variant", str(variant), "--data-dir", str(tmp_path)])
    assert isinstance(result.exception, ConfigError)
    assert str(result.exception) == f"{variant}: variant 'plain' has no source of type 'crawl'"


def test_crawl_into_keeps_tombstones_and_crawl_source_refreshes(site, local_config, tmp_path):
    _two_pages(site)
    folder = tmp_path / "warcs"
    crawl_into(local_config(), folder)
    site.page("/", "<p>no links any more</p>")
    del site.routes["/two.html"]
    second = crawl_into(local_config(), folder)
    assert {r.url: r.change for r in second.records} == {site.url("/"): "changed", site.url("/two.html"): "gone"}

    third = crawl_into(local_config(), folder)  # the gone page is not revisited, but stays tombstoned
    assert [r.url for r in third.records] == [site.url("/")]
    assert [r.url for r in third.carried] == [site.url("/two.html")]
    stored = load_fetch_records(folder)
    assert list(stored.values()) == third.latest_records()
    assert stored[site.url("/two.html")].outcome == "gone"
    assert stored[site.url("/")].change == "unchanged"


def test_a_page_failing_transiently_keeps_its_last_good_record(site, local_config, tmp_path):
    from catalog.variant import CrawlSource
    from extract.sources import open_source

    _two_pages(site)
    folder = tmp_path / "warcs"
    first = crawl_into(local_config(), folder)
    site.routes["/two.html"] = lambda h: site.respond(h, "overloaded", status=503)
    second = crawl_into(local_config(), folder)

    [failed] = [r for r in second.records if r.url == site.url("/two.html")]
    assert (failed.outcome, failed.reason, failed.status) == ("skipped", "http_error", 503)
    kept = load_fetch_records(folder)[site.url("/two.html")]
    assert kept == next(r for r in first.records if r.url == site.url("/two.html"))  # the last good fetch
    source = open_source(CrawlSource(name="site", type="crawl", path=folder))
    texts = {d.url: d.content for d in source.iter_documents() if hasattr(d, "url")}
    assert b"<p>two</p>" in texts[site.url("/two.html")]  # still read from the first crawl's WARC

    del site.routes["/two.html"]  # now it is really gone: 404 drops it
    crawl_into(local_config(), folder)
    assert load_fetch_records(folder)[site.url("/two.html")].outcome == "gone"


def test_unreadable_fetch_records_are_reported(tmp_path):
    (tmp_path / FETCH_RECORDS_FILE).write_bytes(b"not parquet")
    with pytest.raises(ArtifactError, match="unreadable fetch records"):
        load_fetch_records(tmp_path)
