"""Bad inputs that used to kill a whole variant (issue 14.1, 14.13): each becomes one Rejection naming the file, the
line or offset and the reason, and the good records before AND after it come through. Exact counts throughout."""

from __future__ import annotations

import gzip
import json
import os
import zlib
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import TypeAdapter

from catalog.hashing import files_hash
from catalog.records import Rejection
from catalog.variant import SourceConfig
from extract.records import RawDocument
from extract.sources import open_source

_CONFIG = TypeAdapter(SourceConfig)


def read(**cfg) -> tuple[list[RawDocument], list[Rejection], dict[str, int]]:
    cfg.setdefault("name", "bad")
    source = open_source(_CONFIG.validate_python(cfg))
    items = list(source.iter_documents())
    docs = [i for i in items if isinstance(i, RawDocument)]
    rejections = [i for i in items if isinstance(i, Rejection)]
    return docs, rejections, source.stats.as_dict()


def jsonl_member(first: int, count: int) -> bytes:
    lines = "".join(json.dumps({"id": f"r{i}", "text": f"record {i}"}) + "\n" for i in range(first, first + count))
    return gzip.compress(lines.encode())


def corrupt(member: bytes) -> bytes:
    """Flip deflate bytes past the 10-byte gzip header: zlib reports invalid data mid-member."""
    damaged = bytearray(member)
    for i in range(20, 60):
        damaged[i] ^= 0xA5
    return bytes(damaged)


# ------------------------------------------------------------------ gzip / zlib
def test_corrupt_gzip_member_mid_stream_resyncs_at_the_next_member(tmp_path: Path) -> None:
    members = [jsonl_member(100 * m, 100) for m in range(5)]
    path = tmp_path / "multi.jsonl.gz"
    path.write_bytes(members[0] + members[1] + corrupt(members[2]) + members[3] + members[4])
    docs, rejections, stats = read(type="jsonl", path=path, id_field="id")

    ids = [d.content for d in docs]
    assert ids[:200] == [f"record {i}" for i in range(200)]  # every record before the damage
    assert ids[-200:] == [f"record {i}" for i in range(300, 500)]  # every record of the intact members after it
    damaged_start = len(members[0]) + len(members[1])
    [damage] = [r for r in rejections if r.reason == "corrupt_compressed_stream"]
    assert damage.input_ref.startswith(f"{path}:")
    assert f"compressed bytes from {damaged_start} to {damaged_start + len(members[2])} skipped" in damage.detail
    assert "Error -3 while decompressing data" in damage.detail
    # the corrupt member's records are lost, except those zlib decoded before it noticed the damage
    assert stats["documents"] == len(docs) and 400 <= len(docs) < 500
    assert stats["rejected_corrupt_compressed_stream"] == 1
    assert sum(stats.get(k, 0) for k in ("rejected_bad_json", "rejected_missing_text")) <= 1  # a cut line at most
    assert len(rejections) == sum(v for k, v in stats.items() if k.startswith("rejected_"))


def test_the_reproduction_invalid_distance_too_far_back(tmp_path: Path) -> None:
    # The reported error: a back-reference before the start of the window (a flipped bit in a distance code).
    member = gzip.compress(b"".join(json.dumps({"text": f"abc {i} " * 4}).encode() + b"\n" for i in range(200)))
    damaged = None
    for i in range(40, len(member) - 8):  # find a single-byte change that gives exactly that error
        candidate = bytearray(member)
        candidate[i] ^= 0x10
        try:
            zlib.decompress(bytes(candidate), zlib.MAX_WBITS | 16)
        except zlib.error as exc:
            if "invalid distance too far back" in str(exc):
                damaged = bytes(candidate)
                break
    assert damaged is not None
    path = tmp_path / "d.jsonl.gz"
    path.write_bytes(jsonl_member(0, 10) + damaged + jsonl_member(10, 10))
    docs, rejections, stats = read(type="jsonl", path=path)
    assert [d.content for d in docs][:10] == [f"record {i}" for i in range(10)]
    assert [d.content for d in docs][-10:] == [f"record {i}" for i in range(10, 20)]
    assert [r.reason for r in rejections].count("corrupt_compressed_stream") == 1
    assert "invalid distance too far back" in next(r.detail for r in rejections if r.reason.startswith("corrupt"))


def test_damaged_single_member_and_zlib_stream_say_the_rest_is_lost(tmp_path: Path) -> None:
    good = b"".join(json.dumps({"text": f"t{i}"}).encode() + b"\n" for i in range(2000))
    single = tmp_path / "single.jsonl.gz"
    single.write_bytes(corrupt(gzip.compress(good))[:2000])
    as_zlib = tmp_path / "stream.jsonl.gz"  # a zlib stream under a .gz name: read too (the header is detected)
    as_zlib.write_bytes(zlib.compress(good))
    cut_zlib = tmp_path / "zcut.jsonl.gz"
    cut_zlib.write_bytes(corrupt(zlib.compress(good)))
    docs, rejections, stats = read(type="jsonl", path=tmp_path)

    assert [r.input_ref.split(":")[0] for r in rejections] == [str(single), str(cut_zlib)]
    assert all(r.reason == "corrupt_compressed_stream" for r in rejections)
    assert all("to the end are unreadable (no intact stream follows)" in r.detail for r in rejections)
    assert stats == {"documents": 2000, "rejected_corrupt_compressed_stream": 2}  # the intact zlib stream, whole


def test_damaged_bz2_stream_resyncs_at_the_next_stream(tmp_path: Path) -> None:
    # pbzip2 and Wikipedia's multistream dumps write many bz2 streams: one damaged stream costs only itself
    import bz2

    streams = [
        bz2.compress(
            b"".join(json.dumps({"text": f"record {i}"}).encode() + b"\n" for i in range(s * 100, s * 100 + 100))
        )
        for s in range(4)
    ]
    damaged = bytearray(streams[1])
    for i in range(30, 50):
        damaged[i] ^= 0x5A
    path = tmp_path / "multi.jsonl.bz2"
    path.write_bytes(streams[0] + bytes(damaged) + streams[2] + streams[3])
    docs, rejections, stats = read(type="jsonl", path=path)
    assert [d.content for d in docs] == [f"record {i}" for i in list(range(100)) + list(range(200, 400))]
    [rejection] = rejections
    start = len(streams[0])
    assert rejection.reason == "corrupt_compressed_stream" and rejection.detail.startswith("bz2: ")
    assert f"compressed bytes from {start} to {start + len(streams[1])} skipped" in rejection.detail
    assert stats == {"documents": 300, "rejected_corrupt_compressed_stream": 1}


def test_truncated_gzip_keeps_every_complete_line(tmp_path: Path) -> None:
    data = jsonl_member(0, 1000)
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(data[: len(data) // 2])
    docs, rejections, stats = read(type="jsonl", path=path)
    assert [d.content for d in docs] == [f"record {i}" for i in range(len(docs))] and len(docs) > 100
    [rejection] = rejections
    assert rejection.reason == "corrupt_compressed_stream" and "truncated" in rejection.detail
    assert rejection.input_ref == f"{path}:{len(docs) + 1}"


@pytest.mark.parametrize("source_type", ["trec", "html", "mediawiki"])
def test_other_readers_of_gzip_reject_the_damage_and_go_on(tmp_path: Path, fixtures_dir: Path, source_type) -> None:
    if source_type == "trec":
        docs = [f"<DOC><DOCNO>d{i}</DOCNO><TEXT>text {i}</TEXT></DOC>\n" for i in range(300)]
        body = [gzip.compress("".join(docs[k : k + 100]).encode()) for k in (0, 100, 200)]
        (tmp_path / "a.trec.gz").write_bytes(body[0] + corrupt(body[1]) + body[2])
        expect_docs = 200
    elif source_type == "html":
        (tmp_path / "a.html.gz").write_bytes(corrupt(gzip.compress(b"<html><p>" + b"word " * 5000 + b"</p></html>")))
        (tmp_path / "b.html.gz").write_bytes(gzip.compress(b"<html><p>fine</p></html>"))
        expect_docs = 1
    else:
        pair = (fixtures_dir / "extract/mediawiki/pair-0.10.xml").read_bytes()
        (tmp_path / "a.xml.gz").write_bytes(corrupt(gzip.compress(pair * 3)))
        (tmp_path / "b.xml.gz").write_bytes(gzip.compress(pair))
        expect_docs = 1
    docs, rejections, stats = read(type=source_type, path=tmp_path)
    assert [r.reason for r in rejections] == ["corrupt_compressed_stream"]
    assert "a." in Path(rejections[0].input_ref.split("#")[0].split(":")[0]).name
    assert len(docs) == expect_docs == stats["documents"]


# ------------------------------------------------------------------ MediaWiki
def test_mediawiki_non_integer_namespace_key_is_one_rejection(tmp_path: Path) -> None:
    pages = "".join(
        f"<page><title>Page {i}</title><ns>0</ns><id>{i}</id><revision><text>text {i}</text></revision></page>"
        for i in range(89)
    )
    xml = (
        '<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.10/"><siteinfo><namespaces>'
        '<namespace key="abc">Broken</namespace><namespace key="1">Talk</namespace>'
        f"</namespaces></siteinfo>{pages}<page><title>Talk:Chat</title><id>90</id>"
        "<revision><text>talk</text></revision></page></mediawiki>"
    )
    path = tmp_path / "export.xml"
    path.write_text(xml)
    docs, rejections, stats = read(type="mediawiki", path=path)
    assert [d.title for d in docs] == [f"Page {i}" for i in range(89)]
    [rejection] = rejections
    assert (rejection.input_ref, rejection.reason) == (f"{path}#siteinfo", "bad_siteinfo")
    assert "namespace key 'abc'" in rejection.detail and "Broken" in rejection.detail
    assert stats == {"documents": 89, "rejected_bad_siteinfo": 1, "skipped_namespace": 1}  # Talk: still mapped


# ------------------------------------------------------------------ file names and JSON
def test_file_names_that_are_not_utf8_are_read_under_an_escaped_name(tmp_path: Path) -> None:
    folder = os.fsencode(tmp_path / "pages")
    os.mkdir(folder)
    for name, body in ((b"caf\xe9.html", b"<p>latin-1 name</p>"), (b"plain.html", b"<p>plain</p>")):
        with open(os.path.join(folder, name), "wb") as f:
            f.write(body)
    docs, rejections, stats = read(type="html", path=tmp_path / "pages")
    assert rejections == [] and stats == {"documents": 2}
    assert sorted(d.input_ref for d in docs) == [f"{tmp_path}/pages/caf\\xe9.html", f"{tmp_path}/pages/plain.html"]
    for d in docs:
        d.input_ref.encode("utf-8")  # what Parquet and the catalog need
    assert len({d.doc_id for d in docs}) == 2
    assert len(files_hash(sorted((tmp_path / "pages").iterdir()), tmp_path / "pages")) == 16  # the fingerprint


def test_deeply_nested_json_line_is_one_rejection(tmp_path: Path) -> None:
    path = tmp_path / "deep.jsonl"
    lines = ['{"text": "before"}', "[" * 100_000, '{"text": "after"}', "{" * 50_000, '{"text": "last"}']
    path.write_text("\n".join(lines) + "\n")
    docs, rejections, stats = read(type="jsonl", path=path)
    assert [d.content for d in docs] == ["before", "after", "last"]
    assert [(r.input_ref, r.reason) for r in rejections] == [(f"{path}:2", "bad_json"), (f"{path}:4", "bad_json")]
    assert "nested too deeply" in rejections[0].detail
    assert stats == {"documents": 3, "rejected_bad_json": 2}


# ------------------------------------------------------------------ Parquet (14.13)
def test_corrupt_parquet_page_loses_only_its_row_group(tmp_path: Path) -> None:
    n, group = 3000, 1000
    table = pa.table({"text": [f"row {i} " + "x" * 50 for i in range(n)]})
    path = tmp_path / "d.parquet"
    pq.write_table(table, path, row_group_size=group, compression="snappy")
    meta = pq.ParquetFile(path).metadata
    column = meta.row_group(1).column(0)
    start = column.dictionary_page_offset if column.has_dictionary_page else column.data_page_offset
    data = bytearray(path.read_bytes())
    for i in range(start + 40, start + column.total_compressed_size - 10):  # the page's body, not its header
        data[i] = 0xFF
    path.write_bytes(bytes(data))

    docs, rejections, stats = read(type="parquet", path=path)
    assert [d.content.split()[1] for d in docs] == [str(i) for i in list(range(0, 1000)) + list(range(2000, 3000))]
    [rejection] = rejections
    assert (rejection.input_ref, rejection.reason) == (f"{path}#rowgroup1", "corrupt_row_group")
    assert "rows 1000-1999" in rejection.detail
    assert stats == {"documents": 2000, "rejected_corrupt_row_group": 1}


# ------------------------------------------------------------------ <meta charset> labels browsers ignore (14.13)
@pytest.mark.parametrize(
    "label", ["hex", "rot13", "base64", "undefined", "idna", "utf-7", "utf-16", "UTF-16LE", "utf-32"]
)
def test_meta_charset_that_cannot_apply_falls_back_to_detection(tmp_path: Path, label: str) -> None:
    from extract.extractors import get_extractor
    from extract.extractors.base import document_text
    from extract.sources.charset import decode_bytes

    body = "<p>Café crème brûlée à la française, naïve façade, déjà vu, garçon.</p>" * 10
    page = f'<html><head><meta charset="{label}"><title>T</title></head><body>{body}</body></html>'
    (tmp_path / "page.html").write_bytes(page.encode("cp1252"))
    [doc], rejections, _ = read(type="html", path=tmp_path)
    assert rejections == []
    assert doc.encoding in ("cp1252", "iso8859-1", "iso8859-15")  # detected, as browsers do
    assert document_text(doc) == page
    if not label.lower().startswith(("utf-16", "utf-32")):  # (real UTF-16 bytes have their own label: honoured)
        assert decode_bytes(page.encode("cp1252"), label) == page  # a label that is no charset is never applied
    title, text = get_extractor("trafilatura").extract(doc)
    assert "crème brûlée" in text


# ------------------------------------------------------------------ WARC: resync at the next record
def warc_records(count: int, compress: bool) -> list[bytes]:
    """``count`` HTML response records, each written on its own (one gzip member each when compressed)."""
    import io as _io

    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    out = []
    for i in range(count):
        buffer = _io.BytesIO()
        writer = WARCWriter(buffer, gzip=compress)
        headers = StatusAndHeaders("200 OK", [("Content-Type", "text/html; charset=utf-8")], protocol="HTTP/1.1")
        body = f"<html><body><p>page {i} " + "text " * 200 + "</p></body></html>"
        record = writer.create_warc_record(
            f"https://site.test/{i}", "response", payload=_io.BytesIO(body.encode()), http_headers=headers
        )
        writer.write_record(record)
        out.append(buffer.getvalue())
    return out


@pytest.mark.parametrize("compress", [True, False])
def test_damaged_warc_record_mid_file_resyncs_at_the_next_record(tmp_path: Path, compress: bool) -> None:
    records = warc_records(5, compress)
    if compress:
        damaged = corrupt(records[2])
    else:
        damaged = records[2].replace(b"WARC/1.", b"WXRC/1.", 1)  # its header line is garbage
    path = tmp_path / ("d.warc.gz" if compress else "d.warc")
    path.write_bytes(records[0] + records[1] + damaged + records[3] + records[4])
    docs, rejections, stats = read(type="warc", path=path)

    assert [d.url for d in docs] == [f"https://site.test/{i}" for i in (0, 1, 3, 4)]
    [rejection] = rejections
    start, resume = len(records[0]) + len(records[1]), sum(len(r) for r in records[:3])
    assert (rejection.input_ref, rejection.reason) == (f"{path}#{start}", "corrupt_warc_record")
    assert f"bytes {start} to {resume} skipped, reading resumed at the next record" in rejection.detail
    assert stats == {"documents": 4, "rejected_corrupt_warc_record": 1}


def test_a_cut_warc_still_ends_as_one_truncated_warc(tmp_path: Path) -> None:
    records = warc_records(3, True)
    path = tmp_path / "cut.warc.gz"
    path.write_bytes(records[0] + records[1] + records[2][: len(records[2]) // 2])
    docs, rejections, stats = read(type="warc", path=path)
    assert [d.url for d in docs] == ["https://site.test/0", "https://site.test/1"]
    assert [(r.input_ref, r.reason) for r in rejections] == [
        (f"{path}#{len(records[0]) + len(records[1])}", "truncated_warc")
    ]
    assert "the rest of the file is unreadable" in rejections[0].detail


# ------------------------------------------------------------------ the extract stage over all of it
def test_the_extract_stage_survives_every_bad_input_and_writes_its_rejections(tmp_path: Path) -> None:
    """What ``reread build`` runs for a source: the damaged gzip member, the deep JSON line and the file name that is
    not UTF-8 cost only themselves; documents and rejections are written (Parquet, catalog rows) and counted."""
    from catalog.artifacts import ArtifactStore
    from catalog.stage_runner import StageSpec, execute_stage
    from catalog.variant import load_variant
    from extract.stage import EXTRACT_STAGE_VERSION, run_extract, source_fingerprint

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    body = "a sentence long enough to be kept by the extractor as a real document. " * 3
    members = [
        gzip.compress(b"".join(json.dumps({"text": f"{m}-{i} {body}"}).encode() + b"\n" for i in range(10)))
        for m in range(3)
    ]
    (corpus / "a.jsonl.gz").write_bytes(members[0] + corrupt(members[1]) + members[2])
    (corpus / "b.jsonl").write_text("\n".join([json.dumps({"text": f"b-0 {body}"}), "[" * 100_000]) + "\n")
    with open(os.path.join(os.fsencode(corpus), b"c-\xff.jsonl"), "wb") as f:
        f.write(json.dumps({"text": f"c-0 {body}"}).encode() + b"\n")
    variant_path = tmp_path / "variant.yaml"
    variant_path.write_text("name: bad\nsources:\n  - {name: corpus, type: jsonl, path: corpus}\n")
    variant = load_variant(variant_path)
    [source] = variant.sources
    spec = StageSpec(
        "extract", EXTRACT_STAGE_VERSION, variant.stage_hash("extract"), source_fingerprint(source), "corpus"
    )
    manifest, _ = execute_stage(ArtifactStore(tmp_path / "data"), spec, lambda out: run_extract(variant, "corpus", out))

    texts = pl.read_parquet(manifest.file_paths())["text"].to_list() if manifest.file_paths() else []
    firsts = sorted(t.split()[0] for t in texts)
    assert [t for t in firsts if t.startswith("0-")] == [f"0-{i}" for i in range(10)]  # before the damage
    assert [t for t in firsts if t.startswith("2-")] == sorted(f"2-{i}" for i in range(10))  # after it
    assert "b-0" in firsts and "c-0" in firsts
    rejected = pl.read_parquet(manifest.folder / "rejections.parquet")
    assert sorted(rejected["reason"].to_list()) == ["bad_json", "corrupt_compressed_stream"]
    assert manifest.stats["rejected_corrupt_compressed_stream"] == 1 and manifest.stats["rejected_bad_json"] == 1
