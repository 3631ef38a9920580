"""The bundled sample data (variants, evaluation tasks, benchmark slices, small corpora), installed as package data so
``reread`` finds it from any working directory: ``reread build vaswani``, ``reread eval vaswani -b mmlu``."""

from __future__ import annotations

from pathlib import Path

SAMPLE_DATA = Path(__file__).resolve().parent
VARIANTS_DIR = SAMPLE_DATA / "variants"
TASKS_DIR = SAMPLE_DATA / "tasks"


def bundled_variant(name: str) -> Path | None:
    """The bundled variant YAML called ``name`` (``vaswani``, ``sample``, ...), or None when there is none."""
    path = VARIANTS_DIR / f"{name}.yaml"
    return path if path.is_file() else None


def bundled_variant_names() -> list[str]:
    return sorted(p.stem for p in VARIANTS_DIR.glob("*.yaml"))
