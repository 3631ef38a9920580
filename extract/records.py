"""What sources yield and extractors return."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class RawDocument:
    """One document as read from a source, before extraction.

    ``doc_id`` is stable across runs: a content hash of (source name, native id or url), never a row number that
    shifts when the source grows, and unique per record of the source. ``source_doc_id`` is the document's id in its
    source, as the user knows it (the JSONL/Parquet ``id_field``, the WARC target URI, the MediaWiki page id, the TREC
    DOCNO, the crawled URL, the file name): carried to every chunk and search hit so results join back to the corpus. ``content`` is bytes for HTML/WARC payloads and str for text datasets and wikitext.
    """

    doc_id: str
    source: str  # the source's name in the variant
    content: bytes | str
    content_type: str  # "text/html", "text/plain", "text/x-wiki", ...
    source_doc_id: str = ""
    url: str = ""
    title: str = ""
    input_ref: str = ""  # where it came from (path, path#record-offset, path:line)
    encoding: str | None = None  # detected or declared charset for bytes content
    meta: dict[str, str] = field(default_factory=dict)

    def content_bytes(self) -> bytes:
        """The content as bytes (str content UTF-8 encoded): what ``raw_hash`` and the ``max_bytes`` limit measure."""
        return self.content.encode("utf-8") if isinstance(self.content, str) else self.content


@dataclass(slots=True)
class ExtractedDocument:
    """Clean text extracted from one RawDocument by one extractor (name and version recorded)."""

    doc_id: str
    source_doc_id: str
    source: str
    url: str
    title: str
    text: str
    extractor: str
    extractor_version: str
    raw_hash: str  # content_hash of the raw content: keys the extraction cache
    input_ref: str = ""  # the RawDocument's input_ref (path, path#offset): provenance, not part of the artifact key
