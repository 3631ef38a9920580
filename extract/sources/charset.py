"""Charset detection and tolerant decoding of raw bytes (HTML files, WARC payloads).

Order: a byte-order mark, then strict UTF-8 (multi-byte UTF-8 that decodes cleanly is almost never another charset),
then the charset the document declares (HTTP header or ``<meta>``), then charset-normalizer's statistical guess.
A declared label that names no text encoding (Python's ``hex``, ``rot13``, ``base64`` codecs; ``idna``; the UTF-7 that
browsers refuse) is ignored, and a ``<meta>`` naming UTF-16/32 means UTF-8 (the HTML spec's rule: a page whose
``<meta>`` could be read as ASCII is not UTF-16), so such pages go to detection as they do in browsers.
"""

from __future__ import annotations

import codecs
import re

import charset_normalizer

_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF32_LE, "utf-32"),  # before UTF-16 LE: its BOM starts with the UTF-16 LE one
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9._:-]+)""", re.IGNORECASE)
_HEADER_CHARSET = re.compile(r"""charset\s*=\s*["']?([A-Za-z0-9._:-]+)""", re.IGNORECASE)
_META_SCAN_BYTES = 4096  # the HTML spec's prescan window for <meta charset>
_SNIFF_BYTES = 64 * 1024  # enough for a statistical guess; keeps detection cheap on huge pages
_CP1252_CHAOS_SLACK = 0.1
_CP1252_COHERENCE_SLACK = 0.05
# Python text codecs that are no document charset: escapes and host-name encodings, and UTF-7 (refused by browsers)
_NOT_CHARSETS = frozenset({"idna", "punycode", "unicode-escape", "raw-unicode-escape", "undefined", "utf-7"})


def known_codec(name: str | None) -> str | None:
    """The Python codec name for a declared charset, or None when it names no charset a document can be in."""
    if not name:
        return None
    try:
        codec = codecs.lookup(name.strip().strip("\"'")).name
        b"a".decode(codec, "replace")  # LookupError for codecs that are not text encodings (hex, rot13, base64, zlib)
    except (LookupError, UnicodeError):
        return None
    return None if codec in _NOT_CHARSETS else codec


def charset_from_content_type(content_type: str | None) -> str | None:
    """The ``charset=`` parameter of a Content-Type header, if it names a known codec."""
    match = _HEADER_CHARSET.search(content_type or "")
    return known_codec(match.group(1)) if match else None


def charset_from_meta(data: bytes) -> str | None:
    match = _META_CHARSET.search(data[:_META_SCAN_BYTES])
    codec = known_codec(match.group(1).decode("ascii", "replace")) if match else None
    return "utf-8" if codec and codec.startswith(("utf-16", "utf-32")) else codec


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A sniff window may cut a multi-byte character at its end: that is not evidence against UTF-8.
        return exc.start >= len(data) - 3 and exc.reason == "unexpected end of data"
    return True


def detect_charset(data: bytes, declared: str | None = None) -> str:
    """Best charset for ``data``; ``declared`` is what the transport said (e.g. an HTTP Content-Type charset)."""
    for bom, name in _BOMS:
        if data.startswith(bom):
            return name
    head = data[:_SNIFF_BYTES]
    if _is_utf8(head):
        return "utf-8"
    stated = known_codec(declared) or charset_from_meta(data)
    if stated and stated not in ("utf-8", "ascii"):  # a page that says UTF-8 but is not: do not trust it
        return stated
    return _statistical_guess(head)


def _statistical_guess(data: bytes) -> str:
    """charset-normalizer's guess, except that cp1252 (the web's legacy default) wins when it is about as plausible:
    on short Western European text several single-byte codepages tie and the best-ranked one is often Baltic."""
    matches = charset_normalizer.from_bytes(data)
    best = matches.best()
    if best is None:
        return "cp1252"  # it maps every byte, so decoding never fails (browsers fall back the same way)
    for match in matches:
        if (
            match.encoding == "cp1252"
            and match.chaos <= best.chaos + _CP1252_CHAOS_SLACK
            and match.coherence >= best.coherence - _CP1252_COHERENCE_SLACK
        ):
            return "cp1252"
    return known_codec(best.encoding) or "cp1252"


def decode_bytes(data: bytes, encoding: str | None) -> str:
    """Decode with the given (or detected) charset; undecodable bytes become U+FFFD instead of failing."""
    codec = known_codec(encoding) or detect_charset(data)
    try:
        return data.decode(codec, errors="replace")
    except UnicodeError:  # a codec without "replace" support: cp1252 maps every byte (the browsers' fallback)
        return data.decode("cp1252", errors="replace")
