from training.tokenizer import iter_tokens, normalise_word, tokenize


def test_tokenize_lowercases_and_drops_punctuation() -> None:
    assert tokenize("The King, the Queen; and THE court!") == [
        "the",
        "king",
        "the",
        "queen",
        "and",
        "the",
        "court",
    ]


def test_tokenize_keeps_case_when_asked() -> None:
    assert tokenize("Paris is in France", lowercase=False) == [
        "Paris",
        "is",
        "in",
        "France",
    ]


def test_tokenize_keeps_apostrophe_words_whole_and_unifies_quotes() -> None:
    assert tokenize("Don’t say o'clock") == ["don't", "say", "o'clock"]


def test_tokenize_splits_on_underscores_and_hyphens() -> None:
    assert tokenize("snake_case well-known") == ["snake", "case", "well", "known"]


def test_tokenize_handles_non_latin_scripts() -> None:
    assert tokenize("Москва — столица России. 東京") == [
        "москва",
        "столица",
        "россии",
        "東京",
    ]


def test_tokenize_keeps_numbers() -> None:
    assert tokenize("In 1066, 7,000 men") == ["in", "1066", "7", "000", "men"]


def test_iter_tokens_agrees_with_tokenize() -> None:
    text = "It’s a truth universally acknowledged — 42 times."
    assert list(iter_tokens(text)) == tokenize(text)


def test_normalise_word_matches_what_the_tokeniser_produces() -> None:
    assert normalise_word("  King’s ") == tokenize("King’s")[0]
