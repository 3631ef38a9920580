"""Document and chunk ids: one home for every id the pipeline makes, so every package (extract, indexing, eval)
derives the same id from the same input without importing another's internals."""

from __future__ import annotations

from catalog.hashing import content_hash


def make_doc_id(source_name: str, native_id: str) -> str:
    """Stable document id: the same record of the same source gets the same id in every run."""
    return content_hash(f"{source_name}\x00{native_id}")
