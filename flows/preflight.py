"""Configs checked before any flow starts, so a typo is one clear ``ConfigError`` line (the CLI prints it) instead
of a flow run failing with Prefect's traceback, and a bad index factory or embedder path is reported before hours of
extraction and embedding rather than after."""

from __future__ import annotations

from pathlib import Path

from catalog.variant import Variant, load_variant


def check_build(variant_path: str | Path) -> Variant:
    """The variant, valid and buildable here (its embedder exists, faiss can make its index factory)."""
    from indexing.stages import check_build_config

    variant = load_variant(variant_path)
    check_build_config(variant)
    return variant


def check_eval(variant_path: str | Path, tasks: list[str], reader_config: str | Path | None = None) -> None:
    """The variant, every task and the reader config load."""
    from eval.reader_eval import load_reader_eval_config
    from eval.tasks import resolve_task

    load_variant(variant_path)
    for task in tasks:
        resolve_task(task)
    if reader_config is not None:
        load_reader_eval_config(reader_config)
