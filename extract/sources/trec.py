"""TREC SGML collections: ``<DOC><DOCNO>id</DOCNO> ... </DOC>`` (Vaswani, Cranfield, TREC disks).

Streamed line by line; the text is the ``<TEXT>`` element when there is one, else everything but the DOCNO, with any
other SGML tags removed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from catalog.records import Rejection
from extract.records import RawDocument
from extract.sources.base import FileSource, register_source
from extract.sources.compressed import Damage, iter_lines

_DOCNO = re.compile(r"<DOCNO>\s*(.*?)\s*</DOCNO>", re.IGNORECASE | re.DOTALL)
_TEXT = re.compile(r"<TEXT>(.*?)</TEXT>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"</?[A-Za-z][^>]*>")
_DOC_START = re.compile(r"<DOC>", re.IGNORECASE)
_DOC_END = re.compile(r"</DOC>", re.IGNORECASE)


@register_source("trec")
class TrecSource(FileSource):
    pattern = "**/*"

    def _iter_file(self, path: Path) -> Iterator[RawDocument | Rejection]:
        buffer: list[str] | None = None
        start_line = lineno = 0
        try:
            for item in iter_lines(path):
                if isinstance(item, Damage):  # the document it cut is lost with it; reading goes on after it
                    buffer = None
                    yield self.reject(f"{path}:{lineno + 1}", "corrupt_compressed_stream", item.describe())
                    continue
                lineno, raw_line = item
                line = raw_line.decode("utf-8", errors="replace") + "\n"
                if buffer is None:
                    if not _DOC_START.search(line):
                        continue
                    buffer, start_line = [], lineno
                buffer.append(line)
                if _DOC_END.search(line):
                    yield self._document_from("".join(buffer), f"{path}:{start_line}")
                    buffer = None
        except OSError as exc:
            yield self.reject(f"{path}:{lineno + 1}", "unreadable_file", str(exc))
            return
        if buffer is not None:
            yield self.reject(f"{path}:{start_line}", "truncated_record", "<DOC> without </DOC> at end of file")

    def _document_from(self, block: str, ref: str) -> RawDocument | Rejection:
        docno = _DOCNO.search(block)
        if docno is None:
            return self.reject(ref, "missing_id", "<DOC> without <DOCNO>")
        texts = _TEXT.findall(block)
        body = "\n".join(texts) if texts else block[docno.end() :]
        text = _TAG.sub(" ", body).strip()
        return self.document(docno.group(1), text, "text/plain", input_ref=ref)
