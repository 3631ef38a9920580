"""Document and chunk ids: one home for every id the pipeline makes, so every package (extract, indexing, eval)
derives the same id from the same input without importing another's internals."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from catalog.hashing import content_hash


def make_doc_id(source_name: str, native_id: str) -> str:
    """Stable document id: the same record of the same source gets the same id in every run."""
    return content_hash(f"{source_name}\x00{native_id}")


def chunk_id(doc_id: str, text: str, occurrence: int = 0) -> str:
    """The content-defined id of a chunk: its document, its text, and how many earlier chunks of that document
    have the same text (0 almost always; it keeps repeated boilerplate chunks of one document apart).

    No character offsets: a sentence inserted into a document shifts every later offset, but leaves the later chunks'
    texts, and so their ids, unchanged; only the chunks whose text the edit touches get new ids (and vectors)."""
    return content_hash(f"{doc_id}\x00{occurrence}\x00{text}")


def chunk_ids(doc_id: str, texts: Iterable[str]) -> list[str]:
    """The ids of a document's chunks, given their texts in the document's chunk order (see ``chunk_id``)."""
    seen: Counter[str] = Counter()
    ids = []
    for text in texts:
        ids.append(chunk_id(doc_id, text, seen[text]))
        seen[text] += 1
    return ids
