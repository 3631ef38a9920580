"""The Source base class, the source registry and helpers shared by every source type."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import ClassVar

from catalog.errors import ConfigError
from catalog.hashing import combine_hashes, file_hash, files_hash, path_text, relative_name
from catalog.ids import make_doc_id
from catalog.records import Rejection, StageStats
from catalog.registry import Registry
from extract.records import RawDocument
from extract.sources.compressed import LineSpan, compressed, line_spans

STAGE = "extract"

SOURCE_TYPES: Registry[type[Source]] = Registry("source type")


def register_source(type_name: str) -> Callable[[type[Source]], type[Source]]:
    """Class decorator: make a Source subclass the reader for configs whose ``type`` is ``type_name``."""
    return SOURCE_TYPES.register(type_name)


def find_files(path: Path, pattern: str) -> list[Path]:
    """``path`` itself when it is a file, else the files under it matching the glob ``pattern``, sorted."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise ConfigError(f"{path}: source path does not exist")
    return sorted(p for p in path.glob(pattern) if p.is_file())


class Source:
    """Streams RawDocuments (and Rejections for unreadable inputs) from one configured source.

    Subclasses implement ``_iter_raw``; the base class applies ``limit`` and keeps the counters in ``stats``
    (documents read, rejections and skips by reason).
    """

    type_name: ClassVar[str]
    pattern: ClassVar[str] = "**/*"  # the files read under a folder root; a config's own ``pattern`` wins
    # Files per unit of work when a build extracts the source's files apart (each file's documents depend on that
    # file alone); None: the source is read whole (its files depend on each other, as a crawl folder's do).
    files_per_shard: ClassVar[int | None] = 1
    # Whether a large uncompressed file can be read as line-aligned byte spans, one unit each (one record a line).
    splits_lines: ClassVar[bool] = False

    def __init__(self, cfg, files: Sequence[str | LineSpan] | None = None) -> None:
        """``files``: read only these of the source's files (names relative to its path), or spans of them (see
        ``shards``): one shard of it."""
        self.cfg = cfg
        self.name: str = path_text(cfg.name or f"{cfg.type}-{Path(cfg.path).stem}")
        self.root = Path(cfg.path)
        self.stats = StageStats(stage=f"{STAGE}:{self.name}")
        self.spans = {f.file: f for f in files or () if isinstance(f, LineSpan)}
        self.only_files = None if files is None else frozenset(f.file if isinstance(f, LineSpan) else f for f in files)

    def iter_documents(self) -> Iterator[RawDocument | Rejection]:
        limit = self.cfg.limit
        read = 0
        for item in self._iter_raw():
            if isinstance(item, Rejection):
                self.stats.add(f"rejected_{item.reason}")
                yield item
                continue
            read += 1
            self.stats.add("documents")
            yield item
            if limit is not None and read >= limit:
                return

    def _iter_raw(self) -> Iterator[RawDocument | Rejection]:
        raise NotImplementedError

    def files(self) -> list[Path]:
        """The files this source reads, in reading order (what the default ``fingerprint`` hashes)."""
        found = find_files(self.root, getattr(self.cfg, "pattern", None) or self.pattern)
        if self.only_files is None:
            return found
        return [f for f in found if relative_name(f, self.root) in self.only_files]

    def shards(self, max_bytes: int | None = None) -> list[list[str | LineSpan]]:
        """The source's files (relative names) in groups a build extracts apart, one unit of work each: one group
        when the source is read whole or has a ``limit`` (it counts documents across files). With ``max_bytes``
        (``sharding.max_bytes_per_unit``), a source of one record a line reads each uncompressed file larger than
        that as line-aligned spans of about ``max_bytes``, one group each."""
        files = self.files()
        if self.files_per_shard is None or self.cfg.limit is not None:
            return [[relative_name(f, self.root) for f in files]]
        groups: list[list[str | LineSpan]] = []
        for i in range(0, len(files), self.files_per_shard):
            group = files[i : i + self.files_per_shard]
            big = len(group) == 1 and max_bytes is not None and self.splits_lines and not compressed(group[0])
            if big and group[0].stat().st_size > max_bytes:
                groups += [[span] for span in line_spans(group[0], relative_name(group[0], self.root), max_bytes)]
            else:
                groups.append([relative_name(f, self.root) for f in group])
        return groups if len(groups) > 1 else [[relative_name(f, self.root) for f in files]]

    def fingerprint(self) -> str:
        """Content hash of what this source reads: the extract stage's input hash, so it must change whenever the
        documents the source yields may change. By default every file it reads, names and bytes (of a span: its
        bytes only, and where it lies)."""
        if not self.spans:
            return files_hash(self.files(), self.root)
        paths = {relative_name(f, self.root): f for f in self.files()}
        return combine_hashes(
            f"{span}:{span.first_line}:{file_hash(paths[span.file], start=span.start, end=span.end)}"
            for span in self.spans.values()
        )

    def skip(self, reason: str) -> None:
        """Count an input that is deliberately not a document (a redirect, an image record, a non-2xx response)."""
        self.stats.add(f"skipped_{reason}")

    def reject(self, input_ref: str, reason: str, detail: str = "") -> Rejection:
        # input_ref names a file: as path_text, so a file name that is not UTF-8 cannot break writing it
        return Rejection(stage=STAGE, source=self.name, input_ref=path_text(input_ref), reason=reason, detail=detail)

    def document(
        self, native_id: str, content: bytes | str, content_type: str, source_doc_id: str | None = None, **fields
    ) -> RawDocument:
        """A RawDocument whose doc_id is made from ``native_id`` (unique per record of this source); its
        ``source_doc_id`` is ``native_id`` unless the id the source itself gives is another (a URI, a page id)."""
        if "input_ref" in fields:
            fields["input_ref"] = path_text(fields["input_ref"])
        return RawDocument(
            doc_id=make_doc_id(self.name, native_id),
            source_doc_id=native_id if source_doc_id is None else source_doc_id,
            source=self.name,
            content=content,
            content_type=content_type,
            **fields,
        )


class FileSource(Source):
    """A source that reads every file matching the class's ``pattern`` under its root on its own: subclasses
    implement ``_iter_file``."""

    def _iter_raw(self) -> Iterator[RawDocument | Rejection]:
        for path in self.files():
            yield from self._iter_file(path)

    def _iter_file(self, path: Path) -> Iterator[RawDocument | Rejection]:
        raise NotImplementedError
