import bz2
import gzip
import lzma
from collections.abc import Callable
from pathlib import Path

import pytest

from training.corpus import (
    CorpusReader,
    corpus_file_sizes,
    corpus_files,
    corpus_fingerprint,
    iter_sentences,
    iter_texts,
)
from training.errors import CorpusError

TEXT = "The first line.\n\n  \nThe second line, with café.\nThird\n"
LINES = ["The first line.", "The second line, with café.", "Third"]

COMPRESSORS: dict[str, Callable[[bytes], bytes]] = {
    "gz": gzip.compress,
    "bz2": bz2.compress,
    "xz": lzma.compress,
}


def test_plain_text_yields_each_non_blank_line(tmp_path: Path) -> None:
    path = tmp_path / "plain.txt"
    path.write_text(TEXT, encoding="utf-8")
    assert list(iter_texts([path])) == LINES


@pytest.mark.parametrize("suffix", sorted(COMPRESSORS))
def test_compressed_files_read_like_plain_text(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"corpus.txt.{suffix}"
    path.write_bytes(COMPRESSORS[suffix](TEXT.encode()))
    assert list(iter_texts([path])) == LINES


@pytest.mark.parametrize("suffix", sorted(COMPRESSORS))
def test_compression_is_detected_by_content_not_suffix(
    tmp_path: Path, suffix: str
) -> None:
    path = tmp_path / "misleading.txt"
    path.write_bytes(COMPRESSORS[suffix](TEXT.encode()))
    assert list(iter_texts([str(path)])) == LINES


def test_byte_order_mark_and_crlf_are_dropped(tmp_path: Path) -> None:
    path = tmp_path / "windows.txt"
    path.write_bytes("\ufeffone line\r\ntwo\r\n".encode())
    assert list(iter_texts([path])) == ["one line", "two"]


def test_directory_is_read_recursively_sorted_without_hidden_files(
    tmp_path: Path,
) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / ".git").mkdir()
    (tmp_path / "b" / "two.txt").write_text("two\n")
    (tmp_path / "a.txt").write_text("one\n")
    (tmp_path / "c.txt.gz").write_bytes(gzip.compress(b"three\n"))
    (tmp_path / ".hidden.txt").write_text("hidden\n")
    (tmp_path / ".git" / "config").write_text("hidden too\n")
    assert list(iter_texts([tmp_path])) == ["one", "two", "three"]
    names = [p.relative_to(tmp_path).as_posix() for p in corpus_files([tmp_path])]
    assert names == ["a.txt", "b/two.txt", "c.txt.gz"]


def test_several_paths_are_read_in_the_order_given(tmp_path: Path) -> None:
    (tmp_path / "x.txt").write_text("x\n")
    (tmp_path / "y.txt").write_text("y\n")
    assert list(iter_texts([tmp_path / "y.txt", tmp_path / "x.txt"])) == ["y", "x"]


def test_sentences_are_lowercased_tokens_and_skip_lines_without_words(
    tmp_path: Path,
) -> None:
    path = tmp_path / "corpus.txt"
    path.write_text("Hello, World!\n--- ... ---\nDon't stop\n")
    assert list(iter_sentences([path])) == [["hello", "world"], ["don't", "stop"]]
    cased = list(iter_sentences([path], lowercase=False))
    assert cased[0] == ["Hello", "World"]


def test_long_lines_are_split_into_sentences_of_at_most_max_length(
    tmp_path: Path,
) -> None:
    path = tmp_path / "long.txt"
    path.write_text(" ".join(f"w{i}" for i in range(10)) + "\n")
    pieces = list(iter_sentences([path], max_sentence_length=4))
    assert [len(p) for p in pieces] == [4, 4, 2]
    assert [t for p in pieces for t in p] == [f"w{i}" for i in range(10)]


def test_missing_path_raises_corpus_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match=r"nowhere\.txt does not exist"):
        list(iter_texts([tmp_path / "nowhere.txt"]))


def test_directory_without_files_raises_corpus_error(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / ".hidden").write_text("not counted\n")
    with pytest.raises(CorpusError, match="holds no files"):
        corpus_files([tmp_path])


def test_file_with_nul_bytes_is_rejected_as_binary(tmp_path: Path) -> None:
    path = tmp_path / "image.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    with pytest.raises(CorpusError, match=r"image\.png looks binary.*UTF-8 text"):
        list(iter_texts([path]))


def test_latin1_file_is_rejected_as_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.txt"
    path.write_bytes("caf\xe9 au lait\n".encode("latin-1"))
    with pytest.raises(CorpusError, match=r"latin1\.txt looks binary"):
        list(iter_texts([path]))


def test_invalid_utf8_after_the_first_block_raises_corpus_error(
    tmp_path: Path,
) -> None:
    path = tmp_path / "late.txt"
    path.write_bytes(b"fine text\n" * 20_000 + b"caf\xe9\n")
    with pytest.raises(CorpusError, match=r"late\.txt holds bytes that are not UTF-8"):
        list(iter_texts([path]))


@pytest.mark.parametrize("suffix", sorted(COMPRESSORS))
def test_truncated_archive_raises_corpus_error(tmp_path: Path, suffix: str) -> None:
    whole = COMPRESSORS[suffix](("some words here\n" * 500).encode())
    path = tmp_path / f"cut.txt.{suffix}"
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(CorpusError, match=r"cut\.txt\..* truncated or corrupt"):
        list(iter_texts([path]))


def test_corrupt_gzip_raises_corpus_error(tmp_path: Path) -> None:
    whole = bytearray(gzip.compress(("more words\n" * 500).encode()))
    whole[20:40] = b"\xff" * 20
    path = tmp_path / "bad.gz"
    path.write_bytes(bytes(whole))
    with pytest.raises(CorpusError, match=r"bad\.gz"):
        list(iter_texts([path]))


def test_empty_file_yields_nothing(tmp_path: Path) -> None:
    path = tmp_path / "empty.txt"
    path.write_text("")
    assert list(iter_texts([path])) == []


def test_fingerprint_ignores_location_but_not_names_or_content(
    tmp_path: Path,
) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    for directory in (first, second):
        directory.mkdir()
        (directory / "a.txt").write_text("alpha beta\n")
    fingerprint = corpus_fingerprint([first])
    assert fingerprint.startswith("sha256:") and len(fingerprint) == 7 + 64
    assert corpus_fingerprint([second]) == fingerprint
    (second / "a.txt").rename(second / "b.txt")
    assert corpus_fingerprint([second]) != fingerprint
    (first / "a.txt").write_text("alpha gamma\n")
    assert corpus_fingerprint([first]) != fingerprint


def test_file_sizes_list_on_disk_bytes_by_relative_name(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.txt").write_text("abc\n")
    assert corpus_file_sizes([tmp_path]) == [{"name": "sub/a.txt", "bytes": 4}]


def test_reader_counts_bytes_read_up_to_the_total(tmp_corpus_pair: list[Path]) -> None:
    reader = CorpusReader(tmp_corpus_pair)
    assert reader.bytes_read == 0
    assert sum(1 for _ in reader) == 400
    assert reader.bytes_read == reader.total_bytes > 0


@pytest.fixture
def tmp_corpus_pair(tiny_corpus: Path) -> list[Path]:
    """The tiny corpus twice: once plain, once xz-compressed."""
    packed = tiny_corpus.with_suffix(".txt.xz")
    lines = tiny_corpus.read_bytes().splitlines(keepends=True)
    packed.write_bytes(lzma.compress(b"".join(lines[200:])))
    tiny_corpus.write_bytes(b"".join(lines[:200]))
    return [tiny_corpus, packed]
