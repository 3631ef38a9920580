"""Sources stream real inputs into RawDocuments; broken inputs end as counted Rejections without losing the rest."""

from __future__ import annotations

import bz2
import gzip
import io
import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import TypeAdapter
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from catalog.errors import ConfigError
from catalog.hashing import content_hash
from catalog.records import Rejection
from catalog.variant import SourceConfig
from extract.records import RawDocument
from extract.sources import open_source, source_config_for_path
from extract.stage import source_fingerprint

_CONFIG = TypeAdapter(SourceConfig)


def read(**cfg) -> tuple[list[RawDocument], list[Rejection], dict[str, int]]:
    cfg.setdefault("name", "test")
    source = open_source(_CONFIG.validate_python(cfg))
    items = list(source.iter_documents())
    docs = [i for i in items if isinstance(i, RawDocument)]
    rejections = [i for i in items if isinstance(i, Rejection)]
    return docs, rejections, source.stats.as_dict()


# ------------------------------------------------------------------ WARC
# HTML (and text) response records with a 2xx status, per file, counted with warcio independently (SOURCE.md).
WARC_DOCUMENTS = {
    "jwarc_cc.warc.gz": 1,
    "pywb_iana.warc.gz": 16,  # 48 responses: 20 HTML of which 4 are 302 redirects, the rest scripts/images/css
    "resiliparse_clueweb-quirk.warc.gz": 29,
    "resiliparse_warcfile.warc.gz": 16,
    "warcio_example-iana.org-chunked.warc": 1,
    "warcio_example.warc.gz": 1,
}


@pytest.mark.parametrize("name", sorted(WARC_DOCUMENTS))
def test_every_shared_warc_parses_with_expected_record_count(shared_data: Path, name: str) -> None:
    docs, rejections, stats = read(type="warc", path=shared_data / "warc" / name)
    assert rejections == []
    assert len(docs) == WARC_DOCUMENTS[name]
    assert stats["documents"] == WARC_DOCUMENTS[name]
    for doc in docs:
        assert doc.content_type == "text/html"
        assert doc.url.startswith("http")
        assert doc.input_ref.startswith(f"{shared_data / 'warc' / name}#")
        assert len(doc.content) > 100
    assert len({d.doc_id for d in docs}) == len(docs)


def test_warc_skips_are_counted_and_charsets_come_from_headers(shared_data: Path) -> None:
    _, _, stats = read(type="warc", path=shared_data / "warc" / "pywb_iana.warc.gz")
    assert stats == {"documents": 16, "skipped_content_type": 28, "skipped_http_status": 4}
    clueweb, _, _ = read(type="warc", path=shared_data / "warc" / "resiliparse_clueweb-quirk.warc.gz")
    assert {d.encoding for d in clueweb} == {"euc_jp"}  # declared in the HTTP header, not UTF-8


def test_warc_chunked_payload_is_decoded(fixtures_dir: Path) -> None:
    (doc,), _, _ = read(type="warc", path=fixtures_dir / "extract/warc/warcio_example-iana.org-chunked.warc")
    assert doc.url == doc.source_doc_id == "http://www.iana.org/"  # the record's target URI is its id in the WARC
    assert doc.content.rstrip().endswith(b"</html>")
    assert doc.input_ref.endswith("#405")


def test_warc_content_type_filter_from_config(fixtures_dir: Path) -> None:
    docs, _, stats = read(type="warc", path=fixtures_dir / "extract/warc", content_types=["text/plain"])
    assert docs == [] and stats["skipped_content_type"] == 2


@pytest.mark.parametrize("compress", [False, True], ids=["warc", "warc.gz"])
def test_truncated_warc_yields_good_records_then_one_rejection(fixtures_dir: Path, tmp_path: Path, compress) -> None:
    good = (fixtures_dir / "extract/warc/warcio_example-iana.org-chunked.warc").read_bytes()
    (one,), _, _ = read(type="warc", path=fixtures_dir / "extract/warc/warcio_example-iana.org-chunked.warc")
    # two copies of the response-bearing file, the second cut in the middle of its response payload
    data = good + good[: len(good) // 2]
    path = tmp_path / ("cut.warc.gz" if compress else "cut.warc")
    if compress:  # one gzip member per record would be usual; one member for all still must not crash
        path.write_bytes(gzip.compress(good) + gzip.compress(good)[: len(gzip.compress(good)) // 2])
    else:
        path.write_bytes(data)
    docs, rejections, stats = read(type="warc", path=path)
    assert len(docs) == 1 and docs[0].content == one.content
    assert len(rejections) == 1
    assert rejections[0].reason == "truncated_warc"
    assert stats["rejected_truncated_warc"] == 1
    assert rejections[0].input_ref.startswith(f"{path}#")


def test_uri_repeated_in_a_warc_gets_distinct_doc_ids(fixtures_dir: Path, tmp_path: Path) -> None:
    good = (fixtures_dir / "extract/warc/jwarc_cc.warc.gz").read_bytes()
    (tmp_path / "twice.warc.gz").write_bytes(good + good)
    docs, _, _ = read(type="warc", path=tmp_path / "twice.warc.gz")
    assert [d.url for d in docs] == ["http://commoncrawl.org/"] * 2
    assert docs[0].doc_id != docs[1].doc_id


def test_crawl_source_reads_a_warc_folder(fixtures_dir: Path) -> None:
    docs, _, _ = read(type="crawl", path=fixtures_dir / "extract/warc")
    assert sorted(d.url for d in docs) == ["http://commoncrawl.org/", "http://www.iana.org/"]
    assert {d.doc_id for d in docs} == {content_hash(f"test\x00{d.url}") for d in docs}


def write_crawl_warc(path: Path, pages: list[tuple[str, str, str]]) -> None:
    """A WARC like the crawler's: (url, status line, html body) responses; "304" writes a revisit."""
    with open(path, "wb") as f:
        writer = WARCWriter(f, gzip=True)
        for url, status, body in pages:
            headers = StatusAndHeaders(status, [("Content-Type", "text/html; charset=utf-8")], protocol="HTTP/1.1")
            kind = "revisit" if status.startswith("304") else "response"
            writer.write_record(
                writer.create_warc_record(url, kind, payload=io.BytesIO(body.encode()), http_headers=headers)
            )


def test_crawl_source_keeps_only_the_newest_answer_per_url(tmp_path: Path) -> None:
    a, b, c = "https://site.test/a", "https://site.test/b", "https://site.test/c"
    write_crawl_warc(tmp_path / "crawl-20260101T000000000000Z-00000.warc.gz",
                     [(a, "200 OK", "<p>a old</p>"), (b, "200 OK", "<p>b</p>"), (c, "200 OK", "<p>c</p>")])  # fmt: skip
    write_crawl_warc(tmp_path / "crawl-20260201T000000000000Z-00000.warc.gz",
                     [(a, "200 OK", "<p>a new</p>"), (b, "404 Not Found", "gone"), (c, "304 Not Modified", "")])  # fmt: skip
    docs, rejections, stats = read(type="crawl", path=tmp_path)
    assert rejections == []
    assert sorted((d.url, d.content) for d in docs) == [(a, b"<p>a new</p>"), (c, b"<p>c</p>")]
    assert {d.doc_id for d in docs} == {content_hash(f"test\x00{a}"), content_hash(f"test\x00{c}")}
    assert stats["skipped_superseded"] == 2  # old a, old b (hidden by the newer 404)
    plain_warc, _, _ = read(type="warc", path=tmp_path)  # a plain WARC source keeps every 2xx copy
    assert sorted(d.content for d in plain_warc) == [b"<p>a new</p>", b"<p>a old</p>", b"<p>b</p>", b"<p>c</p>"]


# ------------------------------------------------------------------ HTML files
def test_html_folder_with_gz_and_plain_files(fixtures_dir: Path) -> None:
    docs, rejections, _ = read(type="html", path=fixtures_dir / "extract/html", pattern="*.htm*")
    assert rejections == []
    assert [Path(d.input_ref).name[:8] for d in docs] == ["85439e26", "ba07d1e6"]
    assert all(d.encoding == "utf-8" for d in docs)
    assert b"iPhone" in docs[0].content  # decompressed
    assert docs[0].doc_id == content_hash(
        "test\x0085439e26c41c75901820d01a13e8cea7836abb58635ea3986f71a163ab0311d3.html.gz"
    )


def test_html_charset_from_meta_and_detection(tmp_path: Path) -> None:
    body = "<p>Café crème brûlée à la française, naïve façade, über straße — déjà vu.</p>" * 20
    (tmp_path / "a_latin1.html").write_bytes(
        f"<html><head><meta charset=iso-8859-1></head><body>{body.replace('—', '-')}</body></html>".encode("latin-1")
    )
    (tmp_path / "b_cp1252.html").write_bytes(f"<html><body>{body}</body></html>".encode("cp1252"))
    (tmp_path / "c_utf8.html").write_bytes(f"<html><body>{body}</body></html>".encode())
    docs, _, _ = read(type="html", path=tmp_path)
    assert [d.encoding for d in docs][0] == "iso8859-1"
    assert docs[1].content.decode(docs[1].encoding) == f"<html><body>{body}</body></html>"
    assert docs[2].encoding == "utf-8"


def test_limit_caps_documents(shared_data: Path) -> None:
    docs, _, stats = read(type="trec", path=shared_data / "retrieval/vaswani_npl/doc-text.trec", limit=7)
    assert len(docs) == 7 and stats["documents"] == 7


def test_missing_path_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        read(type="html", path=tmp_path / "nope")


def test_file_fingerprint_hashes_the_names_and_bytes_a_source_reads(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.html").write_bytes(b"<p>a</p>")
    (tmp_path / "sub" / "b.htm").write_bytes(b"<p>b</p>")
    config = _CONFIG.validate_python({"type": "html", "path": tmp_path, "name": "t"})
    # the value extract artifacts were keyed by before sources fingerprinted themselves: caches stay valid
    assert source_fingerprint(config) == open_source(config).fingerprint() == "3ac97ea2a1f33904"
    (tmp_path / "notes.txt").write_text("not read by an html source")
    assert source_fingerprint(config) == "3ac97ea2a1f33904"
    (tmp_path / "sub" / "b.htm").write_bytes(b"<p>B</p>")
    changed = source_fingerprint(config)
    (tmp_path / "sub" / "b.htm").rename(tmp_path / "sub" / "c.htm")
    assert len({"3ac97ea2a1f33904", changed, source_fingerprint(config)}) == 3


# ------------------------------------------------------------------ datasets
def test_jsonl_field_mapping_and_bad_line(fixtures_dir: Path, tmp_path: Path) -> None:
    lines = (fixtures_dir / "extract/datasets/c4_3.jsonl").read_text().splitlines()
    path = tmp_path / "c4.jsonl"
    path.write_text("\n".join([lines[0], '{"id": "broken", "text": ', lines[1], '{"id": "x"}', lines[2]]) + "\n")
    docs, rejections, stats = read(type="jsonl", path=path, id_field="id", url_field="metadata.url")
    rows = [json.loads(line) for line in lines]
    assert [d.content for d in docs] == [r["text"] for r in rows]
    assert [d.url for d in docs] == [r["metadata"]["url"] for r in rows]
    assert docs[0].doc_id == content_hash(f"test\x00{rows[0]['id']}")
    assert [d.source_doc_id for d in docs] == [str(r["id"]) for r in rows]  # the id_field, as the user knows it
    assert [(r.reason, r.input_ref) for r in rejections] == [("bad_json", f"{path}:2"), ("missing_text", f"{path}:4")]
    assert stats == {"documents": 3, "rejected_bad_json": 1, "rejected_missing_text": 1}


def _items(source) -> list[tuple]:
    return [
        (i.doc_id, i.source_doc_id, i.content, i.input_ref) if isinstance(i, RawDocument) else (i.reason, i.input_ref)
        for i in source.iter_documents()
    ]


def test_jsonl_file_split_into_line_aligned_byte_spans_reads_like_the_whole_file(tmp_path: Path) -> None:
    """Spans of one large JSONL file give exactly the documents, ids and rejections of a whole-file read."""
    rows = [json.dumps({"text": f"document {i} " + "é∑ word " * (i % 7) * 9}, ensure_ascii=False) for i in range(30)]
    rows[4], rows[11], rows[20] = "", "{not json", "   "  # a blank line, a bad line, a blank-looking line
    path = tmp_path / "big.jsonl"
    path.write_text("\n".join(rows))  # the last line has no newline
    cfg = _CONFIG.validate_python({"type": "jsonl", "path": path, "name": "big"})
    size = path.stat().st_size
    shards = open_source(cfg).shards(max_bytes=size // 3 + 1)
    spans = [span for (span,) in shards]
    assert len(spans) == 3 and spans[0].start == 0 and spans[-1].end == size
    assert all(a.end == b.start for a, b in zip(spans, spans[1:], strict=False))
    data = path.read_bytes()
    assert all(data[span.start - 1 : span.start] == b"\n" for span in spans[1:])  # each starts a line
    assert [span.first_line for span in spans] == [data[: span.start].count(b"\n") + 1 for span in spans]

    whole = _items(open_source(cfg))
    in_spans = [item for span in spans for item in _items(open_source(cfg, [span]))]
    assert in_spans == whole and len(whole) == 28  # 27 documents and the bad line; blank lines are no record
    assert ("bad_json", f"{path}:12") in whole
    assert [i[1] for i in whole if len(i) == 4][-1] == "big.jsonl:30"  # ids: file:line, as in a whole-file read

    # the unit keys: each span fingerprinted by its own bytes; appending to the file keeps the earlier spans
    prints = [source_fingerprint(cfg, [span]) for span in spans]
    assert len(set(prints)) == 3 and prints[0] != source_fingerprint(cfg)
    with open(path, "a") as f:
        f.write("\n" + json.dumps({"text": "appended"}) + "\n")
    grown = [span for (span,) in open_source(cfg).shards(max_bytes=size // 3 + 1)]
    assert grown[:2] == spans[:2] and [source_fingerprint(cfg, [s]) for s in grown[:2]] == prints[:2]
    # a file under the limit, and a compressed one, are read whole
    assert open_source(cfg).shards(max_bytes=10 * size) == [["big.jsonl"]]
    gz = tmp_path / "gz"
    gz.mkdir()
    (gz / "big.jsonl.gz").write_bytes(gzip.compress(data))
    gz_cfg = _CONFIG.validate_python({"type": "jsonl", "path": gz, "name": "gz"})
    assert open_source(gz_cfg).shards(max_bytes=100) == [["big.jsonl.gz"]]


@pytest.mark.slow
def test_sharding_max_bytes_per_unit_makes_one_extract_unit_per_span_with_a_whole_read_s_documents(
    tmp_path: Path,
) -> None:
    import pickle

    import polars as pl

    from buildplan.build import extract_units
    from buildplan.units import run_unit
    from catalog.variant import load_variant

    lines = (Path(__file__).resolve().parents[2] / "sample_data" / "jsonl" / "c4_sample.jsonl").read_text()
    (tmp_path / "docs.jsonl").write_text("\n".join(lines.splitlines()[:30]) + "\n")
    config = "sources:\n  - {name: c4, type: jsonl, path: docs.jsonl, url_field: url, extractor: plain}\n"
    third = (tmp_path / "docs.jsonl").stat().st_size // 3 + 1
    (tmp_path / "spans.yaml").write_text(f"name: spans\n{config}sharding: {{max_bytes_per_unit: {third}}}\n")
    (tmp_path / "whole.yaml").write_text(f"name: whole\n{config}")
    spans, whole = load_variant(tmp_path / "spans.yaml"), load_variant(tmp_path / "whole.yaml")
    assert spans.stage_hash("extract") == whole.stage_hash("extract")  # units differ by their spans, not by config

    units = extract_units(spans, spans.sources[0], lambda shard: None)
    assert len(units) == 3 and all(u.shard.startswith("c4/docs.jsonl@") for u in units)
    units = [pickle.loads(pickle.dumps(u)) for u in units]  # what an executor ships to its workers
    (whole_unit,) = extract_units(whole, whole.sources[0], lambda shard: None)
    columns = ["doc_id", "source_doc_id", "url", "text", "raw_hash"]
    in_spans = pl.concat([pl.read_parquet(run_unit(u, str(tmp_path / "data"))[0].file_paths()) for u in units])
    in_one = pl.read_parquet(run_unit(whole_unit, str(tmp_path / "data"))[0].file_paths())
    assert in_one.height == 30 and in_spans.select(columns).equals(in_one.select(columns))


def test_jsonl_lone_surrogate_escapes_become_replacement_characters(tmp_path: Path) -> None:
    # json.loads turns "\\ud800" into a lone surrogate, which hashing and Parquet cannot encode: the run would die.
    path = tmp_path / "s.jsonl"
    path.write_text('{"id": "a\\udc00", "title": "T\\ud800", "text": "x\\ud83dy \\ud83d\\ude00"}\n')
    docs, rejections, stats = read(type="jsonl", path=path, id_field="id", title_field="title")
    assert rejections == []
    assert stats == {"documents": 1}
    assert (docs[0].content, docs[0].title) == ("x\ufffdy \U0001f600", "T\ufffd")
    assert docs[0].doc_id == content_hash("test\x00a\ufffd")


def test_jsonl_real_arxiv_nested_fields(shared_data: Path) -> None:
    path = shared_data / "pretraining_samples/arxiv_redpajama_sample.jsonl"
    docs, rejections, _ = read(type="jsonl", path=path, id_field="meta.arxiv_id", url_field="meta.url")
    assert len(docs) == 20 and rejections == []
    assert docs[0].url == "https://arxiv.org/abs/2208.13940"
    assert docs[0].doc_id == content_hash("test\x002208.13940")
    assert all(d.content_type == "text/plain" for d in docs)
    assert sum(len(d.content) for d in docs) == 1_168_697  # the character count SOURCE.md states


def test_parquet_read_in_batches_with_mapping(tmp_path: Path) -> None:
    n = 2500  # more than one record batch
    table = pa.table(
        {
            "body": [f"document number {i}" for i in range(n)],
            "key": [f"k{i}" for i in range(n)],
            "meta": [{"url": f"https://example.org/{i}", "title": f"T{i}"} for i in range(n)],
            "unused": list(range(n)),
        }
    )
    pq.write_table(table, tmp_path / "d.parquet", row_group_size=700)
    docs, rejections, _ = read(
        type="parquet", path=tmp_path, text_field="body", id_field="key", url_field="meta.url", title_field="meta.title"
    )
    assert rejections == [] and len(docs) == n
    assert (docs[1234].content, docs[1234].url, docs[1234].title) == (
        "document number 1234",
        "https://example.org/1234",
        "T1234",
    )
    assert docs[1234].doc_id == content_hash("test\x00k1234") and docs[1234].source_doc_id == "k1234"


def test_parquet_missing_text_column_rejects_rows(tmp_path: Path) -> None:
    pq.write_table(pa.table({"other": ["a", "b"]}), tmp_path / "d.parquet")
    docs, rejections, _ = read(type="parquet", path=tmp_path / "d.parquet")
    assert docs == [] and [r.reason for r in rejections] == ["missing_text", "missing_text"]


# ------------------------------------------------------------------ MediaWiki
def test_mediawiki_schema_010_namespaces(fixtures_dir: Path) -> None:
    path = fixtures_dir / "extract/mediawiki/pair-0.10.xml"
    docs, _, stats = read(type="mediawiki", path=path)
    assert [d.title for d in docs] == ["Çullu, Agdam"] and stats["skipped_namespace"] == 1
    both, _, _ = read(type="mediawiki", path=path, namespaces=[0, 1])
    assert [d.title for d in both] == ["Çullu, Agdam", "Talk:Çullu, Agdam"]
    assert all(d.content_type == "text/x-wiki" for d in both)


def test_mediawiki_schema_03_takes_latest_revision(fixtures_dir: Path) -> None:
    (doc,), _, _ = read(type="mediawiki", path=fixtures_dir / "extract/mediawiki/article-pear.xml")
    assert doc.title == "Pear"
    assert doc.meta["page_id"] == "24278"
    assert "{{Taxobox" in doc.content or "pear" in doc.content.lower()


def test_same_page_in_two_dump_files_of_one_source_gets_two_doc_ids(fixtures_dir: Path, tmp_path: Path) -> None:
    """Issue reproduction: page "Pear" (id 24278) in two dump files of one source, 865 vs 14,575 characters of
    different revisions, got one doc_id, so their chunks were indistinguishable. Each file's page is its own record;
    both keep the page id as their id in the source."""
    for name in ("article-pear.xml", "article-pear-0.10.xml"):
        shutil.copy(fixtures_dir / "extract/mediawiki" / name, tmp_path / name)
    docs, rejections, _ = read(type="mediawiki", path=tmp_path)
    assert rejections == [] and [d.title for d in docs] == ["Pear", "Pear"]
    assert len({d.doc_id for d in docs}) == 2 and len({d.content for d in docs}) == 2
    assert [d.source_doc_id for d in docs] == ["24278", "24278"]
    again, _, _ = read(type="mediawiki", path=tmp_path)
    assert [d.doc_id for d in again] == [d.doc_id for d in docs]  # stable across runs


def test_mediawiki_redirects_skipped(fixtures_dir: Path) -> None:
    docs, _, stats = read(type="mediawiki", path=fixtures_dir / "extract/mediawiki/article-pyrus.xml")
    assert docs == [] and stats == {"skipped_redirect": 1}


def test_mediawiki_bz2_streaming_equals_plain_xml(fixtures_dir: Path, tmp_path: Path) -> None:
    plain, _, _ = read(
        type="mediawiki", path=fixtures_dir / "extract/mediawiki/article-pyrus.xml", skip_redirects=False
    )
    packed, _, _ = read(
        type="mediawiki", path=fixtures_dir / "extract/mediawiki/article-pyrus.xml.bz2", skip_redirects=False
    )
    assert len(plain) == 1 and [(d.doc_id, d.content) for d in packed] == [(d.doc_id, d.content) for d in plain]
    pair = (fixtures_dir / "extract/mediawiki/pair-0.10.xml").read_bytes()
    (tmp_path / "pair.xml.bz2").write_bytes(bz2.compress(pair))
    (tmp_path / "pair.xml").write_bytes(pair)
    from_bz2, _, _ = read(type="mediawiki", path=tmp_path / "pair.xml.bz2", namespaces=[0, 1])
    from_xml, _, _ = read(type="mediawiki", path=tmp_path / "pair.xml", namespaces=[0, 1])
    assert [(d.title, d.content) for d in from_bz2] == [(d.title, d.content) for d in from_xml]


def test_bad_bz2_dump_is_a_counted_rejection_after_good_pages(fixtures_dir: Path, tmp_path: Path) -> None:
    pair = (fixtures_dir / "extract/mediawiki/pair-0.10.xml").read_bytes()
    packed = bz2.compress(pair)
    (tmp_path / "a_cut.xml.bz2").write_bytes(packed[: len(packed) - 40])
    (tmp_path / "b_garbage.xml.bz2").write_bytes(b"BZh9" + b"\x00not a bzip2 stream" * 50)
    (tmp_path / "c_good.xml").write_bytes(pair)
    docs, rejections, stats = read(type="mediawiki", path=tmp_path, namespaces=[0, 1])
    assert [r.reason for r in rejections] == ["corrupt_compressed_stream", "corrupt_compressed_stream"]
    assert "a_cut.xml.bz2" in rejections[0].input_ref and "b_garbage" in rejections[1].input_ref
    assert [d.title for d in docs][-2:] == ["Çullu, Agdam", "Talk:Çullu, Agdam"]  # the good file after them
    assert stats["rejected_corrupt_compressed_stream"] == 2


def test_broken_xml_is_a_rejection_after_good_pages(fixtures_dir: Path, tmp_path: Path) -> None:
    pair = (fixtures_dir / "extract/mediawiki/pair-0.10.xml").read_text()
    cut = pair.index("<title>Talk:")
    (tmp_path / "broken.xml").write_text(pair[:cut] + "<title>Talk: </oops>" + pair[cut:])
    docs, rejections, _ = read(type="mediawiki", path=tmp_path / "broken.xml")
    assert [d.title for d in docs] == ["Çullu, Agdam"]
    assert [r.reason for r in rejections] == ["broken_xml"]


# ------------------------------------------------------------------ wikitext and TREC
def test_wikitext_folder_titles_and_redirects(shared_data: Path) -> None:
    docs, _, stats = read(type="wikitext", path=shared_data / "mediawiki/wikitext_articles")
    assert len(docs) == 70 and stats["skipped_redirect"] == 1  # 71 files, redirect.txt is a redirect
    titles = {d.title for d in docs}
    assert {"Senate of Pakistan", "Canton-of-Etaples", "al Haytham"} <= titles


def test_trec_fixture_and_real_vaswani(fixtures_dir: Path, shared_data: Path) -> None:
    docs, _, _ = read(type="trec", path=fixtures_dir / "extract/datasets/vaswani_3.trec")
    assert [d.doc_id for d in docs] == [content_hash(f"test\x00{i}") for i in ("1", "2", "3")]
    assert [d.source_doc_id for d in docs] == ["1", "2", "3"]  # the DOCNO
    assert docs[1].content.startswith("an electronic analogue computer")
    all_docs, rejections, _ = read(type="trec", path=shared_data / "retrieval/vaswani_npl/doc-text.trec")
    assert len(all_docs) == 11429 and rejections == []


def test_trec_unterminated_doc_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "c.trec").write_text("<DOC><DOCNO>a</DOCNO>one</DOC>\n<DOC>\n<DOCNO>b</DOCNO>\ncut")
    docs, rejections, _ = read(type="trec", path=tmp_path / "c.trec")
    assert [d.content for d in docs] == ["one"] and [r.reason for r in rejections] == ["truncated_record"]


def test_source_config_for_path_guesses_the_type(fixtures_dir: Path) -> None:
    assert source_config_for_path(fixtures_dir / "extract/warc/jwarc_cc.warc.gz").type == "warc"
    assert source_config_for_path(fixtures_dir / "extract/mediawiki/article-pyrus.xml.bz2").type == "mediawiki"
    assert source_config_for_path(fixtures_dir / "extract/html/ground-truth.json").type == "html"
