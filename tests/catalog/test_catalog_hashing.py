"""Content hashes: names of any script combine, and a folder's hash follows its files' names and bytes."""

from __future__ import annotations

import hashlib
from pathlib import Path

from catalog.hashing import HASH_CHARS, combine_hashes, files_hash, tree_hash


def test_combine_hashes_is_sha256_of_the_lines_and_takes_any_name():
    assert combine_hashes(["ab12", "cd34"]) == hashlib.sha256(b"ab12\ncd34\n").hexdigest()[:HASH_CHARS]
    assert combine_hashes(["Zürich/straße.html:ab12"]) != combine_hashes(["Zurich/strasse.html:ab12"])


def test_tree_hash_is_the_files_hash_of_the_folder_and_follows_edits(tmp_path: Path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.csv").write_text("one\n")
    (tmp_path / "sub" / "é.csv").write_text("two\n")
    before = tree_hash(tmp_path)
    assert before == files_hash([tmp_path / "a.csv", tmp_path / "sub" / "é.csv"], tmp_path)
    (tmp_path / "a.csv").write_text("one, edited\n")
    assert tree_hash(tmp_path) != before
    assert tree_hash(tmp_path / "missing") == ""
