"""Artifact folders: checked against the sizes and sha256 their manifest records before anyone reuses them, repaired
by a re-run when damaged (flipped bytes, truncation, a deleted artifact.json), and addressed relative to the data
dir so a moved or copied data dir works and a copy never reads the original's files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from catalog import artifacts
from catalog.artifacts import MANIFEST, ArtifactStore, StageResult
from catalog.errors import ArtifactError
from catalog.stage_runner import StageSpec, execute_stage

SPEC = StageSpec("index", "1", "cfg", "inp")
PAYLOAD = bytes(range(256)) * 64  # 16 KiB


def _write_stage(calls: list[int]):
    def stage(out: Path) -> StageResult:
        calls.append(1)
        (out / "index").mkdir(exist_ok=True)
        (out / "index" / "index.faiss").write_bytes(PAYLOAD)
        (out / "part-00000.parquet").write_bytes(b"PAR1" + PAYLOAD[:100] + b"PAR1")
        return StageResult(files=["index", "part-00000.parquet"], rows=3, content_hash="c0ffee")

    return stage


@pytest.fixture
def built(tmp_path: Path):
    store = ArtifactStore(tmp_path / "data")
    calls: list[int] = []
    manifest, cached = execute_stage(store, SPEC, _write_stage(calls))
    assert not cached and calls == [1]
    return store, manifest, calls


def test_manifest_records_relative_path_and_every_files_size_and_sha256(built):
    store, manifest, _ = built
    raw = json.loads((manifest.folder / MANIFEST).read_text())
    assert raw["path"] == f"artifacts/index/{SPEC.key}"
    assert str(store.root) not in (manifest.folder / MANIFEST).read_text()
    assert raw["checksums"]["index/index.faiss"]["bytes"] == len(PAYLOAD)
    assert set(raw["checksums"]) == {"index/index.faiss", "part-00000.parquet", "rejections.parquet"}
    assert manifest.folder == store.folder("index", SPEC.key)


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda f: f.write_bytes(f.read_bytes()[:4096] + bytes(4096) + f.read_bytes()[8192:]), id="flip"),
        pytest.param(lambda f: f.write_bytes(f.read_bytes()[:1000]), id="truncate"),
        pytest.param(lambda f: f.unlink(), id="delete"),
    ],
)
def test_damaged_file_is_an_error_naming_it_for_readers_and_a_rebuild_for_the_build(built, damage):
    store, manifest, calls = built
    target = manifest.folder / "index" / "index.faiss"
    damage(target)
    artifacts.forget_verified()  # a new process: nothing verified yet
    with pytest.raises(ArtifactError, match=r"index\.faiss"):
        store.open("index", SPEC.key)
    rebuilt, cached = execute_stage(store, SPEC, _write_stage(calls))
    assert not cached and calls == [1, 1]
    assert target.read_bytes() == PAYLOAD
    assert store.open("index", SPEC.key).checksums == manifest.checksums


def test_flipped_bytes_are_caught_even_after_an_earlier_check_in_the_same_process(built):
    store, manifest, _ = built
    store.open("index", SPEC.key)  # verified once
    target = manifest.folder / "index" / "index.faiss"
    data = bytearray(target.read_bytes())
    data[5000:5010] = b"0123456789"
    target.write_bytes(bytes(data))  # same size; the file's mtime changes, so it is hashed again
    with pytest.raises(ArtifactError, match="sha256"):
        store.open("index", SPEC.key)


def test_each_artifact_is_hashed_once_per_process(built, monkeypatch):
    store, _, _ = built
    artifacts.forget_verified()
    hashed: list[str] = []
    real = artifacts.file_hash
    monkeypatch.setattr(artifacts, "file_hash", lambda p: hashed.append(Path(p).name) or real(p))
    store.open("index", SPEC.key)
    store.open("index", SPEC.key)
    assert sorted(hashed) == ["index.faiss", "part-00000.parquet", "rejections.parquet"]


def test_deleted_artifact_json_is_repaired_by_a_rerun(built):
    store, manifest, calls = built
    (manifest.folder / MANIFEST).unlink()
    with pytest.raises(ArtifactError, match="artifact.json"):
        store.open("index", SPEC.key)
    repaired, cached = execute_stage(store, SPEC, _write_stage(calls))
    assert not cached and calls == [1, 1]
    assert (store.folder("index", SPEC.key) / MANIFEST).exists()
    assert store.open("index", SPEC.key).key == SPEC.key
    assert not (store.root / "index" / f"{SPEC.key}.partial").exists()


def test_intact_artifact_is_reused_without_running_the_stage(built):
    store, _, calls = built
    artifacts.forget_verified()
    _, cached = execute_stage(store, SPEC, _write_stage(calls))
    assert cached and calls == [1]


def test_moved_data_dir_works_and_a_copy_reads_only_its_own_files(built, tmp_path: Path):
    store, manifest, _ = built
    original = store.root.parent
    copy = tmp_path / "copy"
    shutil.copytree(original, copy)
    moved = tmp_path / "moved"
    original.rename(moved)
    in_moved = ArtifactStore(moved).open("index", SPEC.key)
    assert in_moved.folder == moved / "artifacts" / "index" / SPEC.key
    assert all(p.is_file() or p.is_dir() for p in in_moved.file_paths())
    # damage the copy only: the copy must notice, not read the (intact) moved original
    (copy / "artifacts" / "index" / SPEC.key / "index" / "index.faiss").write_bytes(b"x")
    with pytest.raises(ArtifactError, match=str(copy)):
        ArtifactStore(copy).open("index", SPEC.key)
    assert ArtifactStore(moved).open("index", SPEC.key).folder.is_relative_to(moved)


def test_manifest_without_checksums_from_an_older_reread_still_opens(built):
    store, manifest, _ = built
    path = manifest.folder / MANIFEST
    raw = json.loads(path.read_text())
    raw.pop("checksums")
    raw["path"] = "/somewhere/else/artifacts/index/" + SPEC.key  # older manifests stored absolute paths
    path.write_text(json.dumps(raw))
    artifacts.forget_verified()
    opened = store.open("index", SPEC.key)
    assert opened.folder == manifest.folder
    (manifest.folder / "part-00000.parquet").unlink()  # a listed file that is gone is still noticed
    artifacts.forget_verified()
    with pytest.raises(ArtifactError, match="part-00000.parquet"):
        store.open("index", SPEC.key)
