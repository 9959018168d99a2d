import bz2
import itertools
import logging
from pathlib import Path

import pytest

from training.corpus import iter_texts
from training.errors import CorpusError
from training.wikipedia import clean_wikitext

GENSIM_DUMP = "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"


def page(title: str, text: str, ns: int = 0, redirect: bool = False) -> str:
    marker = f'<redirect title="{title}s" />' if redirect else ""
    return (
        f"<page><title>{title}</title><ns>{ns}</ns><id>1</id>{marker}"
        f'<revision><text xml:space="preserve">{text}</text></revision></page>'
    )


def dump(*pages: str) -> str:
    return (
        '<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.10/">'
        "<siteinfo><sitename>Test</sitename></siteinfo>"
        + "".join(pages)
        + "</mediawiki>"
    )


def test_templates_are_removed_even_when_nested() -> None:
    text = "Paris{{efn|note {{lang|fr|x}} here}} is big.{{Infobox\n|a=1\n}}"
    assert clean_wikitext(text) == "Paris is big."


def test_tables_are_removed() -> None:
    text = "Before.\n{| class=wikitable\n|-\n| cell || {{flag|x}}\n|}\nAfter."
    assert clean_wikitext(text) == "Before.\nAfter."


def test_references_comments_and_html_tags_are_removed() -> None:
    text = (
        'Water<ref name="a/b">Source, p. 3</ref> boils<ref name=x /> at '
        "<!-- check this -->100<sup>o</sup>C<math>x^2</math>.<references/>"
    )
    assert clean_wikitext(text) == "Water boils at 100oC."


def test_links_keep_their_label_and_media_links_vanish() -> None:
    text = (
        "[[File:Cat.jpg|thumb|A [[cat]] on a mat [left] side]]"
        "The [[Felis catus|domestic cat]] and [[dog]]s.[[Category:Pets]][[de:Katze]]"
    )
    assert clean_wikitext(text) == "The domestic cat and dogs."


def test_emphasis_headings_external_links_and_entities_are_stripped() -> None:
    text = (
        "== History ==\n'''Rome''' was ''founded'' in 753&nbsp;BC &amp; grew.\n"
        "=== Sources ===\n* See [https://example.org the site] or https://x.org/y"
    )
    assert clean_wikitext(text) == "Rome was founded in 753 BC & grew.\nSee the site or"


def test_apostrophes_inside_words_survive_emphasis_removal() -> None:
    assert clean_wikitext("''Don't'' stop") == "Don't stop"


def test_dump_yields_article_paragraphs_skipping_redirects_and_other_namespaces(
    tmp_path: Path,
) -> None:
    path = tmp_path / "dump.xml"
    path.write_text(
        dump(
            page("Rome", "'''Rome''' is a city.\n\nIt is [[Italy|Italian]]."),
            page("Roma", "#REDIRECT [[Rome]]", redirect=True),
            page("Talk:Rome", "Discussion text.", ns=1),
            page("Romes", "#redirect [[Rome]]"),
            page("Paris", "Paris &lt;ref&gt;x&lt;/ref&gt;is in France."),
        )
    )
    assert list(iter_texts([path])) == [
        "Rome is a city.",
        "It is Italian.",
        "Paris is in France.",
    ]


def test_compressed_dump_is_recognised_by_its_name(tmp_path: Path) -> None:
    # A dump whose root element starts past the probe window still counts as
    # Wikipedia because of its file name.
    xml = "<?xml version='1.0'?>\n" + " " * 70_000 + dump(page("A", "Alpha text."))
    path = tmp_path / "enwiki-latest-pages-articles.xml.bz2"
    path.write_bytes(bz2.compress(xml.encode()))
    assert list(iter_texts([path])) == ["Alpha text."]


def test_dump_cut_off_at_the_end_keeps_complete_pages_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    xml = dump(page("A", "Alpha text."), page("B", "Beta text."))
    path = tmp_path / "cut.xml"
    path.write_text(xml[: xml.index("Beta") + 2])
    with caplog.at_level(logging.WARNING):
        assert list(iter_texts([path])) == ["Alpha text."]
    assert "cut.xml ends before its XML does" in caplog.text


def test_dump_broken_in_the_middle_raises_corpus_error(tmp_path: Path) -> None:
    pages = [page(f"P{i}", f"Text number {i}. " * 50) for i in range(200)]
    pages[3] = pages[3].replace("</title>", "</titel>")
    path = tmp_path / "broken.xml"
    path.write_text(dump(*pages))
    with pytest.raises(CorpusError, match=r"broken\.xml is not well-formed"):
        list(iter_texts([path]))


def test_dump_without_any_complete_page_raises_corpus_error(tmp_path: Path) -> None:
    path = tmp_path / "stub.xml"
    path.write_text(dump(page("A", "Alpha"))[:60])
    with pytest.raises(CorpusError, match="no complete Wikipedia page"):
        list(iter_texts([path]))


def test_gensim_sample_dump_gives_prose_without_markup() -> None:
    test_utils = pytest.importorskip("gensim.test.utils")
    texts = list(itertools.islice(iter_texts([test_utils.datapath(GENSIM_DUMP)]), 500))
    assert len(texts) == 500
    joined = "\n".join(texts)
    for markup in ("{{", "}}", "[[", "]]", "<ref", "'''", "thumb|", "&nbsp;"):
        assert markup not in joined
    assert "anarchism" in joined.lower()


def test_empty_file_named_as_a_dump_raises_corpus_error(tmp_path: Path) -> None:
    path = tmp_path / "enwiki-latest-pages-articles.xml"
    path.write_text("")
    with pytest.raises(CorpusError, match="no complete Wikipedia page"):
        list(iter_texts([path]))
