"""MediaWiki XML dumps and Special:Export files (schema 0.3 to 0.11), plain or ``.bz2``, streamed.

``iterparse`` hands over one ``<page>`` at a time and the page is cleared after use, so memory stays flat on a
multi-GB dump. The latest revision's text is the document. Pages outside the configured namespaces and (by default)
redirects are skipped. A broken bz2 stream or broken XML ends that file as a Rejection after every good page before it.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

from catalog.hashing import relative_name
from catalog.records import Rejection
from extract.records import RawDocument
from extract.sources.base import FileSource, register_source
from extract.sources.compressed import open_maybe_compressed

_INTEGER = re.compile(r"-?[0-9]{1,18}")


def _local(tag: str) -> str:
    """Tag name without its schema namespace (``{http://www.mediawiki.org/xml/export-0.10/}page`` -> ``page``)."""
    return tag.rsplit("}", 1)[-1]


def _child_text(elem: ET.Element, name: str) -> str | None:
    for child in elem:
        if _local(child.tag) == name:
            return child.text or ""
    return None


def _children(elem: ET.Element, name: str) -> list[ET.Element]:
    return [child for child in elem if _local(child.tag) == name]


def _integer(text: str | None) -> int | None:
    """An ASCII integer, else None (``str.isdigit`` also accepts digits such as "²" that ``int`` refuses)."""
    text = (text or "").strip()
    return int(text) if _INTEGER.fullmatch(text) else None


class _Namespaces:
    """Namespace numbers by prefix, from ``<siteinfo>``; schema 0.3 pages have no ``<ns>``, only a prefixed title."""

    def __init__(self) -> None:
        self.by_prefix: dict[str, int] = {}

    def read_siteinfo(self, siteinfo: ET.Element) -> list[str]:
        """Map the prefixes; return what could not be read (a namespace without an integer key is left out)."""
        problems = []
        for group in _children(siteinfo, "namespaces"):
            for ns in _children(group, "namespace"):
                key = _integer(ns.get("key", "0"))
                if key is None:
                    problems.append(f"namespace key {ns.get('key')!r} of {ns.text!r} is not an integer")
                elif ns.text:
                    self.by_prefix[ns.text] = key
        return problems

    def of(self, page: ET.Element, title: str) -> int:
        ns = _integer(_child_text(page, "ns"))
        if ns is not None:
            return ns
        prefix, sep, _ = title.partition(":")
        return self.by_prefix.get(prefix, 0) if sep else 0


@register_source("mediawiki")
class MediaWikiSource(FileSource):
    pattern = "**/*.xml*"

    def _iter_file(self, path: Path) -> Iterator[RawDocument | Rejection]:
        namespaces = _Namespaces()
        pages = 0
        try:
            with open_maybe_compressed(path) as f:
                events = ET.iterparse(f, events=("start", "end"))
                _, root = next(events)
                for event, elem in events:
                    if event != "end":
                        continue
                    name = _local(elem.tag)
                    if name == "siteinfo":
                        problems = namespaces.read_siteinfo(elem)
                        if problems:
                            yield self.reject(f"{path}#siteinfo", "bad_siteinfo", "; ".join(problems))
                    elif name == "page":
                        pages += 1
                        doc = self._page(elem, namespaces, path)
                        if doc is not None:
                            yield doc
                        root.clear()  # drop finished pages so a dump streams in constant memory
        except ET.ParseError as exc:
            yield self.reject(f"{path}#page{pages + 1}", "broken_xml", str(exc))
        except (OSError, EOFError) as exc:  # bz2/gzip raise these on corrupt or truncated streams
            yield self.reject(f"{path}#page{pages + 1}", "corrupt_compressed_stream", f"{type(exc).__name__}: {exc}")

    def _page(self, page: ET.Element, namespaces: _Namespaces, path: Path) -> RawDocument | None:
        title = _child_text(page, "title") or ""
        if namespaces.of(page, title) not in self.cfg.namespaces:
            self.skip("namespace")
            return None
        revisions = _children(page, "revision")
        text = (_child_text(revisions[-1], "text") or "") if revisions else ""
        if self.cfg.skip_redirects and (_children(page, "redirect") or text.lstrip()[:9].upper() == "#REDIRECT"):
            self.skip("redirect")
            return None
        page_id = (_child_text(page, "id") or "").strip()
        # One page (same id and title) can be in several dump files of a source in different revisions: the file
        # (its name without a compression suffix: packing a dump changes no id) makes each its own record, and the
        # id stays the same across revisions of a file refreshed under its name.
        dump = relative_name(path, self.root).removesuffix(".bz2").removesuffix(".gz")
        return self.document(
            f"{dump}\x00{page_id or title}",
            text,
            "text/x-wiki",
            source_doc_id=page_id or title,
            title=title,
            input_ref=f"{path}#{title}",
            meta={"page_id": page_id},
        )
