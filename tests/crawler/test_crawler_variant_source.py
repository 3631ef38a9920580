"""A variant's crawl source: its crawl settings reach CrawlConfig, bad ones are named, and none is in the extract hash."""

from __future__ import annotations

from pathlib import Path

import pytest

from catalog.errors import ConfigError
from catalog.variant import load_variant
from extract.crawler import CrawlResult, config_for_source, crawl_source

SETTINGS = """\
    sitemaps: ['{sitemap}']
    allowed_domains: [127.0.0.1]
    allow_paths: ['^/(|docs/.*|sitemap.xml)$']
    deny_paths: ['^/docs/private']
    max_pages: 5
    max_depth: 1
    allow_addresses: [127.0.0.1]
    user_agent: ExampleBot/2.0
    per_host_delay_s: 0
    per_host_concurrency: 1
    options: {{max_bytes: 5000, robots_sitemaps: false, retries: 0}}
"""


def write_variant(folder: Path, settings: str = "", name: str = "v", seed: str = "http://127.0.0.1:9/") -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(
        f"name: {name}\nsources:\n  - type: crawl\n    name: web\n    path: warcs\n    seeds: ['{seed}']\n{settings}"
    )
    return path


def test_every_crawl_setting_of_the_yaml_reaches_the_crawl(site, tmp_path):
    site.page("/", '<a href="/docs/a.html">a</a><a href="/docs/private/p.html">p</a><a href="/blog/b.html">b</a>')
    site.page("/docs/a.html", "<p>a</p>")
    site.page("/docs/private/p.html", "<p>private</p>")
    site.page("/blog/b.html", "<p>blog</p>")
    site.page("/docs/listed.html", "<p>only in the sitemap</p>")
    listed = "".join(f"<url><loc>{site.url(p)}</loc></url>" for p in ("/docs/listed.html", "/blog/listed.html"))
    site.page("/sitemap.xml", f"<urlset>{listed}</urlset>", content_type="application/xml")
    settings = SETTINGS.format(sitemap=site.url("/sitemap.xml"))
    source = load_variant(write_variant(tmp_path, settings, seed=site.url("/"))).sources[0]

    config = config_for_source(source)
    assert (config.max_bytes, config.robots_sitemaps, config.retries) == (5000, False, 0)  # from options
    assert (config.per_host_delay_s, config.per_host_concurrency, config.max_pages) == (0, 1, 5)
    assert config_for_source(source, max_pages=2).max_pages == 2  # overrides win

    result = crawl_source(source)  # allow_addresses from the YAML: the loopback server may be crawled
    assert isinstance(result, CrawlResult) and result.warc_dir == tmp_path / "warcs"
    outcomes = {r.url.removeprefix(site.url("")): (r.outcome, r.reason) for r in result.records}
    # /docs/private denied, /blog not allowed: the links and the sitemap entry are counted, never fetched
    assert outcomes == {"/": ("fetched", ""), "/docs/a.html": ("fetched", ""), "/docs/listed.html": ("fetched", "")}
    assert result.stats.counters["links_out_of_scope"] == 2
    assert result.stats.counters["sitemap_urls_out_of_scope"] == 1
    assert {hit.headers["User-Agent"] for hit in site.hits} == {"ExampleBot/2.0"}
    assert [h.path for h in site.hits].count("/sitemap.xml") == 1


def test_bad_crawl_settings_name_the_source_and_the_field(tmp_path):
    variant = load_variant(write_variant(tmp_path, "    deny_paths: ['(']\n    options: {max_bytez: 1}\n"))
    with pytest.raises(ConfigError) as raised:
        config_for_source(variant.sources[0])
    lines = str(raised.value).splitlines()
    assert lines[0] == f"crawl source 'web' ({tmp_path / 'warcs'}): invalid crawl settings"
    assert lines[1].startswith("  field 'deny_paths': Value error, '(' is not a valid regex")
    assert lines[2] == "  field 'options.max_bytez': Extra inputs are not permitted"
    with pytest.raises(ConfigError, match=r"field 'max_depth \(override\)': Input should be greater than or equal"):
        config_for_source(load_variant(write_variant(tmp_path)).sources[0], max_depth=-1)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ("    user_agnet: x\n", "field 'sources.0.crawl.user_agnet': Extra inputs are not permitted"),
        ("    per_host_delay_s: -1\n", "field 'sources.0.crawl.per_host_delay_s': Input should be greater than"),
        ("    options: {seeds: []}\n", "field 'sources.0.crawl.options': Value error, set seeds on the source itself"),
    ],
)
def test_variant_level_errors_stay_clear(tmp_path, settings, message):
    path = write_variant(tmp_path, settings)
    with pytest.raises(ConfigError) as raised:
        load_variant(path)
    assert str(raised.value).startswith(f"{path}: invalid variant\n")
    assert message in str(raised.value)


def test_crawl_settings_do_not_change_the_extract_hash(tmp_path):
    plain = load_variant(write_variant(tmp_path, name="plain"))
    tuned = load_variant(write_variant(tmp_path, SETTINGS.format(sitemap="http://127.0.0.1:9/s.xml"), name="tuned"))
    other_extractor = load_variant(write_variant(tmp_path, "    extractor: plain\n", name="other"))
    assert tuned.sources[0].user_agent == "ExampleBot/2.0" and tuned.sources[0].options["max_bytes"] == 5000
    assert plain.stage_hash("extract") == tuned.stage_hash("extract")
    assert plain.stage_hash("extract") != other_extractor.stage_hash("extract")  # extraction settings still count
    assert set(tuned.stage_config("extract")["sources"][0]) == {
        "name", "path", "limit", "extractor", "extractor_options", "type"
    }  # fmt: skip
