"""Wikitext -> readable text that keeps the facts in infoboxes and tables.

A generic cleaner drops every template and table; for a retrieval datastore that loses the most answerable facts
(birth dates, populations, office holders). Here infoboxes become ``key: value`` lines, table rows become
`` | ``-joined cells, a few inline templates that carry visible text (dates, conversions, language tags, lists) are
rendered by a small registry, and references, files, categories, interlanguage links and other templates are dropped.
"""

from __future__ import annotations

import re
from calendar import month_name
from collections.abc import Callable
from typing import Any

import mwparserfromhell
from mwparserfromhell.nodes import (
    Argument,
    Comment,
    ExternalLink,
    Heading,
    HTMLEntity,
    Node,
    Tag,
    Template,
    Text,
    Wikilink,
)
from mwparserfromhell.wikicode import Wikicode

from extract.extractors.base import Extractor, document_text, register_extractor
from extract.records import RawDocument

_INFOBOX_NAME = re.compile(r"^(infobox|infoboks|ficha|taxobox|speciesbox|automatic taxobox|chembox|drugbox|geobox)\b")
# Localized "File:" and "Category:" prefixes of the largest Wikipedias; links with these prefixes are not text.
_HIDDEN_LINK_PREFIXES = frozenset(
    "file image media category datei bild kategorie fichier catégorie archivo imagen categoría ficheiro arquivo "
    "categoria immagine bestand categorie plik kategoria файл изображение категория fil kategori mynd bólkur "
    "flokkur luokka tiedosto".split()
)
_INTERLANGUAGE = re.compile(r"^[a-z]{2,3}(-[a-z]{2,8})*$|^simple$")
_FILE_VALUE = re.compile(r"\.(png|jpe?g|svg|gif|tiff?|webp|webm|ogg|ogv|pdf)\s*$", re.IGNORECASE)
_MEDIA_KEYS = re.compile(r"(^|_| )(image|logo|map|signature|seal|flag|coat|alt|upright|pushpin|size|width)\d*($|_| )")
_DROPPED_TAGS = frozenset({"ref", "references", "gallery", "imagemap", "timeline", "graph", "templatestyles", "score"})
_TABLE_CELLS = frozenset({"td", "th"})
_MAGIC_WORD = re.compile(r"__[A-Z]+__")
_SPACES = re.compile(r"[ \t\u00a0]+")
_EMPTY_PARENS = re.compile(r"\(\s*[,;:]?\s*\)")
_BLANK_LINES = re.compile(r"\n{3,}")
_LEFTOVER_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9]*\b[^<>]*>")  # unclosed HTML tags the parser kept as text


def _norm_name(name: Any) -> str:
    return _SPACES.sub(" ", str(name).replace("_", " ")).strip().lower()


def _one_line(text: str) -> str:
    return _SPACES.sub(" ", text.replace("\n", " ")).strip()


class WikiRenderer:
    """Walks an mwparserfromhell tree and renders each node kind; one method per node kind."""

    def render(self, code: Wikicode | None) -> str:
        if code is None:
            return ""
        return "".join(self.node(n) for n in code.nodes)

    def node(self, node: Node) -> str:
        match node:
            case Text():
                return node.value
            case Wikilink():
                return self.wikilink(node)
            case ExternalLink():
                return self.render(node.title) if node.title is not None else ""
            case Template():
                return self.template(node)
            case Tag():
                return self.tag(node)
            case Heading():
                return f"\n\n{_one_line(self.render(node.title))}\n"
            case HTMLEntity():
                return node.normalize()
            case Comment() | Argument():
                return ""
        return ""

    def wikilink(self, link: Wikilink) -> str:
        title = str(link.title).strip()
        if title.startswith(":"):  # [[:Category:X]] is a visible link to the category page
            return self.render(link.text) if link.text is not None else title[1:]
        prefix, sep, _ = title.partition(":")
        if sep and (prefix.strip().lower() in _HIDDEN_LINK_PREFIXES or _INTERLANGUAGE.match(prefix.strip())):
            return ""
        if link.text is not None:
            return self.render(link.text)
        return self.render(link.title).split("#", 1)[0]

    def tag(self, tag: Tag) -> str:
        name = str(tag.tag).strip().lower()
        if name in _DROPPED_TAGS:
            return ""
        if name == "table":
            return self.table(tag)
        if name == "br":
            return "\n"
        if name == "hr":
            return "\n"
        return self.render(tag.contents)

    def table(self, table: Tag) -> str:
        rows: list[str] = []
        cells: list[str] = []
        for child in table.contents.nodes if table.contents else []:
            if not isinstance(child, Tag):
                continue
            name = str(child.tag).strip().lower()
            if name == "tr":
                if cells:
                    rows.append(" | ".join(cells))
                    cells = []
                row = [
                    self.cell(c)
                    for c in child.contents.nodes
                    if isinstance(c, Tag) and str(c.tag).strip().lower() in _TABLE_CELLS
                ]
                row = [c for c in row if c]
                if row:
                    rows.append(" | ".join(row))
            elif name in _TABLE_CELLS:  # cells before the first |- belong to an implicit first row
                cell = self.cell(child)
                if cell:
                    cells.append(cell)
            elif name == "caption":
                caption = _one_line(self.render(child.contents))
                if caption:
                    rows.append(caption)
        if cells:
            rows.append(" | ".join(cells))
        return "\n\n" + "\n".join(rows) + "\n\n" if rows else ""

    def cell(self, cell: Tag) -> str:
        return _one_line(self.render(cell.contents))

    def template(self, template: Template) -> str:
        name = _norm_name(template.name)
        if _INFOBOX_NAME.match(name):
            return self.infobox(template)
        renderer = INLINE_TEMPLATES.get(name) or (INLINE_TEMPLATES["lang-"] if name.startswith("lang-") else None)
        return renderer(self, template) if renderer else ""

    def infobox(self, template: Template) -> str:
        lines: list[str] = []
        for param in template.params:
            if not param.showkey:
                continue
            key = _norm_name(param.name)
            value = _one_line(self.render(param.value).replace("\n", ", "))
            value = value.strip(" ,;")
            if not value or _MEDIA_KEYS.search(key) or _FILE_VALUE.search(value):
                continue
            lines.append(f"{key}: {value}")
        return "\n\n" + "\n".join(lines) + "\n\n" if lines else ""

    # helpers for the inline renderers
    def positional(self, template: Template) -> list[str]:
        return [_one_line(self.render(p.value)) for p in template.params if not p.showkey]

    def named(self, template: Template, key: str) -> str:
        return _one_line(self.render(template.get(key).value)) if template.has(key) else ""


InlineRenderer = Callable[[WikiRenderer, Template], str]
INLINE_TEMPLATES: dict[str, InlineRenderer] = {}


def inline_template(*names: str) -> Callable[[InlineRenderer], InlineRenderer]:
    """Register a renderer for templates that put visible text in the article (names lower-case, spaces)."""

    def decorate(fn: InlineRenderer) -> InlineRenderer:
        for name in names:
            INLINE_TEMPLATES[name] = fn
        return fn

    return decorate


@inline_template("nowrap", "nobr", "small", "big", "smaller", "larger", "nobold", "noitalic", "abbr", "sic", "math")
@inline_template("mvar", "formatnum", "val", "ill", "flag", "flagcountry", "flagu", "nowiki", "lang-")
def _first_positional(r: WikiRenderer, t: Template) -> str:
    args = r.positional(t)
    return args[0] if args else ""


@inline_template("lang", "transl", "resize", "url")
def _last_positional(r: WikiRenderer, t: Template) -> str:
    args = r.positional(t)
    return args[-1] if args else ""


@inline_template("convert", "cvt")
def _convert(r: WikiRenderer, t: Template) -> str:
    args = r.positional(t)
    if len(args) >= 4 and args[1] in ("-", "–", "to", "and", "or", "by", "x", "×"):
        return " ".join(args[:4])
    return " ".join(args[:2])


@inline_template("ubl", "unbulleted list", "hlist", "flatlist", "plainlist", "bulleted list", "ordered list")
def _list(r: WikiRenderer, t: Template) -> str:
    items = [line.strip(" *#") for arg in r.positional(t) for line in arg.split("\n")]
    return ", ".join(i for i in items if i)


@inline_template("circa", "c.")
def _circa(r: WikiRenderer, t: Template) -> str:
    args = r.positional(t)
    return f"c. {args[0]}" if args else "c."


@inline_template("marriage", "married")
def _marriage(r: WikiRenderer, t: Template) -> str:
    args = r.positional(t)
    if not args:
        return ""
    years = "–".join(a for a in args[1:3] if a)
    return f"{args[0]} (m. {years})" if years else args[0]


def _date(parts: list[str]) -> str:
    """``[year, month, day]`` -> ``June 5, 2001`` (or ``June 2001`` / ``2001``), as English Wikipedia shows it."""
    numbers = [p for p in parts[:3] if p.strip().isdigit()]
    if not numbers:
        return " ".join(parts[:3])
    year = numbers[0]
    month = month_name[int(numbers[1])] if len(numbers) > 1 and 1 <= int(numbers[1]) <= 12 else ""
    day = str(int(numbers[2])) if len(numbers) > 2 else ""
    if month and day:
        return f"{month} {day}, {year}"
    return f"{month} {year}".strip()


@inline_template("birth date", "death date", "start date", "end date", "film date", "dob", "birth-date")
@inline_template("birth date and age", "death date and age", "start date and age", "end date and age", "bda")
def _date_template(r: WikiRenderer, t: Template) -> str:
    return _date(r.positional(t))


def wikitext_to_text(wikitext: str) -> str:
    """Render wikitext as readable text (infoboxes as ``key: value`` lines, tables as `` | `` rows)."""
    rendered = WikiRenderer().render(mwparserfromhell.parse(_MAGIC_WORD.sub("", wikitext)))
    rendered = _EMPTY_PARENS.sub("", _LEFTOVER_TAG.sub("", rendered))
    lines = (_SPACES.sub(" ", line).strip() for line in rendered.split("\n"))
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


@register_extractor
class WikipediaExtractor(Extractor):
    name = "wikipedia"
    content_types = frozenset({"text/x-wiki"})
    library = "mwparserfromhell"

    def extract(self, raw: RawDocument) -> tuple[str, str]:
        return raw.title, wikitext_to_text(document_text(raw))
