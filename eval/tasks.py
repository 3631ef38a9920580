"""Evaluation tasks as declarative YAML, validated on load (lm-evaluation-harness style).

A task names what to evaluate a datastore on: an IR collection with qrels (retrieval quality, no reader), or a QA
benchmark (answer-in-context recall, gold-URL hits, contamination status; reader accuracy when a reader is given).
Paths are relative to the task file. ``resolve_task`` accepts a path or a name looked up in the tasks folder.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from catalog.errors import ConfigError
from catalog.hashing import stable_hash, tree_hash
from eval.config_files import invalid_fields
from sample_data import TASKS_DIR as BUNDLED_TASKS_DIR


class _Task(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    description: str = ""
    limit: int | None = Field(default=None, ge=1, description="evaluate at most this many queries/items")
    ks: tuple[Annotated[int, Field(ge=1)], ...] = Field(
        default=(1, 5, 10, 100), min_length=1, description="cut-offs of the @k metrics (each 1..retrieve_k)"
    )
    retrieve_k: int = Field(default=100, ge=1, description="hits retrieved per query (the candidate pool)")

    @model_validator(mode="after")
    def _ks_within_the_pool(self):
        if len(set(self.ks)) != len(self.ks):
            raise ValueError(f"ks {list(self.ks)} repeats a cut-off")
        if max(self.ks) > self.retrieve_k:  # recall@k past the pool would repeat recall@retrieve_k under a new name
            raise ValueError(f"ks {list(self.ks)} go past retrieve_k {self.retrieve_k}")
        return self


class QrelsTask(_Task):
    """An IR test collection: TREC-style queries and qrels whose doc ids are a source's native ids."""

    kind: Literal["qrels"]
    queries: Path
    qrels: Path
    source: str  # the variant source whose documents the qrels name by their id in it (hits' source_doc_id)


class QATask(_Task):
    """A QA benchmark (loaded by ``eval.benchmarks.load_benchmark``) evaluated by retrieval-only metrics."""

    kind: Literal["qa"]
    benchmark: str
    path: Path
    options: dict = Field(default_factory=dict)
    match: Literal["exact", "contains"] = Field(
        default="exact", description="short-answer grading: normalized exact match, or the gold contained in the answer"
    )


EvalTask = Annotated[QrelsTask | QATask, Field(discriminator="kind")]


class _TaskFile(BaseModel):
    task: EvalTask


GRADING_FIELDS = frozenset({"match"})  # task settings that change grades, not what is generated


def task_hash(task: QrelsTask | QATask, grading: bool = True) -> str:
    """Content hash of a task: its settings and the bytes of the files it reads (not their paths), so editing a
    benchmark or qrels file changes every artifact key that depends on the task, and moving it changes none.
    ``grading=False`` leaves out the settings that only change grades (for the key of generated samples)."""
    files = ("queries", "qrels") if isinstance(task, QrelsTask) else ("path",)
    skip = set(files) | (set() if grading else GRADING_FIELDS)
    return stable_hash(
        {"task": task.model_dump(mode="json", exclude=skip), "files": {f: tree_hash(getattr(task, f)) for f in files}}
    )


def tasks_dir() -> Path:
    """Where task names are looked up: ``REREAD_TASKS_DIR`` when set, else the bundled tasks (package data, so the
    same from any working directory)."""
    return Path(os.environ.get("REREAD_TASKS_DIR") or BUNDLED_TASKS_DIR)


def load_task(path: str | Path) -> QrelsTask | QATask:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read task file ({exc.strerror or exc})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a task must be a YAML mapping")
    for key in ("queries", "qrels", "path"):
        if isinstance(raw.get(key), str):
            raw[key] = str((path.parent / raw[key]).resolve())
    try:
        return _TaskFile.model_validate({"task": raw}).task
    except ValidationError as exc:
        raise ConfigError(f"{path}: invalid task: {invalid_fields(exc, skip=2, root='kind')}") from None


def resolve_task(name_or_path: str) -> QrelsTask | QATask:
    """A task file path, or the name of a task in the tasks folder (``REREAD_TASKS_DIR``, default the bundled tasks)."""
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml") or candidate.exists():
        return load_task(candidate)
    folder = tasks_dir()
    path = folder / f"{name_or_path}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []
        raise ConfigError(f"unknown task {name_or_path!r}: no {path}; known tasks: {', '.join(known) or 'none'}")
    return load_task(path)
