"""Vector files: round trips, agreement with gensim in both directions, a
FormatError for every kind of broken file, and import/export of bundles."""

import gzip
import logging
import struct
from pathlib import Path

import numpy as np
import pytest
from gensim.models import KeyedVectors
from gensim.test.utils import datapath

from index.formats import (
    estimated_counts,
    export_vectors,
    import_vectors,
    read_glove,
    read_word2vec,
    write_word2vec,
)
from training.bundle import load_bundle
from training.errors import BundleError, ConfigError, FormatError

WORDS = ["the", "café", "ёлка", "naïve", "don't"]


def make_vectors(rows: int = len(WORDS), dim: int = 3) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((rows, dim)).astype(np.float32)


def write_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def binary_record(word: bytes, values: list[float]) -> bytes:
    return word + b" " + struct.pack(f"<{len(values)}f", *values) + b"\n"


@pytest.mark.parametrize("binary", [False, True], ids=["text", "binary"])
def test_round_trip_keeps_words_order_and_exact_vectors(
    tmp_path: Path, binary: bool
) -> None:
    path = tmp_path / "vectors.bin"
    write_word2vec(path, WORDS, make_vectors(), binary=binary)
    words, vectors = read_word2vec(path, binary=binary)
    assert words == WORDS
    np.testing.assert_array_equal(vectors, make_vectors())


@pytest.mark.parametrize("binary", [False, True], ids=["text", "binary"])
def test_layout_is_detected_when_not_given(tmp_path: Path, binary: bool) -> None:
    path = tmp_path / "vectors"
    write_word2vec(path, WORDS, make_vectors(), binary=binary)
    words, vectors = read_word2vec(path)
    assert words == WORDS
    np.testing.assert_array_equal(vectors, make_vectors())


@pytest.mark.parametrize("binary", [False, True], ids=["text", "binary"])
def test_gensim_reads_what_we_write(tmp_path: Path, binary: bool) -> None:
    path = tmp_path / "vectors"
    write_word2vec(path, WORDS, make_vectors(100, 20)[:5], binary=binary)
    kv = KeyedVectors.load_word2vec_format(path, binary=binary)
    assert list(kv.index_to_key) == WORDS
    np.testing.assert_array_equal(kv.vectors, make_vectors(100, 20)[:5])


@pytest.mark.parametrize(
    "name",
    [
        "toy-model.vec",
        "lee_fasttext.vec",
        "crime-and-punishment.vec",
        "high_precision.kv.txt",
        "euclidean_vectors.bin",
        "poincare_vectors.bin",
        "high_precision.kv.bin",
    ],
)
def test_we_read_gensim_test_files_as_gensim_does(name: str) -> None:
    words, vectors = read_word2vec(datapath(name))
    kv = KeyedVectors.load_word2vec_format(datapath(name), binary=name.endswith(".bin"))
    assert words == list(kv.index_to_key)
    np.testing.assert_array_equal(vectors, kv.vectors)


def test_glove_file_is_read_as_gensim_reads_it_without_header() -> None:
    words, vectors = read_glove(datapath("test_glove.txt"))
    kv = KeyedVectors.load_word2vec_format(datapath("test_glove.txt"), no_header=True)
    assert words == list(kv.index_to_key)
    np.testing.assert_array_equal(vectors, kv.vectors)
    assert vectors.shape == (76, 50)


def test_limit_reads_only_the_first_words() -> None:
    words, vectors = read_word2vec(datapath("lee_fasttext.vec"), limit=10)
    assert len(words) == 10 and vectors.shape == (10, 10)
    glove_words, _ = read_glove(datapath("test_glove.txt"), limit=7)
    assert len(glove_words) == 7


def test_gzip_compressed_file_is_read(tmp_path: Path) -> None:
    plain = tmp_path / "v.txt"
    write_word2vec(plain, WORDS, make_vectors(), binary=False)
    packed = write_bytes(tmp_path / "v.txt.gz", gzip.compress(plain.read_bytes()))
    assert read_word2vec(packed)[0] == WORDS


def test_repeated_word_keeps_its_first_vector_and_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write_bytes(tmp_path / "v.txt", b"3 2\na 1 2\nb 3 4\na 5 6\n")
    with caplog.at_level(logging.WARNING):
        words, vectors = read_word2vec(path)
    assert words == ["a", "b"]
    assert vectors.tolist() == [[1, 2], [3, 4]]
    assert "repeats 1 words" in caplog.text


def test_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match="does not exist"):
        read_word2vec(tmp_path / "nope.vec")


def test_truncated_text_file_raises() -> None:
    # gensim ships this file with a header promising 3 words and holding 1.
    with pytest.raises(FormatError, match="truncated: the header promises 3 words"):
        read_word2vec(datapath("pretrained.vec"))


def test_truncated_binary_file_raises(tmp_path: Path) -> None:
    path = tmp_path / "v.bin"
    write_word2vec(path, WORDS, make_vectors(), binary=True)
    path.write_bytes(path.read_bytes()[:-7])
    with pytest.raises(FormatError, match="ends inside word 4"):
        read_word2vec(path, binary=True)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"1 2\na 1 2\nb 3 4\n", "more than the 1 words"),
        (b"2 3\na 1 2\nb 3 4\n", "line 2 has 2 values after the word, expected 3"),
        (b"2 2\na 1 2\nb 3 4 5\n", "line 3 has 3 values"),
        (b"2 2\na 1 2\nb 3 x\n", "line 3 holds a value that is not a number"),
        (b"2 2\na 1 nan\nb 3 4\n", "line 2 holds NaN or infinity"),
        (b"2 2\na 1 2\nb 1e99 4\n", "line 3 holds NaN or infinity"),
        (b"2 2\na 1 2\n\xe9t\xe9 3 4\n", "line 3: the word .* is not valid UTF-8"),
        (b"a 1 2\n", "line 1 should be the header"),
        (b"", "line 1 should be the header"),
    ],
    ids=[
        "count-too-small",
        "dim-too-large",
        "extra-value",
        "not-a-number",
        "nan",
        "overflow",
        "latin-1-word",
        "no-header",
        "empty",
    ],
)
def test_broken_text_file_raises_naming_the_line(
    tmp_path: Path, data: bytes, message: str
) -> None:
    path = write_bytes(tmp_path / "v.txt", data)
    with pytest.raises(FormatError, match=message):
        read_word2vec(path, binary=False)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            b"1 2\n" + binary_record(b"a", [1, 2]) + binary_record(b"b", [3, 4]),
            "more than the 1 words",
        ),
        (b"1 2\n" + binary_record(b"\xff\xfe", [1, 2]), "word 0: the word .* UTF-8"),
        (
            b"1 2\n" + binary_record(b"a", [1, float("inf")]),
            "word 0 .* NaN or infinity",
        ),
        (b"1 2\n" + b"x" * 5000, "no space within 4096 bytes"),
    ],
    ids=["count-too-small", "non-utf8-word", "infinity", "no-word-end"],
)
def test_broken_binary_file_raises_naming_the_word(
    tmp_path: Path, data: bytes, message: str
) -> None:
    path = write_bytes(tmp_path / "v.bin", data)
    with pytest.raises(FormatError, match=message):
        read_word2vec(path, binary=True)


def test_binary_header_with_wrong_dim_raises(tmp_path: Path) -> None:
    records = binary_record(b"alpha", [1, 2, 3]) + binary_record(b"beta", [4, 5, 6])
    path = write_bytes(tmp_path / "v.bin", b"2 2\n" + records)
    with pytest.raises(FormatError, match="word 1"):
        read_word2vec(path, binary=True)


@pytest.mark.parametrize("binary", [False, True], ids=["text", "binary"])
def test_reading_with_the_other_layout_names_the_right_one(
    tmp_path: Path, binary: bool
) -> None:
    path = tmp_path / "vectors"
    write_word2vec(path, WORDS, make_vectors(), binary=binary)
    expected = "binary" if binary else "text"
    with pytest.raises(FormatError, match=f"read it as word2vec-{expected}"):
        read_word2vec(path, binary=not binary)


def test_limit_below_one_raises_config_error() -> None:
    with pytest.raises(ConfigError, match="limit must be at least 1"):
        read_word2vec(datapath("toy-model.vec"), limit=0)


def test_glove_file_with_a_header_points_to_word2vec_text(tmp_path: Path) -> None:
    path = write_bytes(tmp_path / "v.txt", b"2 2\na 1 2\nb 3 4\n")
    with pytest.raises(FormatError, match="word2vec-text"):
        read_glove(path)


def test_glove_line_with_another_dim_raises(tmp_path: Path) -> None:
    path = write_bytes(tmp_path / "g.txt", b"a 1 2 3\nb 3 4\n")
    with pytest.raises(FormatError, match="line 2 has 2 values"):
        read_glove(path)


@pytest.mark.parametrize(
    ("words", "vectors", "message"),
    [
        (["new york", "b"], make_vectors(2), "whitespace"),
        (["", "b"], make_vectors(2), "empty"),
        (["a", "b"], make_vectors(3), "shape"),
        (["a", "b"], np.array([[1, 2], [np.nan, 0]], dtype=np.float32), "vector 1"),
    ],
    ids=["space-in-word", "empty-word", "wrong-rows", "nan"],
)
def test_write_rejects_what_word2vec_cannot_hold_and_keeps_the_old_file(
    tmp_path: Path, words: list[str], vectors: np.ndarray, message: str
) -> None:
    path = write_bytes(tmp_path / "v.txt", b"old")
    with pytest.raises(FormatError, match=message):
        write_word2vec(path, words, vectors, binary=False)
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["v.txt"]


def test_estimated_counts_follow_zipf_and_end_at_one() -> None:
    assert estimated_counts(4).tolist() == [4, 2, 2, 1]
    assert estimated_counts(1).tolist() == [1]


def test_import_writes_a_bundle_that_loads_with_estimated_counts(
    tmp_path: Path,
) -> None:
    bundle_dir = import_vectors(
        datapath("lee_fasttext.vec"), "fasttext-vec", tmp_path / "b"
    )
    bundle = load_bundle(bundle_dir, verify=True)
    words, vectors = read_word2vec(datapath("lee_fasttext.vec"))
    assert bundle.vocabulary.words == words
    np.testing.assert_array_equal(bundle.vectors, vectors)
    assert bundle.vocabulary.counts[0] == len(words)
    assert bundle.manifest["source"] == "imported"
    assert bundle.manifest["counts_estimated"] is True
    assert bundle.manifest["evaluation"]["wordsim353"]["pairs"] > 0
    assert bundle.load_training_state() is None


def test_import_of_glove_with_limit(tmp_path: Path) -> None:
    bundle_dir = import_vectors(
        datapath("test_glove.txt"), "glove", tmp_path / "g", limit=20
    )
    assert load_bundle(bundle_dir).vectors.shape == (20, 50)


def test_import_refuses_an_existing_bundle_directory(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    with pytest.raises(BundleError, match="already exists"):
        import_vectors(datapath("toy-model.vec"), "word2vec-text", tmp_path / "b")


def test_exported_bundle_is_read_by_gensim_as_it_was_imported(tmp_path: Path) -> None:
    bundle_dir = import_vectors(
        datapath("euclidean_vectors.bin"), "word2vec-binary", tmp_path / "b"
    )
    original = KeyedVectors.load_word2vec_format(
        datapath("euclidean_vectors.bin"), binary=True
    )
    for fmt, binary in [("word2vec-text", False), ("word2vec-binary", True)]:
        output = export_vectors(bundle_dir, fmt, tmp_path / f"out-{fmt}")
        kv = KeyedVectors.load_word2vec_format(output, binary=binary)
        assert list(kv.index_to_key) == list(original.index_to_key)
        np.testing.assert_array_equal(kv.vectors, original.vectors)


def test_unknown_formats_raise_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown format 'npy'"):
        import_vectors(datapath("toy-model.vec"), "npy", tmp_path / "b")
    with pytest.raises(ConfigError, match="cannot export 'glove'"):
        export_vectors(tmp_path / "b", "glove", tmp_path / "out.txt")
