"""Dump sources refresh by content hash: a new snapshot of a WARC or MediaWiki dump, where one of six pages changed,
sends only that page through the extractor, and the result equals extracting the snapshot from scratch."""

from __future__ import annotations

import io
from pathlib import Path

import polars as pl
import pytest
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from catalog.artifacts import ArtifactStore
from catalog.stage_runner import StageSpec, execute_stage
from catalog.variant import load_variant
from extract.stage import EXTRACT_STAGE_VERSION, run_extract, source_fingerprint

PAGES = 6
SENTENCE = "The river delta supports farming, fishing and a busy port for the whole region around it. "


def page_text(i: int, edition: int) -> str:
    return f"Page {i} edition {edition}. " + SENTENCE * (8 + i)


def write_warc(path: Path, changed: int | None) -> None:
    with open(path, "wb") as out:
        writer = WARCWriter(out, gzip=True)
        for i in range(PAGES):
            edition = 1 if i == changed else 0
            html = f"<html><head><title>P{i}</title></head><body><article><p>{page_text(i, edition)}</p></article>"
            body = (html + "</body></html>").encode()
            headers = StatusAndHeaders("200 OK", [("Content-Type", "text/html; charset=utf-8")], protocol="HTTP/1.1")
            record = writer.create_warc_record(
                f"https://dump.test/p{i}", "response", payload=io.BytesIO(body), http_headers=headers
            )
            writer.write_record(record)


def write_mediawiki(path: Path, changed: int | None) -> None:
    pages = "".join(
        f"<page><title>Article {i}</title><ns>0</ns><id>{i + 1}</id><revision><id>{100 + i}</id>"
        f"<text xml:space=\"preserve\">'''Article {i}''' {page_text(i, 1 if i == changed else 0)}</text>"
        "</revision></page>"
        for i in range(PAGES)
    )
    path.write_text(f'<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.10/" version="0.10">{pages}</mediawiki>')


DUMPS = {
    "warc": (write_warc, "dump.warc.gz", "trafilatura"),
    "mediawiki": (write_mediawiki, "dump.xml", "wikipedia"),
}


def extract(variant_path: Path, data_dir: Path, previous=None):
    variant = load_variant(variant_path)
    [source] = variant.sources
    spec = StageSpec(
        "extract", EXTRACT_STAGE_VERSION, variant.stage_hash("extract"), source_fingerprint(source), "dump"
    )
    manifest, _ = execute_stage(
        ArtifactStore(data_dir), spec, lambda out: run_extract(variant, "dump", out, previous=previous)
    )
    return manifest


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(DUMPS))
def test_a_new_dump_snapshot_extracts_only_the_changed_page(tmp_path, kind):
    write, name, extractor = DUMPS[kind]
    variant = tmp_path / "variant.yaml"
    variant.write_text(
        f"name: dumps\nextractor: {extractor}\nsources:\n  - {{name: dump, type: {kind}, path: {name}}}\n"
    )
    write(tmp_path / name, changed=None)
    first = extract(variant, tmp_path / "data")
    assert (first.stats["documents_extracted"], first.stats.get("documents_reused", 0)) == (PAGES, 0)

    write(tmp_path / name, changed=2)  # the next snapshot: page 2 was edited
    second = extract(variant, tmp_path / "data", previous=first)
    assert second.key != first.key  # the snapshot's content hash is the stage's input
    assert (second.stats["documents_extracted"], second.stats["documents_reused"]) == (PAGES, PAGES - 1)

    fresh = extract(variant, tmp_path / "fresh")  # the same snapshot, extracted from scratch
    assert fresh.key == second.key and fresh.content_hash == second.content_hash
    refreshed, scratch = (pl.read_parquet(m.file_paths()) for m in (second, fresh))
    assert refreshed.equals(scratch)
    assert "edition 1" in refreshed["text"][2] and "edition 0" in refreshed["text"][3]
