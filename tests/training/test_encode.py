from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from training import encode
from training.corpus import iter_sentences
from training.encode import EncodedCorpus, encode_corpus, encode_with_vocabulary
from training.errors import ConfigError, CorpusError
from training.vocabulary import Vocabulary


def decoded_sentences(encoded: EncodedCorpus) -> list[list[str]]:
    """The ids file read back as words, one list per sentence."""
    ids = encoded.ids()
    words = encoded.vocabulary.words
    ends = np.flatnonzero(ids == -1)
    starts = np.concatenate([[0], ends[:-1] + 1])
    return [[words[i] for i in ids[s:e]] for s, e in zip(starts, ends, strict=True)]


def known_sentences(path: Path, vocabulary: Vocabulary) -> list[list[str]]:
    """The corpus sentences restricted to the vocabulary, empty ones dropped."""
    kept = ([t for t in s if t in vocabulary] for s in iter_sentences([path]))
    return [s for s in kept if s]


def test_encoded_ids_decode_to_the_in_vocabulary_tokens_of_each_sentence(
    tiny_corpus: Path, tmp_path: Path
) -> None:
    with tiny_corpus.open("a") as f:
        f.write("Rareword only here.\nUnique hapax\n")
    encoded = encode_corpus([tiny_corpus], tmp_path / "work", min_count=2)
    assert "rareword" not in encoded.vocabulary
    assert decoded_sentences(encoded) == known_sentences(
        tiny_corpus, encoded.vocabulary
    )


def test_sentence_markers_end_every_sentence_and_never_repeat(
    tmp_path: Path,
) -> None:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("rare\nword word\nrare rare\nword\nrare\n")
    encoded = encode_corpus([corpus], tmp_path / "work", min_count=2)
    assert encoded.vocabulary.words == ["rare", "word"]
    encoded = encode_corpus([corpus], tmp_path / "work", min_count=4)
    assert encoded.vocabulary.words == ["rare"]
    assert encoded.ids().tolist() == [0, -1, 0, 0, -1, 0, -1]
    assert encoded.num_sentences == 3
    assert encoded.num_tokens == 4
    assert encoded.num_raw_tokens == 7


def test_vocabulary_counts_match_the_corpus_token_counts(
    tiny_corpus: Path, tmp_path: Path
) -> None:
    encoded = encode_corpus([tiny_corpus], tmp_path, min_count=1)
    expected = Counter(t for s in iter_sentences([tiny_corpus]) for t in s)
    actual = dict(
        zip(encoded.vocabulary.words, encoded.vocabulary.counts.tolist(), strict=True)
    )
    assert actual == dict(expected)
    assert encoded.num_tokens == encoded.num_raw_tokens == sum(expected.values())


def test_max_vocab_size_keeps_the_most_frequent_words(
    tiny_corpus: Path, tmp_path: Path
) -> None:
    encoded = encode_corpus([tiny_corpus], tmp_path, min_count=1, max_vocab_size=5)
    assert len(encoded.vocabulary) == 5
    assert encoded.ids().max() == 4
    assert decoded_sentences(encoded) == known_sentences(
        tiny_corpus, encoded.vocabulary
    )


def test_small_blocks_give_the_same_ids_as_one_block(
    tiny_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = encode_corpus([tiny_corpus], tmp_path / "whole", min_count=20)
    whole_ids = whole.ids().tolist()
    # Blocks of 7 ids put block edges inside sentences and between markers.
    monkeypatch.setattr(encode, "_WRITE_BLOCK", 7)
    monkeypatch.setattr(encode, "_REMAP_BLOCK", 7)
    blocked = encode_corpus([tiny_corpus], tmp_path / "blocked", min_count=20)
    assert blocked.ids().tolist() == whole_ids
    assert blocked.num_sentences == whole.num_sentences


def test_encoding_leaves_only_the_ids_file_in_workdir(
    tiny_corpus: Path, tmp_path: Path
) -> None:
    encoded = encode_corpus([tiny_corpus], tmp_path / "work")
    assert [p.name for p in (tmp_path / "work").iterdir()] == [encoded.ids_path.name]
    ids = encoded.ids()
    assert ids.dtype == np.int32
    assert len(ids) == encoded.num_tokens + encoded.num_sentences


def test_manifest_entry_describes_the_corpus(tiny_corpus: Path, tmp_path: Path) -> None:
    encoded = encode_corpus([tiny_corpus], tmp_path / "work")
    entry = encoded.manifest()
    assert entry["fingerprint"].startswith("sha256:")
    assert entry["files"] == [
        {"name": "tiny_corpus.txt", "bytes": tiny_corpus.stat().st_size}
    ]
    assert entry["tokens"] == encoded.num_tokens
    assert entry["sentences"] == encoded.num_sentences


def test_progress_bar_is_written_to_stderr(
    tiny_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    encode_corpus([tiny_corpus], tmp_path, progress=True)
    assert "encoding corpus" in capsys.readouterr().err


def test_corpus_without_words_raises_corpus_error(tmp_path: Path) -> None:
    corpus = tmp_path / "punctuation.txt"
    corpus.write_text("... !!! ---\n\n")
    with pytest.raises(CorpusError, match="the corpus holds no words"):
        encode_corpus([corpus], tmp_path / "work")
    assert not list((tmp_path / "work").iterdir())


def test_corpus_without_frequent_words_asks_to_lower_min_count(tmp_path: Path) -> None:
    corpus = tmp_path / "short.txt"
    corpus.write_text("every word differs here\n")
    with pytest.raises(CorpusError, match="lower --min-count"):
        encode_corpus([corpus], tmp_path / "work", min_count=2)


def test_fixed_vocabulary_keeps_its_ids_and_drops_unknown_words(
    tmp_path: Path,
) -> None:
    vocabulary = Vocabulary(["the", "cat", "sat"], np.array([9, 5, 2]))
    corpus = tmp_path / "new.txt"
    corpus.write_text("The cat sat on the mat\nunknown words only\nA cat\n")
    encoded = encode_with_vocabulary([corpus], vocabulary, tmp_path / "work")
    assert encoded.vocabulary is vocabulary
    assert encoded.ids().tolist() == [0, 1, 2, 0, -1, 1, -1]
    assert (encoded.num_tokens, encoded.num_raw_tokens) == (5, 11)
    assert encoded.num_sentences == 2


def test_fixed_vocabulary_matches_encode_corpus_on_the_same_corpus(
    tiny_corpus: Path, tmp_path: Path
) -> None:
    built = encode_corpus([tiny_corpus], tmp_path / "a", min_count=30)
    fixed = encode_with_vocabulary([tiny_corpus], built.vocabulary, tmp_path / "b")
    assert fixed.ids().tolist() == built.ids().tolist()
    assert fixed.fingerprint == built.fingerprint


def test_fixed_vocabulary_without_any_known_word_raises_corpus_error(
    tmp_path: Path,
) -> None:
    vocabulary = Vocabulary(["king", "queen"], np.array([3, 2]))
    corpus = tmp_path / "other.txt"
    corpus.write_text("nothing in common\n")
    with pytest.raises(CorpusError, match="none of the 3 tokens"):
        encode_with_vocabulary([corpus], vocabulary, tmp_path / "work")
    assert not (tmp_path / "work" / encode.IDS_FILE).exists()


def test_bad_min_count_is_rejected_before_reading_the_corpus(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="min_count must be at least 1"):
        encode_corpus([tmp_path / "not-even-there.txt"], tmp_path, min_count=0)


def test_unreadable_file_mid_corpus_leaves_no_files_behind(
    tiny_corpus: Path, tmp_path: Path
) -> None:
    (tmp_path / "zz-binary.dat").write_bytes(b"\x00\x01\x02")
    with pytest.raises(CorpusError, match="looks binary"):
        encode_corpus([tiny_corpus, tmp_path / "zz-binary.dat"], tmp_path / "work")
    assert not list((tmp_path / "work").iterdir())
