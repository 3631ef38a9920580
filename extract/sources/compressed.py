"""Reading compressed inputs so that one damaged spot loses only itself.

A ``.gz`` file is read member by member (parallel writers, ``bgzip`` and ``cat a.gz b.gz`` make multi-member files),
and a plain zlib stream is read too (the decompressor detects the header); a ``.bz2`` file stream by stream (pbzip2
and Wikipedia's multistream dumps make many). When a stream is damaged (``zlib.error: invalid distance too far
back``, a bad CRC, garbage between streams) reading resumes at the next stream header (gzip ``1f 8b 08`` with valid
flags; bz2 ``BZh<level>`` and the first block's magic) when one follows: everything before the damage and every
intact stream after it comes through, and the damage is reported once, with the compressed byte offsets, as a
``Damage``. A damaged single-stream file has nothing to resume at: the Damage says that the rest is lost.

    for piece in iter_decompressed(path):      # bytes, or a Damage where the stream broke
    for item in iter_lines(path):              # (line_number, bytes) or a Damage
    open_maybe_compressed(path).read()         # a file object; damage raises CorruptCompressedData (an OSError)
"""

from __future__ import annotations

import bz2
import io
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO

_CHUNK = 1 << 16  # compressed bytes read at a time
_MAX_OUT = 1 << 20  # decompressed bytes per step: a decompression bomb is streamed, never held whole
_GZIP_MAGIC = b"\x1f\x8b\x08"  # magic and the deflate method byte
_GZIP_RESERVED_FLAGS = 0xE0  # a real header has these flag bits clear: cheap check against magic in random bytes
_AUTO_HEADER = zlib.MAX_WBITS | 32  # zlib.decompressobj: detect a gzip or a zlib header
_BZ2_LEVELS = b"123456789"
_BZ2_BLOCK_MAGIC = b"1AY&SY"  # 0x314159265359: a stream's first block starts byte-aligned right after "BZh<level>"


class CorruptCompressedData(OSError):
    """A compressed stream is damaged; raised by the file objects of ``open_maybe_compressed``."""


@dataclass(frozen=True, slots=True)
class Damage:
    """A damaged span of a compressed file: the member (or stream) starting at compressed byte ``offset`` broke;
    reading resumed at byte ``resumed_at`` (the next intact member), or never (None: the rest of the file is lost)."""

    offset: int
    resumed_at: int | None
    error: str

    def describe(self) -> str:
        where = f"compressed bytes from {self.offset}"
        if self.resumed_at is None:
            return f"{self.error}; {where} to the end are unreadable (no intact stream follows)"
        return f"{self.error}; {where} to {self.resumed_at} skipped, reading resumed at the next stream"


def find_next(f: BinaryIO, start: int, marker: bytes, lookahead: int = 0, plausible=None) -> int | None:
    """Offset of the next ``marker`` at or after ``start`` in the file (read in chunks), or None. ``plausible(data, i)``,
    when given, vets a hit with ``lookahead`` bytes after the marker in view (a cheap check against chance matches)."""
    f.seek(start)
    carry = b""
    base = start
    while block := f.read(_CHUNK):
        data = carry + block
        i = data.find(marker)
        while i != -1 and i + len(marker) + lookahead <= len(data):
            if plausible is None or plausible(data, i):
                return base + i
            i = data.find(marker, i + 1)
        keep = min(len(data), len(marker) + lookahead)  # a marker may straddle two blocks
        carry, base = data[-keep:], base + len(data) - keep
    return None  # (a marker closer than ``lookahead`` to the end cannot start anything whole)


def _plausible_member_at(data: bytes, i: int) -> bool:
    return not data[i + len(_GZIP_MAGIC)] & _GZIP_RESERVED_FLAGS


def next_gzip_member(f: BinaryIO, start: int) -> int | None:
    """Offset of the next plausible gzip member header at or after ``start``, or None."""
    return find_next(f, start, _GZIP_MAGIC, lookahead=1, plausible=_plausible_member_at)


@dataclass(frozen=True)
class _Format:
    """What differs between gzip and bz2 for reading stream by stream and resyncing."""

    name: str
    decompressor: Callable[[], Any]
    errors: tuple[type[BaseException], ...]
    next_stream: Callable[[BinaryIO, int], int | None]
    padding: bytes  # bytes allowed between streams


def _bz2_stream_at(data: bytes, i: int) -> bool:
    return data[i + 3 : i + 4] in _BZ2_LEVELS and data[i + 4 : i + 10] == _BZ2_BLOCK_MAGIC


def next_bz2_stream(f: BinaryIO, start: int) -> int | None:
    """Offset of the next bz2 stream header (``BZh1``..``BZh9`` and the first block's magic) at or after ``start``."""
    return find_next(f, start, b"BZh", lookahead=7, plausible=_bz2_stream_at)


_GZIP = _Format("gzip", lambda: zlib.decompressobj(_AUTO_HEADER), (zlib.error,), next_gzip_member, b"\x00")
_BZ2 = _Format("bz2", bz2.BZ2Decompressor, (OSError, EOFError, ValueError), next_bz2_stream, b"")


def _iter_streams(f: BinaryIO, fmt: _Format) -> Iterator[bytes | Damage]:
    """Decompress the streams (gzip members, bz2 streams) of ``f`` one after another; on damage, resume at the next
    stream header and report the skipped span once."""
    stream_start = 0  # compressed offset of the stream being read
    position = 0  # compressed offset of ``pending[0]``
    pending = b""
    decompressor = fmt.decompressor()
    broken: Damage | None = None  # reported once the next stream proves intact (merges false starts into one)
    started = False  # the current stream has consumed input
    more = False  # the decompressor may hold more output without new input (the last step hit its output limit)
    while True:
        if not pending and not more:
            pending = f.read(_CHUNK)
            if not pending:
                break
        if not started:
            stripped = pending.lstrip(fmt.padding) if fmt.padding else pending  # gzip allows zero padding
            position += len(pending) - len(stripped)
            stream_start, pending = position, stripped
            if not pending:
                continue
        try:
            out = decompressor.decompress(pending, _MAX_OUT)
        except fmt.errors as exc:
            resume = fmt.next_stream(f, stream_start + 1)
            start = broken.offset if broken is not None else stream_start
            broken = Damage(start, resume, f"{fmt.name}: {exc}")
            if resume is None:
                break
            f.seek(resume)
            position, pending, started, more = resume, b"", False, False
            decompressor = fmt.decompressor()
            continue
        started = True
        if out:
            if broken is not None:
                yield broken
                broken = None
            yield out
        if decompressor.eof:
            rest = decompressor.unused_data
            position += len(pending) - len(rest)
            if broken is not None:  # an empty stream after a resync still proves the file intact again
                yield broken
                broken = None
            pending, started, more = rest, False, False
            decompressor = fmt.decompressor()
        else:
            tail = getattr(decompressor, "unconsumed_tail", b"")  # bz2 keeps unused input inside, zlib hands it back
            position += len(pending) - len(tail)
            pending = tail
            more = len(out) == _MAX_OUT or not getattr(decompressor, "needs_input", True)
    if broken is not None:
        yield broken
    elif started and not decompressor.eof:
        yield Damage(stream_start, None, f"the file ends inside a {fmt.name} stream (truncated)")


@dataclass(frozen=True)
class LineSpan:
    """Bytes ``[start, end)`` of an uncompressed file of lines, both at line starts (or the end of the file): a unit
    of work inside one large file. ``first_line``: the number of its first line in the file (1-based), so documents
    keep the ids and references of a whole-file read."""

    file: str  # relative to the source's root
    start: int
    end: int
    first_line: int

    def __str__(self) -> str:
        return f"{self.file}@{self.start}-{self.end}"


def compressed(path: Path) -> bool:
    return path.suffix in (".gz", ".bz2")


def line_spans(path: Path, file: str, max_bytes: int) -> list[LineSpan]:
    """``path`` (uncompressed) cut into spans of about ``max_bytes``: each ends at the first line start at or past
    ``max_bytes`` from its own start, so a line is never split and spans before an append stay the same. Reads the
    file once, counting lines for each span's ``first_line``."""
    size = path.stat().st_size
    spans: list[LineSpan] = []
    start, line = 0, 1
    with open(path, "rb") as f:
        while start < size:
            end = min(start + max_bytes, size)
            if end < size:
                f.seek(end - 1)  # the line start at or after ``end``: just past the next newline from end - 1
                while (block := f.read(_MAX_OUT)) and (newline := block.find(b"\n")) < 0:
                    end += len(block)
                end = min(size, end + newline) if block else size
            spans.append(LineSpan(file, start, end, line))
            line += sum(block.count(b"\n") for block in _read_span(path, start, end))
            start = end
    return spans


def iter_decompressed(path: Path) -> Iterator[bytes | Damage]:
    """The decompressed bytes of ``path`` (``.gz``/``.bz2`` by suffix, else as is) in pieces, with a Damage where the
    compressed stream broke. Opening errors (missing file, permissions) raise OSError."""
    with open(path, "rb") as f:
        if path.suffix == ".gz":
            yield from _iter_streams(f, _GZIP)
        elif path.suffix == ".bz2":
            yield from _iter_streams(f, _BZ2)
        else:
            while block := f.read(_MAX_OUT):
                yield block


def _read_span(path: Path, start: int, end: int) -> Iterator[bytes]:
    with open(path, "rb") as f:
        f.seek(start)
        while start < end and (block := f.read(min(_MAX_OUT, end - start))):
            start += len(block)
            yield block


def iter_lines(path: Path, span: LineSpan | None = None) -> Iterator[tuple[int, bytes] | Damage]:
    """``(line_number, line)`` for each line of the decompressed file (without its newline), and each Damage in its
    place. The line a damage cuts is part of the damage; line numbers count the lines read (those in a skipped span
    are unknown). With ``span`` (of an uncompressed file): only its lines, numbered as in the whole file."""
    parts: list[bytes] = []  # the unfinished line, in pieces (no quadratic joining for a line longer than a piece)
    number = 0 if span is None else span.first_line - 1
    pieces = iter_decompressed(path) if span is None else _read_span(path, span.start, span.end)
    for piece in pieces:
        if isinstance(piece, Damage):
            parts = []
            yield piece
            continue
        lines = piece.split(b"\n")
        if len(lines) > 1:
            parts.append(lines[0])
            number += 1
            yield number, b"".join(parts)
            for line in lines[1:-1]:
                number += 1
                yield number, line
            parts = []
        if lines[-1]:
            parts.append(lines[-1])
    if parts:
        yield number + 1, b"".join(parts)


class _DecompressedReader(io.RawIOBase):
    """A read-only raw stream over ``iter_decompressed``; a Damage raises CorruptCompressedData naming the file."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._pieces = iter_decompressed(path)
        self._buffer = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, target) -> int:
        while not self._buffer:
            piece = next(self._pieces, None)
            if piece is None:
                return 0
            if isinstance(piece, Damage):
                raise CorruptCompressedData(f"{self._path}: {piece.describe()}")
            self._buffer = memoryview(piece)
        n = min(len(target), len(self._buffer))
        target[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
        return n

    def close(self) -> None:
        self._pieces.close()
        super().close()


def open_maybe_compressed(path: Path) -> IO[bytes]:
    """Open a file for binary streaming, decompressing ``.gz`` / ``.bz2`` on the fly. Damage raises
    CorruptCompressedData (an OSError) when the reader reaches it, after everything before it was read."""
    if path.suffix not in (".gz", ".bz2"):
        return open(path, "rb")
    return io.BufferedReader(_DecompressedReader(path), buffer_size=_CHUNK)
