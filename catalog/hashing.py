"""Stable content hashes for artifacts, configs and inputs.

Every artifact is keyed by the hash of its inputs and config, so the hash must not depend on dict order,
float repr quirks of the platform, or Python's per-process string hashing.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

HASH_CHARS = 16  # 64 bits of sha256: collision-safe for catalog sizes, short enough for paths.


def _canonical(obj: Any) -> Any:
    if hasattr(obj, "model_dump"):  # pydantic models
        return _canonical(obj.model_dump(mode="json"))
    if isinstance(obj, dict):
        return {str(k): _canonical(v) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, (list, tuple)):
        return [_canonical(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, float) and obj.is_integer():
        return int(obj)
    return obj


def canonical_json(obj: Any) -> str:
    """JSON text that is identical for equal configs (sorted keys, no whitespace, pydantic models dumped)."""
    return json.dumps(_canonical(obj), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def stable_hash(obj: Any) -> str:
    """Hash of a JSON-able config object (dicts, lists, scalars, pydantic models)."""
    return hashlib.sha256(canonical_json(obj).encode("utf-8")).hexdigest()[:HASH_CHARS]


def content_hash(data: bytes | str) -> str:
    """Hash of raw content (document bytes, extracted text, chunk text)."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    return hashlib.sha256(data).hexdigest()[:HASH_CHARS]


def combine_hashes(parts: Iterable[str]) -> str:
    """Order-sensitive hash of a sequence of strings: hashes, and names or ids beside them (UTF-8, so any name)."""
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()[:HASH_CHARS]


def file_hash(path: str | Path, chunk_size: int = 1 << 20, start: int = 0, end: int | None = None) -> str:
    """Streaming hash of a file's bytes (of bytes ``[start, end)`` when given)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        f.seek(start)
        left = end - start if end is not None else None
        while (left is None or left > 0) and (block := f.read(chunk_size if left is None else min(chunk_size, left))):
            h.update(block)
            if left is not None:
                left -= len(block)
    return h.hexdigest()[:HASH_CHARS]


def path_text(path: str | Path) -> str:
    """A path as valid UTF-8 text: bytes of a file name that are not UTF-8 (Linux allows any) appear as ``\\xNN``
    escapes, so the name can be hashed, stored in Parquet and shown, and two such names stay distinct."""
    return str(path).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def relative_name(path: Path, root: Path) -> str:
    """The file's path relative to ``root`` (the file name when the root is the file itself), as ``path_text``."""
    return path_text(path.name if root.is_file() else path.relative_to(root).as_posix())


def files_hash(files: Iterable[Path], root: Path) -> str:
    """Content hash of some files under ``root``: their relative names and bytes, in name order."""
    return combine_hashes(f"{relative_name(f, root)}:{file_hash(f)}" for f in sorted(files))


def tree_hash(path: str | Path) -> str:
    """``files_hash`` of a file, or of every file under a folder; "" when it is missing (whoever reads it reports
    that). Cached by each file's size and mtime, so asking again is a directory walk."""
    path = Path(path)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path] if path.is_file() else []
    signature = tuple((str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files)
    return _tree_hash(str(path), signature)


@functools.lru_cache(maxsize=256)
def _tree_hash(root: str, signature: tuple[tuple[str, int, int], ...]) -> str:
    return files_hash((Path(name) for name, *_ in signature), Path(root)) if signature else ""
