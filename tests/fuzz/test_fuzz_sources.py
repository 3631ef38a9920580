"""Fuzzing every source reader (issue 14): random and mutated bytes end as documents or rejections.

For each registered source type, hypothesis writes a file (random bytes, or a real fixture with bytes flipped,
inserted, deleted or cut) under the name that type reads, compressed or not, and reads it: nothing may escape the
source as an exception, every item is a RawDocument or a Rejection with a reason, and everything a later stage
writes (ids, refs, text) encodes as UTF-8. Examples are bounded and fixed (derandomized) so the module runs in
seconds and a CI failure reproduces; ``REREAD_FUZZ_EXAMPLES=500`` explores more, with fresh randomness. The
pytest-timeout mark turns a hang into a failure.
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import os
import zlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from catalog.records import Rejection
from catalog.variant import SourceConfig
from extract.records import RawDocument
from extract.sources import SOURCE_TYPES, open_source

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "extract"
_CONFIG = TypeAdapter(SourceConfig)
EXPLORE = int(os.environ.get("REREAD_FUZZ_EXAMPLES", "0"))
FUZZ = settings(
    max_examples=EXPLORE or 25,
    deadline=None,  # a loaded CI machine must not make this flaky; the timeout mark catches hangs
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=not EXPLORE,
    database=None,
)


def _parquet_seed() -> bytes:
    table = pa.table({"text": [f"row {i}" for i in range(50)], "id": [f"r{i}" for i in range(50)]})
    sink = io.BytesIO()
    pq.write_table(table, sink, row_group_size=10)
    return sink.getvalue()


def _trec_seed() -> bytes:
    return (FIXTURES / "datasets/vaswani_3.trec").read_bytes()


# source type -> (file name it reads, seed bytes, extra config)
SEEDS = {
    "html": ("page.html", (FIXTURES / "html").glob("*.html").__next__().read_bytes()[:6000], {}),
    "wikitext": ("Article.txt", (FIXTURES / "wikitext/Canton-of-Etaples.txt").read_bytes(), {}),
    "warc": ("w.warc.gz", (FIXTURES / "warc/jwarc_cc.warc.gz").read_bytes(), {}),
    "crawl": ("crawl-20260101T000000000000Z-00000.warc", (FIXTURES / "warc/warcio_example-iana.org-chunked.warc").read_bytes(), {}),
    "jsonl": ("d.jsonl", (FIXTURES / "datasets/c4_3.jsonl").read_bytes(), {"id_field": "id", "url_field": "metadata.url"}),
    "parquet": ("d.parquet", _parquet_seed(), {"id_field": "id"}),
    "mediawiki": ("dump.xml", (FIXTURES / "mediawiki/pair-0.10.xml").read_bytes(), {"namespaces": [0, 1]}),
    "trec": ("c.trec", _trec_seed(), {}),
}  # fmt: skip
COMPRESSORS = {"": lambda b: b, ".gz": gzip.compress, ".bz2": bz2.compress, ".zlib.gz": zlib.compress}


def test_every_source_type_is_fuzzed():
    assert set(SEEDS) == set(SOURCE_TYPES)


@st.composite
def mutated(draw, seed: bytes) -> bytes:
    """The seed with a few random edits: flipped bytes, inserted or deleted runs, a cut, a repeated slice."""
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, 4))):
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        edit = draw(st.sampled_from(["flip", "insert", "delete", "cut", "repeat"]))
        if edit == "flip":
            data[at] ^= draw(st.integers(1, 255))
        elif edit == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=64))
        elif edit == "delete":
            del data[at : at + draw(st.integers(1, 64))]
        elif edit == "cut":
            del data[at:]
        else:
            data[at:at] = data[at : at + draw(st.integers(1, 256))]
    return bytes(data)


def read_all(source_type: str, folder: Path, name: str, data: bytes, extra: dict) -> list[RawDocument | Rejection]:
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.iterdir():
        old.unlink()
    (folder / name).write_bytes(data)
    cfg = _CONFIG.validate_python({"type": source_type, "path": folder, "name": "fuzz", **extra})
    source = open_source(cfg)
    items = list(source.iter_documents())  # the property: this never raises
    for item in items:
        assert isinstance(item, (RawDocument, Rejection)), item
        if isinstance(item, Rejection):
            assert item.reason and item.reason == item.reason.lower() and " " not in item.reason
            (item.input_ref + item.detail).encode("utf-8")
        else:
            (item.doc_id + item.input_ref + item.url + item.title).encode("utf-8")
            if isinstance(item.content, str):
                item.content.encode("utf-8")
    counted = sum(v for k, v in source.stats.as_dict().items() if k.startswith("rejected_"))
    assert counted == sum(isinstance(i, Rejection) for i in items)
    return items


@pytest.mark.timeout(300 + EXPLORE * 2)
@pytest.mark.parametrize("source_type", sorted(SEEDS))
@FUZZ
@given(data=st.data())
def test_mutated_inputs_end_as_documents_or_rejections(tmp_path, source_type, data):
    name, seed, extra = SEEDS[source_type]
    suffix = data.draw(st.sampled_from(sorted(COMPRESSORS)), label="compression")
    if source_type == "parquet" or ".warc" in name:
        suffix = ""  # Parquet compresses inside; WARC files are compressed per record by their writer
    payload = COMPRESSORS[suffix](data.draw(mutated(seed), label="mutated"))
    if data.draw(st.booleans(), label="mutate compressed bytes") and suffix:
        payload = data.draw(mutated(payload), label="compressed mutated")
    file_name = name + (".gz" if suffix == ".zlib.gz" else suffix)
    read_all(source_type, tmp_path / "in", file_name, payload, extra)


@pytest.mark.timeout(300 + EXPLORE * 2)
@pytest.mark.parametrize("source_type", sorted(SEEDS))
@FUZZ
@given(payload=st.binary(max_size=4096), compress=st.booleans())
def test_random_bytes_end_as_documents_or_rejections(tmp_path, source_type, payload, compress):
    name, _, extra = SEEDS[source_type]
    if compress and source_type != "parquet":
        payload, name = gzip.compress(payload), name.removesuffix(".gz") + ".gz"
    read_all(source_type, tmp_path / "in", name, payload, extra)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(["id", "text", "meta", "url"]), inner),
    max_leaves=8,
)


@pytest.mark.timeout(120 + EXPLORE * 2)
@FUZZ
@given(rows=st.lists(JSON_VALUES, max_size=8))
def test_jsonl_rows_of_any_shape(tmp_path, rows):
    text = "\n".join(json.dumps(row) for row in rows) + "\n"
    items = read_all("jsonl", tmp_path / "in", "d.jsonl", text.encode(), {"id_field": "id", "url_field": "meta.url"})
    assert len(items) == len(rows)  # one document or one rejection per line
