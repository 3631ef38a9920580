"""Extractors on real pages and articles: the wikipedia extractor keeps infobox values and table cells."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import trafilatura

from catalog.errors import ConfigError
from extract.extractors import DEFAULT_FOR_CONTENT_TYPE, EXTRACTORS, get_extractor
from extract.extractors.wikipedia import wikitext_to_text
from extract.records import RawDocument


def raw(content: bytes | str, content_type: str = "text/html", **fields) -> RawDocument:
    return RawDocument(doc_id="d", source="s", content=content, content_type=content_type, **fields)


def squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


@pytest.fixture(scope="module")
def etaples(fixtures_dir: Path) -> str:
    return wikitext_to_text((fixtures_dir / "extract/wikitext/Canton-of-Etaples.txt").read_text())


def test_registry_has_every_extractor_with_a_library_version() -> None:
    assert {"trafilatura", "resiliparse", "wikipedia", "plain"} <= set(EXTRACTORS)
    assert get_extractor("trafilatura").version == f"trafilatura-{trafilatura.__version__}/1"
    assert re.fullmatch(r"resiliparse-\d+\.\d+.*/1", get_extractor("resiliparse").version)
    assert re.fullmatch(r"mwparserfromhell-\d+\.\d+.*/1", get_extractor("wikipedia").version)
    assert set(DEFAULT_FOR_CONTENT_TYPE.values()) <= set(EXTRACTORS)


def test_unknown_extractor_and_option_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="unknown extractor 'nope'"):
        get_extractor("nope")
    with pytest.raises(ConfigError, match="unknown option.*favour_precision"):
        get_extractor("trafilatura", favour_precision=True)
    with pytest.raises(ConfigError, match="cannot import"):
        get_extractor("no_such_module_xyz:Thing")


def test_wikipedia_keeps_infobox_values_as_key_value_lines(etaples: str) -> None:
    lines = etaples.splitlines()
    assert "chief town: Étaples" in lines
    assert "pop: 31363" in lines
    assert "cons:" not in etaples  # empty infobox fields are dropped


def test_wikipedia_keeps_table_cells_as_rows(etaples: str) -> None:
    lines = etaples.splitlines()
    assert "1962 | 1968 | 1975 | 1982 | 1990 | 1999" in lines
    assert "14870 | 15912 | 17032 | 18140 | 18767 | 19061" in lines
    assert "Population Movement" in lines  # the table caption


def test_wikipedia_drops_refs_categories_templates_and_markup(etaples: str) -> None:
    assert "legifrance" not in etaples  # inside <ref>
    assert "Category" not in etaples and "Cantons of Pas-de-Calais|Etaples" not in etaples
    assert "coord" not in etaples and "stub" not in etaples and "DEFAULTSORT" not in etaples
    assert not re.search(r"\[\[|\]\]|\{\{|\}\}|'''|<small>", etaples)
    assert "The canton of Étaples is a canton situated in the Pas-de-Calais département" in etaples


def test_wikipedia_matches_reference_cleaning_pair(fixtures_dir: Path) -> None:
    ours = wikitext_to_text((fixtures_dir / "extract/wikitext/Klaksvikar_kommuna.txt").read_text())
    expected = (fixtures_dir / "extract/wikitext/Klaksvikar_kommuna.expected").read_text()
    our_lines = {squash(line) for line in ours.splitlines()}
    missing = [line for line in expected.splitlines() if line.strip() and squash(line) not in our_lines]
    assert missing == []  # every prose line of the reference cleaner, plus the infobox the reference drops:
    assert "borgarstjóri: Jógvan Skorheim" in ours.splitlines()
    assert "Bólkur" not in ours and "Kommunur í Føroyum" not in ours  # localized category link


def test_wikipedia_inline_templates_render_their_text() -> None:
    text = wikitext_to_text(
        "{{Infobox person|name=Ann|birth_date={{birth date and age|1969|7|18}}|spouse={{marriage|Bo|1994|2002}}"
        "|image=Ann.jpg}}\nShe ran {{convert|5|km|mi}} in {{lang|fr|Paris}}.<ref>{{cite web|url=x}}</ref>"
        " [[File:Ann.jpg|thumb|A caption]][[de:Ann]]"
    )
    assert text.splitlines()[:3] == ["name: Ann", "birth date: July 18, 1969", "spouse: Bo (m. 1994–2002)"]
    assert "She ran 5 km in Paris." in text
    assert "Ann.jpg" not in text and "cite" not in text and "de:" not in text


@pytest.mark.slow
def test_wikipedia_handles_every_shared_article(shared_data: Path) -> None:
    extractor = get_extractor("wikipedia")
    folder = shared_data / "mediawiki/wikitext_articles"
    sizes = {}
    for path in sorted(folder.glob("*.txt")):
        _, text = extractor.extract(raw(path.read_text(), "text/x-wiki", title=path.stem))
        sizes[path.stem] = len(text)
    assert len(sizes) == 71
    assert sum(1 for n in sizes.values() if n > 200) >= 69  # all but the redirect and one stub have real text
    _, uk = extractor.extract(raw((folder / "United-Kingdom.txt").read_text(), "text/x-wiki"))
    assert "capital: London" in uk.splitlines()


def test_trafilatura_equals_direct_call_and_finds_gold_text(fixtures_dir: Path) -> None:
    page = fixtures_dir / "extract/html/ba07d1e64775f4090e39116c382111f5a2cfe9528dd179673f4e9bfcea370c15.html"
    html = page.read_text(encoding="utf-8")
    gold = json.loads((fixtures_dir / "extract/html/ground-truth.json").read_text())[page.name.split(".")[0]]
    title, text = get_extractor("trafilatura").extract(raw(page.read_bytes(), encoding="utf-8"))
    assert text == trafilatura.extract(html, include_comments=False)
    assert gold["articleBody"].splitlines()[0] in text
    assert "DMEXCO" in title


def test_resiliparse_extracts_main_text_and_title(fixtures_dir: Path) -> None:
    page = fixtures_dir / "extract/html/ba07d1e64775f4090e39116c382111f5a2cfe9528dd179673f4e9bfcea370c15.html"
    title, text = get_extractor("resiliparse").extract(raw(page.read_bytes(), encoding="utf-8"))
    assert "Auf Europas größter Expo und Conference für die Digitalbranche" in text
    assert "DMEXCO" in title


def test_html_extractors_decode_legacy_charsets_and_survive_bad_bytes() -> None:
    page = "<html><body><article><p>Crème brûlée in Köln, ÿ façade — naïve</p></article></body></html>"
    latin = raw(page.encode("cp1252"), encoding="cp1252")
    assert "Crème brûlée in Köln" in get_extractor("resiliparse").extract(latin)[1]
    broken = raw(b"<html><body><p>ok \xff\xfe\x80 bytes \xc3( after</p></body></html>", encoding="utf-8")
    assert "after" in get_extractor("resiliparse").extract(broken)[1]


def test_plain_passthrough_decodes_bytes() -> None:
    assert get_extractor("plain").extract(raw(b"  caf\xe9 \n", "text/plain", encoding="latin-1", title="T")) == (
        "T",
        "café",
    )
