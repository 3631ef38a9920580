"""Variant YAML: validation on load, extends/override, stable stage hashes, errors naming file and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from catalog.errors import ConfigError
from catalog.variant import STAGES, load_variant

REPO = Path(__file__).resolve().parents[2]


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_minimal_variant_from_the_issue_is_valid_with_defaults(tmp_path: Path):
    v = load_variant(
        write(
            tmp_path / "passages.yaml",
            "name: passages\nsources:\n  - type: jsonl\n    path: passages.jsonl\n    text_field: text\n"
            "    id_field: id\nextractor: plain\n",
        )
    )
    assert v.name == "passages"
    src = v.sources[0]
    assert src.path == (tmp_path / "passages.jsonl").resolve()  # relative to the YAML file
    assert src.name == "jsonl-passages"
    assert v.chunking.size == 254 and v.index.factory == "Flat" and v.embedder.model == "all-MiniLM-L6-v2"
    assert v.decontamination.action == "drop_document" and v.decontamination.benchmarks == ()
    assert {s: len(v.stage_hash(s)) for s in STAGES} == {s: 16 for s in STAGES}


def test_stage_hashes_are_stable_and_change_only_downstream(tmp_path: Path):
    base = write(tmp_path / "a.yaml", "name: a\nsources: [{type: jsonl, path: x.jsonl}]\nextractor: plain\n")
    child = write(tmp_path / "b.yaml", "extends: a.yaml\nname: b\nchunking: {size: 128}\n")
    a1, a2, b = load_variant(base), load_variant(base), load_variant(child)
    assert [a1.stage_hash(s) for s in STAGES] == [a2.stage_hash(s) for s in STAGES]
    same = [s for s in STAGES if a1.stage_hash(s) == b.stage_hash(s)]
    assert same == ["extract", "decontaminate", "dedup", "embed", "index"]
    assert b.chunking.size == 128 and b.chunking.overlap == 32  # deep merge keeps the parent's other fields
    assert b.sources[0].path == (tmp_path / "x.jsonl").resolve()


def test_documents_per_part_is_validated_and_keys_dedup_only_when_not_the_default(tmp_path: Path):
    from catalog.hashing import stable_hash

    base = load_variant(write(tmp_path / "a.yaml", "name: a\nsources: [{type: jsonl, path: x.jsonl}]\n"))
    assert base.sharding.documents_per_part == 20_000
    # keys made before the setting existed stay valid: the default adds nothing to the dedup identity
    assert base.stage_hash("dedup") == stable_hash(base.dedup.model_dump(mode="json"))
    explicit = load_variant(
        write(tmp_path / "b.yaml", "extends: a.yaml\nname: b\nsharding: {documents_per_part: 20000}\n")
    )
    small = load_variant(write(tmp_path / "c.yaml", "extends: a.yaml\nname: c\nsharding: {documents_per_part: 500}\n"))
    assert explicit.stage_hash("dedup") == base.stage_hash("dedup")
    assert [s for s in (*STAGES, "dedup_signatures") if small.stage_hash(s) != base.stage_hash(s)] == ["dedup"]
    for value, reason in (("0", "greater than or equal to 1"), ("many", "valid integer")):
        bad = write(tmp_path / "bad.yaml", f"extends: a.yaml\nname: bad\nsharding: {{documents_per_part: {value}}}\n")
        with pytest.raises(ConfigError, match=rf"(?s){bad}.*sharding.documents_per_part.*{reason}"):
            load_variant(bad)
    unknown = write(tmp_path / "bad.yaml", "extends: a.yaml\nname: bad\nsharding: {docs_per_part: 10}\n")
    with pytest.raises(ConfigError, match=r"sharding.docs_per_part"):
        load_variant(unknown)


def test_invalid_field_names_file_field_and_reason(tmp_path: Path):
    bad = write(
        tmp_path / "bad.yaml",
        "name: bad\nsources: [{type: jsonl, path: x.jsonl}]\nchunking: {size: 64, overlap: 64}\nindex: {nprobe: x}\n",
    )
    with pytest.raises(ConfigError) as err:
        load_variant(bad)
    msg = str(err.value)
    assert str(bad) in msg and "chunking" in msg and "overlap (64) must be smaller than size (64)" in msg
    assert "index.nprobe" in msg


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("name: x\nsources: [{type: ftp, path: a}]\n", "sources.0"),
        ("name: x\nsources: []\n", "sources"),
        ("name: x\nsources: [{type: jsonl, path: a}]\nunknown_field: 1\n", "unknown_field"),
        ("- just\n- a list\n", "must be a YAML mapping"),
        ("name: [unclosed\n", "not valid YAML"),
        ("name: x\nsources: [{type: jsonl, path: a}, {type: jsonl, path: a}]\n", "source names must be unique"),
    ],
)
def test_invalid_variants_fail_clearly(tmp_path: Path, text: str, fragment: str):
    with pytest.raises(ConfigError, match="bad.yaml") as err:
        load_variant(write(tmp_path / "bad.yaml", text))
    assert fragment in str(err.value)


def test_extends_cycle_and_missing_parent(tmp_path: Path):
    write(tmp_path / "a.yaml", "extends: b.yaml\nname: a\n")
    write(tmp_path / "b.yaml", "extends: a.yaml\nname: b\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_variant(tmp_path / "a.yaml")
    write(tmp_path / "c.yaml", "extends: missing.yaml\nname: c\n")
    with pytest.raises(ConfigError, match="missing.yaml"):
        load_variant(tmp_path / "c.yaml")


def test_drop_chunk_decontamination_is_part_of_the_chunk_config(tmp_path: Path):
    doc = write(tmp_path / "a.yaml", "name: a\nsources: [{type: jsonl, path: x.jsonl}]\n")
    chunk = write(tmp_path / "b.yaml", "extends: a.yaml\nname: b\ndecontamination: {action: drop_chunk}\n")
    a, b = load_variant(doc), load_variant(chunk)
    assert a.stage_hash("chunk") != b.stage_hash("chunk")
    assert a.stage_hash("extract") == b.stage_hash("extract")


def test_editing_a_benchmark_file_changes_the_decontamination_key(tmp_path: Path):
    (tmp_path / "mmlu").mkdir()
    questions = tmp_path / "mmlu" / "anatomy_test.csv"
    questions.write_text("What is the largest bone of the human body,Femur,Tibia,Ulna,Radius,A\n")
    path = write(
        tmp_path / "v.yaml",
        "name: v\nsources: [{type: jsonl, path: x.jsonl}]\ndecontamination: {benchmarks: [{name: mmlu, path: mmlu}]}\n",
    )
    before = {stage: load_variant(path).stage_hash(stage) for stage in ("decontaminate", "dedup")}
    assert load_variant(path).stage_hash("decontaminate") == before["decontaminate"]  # stable
    questions.write_text(questions.read_text() + "Which nerve supplies the diaphragm,Phrenic,Vagus,Radial,Ulnar,A\n")
    after = load_variant(path)
    assert after.stage_hash("decontaminate") != before["decontaminate"]
    assert after.stage_hash("dedup") == before["dedup"]  # only decontamination reads the benchmark


@pytest.mark.parametrize("name", ["sample", "vaswani", "vaswani-hnsw"])
def test_bundled_variants_load(name: str):
    v = load_variant(REPO / "sample_data" / "variants" / f"{name}.yaml")
    assert all(s.path.exists() for s in v.sources)
    assert all(b.path.exists() for b in v.decontamination.benchmarks)


@pytest.mark.parametrize("name", ["vaswani", "simpleqa", "mmlu", "math500"])
def test_bundled_tasks_load(name: str):
    from eval.tasks import load_task

    task = load_task(REPO / "sample_data" / "tasks" / f"{name}.yaml")
    assert task.name == name and task.description
    paths = [task.queries, task.qrels] if task.kind == "qrels" else [task.path]
    assert all(p.exists() for p in paths)
