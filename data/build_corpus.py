"""Rebuild the default corpus in data/corpus/ from Debian packages and gensim's
test data. Run from the repository root:

    .venv/bin/python -m data.build_corpus

It downloads pinned package versions with `apt-get download` into data/build/
(gitignored), unpacks them with `dpkg-deb -x`, extracts plain text and writes
one xz file per source, one paragraph or sentence per line. See
data/README.md for the sources and their licences.
"""

import argparse
import io
import lzma
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from data import extract
from training.corpus import iter_sentences, iter_texts

ROOT = Path(__file__).resolve().parent
WIKI_DUMP = "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
AUSTEN_NOVELS = [
    "sensesensibility",
    "prideprejudice",
    "mansfieldpark",
    "emma",
    "northangerabbey",
    "persuasion",
]


@dataclass(frozen=True)
class Source:
    """One corpus file: where its text comes from and how to extract it."""

    name: str
    package: str | None  # "name=version" of the Debian package, if any
    lines: Callable[[Path], Iterator[str]]  # unpacked package root -> lines


def austen_lines(root: Path) -> Iterator[str]:
    novels = extract.read_r_lazy_data(root / "usr/lib/R/site-library/janeaustenr/data")
    for name in AUSTEN_NOVELS:
        yield from _paragraphs(novels[name])


def _paragraphs(lines: list[str]) -> Iterator[str]:
    """Join hard-wrapped lines into paragraphs; drop chapter headings and the
    underscores that mark italics."""
    paragraph: list[str] = []
    for line in [*lines, ""]:
        if line.strip():
            paragraph.append(line.strip().replace("_", ""))
            continue
        text = " ".join(paragraph)
        paragraph = []
        if text and not re.fullmatch(r"(CHAPTER|Chapter|VOLUME) [\dIVXLC]+\.?", text):
            yield text


def bible_lines(root: Path) -> Iterator[str]:
    module = root / "usr/share/sword/modules/texts/ztext/engWEB2015eb"
    return extract.iter_sword_verses(module)


def wordnet_lines(root: Path) -> Iterator[str]:
    return extract.iter_wordnet_glosses(root / "usr/share/wordnet")


def dictd_lines(name: str) -> Callable[[Path], Iterator[str]]:
    """Lines of the dictd database `name`: entries without the database
    header, headword lines or cross-reference braces."""

    def lines(root: Path) -> Iterator[str]:
        path = root / f"usr/share/dictd/{name}.dict.dz"
        for paragraph in extract.iter_dictd_paragraphs(path):
            if paragraph.startswith(("00-database", "The original data was")):
                continue
            # Headword lines ("/dev/null /dev·nuhl/, n.") carry pronunciations.
            if "/" in paragraph and len(paragraph.split()) < 8:
                continue
            yield paragraph.replace("{", "").replace("}", "")

    return lines


def gensim_lines(filename: str) -> Callable[[Path], Iterator[str]]:
    def lines(_root: Path) -> Iterator[str]:
        from gensim.test.utils import datapath

        return iter_texts([datapath(filename)])

    return lines


SOURCES = [
    Source("austen", "r-cran-janeaustenr=1.0.0-1", austen_lines),
    Source("web-bible", "sword-text-web=426.0-1", bible_lines),
    Source("wordnet-glosses", "wordnet-base=1:3.0-37", wordnet_lines),
    Source("devils-dictionary", "dict-devil=1.0-13.1", dictd_lines("devil")),
    Source("jargon-file", "dict-jargon=4.4.7-3.1", dictd_lines("jargon")),
    Source("wikipedia-sample", None, gensim_lines(WIKI_DUMP)),
    Source("lee-background", None, gensim_lines("lee_background.cor")),
]


def unpack(package: str, build_dir: Path) -> Path:
    """Download and unpack `package` ("name=version") once; return its root."""
    name = package.split("=")[0]
    root = build_dir / "packages" / name
    if root.is_dir():
        return root
    debs = build_dir / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    # Downloading as root into a root-owned directory needs apt's sandbox off.
    apt_get = ["apt-get", "-q", "-o", "APT::Sandbox::User=root", "download"]
    subprocess.run([*apt_get, package], cwd=debs, check=True)
    (deb,) = debs.glob(f"{name}_*.deb")
    staging = root.with_name(name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    subprocess.run(["dpkg-deb", "-x", str(deb), str(staging)], check=True)
    staging.rename(root)
    return root


def write_xz(lines: Iterator[str], path: Path) -> int:
    """Write `lines` to `path` as xz-compressed UTF-8 (temporary name, fsync,
    rename); return the number of lines."""
    count = 0
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "wb") as raw:
        with (
            lzma.LZMAFile(raw, "w", preset=9) as packed,
            io.TextIOWrapper(packed, encoding="utf-8", newline="\n") as f,
        ):
            for line in lines:
                f.write(" ".join(line.split()) + "\n")
                count += 1
        raw.flush()
        os.fsync(raw.fileno())
    temporary.rename(path)
    return count


def build(build_dir: Path, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    total_tokens = 0
    for source in SOURCES:
        root = unpack(source.package, build_dir) if source.package else build_dir
        path = out_dir / f"{source.name}.txt.xz"
        num_lines = write_xz(source.lines(root), path)
        tokens = sum(len(sentence) for sentence in iter_sentences([path]))
        total_tokens += tokens
        print(
            f"{path.name:28} {num_lines:>8,} lines {tokens:>10,} tokens "
            f"{path.stat().st_size / 1e6:6.2f} MB"
        )
    size = sum(p.stat().st_size for p in out_dir.glob("*.xz")) / 1e6
    print(f"{'total':28} {'':>14} {total_tokens:>10,} tokens {size:6.2f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--build-dir",
        type=Path,
        default=ROOT / "build",
        help="scratch directory for downloaded packages (default: data/build)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / "corpus",
        help="where the corpus files go (default: data/corpus)",
    )
    args = parser.parse_args()
    try:
        build(args.build_dir, args.out)
    except subprocess.CalledProcessError as exc:
        sys.exit(f"build_corpus: {exc}; run `apt-get update` and check the pins")


if __name__ == "__main__":
    main()
