"""A rebuild after a source changed extracts only changed documents and embeds only new or changed chunk texts,
and searches like a full build."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from catalog.artifacts import ArtifactStore
from catalog.variant import load_variant

SAMPLE = Path(__file__).resolve().parents[2] / "sample_data"


def _write_source(folder: Path, changed: set[int]) -> None:
    lines = (SAMPLE / "jsonl" / "c4_sample.jsonl").read_text().splitlines()[:40]
    with open(folder / "docs.jsonl", "w") as f:
        for i, line in enumerate(lines):
            doc = json.loads(line)
            if i in changed:
                doc["text"] = f"Updated page {i}. " + doc["text"][::-1][:400]
            f.write(json.dumps({"id": str(i), "text": doc["text"], "url": f"https://c4.test/{i}"}) + "\n")


def _search(variant: Path, data_dir: Path) -> list[list[tuple[str, float]]]:
    from flows.datastore import open_retriever

    retriever = open_retriever(load_variant(variant), data_dir)
    hits = retriever.search(["gingerbread cards", "travel insurance", "music festival tickets"], k=10)
    return [[(h.chunk_id, round(h.score, 4)) for h in q] for q in hits]


def test_refresh_embeds_only_changed_chunks_and_matches_a_full_build(tmp_path, prefect_harness):
    from flows.build import run_build

    (tmp_path / "variant.yaml").write_text(
        "name: refreshing\nsources:\n  - {name: c4, type: jsonl, path: docs.jsonl, id_field: id, url_field: url, "
        "extractor: plain}\ndedup: {exact: true, near: false}\nchunking: {size: 64, overlap: 8}\n"
        "index: {refresh_max_change: 0.5}\n"  # the changed pages shrink: 110 of 344 vectors change
    )
    variant = tmp_path / "variant.yaml"
    _write_source(tmp_path, changed=set())
    first = run_build(variant, tmp_path / "data")
    total = next(s for s in first["stages"] if s["stage"] == "embed")["rows"]

    _write_source(tmp_path, changed={3, 17, 29, 35})  # 10% of the pages change
    second = run_build(variant, tmp_path / "data")
    extract = next(s for s in second["stages"] if s["stage"] == "extract")
    assert extract["stats"]["documents_reused"] == 36  # only the 4 changed pages went through the extractor
    embed = next(s for s in second["stages"] if s["stage"] == "embed")
    assert not embed["cached"]
    computed, reused = embed["stats"]["chunks_computed"], embed["stats"]["chunks_reused_by_text"]
    assert computed + reused == embed["rows"]
    assert 0 < computed <= 0.2 * total  # about the changed pages' chunks, not the corpus
    index = next(s for s in second["stages"] if s["stage"] == "index")
    assert index["stats"]["index_update"] == "incremental"  # the previous index was updated, not rebuilt
    assert index["stats"]["vectors_added"] == computed  # exactly the changed chunks went into faiss
    assert index["stats"]["vectors_removed"] == total - reused  # and their old versions came out

    third = run_build(variant, tmp_path / "data")  # nothing changed since: nothing runs
    assert [s["stage"] for s in third["stages"] if not s["cached"]] == []

    run_build(variant, tmp_path / "fresh")
    refreshed, fresh = _search(variant, tmp_path / "data"), _search(variant, tmp_path / "fresh")
    assert [[c for c, _ in q] for q in refreshed] == [[c for c, _ in q] for q in fresh]
    assert np.allclose([[s for _, s in q] for q in refreshed], [[s for _, s in q] for q in fresh], atol=1e-4)


# ---------------------------------------------------------------- a crawl source refreshed from a live site
class _Site:
    """20 article pages (C4 texts) and an index page linking them, on 127.0.0.1, with ETags (304 on a match).
    ``edit(i)`` changes page i's text, as a site editing an article would."""

    def __init__(self) -> None:
        import hashlib
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        texts = [json.loads(line)["text"] for line in (SAMPLE / "jsonl" / "c4_sample.jsonl").read_text().splitlines()]
        self.texts = {f"/p/{i}.html": t for i, t in enumerate(texts[40:60])}
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                body = site.body(self.path)
                if body is None:
                    self.send_response(404)
                    self.end_headers()
                    return
                etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
                self.send_response(304 if self.headers.get("If-None-Match") == etag else 200)
                self.send_header("ETag", etag)
                self.send_header("Content-Type", "text/plain" if self.path == "/robots.txt" else "text/html")
                self.send_header("Content-Length", "0" if self.headers.get("If-None-Match") == etag else str(len(body)))
                self.end_headers()
                if self.headers.get("If-None-Match") != etag:
                    self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def body(self, path: str) -> bytes | None:
        if path == "/robots.txt":
            return b"User-agent: *\nAllow: /\n"
        if path == "/":
            links = "".join(f'<li><a href="{p}">article {p}</a></li>' for p in self.texts)
            return f"<html><body><h1>Articles</h1><ul>{links}</ul></body></html>".encode()
        if path not in self.texts:
            return None
        paragraphs = "".join(f"<p>{p}</p>" for p in self.texts[path].split("\n") if p.strip())
        return f"<html><head><title>{path}</title></head><body><article>{paragraphs}</article></body></html>".encode()

    def edit(self, i: int) -> None:
        path = f"/p/{i}.html"
        sentences = self.texts[path].split(". ")
        self.texts[path] = ". ".join(sentences[len(sentences) // 2 :] + sentences[: len(sentences) // 2])

    def insert_sentence(self, i: int) -> None:
        """One sentence more, a third into page i's text, as a small edit to a long article."""
        path = f"/p/{i}.html"
        sentences = self.texts[path].split(". ")
        third = len(sentences) // 3
        self.texts[path] = ". ".join(
            [*sentences[:third], "We add one sentence here for the refresh", *sentences[third:]]
        )


def test_refresh_of_a_crawled_site_costs_what_changed_and_searches_like_a_full_build(tmp_path, prefect_harness):
    from catalog.db import Catalog
    from flows.build import run_build
    from flows.datastore import locate_datastore
    from flows.refresh import refresh
    from flows.runtime import run_flow_with_runner

    site = _Site()
    try:
        variant = tmp_path / "crawled.yaml"
        variant.write_text(
            f"name: crawled\nsources:\n  - name: site\n    type: crawl\n    path: crawl\n"
            f"    seeds: ['{site.url}/']\n    allow_addresses: [127.0.0.1]\n    per_host_delay_s: 0\n"
            "dedup: {exact: true, near: false}\nchunking: {size: 64, overlap: 8}\n"
        )
        first = run_flow_with_runner(refresh, variant, tmp_path / "data")["changes"]
        assert first["pages"] == {"site": {"new": 21, "skipped": 0}}
        total = first["embed"]["rows"]
        assert first["embed"]["new_work"] == total and first["index"]["update"] == "full build"

        unchanged = run_flow_with_runner(refresh, variant, tmp_path / "data")["changes"]
        assert unchanged["pages"] == {"site": {"unchanged": 21, "skipped": 0}}  # every page answered 304
        assert unchanged["executed"] == []  # no extraction, no embedding, no index work
        assert unchanged["extract"]["new_work"] == unchanged["embed"]["new_work"] == 0

        site.edit(3)
        site.edit(14)  # 2 of 20 articles change
        changed = run_flow_with_runner(refresh, variant, tmp_path / "data")["changes"]
        assert changed["pages"] == {"site": {"changed": 2, "unchanged": 19, "skipped": 0}}
        assert (changed["extract"]["new_work"], changed["extract"]["reused"]) == (2, 19)
        embedded = changed["embed"]["new_work"]
        assert 0 < embedded <= 0.2 * total  # about the two articles' chunks, not the site
        assert changed["index"]["update"] == "incremental"
        assert changed["index"]["vectors_added"] == embedded

        with Catalog.in_data_dir(tmp_path / "data") as catalog:
            records = catalog.fetch_records("crawled", "site")
        changes = sorted(r["change"] for r in records)
        assert changes == ["changed"] * 2 + ["unchanged"] * 19

        # One sentence inserted into a long article (38 chunks): chunk ids are content-defined, so only the chunks
        # whose text the insertion touched are new; the index is updated in place with O(1) vectors.
        long_page = f"{site.url}/p/2.html"
        chunks = pl.read_parquet(locate_datastore(load_variant(variant), tmp_path / "data").chunks)
        assert chunks.filter(pl.col("url") == long_page).height >= 30
        site.insert_sentence(2)
        inserted = run_flow_with_runner(refresh, variant, tmp_path / "data")["changes"]
        assert inserted["pages"] == {"site": {"changed": 1, "unchanged": 20, "skipped": 0}}
        assert inserted["index"]["update"] == "incremental"
        assert 0 < inserted["embed"]["new_work"] <= 3
        assert 0 < inserted["index"]["vectors_added"] <= 3 and 0 < inserted["index"]["vectors_removed"] <= 3

        run_build(variant, tmp_path / "fresh")  # a full build of the same crawl folder
        refreshed, fresh = _search(variant, tmp_path / "data"), _search(variant, tmp_path / "fresh")
        assert [[c for c, _ in q] for q in refreshed] == [[c for c, _ in q] for q in fresh]
        assert np.allclose([[s for _, s in q] for q in refreshed], [[s for _, s in q] for q in fresh], atol=1e-4)
    finally:
        site.server.shutdown()
        site.server.server_close()


def test_a_refresh_that_failed_after_crawling_keeps_its_change_report_for_the_retry(
    tmp_path, prefect_harness, monkeypatch
):
    import os
    import subprocess
    import sys

    import pytest

    from catalog.db import Catalog
    from catalog.errors import CatalogLockedError
    from flows.refresh import run_refresh

    site = _Site()
    try:
        variant = tmp_path / "crawled.yaml"
        variant.write_text(
            f"name: crawled\nsources:\n  - name: site\n    type: crawl\n    path: crawl\n"
            f"    seeds: ['{site.url}/']\n    allow_addresses: [127.0.0.1]\n    per_host_delay_s: 0\n"
            "dedup: {exact: true, near: false}\nchunking: {size: 64, overlap: 8}\n"
        )
        run_refresh(variant, tmp_path / "data")
        site.edit(3)
        site.edit(14)
        # Another process holds the catalog (an evaluation writing it): this refresh crawls, then cannot write.
        holder = subprocess.Popen(
            [sys.executable, "-c", "import sys; from catalog.db import Catalog; "
             f"c = Catalog.in_data_dir({str(tmp_path / 'data')!r}); print('held', flush=True); sys.stdin.read()"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
        )  # fmt: skip
        try:
            assert holder.stdout.readline().strip() == "held"
            monkeypatch.setenv("REREAD_LOCK_TIMEOUT", "2")  # it waits for the lock, then gives up
            with pytest.raises(CatalogLockedError):
                run_refresh(variant, tmp_path / "data")
            monkeypatch.delenv("REREAD_LOCK_TIMEOUT")
        finally:
            holder.stdin.close()
            holder.wait(timeout=60)

        retry = run_refresh(variant, tmp_path / "data")["changes"]
        # the pages the failed run fetched are unchanged on the site since, but not yet in the datastore
        assert retry["pages"] == {"site": {"changed": 2, "unchanged": 19, "skipped": 0}}
        assert (retry["extract"]["new_work"], retry["extract"]["reused"]) == (2, 19)
        with Catalog.in_data_dir(tmp_path / "data", read_only=True) as catalog:
            changes = sorted(r["change"] for r in catalog.fetch_records("crawled", "site"))
        assert changes == ["changed"] * 2 + ["unchanged"] * 19
        after = run_refresh(variant, tmp_path / "data")["changes"]  # built: no longer pending
        assert after["pages"] == {"site": {"unchanged": 21, "skipped": 0}} and after["executed"] == []
    finally:
        site.server.shutdown()
        site.server.server_close()


@pytest.mark.slow
def test_rebuild_of_a_variant_in_parts_embeds_only_the_parts_that_changed(tmp_path):
    """Four chunk parts are four embed units: after 2 pages of 2 parts change, the 2 unchanged parts keep their
    embeddings (same keys, nothing run), the 2 changed ones embed only their new chunk texts, and the datastore
    searches like a one-part build of the same source."""
    from buildplan.build import build

    config = (
        "sources:\n  - {name: c4, type: jsonl, path: docs.jsonl, id_field: id, url_field: url, extractor: plain}\n"
        "dedup: {exact: true, near: false}\nchunking: {size: 64, overlap: 8}\nindex: {refresh_max_change: 0.5}\n"
    )
    parts, whole = tmp_path / "parts.yaml", tmp_path / "whole.yaml"
    parts.write_text(f"name: parts\n{config}sharding: {{documents_per_part: 10}}\n")
    whole.write_text(f"name: whole\n{config}")
    _write_source(tmp_path, changed=set())
    first = {s.shard: s for s in build(parts, tmp_path / "data").stages if s.stage == "embed"}
    names = [f"part-{i:05d}.parquet" for i in range(4)]
    assert sorted(first) == names and all(not s.cached for s in first.values())

    _write_source(tmp_path, changed={3, 17})  # a page of part 0 and one of part 1
    second = build(parts, tmp_path / "data")
    embeds = {s.shard: s for s in second.stages if s.stage == "embed"}
    assert [embeds[n].cached for n in names] == [False, False, True, True]
    assert [embeds[n].key for n in names[2:]] == [first[n].key for n in names[2:]]
    worked = [embeds[n] for n in names[:2]]
    computed = sum(s.stats["chunks_computed"] for s in worked)
    reused = sum(s.stats["chunks_reused_by_text"] for s in worked)
    assert computed + reused == sum(s.rows for s in worked) and 0 < computed < reused
    (index,) = [s for s in second.stages if s.stage == "index"]
    assert index.stats["index_update"] == "incremental" and index.stats["vectors_added"] == computed

    one = build(whole, tmp_path / "whole")
    assert [s.shard for s in one.stages if s.stage == "embed"] == ["part-00000.parquet"]
    in_parts, in_one = _search(parts, tmp_path / "data"), _search(whole, tmp_path / "whole")
    assert [[c for c, _ in q] for q in in_parts] == [[c for c, _ in q] for q in in_one]
    assert np.allclose([[s for _, s in q] for q in in_parts], [[s for _, s in q] for q in in_one], atol=1e-4)


@pytest.mark.slow
def test_a_variants_first_build_takes_the_vectors_of_texts_another_variant_embedded(tmp_path):
    """Two corpus variants in one data dir (the second drops 10 of the first's 40 pages and adds 4 of its own): the
    second embeds only its new chunk texts, takes the rest from the first's datastore, and has the unit keys and the
    search results of the same variant built alone."""
    from buildplan.build import build

    _write_source(tmp_path, changed=set())
    pages = (tmp_path / "docs.jsonl").read_text().splitlines()
    extra = [json.dumps({"id": f"new-{i}", "text": f"A page only the second variant has, number {i}. " * 12})
             for i in range(4)]  # fmt: skip
    (tmp_path / "fewer.jsonl").write_text("\n".join(pages[10:] + extra) + "\n")
    config = "dedup: {exact: true, near: false}\nchunking: {size: 64, overlap: 8}\n"
    source = "  - {{name: c4, type: jsonl, path: {}, id_field: id, url_field: url, extractor: plain}}\n"
    (tmp_path / "full.yaml").write_text(f"name: full\nsources:\n{source.format('docs.jsonl')}{config}")
    second = tmp_path / "fewer.yaml"
    second.write_text(f"name: fewer\nsources:\n{source.format('fewer.jsonl')}{config}")

    build(tmp_path / "full.yaml", tmp_path / "data")
    shared = build(second, tmp_path / "data")
    alone = build(second, tmp_path / "alone")
    (embed,) = [s for s in shared.stages if s.stage == "embed"]
    (embed_alone,) = [s for s in alone.stages if s.stage == "embed"]
    assert "chunks_reused_by_text" not in embed_alone.stats  # nothing to take from in a data dir of its own
    computed, reused = embed.stats["chunks_computed"], embed.stats["chunks_reused_by_text"]
    assert computed + reused == embed.rows == embed_alone.rows
    (chunks,) = [s for s in alone.stages if s.stage == "chunk"]
    texts = pl.read_parquet(ArtifactStore(tmp_path / "alone").find("chunk", chunks.key).file_paths())["text"]
    assert computed == texts.str.contains("only the second variant has").sum() > 0  # the new pages' chunks only
    # Every unit has the key of the build alone; the index is keyed by the vectors' bytes, and a vector embedded in
    # another batch differs in its last bits.
    assert sorted((s.stage, s.shard, s.key) for s in shared.stages if s.stage != "index") == sorted(
        (s.stage, s.shard, s.key) for s in alone.stages if s.stage != "index"
    )
    in_shared, in_alone = _search(second, tmp_path / "data"), _search(second, tmp_path / "alone")
    assert [[c for c, _ in q] for q in in_shared] == [[c for c, _ in q] for q in in_alone]
    assert np.allclose([[s for _, s in q] for q in in_shared], [[s for _, s in q] for q in in_alone], atol=1e-4)


def test_a_donor_gives_vectors_only_under_the_same_embed_config_and_to_parts_it_is_not_too_large_for():
    from buildplan.build import DONOR_SCAN_MAX_RATIO, PreviousDatastore
    from catalog.artifacts import ArtifactManifest

    variant = load_variant(SAMPLE / "variants" / "open-qa.yaml")

    def manifest(stage: str, rows: int, config_hash: str = "") -> ArtifactManifest:
        return ArtifactManifest(stage=stage, key=f"{stage}-{rows}", stage_version="2", config_hash=config_hash,
                                input_hash="", path="/nowhere", rows=rows, content_hash="")  # fmt: skip

    embedded = [manifest("embed", 10_000, variant.stage_hash("embed"))]
    donor = PreviousDatastore([manifest("chunk", 10_000)], embedded, None)
    smallest = 10_000 // DONOR_SCAN_MAX_RATIO
    assert donor.donated(variant, manifest("chunk", smallest)) == ([manifest("chunk", 10_000)], embedded)
    assert donor.donated(variant, manifest("chunk", smallest - 1)) is None  # scanning it would cost more than it saves
    other_model = PreviousDatastore([manifest("chunk", 10_000)], [manifest("embed", 10_000, "another")], None)
    assert other_model.donated(variant, manifest("chunk", 10_000)) is None
