"""The runner: worker processes, per-document timeout, rejections by reason, input order kept."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from pydantic import TypeAdapter

from catalog.hashing import content_hash
from catalog.records import Rejection
from catalog.variant import ExtractionConfig, SourceConfig
from extract.records import ExtractedDocument, RawDocument
from extract.runner import ExtractionRunner
from extract.sources import open_source

ARTICLE = (
    "<html><head><title>Gannets</title></head><body><nav>Home | About</nav><article><h1>Northern gannets</h1>"
    + "".join(
        f"<p>Paragraph {i}: the northern gannet is the largest seabird of the North Atlantic, diving from thirty "
        f"metres to catch fish, and it nests in dense colonies on cliffs and islands.</p>"
        for i in range(6)
    )
    + "</article><footer>Copyright</footer></body></html>"
)


def html_doc(name: str, content: bytes | str, **fields) -> RawDocument:
    return RawDocument(
        doc_id=content_hash(name), source="t", content=content, content_type="text/html", input_ref=name, **fields
    )


@pytest.fixture(scope="module")
def runner():
    with ExtractionRunner("resiliparse", {}, ExtractionConfig(workers=2, timeout_s=60, min_chars=20)) as r:
        yield r


def by_ref(results) -> dict[str, ExtractedDocument | Rejection]:
    return {(r.input_ref if isinstance(r, Rejection) else r.doc_id): r for r in results}


def test_bad_documents_become_counted_rejections_while_good_ones_go_through(runner: ExtractionRunner) -> None:
    cp1252_page = ARTICLE.replace("northern gannet", "fou de Bassan (crème brûlée façade — naïve)")
    docs = [
        html_doc("good", ARTICLE.encode(), encoding="utf-8"),
        html_doc("empty", b""),
        html_doc("malformed", b"<html><head><script>var x = '<p>';</script></head><body><<<>>></div></td></body"),
        html_doc("cp1252", cp1252_page.encode("cp1252"), encoding="cp1252"),
        html_doc("bad-bytes", ARTICLE.encode() + b"\xff\xfe\xc3(", encoding="utf-8"),
        html_doc("huge", b"<html><body><p>" + b"x" * (50 * 1024 * 1024) + b"</p></body></html>"),
        Rejection(stage="extract", source="t", input_ref="from-source", reason="truncated_warc"),
        RawDocument(doc_id="pdf", source="t", content=b"%PDF-1.4", content_type="application/pdf", input_ref="pdf"),
        html_doc("good-2", ARTICLE),
    ]
    before = runner.stats.as_dict()  # the runner is shared by the module's tests: count this run's additions
    results = list(runner.run(docs))
    refs = [r.input_ref if isinstance(r, Rejection) else r.doc_id for r in results]
    assert refs == [content_hash("good"), "empty", "malformed", content_hash("cp1252"), content_hash("bad-bytes"),
                    "huge", "from-source", "pdf", content_hash("good-2")]  # fmt: skip
    got = by_ref(results)
    assert got["empty"].reason == "empty_text"
    assert got["malformed"].reason == "empty_text"
    assert got["huge"].reason == "too_large" and "52428" in got["huge"].detail
    assert got["pdf"].reason == "unsupported_content_type"
    assert got["from-source"].reason == "truncated_warc"
    assert "fou de Bassan (crème brûlée façade — naïve)" in got[content_hash("cp1252")].text
    good = got[content_hash("good")]
    assert "largest seabird of the North Atlantic" in good.text and "Copyright" not in good.text
    assert good.title == "Gannets" and good.extractor == "resiliparse"
    assert good.raw_hash == content_hash(ARTICLE.encode())
    assert got[content_hash("good-2")].raw_hash == good.raw_hash  # str content hashes as its UTF-8 bytes
    counters = runner.stats.as_dict()
    assert counters["rejected_empty_text"] >= 2 and counters["rejected_too_large"] >= 1
    added = {
        k: v - before.get(k, 0) for k, v in counters.items() if v != before.get(k, 0) and k.startswith(("doc", "rej"))
    }
    assert added == {
        "documents_in": 9,
        "documents_out": 4,
        "rejected_empty_text": 2,
        "rejected_too_large": 1,
        "rejected_truncated_warc": 1,
        "rejected_unsupported_content_type": 1,
    }


def test_content_types_route_to_plain_and_wikipedia(runner: ExtractionRunner, fixtures_dir: Path) -> None:
    wiki = (fixtures_dir / "extract/wikitext/Canton-of-Etaples.txt").read_text()
    docs = [
        RawDocument(
            doc_id="p", source="t", content="  plain text passes through unchanged  ", content_type="text/plain"
        ),
        RawDocument(doc_id="w", source="t", content=wiki, content_type="text/x-wiki", title="Canton of Étaples"),
    ]
    plain, article = runner.run(docs)
    assert (plain.extractor, plain.text) == ("plain", "plain text passes through unchanged")
    assert article.extractor == "wikipedia" and "chief town: Étaples" in article.text
    assert article.title == "Canton of Étaples"


def test_output_order_equals_input_order_over_many_documents(runner: ExtractionRunner, fixtures_dir: Path) -> None:
    source = open_source(
        TypeAdapter(SourceConfig).validate_python(
            {"type": "trec", "name": "v", "path": fixtures_dir / "extract/datasets/vaswani_3.trec"}
        )
    )
    base = list(source.iter_documents())
    docs = [
        RawDocument(doc_id=f"{i}", source="t", content=f"{base[i % 3].content} #{i}", content_type="text/plain")
        for i in range(150)
    ]
    results = list(runner.run(docs))
    assert [r.doc_id for r in results] == [str(i) for i in range(150)]
    assert all(r.text.endswith(f"#{i}") for i, r in enumerate(results))


@pytest.mark.slow
def test_hanging_extractor_is_killed_at_timeout_and_the_rest_goes_on(fixtures_dir: Path, monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(fixtures_dir / "extract"))  # spawned workers inherit sys.path
    cfg = ExtractionConfig(workers=1, timeout_s=3.0)
    docs = [html_doc(f"d{i}", f"<p>page {i} {'HANG' if i == 2 else ''}</p>") for i in range(6)]
    runner = ExtractionRunner("slow_extractors:HangingExtractorDouble", {}, cfg, batch_size=4)
    started = time.monotonic()
    results = list(runner.run(docs))
    elapsed = time.monotonic() - started
    assert [type(r).__name__ for r in results] == ["ExtractedDocument"] * 2 + ["Rejection"] + ["ExtractedDocument"] * 3
    assert results[2].reason == "timeout" and results[2].input_ref == "d2"
    assert [r.text for r in results if isinstance(r, ExtractedDocument)] == [
        f"<p>page {i} </p>" for i in (0, 1, 3, 4, 5)
    ]
    assert runner.stats.as_dict()["workers_replaced"] == 1
    assert runner.stats.as_dict()["workers_started"] == 2
    assert elapsed < 60  # the 600 s sleep was cut short


def test_extractor_exception_and_worker_crash_are_rejections(fixtures_dir: Path, monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(fixtures_dir / "extract"))
    names = ["ok", "BOOM", "ok2", "CRASH", "ok3"]
    docs = [html_doc(name, f"<p>{name} page</p>") for name in names]
    runner = ExtractionRunner("slow_extractors:FailingExtractorDouble")
    results = list(runner.run(docs))
    assert [r.text if isinstance(r, ExtractedDocument) else r.reason for r in results] == [
        "<p>ok page</p>",
        "extractor_error",
        "<p>ok2 page</p>",
        "worker_crashed",
        "<p>ok3 page</p>",
    ]
    assert "RuntimeError: parser exploded on BOOM" in results[1].detail
    assert "exit code 3" in results[3].detail
    assert runner.stats.as_dict()["workers_replaced"] == 1


def test_abandoned_run_leaves_no_stale_answers(runner: ExtractionRunner) -> None:
    docs = [
        RawDocument(doc_id=str(i), source="t", content=f"document text number {i}", content_type="text/plain")
        for i in range(40)
    ]
    first = runner.run(docs)
    assert next(first).doc_id == "0"
    first.close()  # the consumer stops early: in-flight answers must not leak into the next run
    again = list(runner.run(docs[:5]))
    assert [r.text for r in again] == [f"document text number {i}" for i in range(5)]
