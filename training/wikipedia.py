"""Wikipedia XML dumps as plain text: stream the pages, keep the articles and
strip the wiki markup with a handful of regular expressions.

The cleaner aims at prose good enough for word vectors, not at a faithful
rendering: templates, tables, references and media are dropped whole.
"""

import html
import io
import logging
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import BinaryIO

from training.errors import CorpusError

logger = logging.getLogger(__name__)

_ARTICLE_NAMESPACE = "0"

_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.DOTALL)
_REF = re.compile(r"<ref\b[^>]*/>|<ref\b[^>]*>.*?</ref\s*>", re.DOTALL | re.IGNORECASE)
# Elements whose content is code, maths or layout rather than prose.
_DROPPED_ELEMENT = re.compile(
    r"<(math|chem|gallery|timeline|syntaxhighlight|source|score|graph|imagemap|"
    r"mapframe|hiero|templatedata|pre)\b[^>]*>.*?</\1\s*>",
    re.DOTALL | re.IGNORECASE,
)
_TAG = re.compile(r"</?[a-zA-Z][^<>]*>")
# Innermost template or table first: neither may contain another opener.
# Possessive quantifiers keep an unclosed opener from backtracking forever.
_TEMPLATE = re.compile(r"\{\{(?:[^{}]++|\{(?!\{)|\}(?!\}))*+\}\}")
_TABLE = re.compile(r"\{\|(?:[^{|]++|\{(?!\|)|\|(?!\}))*+\|\}")
_MEDIA_LINK = re.compile(
    r"\[\[\s*(?:file|image|media|category|(?-i:[a-z]{2,3}(?:-[a-z]+)?))\s*:"
    r"(?:[^\[\]]++|\[(?!\[)|\](?!\]))*+\]\]",
    re.IGNORECASE,
)
_LABELLED_LINK = re.compile(r"\[\[[^\[\]|]*\|([^\[\]]*)\]\]")
_PLAIN_LINK = re.compile(r"\[\[([^\[\]|]*)\]\]")
_EXTERNAL_LINK = re.compile(r"\[(?:https?:|ftp:)?//[^\s\]]+\s*([^\]]*)\]")
_BARE_URL = re.compile(r"https?://\S+")
_EMPHASIS = re.compile(r"'{2,}")
_HEADING = re.compile(r"^=+.*=+\s*$", re.MULTILINE)
_MAGIC_WORD = re.compile(r"__[A-Z]+__")
_LIST_MARKER = re.compile(r"^[*#:;]+\s*", re.MULTILINE)
# Table rows and cells left over from broken tables are not prose.
_TABLE_LINE = re.compile(r"^\s*[|!].*$", re.MULTILINE)
_SPACES = re.compile(r"[ \t\u00a0]+")


def iter_wiki_texts(stream: BinaryIO | io.BufferedIOBase, name: str) -> Iterator[str]:
    """Yield each paragraph of each main-namespace article in a dump.

    A dump cut off at its end (a partial download) stops with a warning after
    the last complete page; XML broken in the middle raises CorpusError.
    """
    for _title, wikitext in iter_articles(stream, name):
        yield from clean_wikitext(wikitext).split("\n")


def iter_articles(
    stream: BinaryIO | io.BufferedIOBase, name: str
) -> Iterator[tuple[str, str]]:
    """Yield (title, wikitext) for each article (namespace 0, not a redirect),
    clearing each parsed page so memory stays flat."""
    pages = 0
    root: ET.Element | None = None
    try:
        for event, element in ET.iterparse(stream, events=("start", "end")):
            if root is None:
                root = element
            if event != "end" or _local_name(element.tag) != "page":
                continue
            pages += 1
            article = _article(element)
            # Dropping the finished page from the root keeps memory flat.
            root.clear()
            if article is not None:
                yield article
    except ET.ParseError as exc:
        # TODO: XML broken within the parser's last read block looks like a
        # cut-off dump and only warns; comparing the error position with the
        # stream length would tell the two apart.
        if stream.read(1):
            raise CorpusError(
                f"{name} is not well-formed Wikipedia XML ({exc}); "
                "download the dump again"
            ) from exc
        if pages == 0:
            raise CorpusError(
                f"{name} holds no complete Wikipedia page ({exc}); "
                "download the dump again"
            ) from exc
        logger.warning(
            "%s ends before its XML does (%s); kept the %d pages before the cut",
            name,
            exc,
            pages,
        )


def _article(page: ET.Element) -> tuple[str, str] | None:
    """(title, wikitext) of a page that is an article, else None."""
    fields = {_local_name(child.tag): child for child in page.iter()}
    namespace = fields.get("ns")
    if namespace is None or (namespace.text or "").strip() != _ARTICLE_NAMESPACE:
        return None
    text = fields.get("text")
    wikitext = text.text or "" if text is not None else ""
    if "redirect" in fields or wikitext.lstrip()[:9].upper() == "#REDIRECT":
        return None
    title = fields["title"].text or "" if "title" in fields else ""
    return title, wikitext


def _local_name(tag: str) -> str:
    return tag.rpartition("}")[2]


def clean_wikitext(wikitext: str) -> str:
    """Return the prose of an article's wikitext, one paragraph per line.

    Templates, tables, references, comments, headings, media and category
    links vanish; links keep their label; entities are decoded.
    """
    text = _COMMENT.sub("", wikitext)
    text = _REF.sub("", text)
    text = _DROPPED_ELEMENT.sub("", text)
    text = _remove_nested(text)
    text = _TAG.sub("", text)
    text = _rewrite_links(text)
    text = _EXTERNAL_LINK.sub(r"\1", text)
    text = _BARE_URL.sub("", text)
    text = _EMPHASIS.sub("", text)
    text = _MAGIC_WORD.sub("", text)
    text = _HEADING.sub("", text)
    text = _TABLE_LINE.sub("", text)
    text = _LIST_MARKER.sub("", text)
    text = html.unescape(text)
    lines = (_SPACES.sub(" ", line).strip() for line in text.split("\n"))
    return "\n".join(line for line in lines if line)


def _remove_nested(text: str) -> str:
    """Remove templates and tables, innermost first, then stray braces left by
    unbalanced markup."""
    previous = None
    while previous != text:
        previous = text
        text = _TEMPLATE.sub("", text)
        text = _TABLE.sub("", text)
    return text.replace("{{", "").replace("}}", "")


def _rewrite_links(text: str) -> str:
    """Replace internal links by their label, innermost first, and drop media,
    category and interlanguage links with their captions."""
    previous = None
    while previous != text:
        previous = text
        # Media links go first: once their inner links are gone they match.
        text = _MEDIA_LINK.sub("", text)
        text = _LABELLED_LINK.sub(r"\1", text)
        text = _PLAIN_LINK.sub(_plain_label, text)
    return text


def _plain_label(match: re.Match[str]) -> str:
    # "[[:Category:Birds]]" links to the category page; show it without colon.
    return match.group(1).lstrip(":")
