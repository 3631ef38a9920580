"""GPQA (Rein et al.): read straight from the authors' password-protected ``dataset.zip``, in memory only.

The password is never stored in code: pass ``password=`` or set ``REREAD_GPQA_PASSWORD`` (or the env var named by
``password_env``). Decrypted text never touches the disk. Choices (correct + 3 incorrect) are shuffled with a
``random.Random`` seeded from the hash of the question's Record ID, so every run and machine presents the same
order and no global RNG state is involved.
"""

from __future__ import annotations

import csv
import io
import os
import random
import zipfile
from collections.abc import Iterator
from pathlib import Path

from catalog.hashing import content_hash
from catalog.records import Rejection
from eval.benchmarks.registry import BenchmarkError, register_benchmark, reject
from eval.benchmarks.types import LETTERS, BenchmarkItem

NAME = "gpqa"
PASSWORD_ENV = "REREAD_GPQA_PASSWORD"
SUBSETS = ("main", "diamond", "extended")
OPTION_COLUMNS = ("Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3")
REQUIRED = ("Question", *OPTION_COLUMNS, "Record ID")


def shuffle_choices(record_id: str, options: list[str]) -> tuple[tuple[str, ...], str]:
    """Present ``options`` (correct first) in an order seeded by ``record_id``; returns (choices, gold letter)."""
    order = list(range(len(options)))
    random.Random(int(content_hash(record_id), 16)).shuffle(order)
    return tuple(options[i] for i in order), LETTERS[order.index(0)]


def _archive(path: Path) -> Path:
    return path / "dataset.zip" if path.is_dir() else path


def _decrypt(archive: Path, subset: str, password: str) -> str:
    try:
        with zipfile.ZipFile(archive) as zf:
            member = next((n for n in zf.namelist() if n.endswith(f"gpqa_{subset}.csv")), None)
            if member is None:
                raise BenchmarkError(f"{NAME}: {archive} has no gpqa_{subset}.csv")
            data = zf.read(member, pwd=password.encode("utf-8"))
    except zipfile.BadZipFile as exc:
        raise BenchmarkError(f"{NAME}: {archive} is not a readable zip archive ({exc})") from None
    except RuntimeError as exc:  # zipfile's "Bad password for file"
        raise BenchmarkError(f"{NAME}: cannot decrypt {archive}: {exc}") from None
    return data.decode("utf-8")


@register_benchmark(NAME)
def read_gpqa(
    path: Path, *, subset: str = "diamond", password: str | None = None, password_env: str = PASSWORD_ENV
) -> Iterator[BenchmarkItem | Rejection]:
    """GPQA questions of ``subset`` (main 448, diamond 198, extended 546)."""
    if subset not in SUBSETS:
        raise BenchmarkError(f"{NAME}: unknown subset {subset!r}; choose one of {', '.join(SUBSETS)}")
    password = password or os.environ.get(password_env)
    if not password:
        raise BenchmarkError(f"{NAME}: {path} is encrypted: pass the password option or set {password_env}")
    archive = _archive(path)
    reader = csv.DictReader(io.StringIO(_decrypt(archive, subset, password), newline=""))
    missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
    if missing:
        yield reject(NAME, f"{archive}#{subset}", "missing_columns", f"header lacks {', '.join(missing)}")
        return
    for row_no, row in enumerate(reader):
        ref = f"{archive}#{subset}:row {row_no}"
        fields = {c: (row.get(c) or "").strip() for c in REQUIRED}
        empty = [c for c, v in fields.items() if not v]
        if empty:
            yield reject(NAME, ref, "missing_field", f"empty: {', '.join(empty)}")
            continue
        choices, answer = shuffle_choices(fields["Record ID"], [fields[c] for c in OPTION_COLUMNS])
        yield BenchmarkItem(
            benchmark=NAME,
            item_id=fields["Record ID"],
            question=fields["Question"],
            answer=answer,
            choices=choices,
            category=(row.get("High-level domain") or "").strip(),
            metadata={"subdomain": (row.get("Subdomain") or "").strip(), "subset": subset},
        )
