"""The trainer end to end on a tiny corpus: it writes a bundle that loads,
records its run and puts related words closer than unrelated ones, and turns
bad settings into ConfigError."""

from pathlib import Path

import numpy as np
import pytest

from tests.training.test_kernels import topic_separation
from training import kernels
from training.bundle import load_bundle
from training.config import TrainConfig
from training.errors import ConfigError
from training.trainer import iter_chunks, train


def small_config(**overrides: object) -> TrainConfig:
    values: dict[str, object] = {
        "dim": 16,
        "window": 3,
        "min_count": 2,
        "epochs": 2,
        "threads": 1,
        "batch_size": 256,
    }
    values.update(overrides)
    return TrainConfig(**values)  # type: ignore[arg-type]


def test_train_writes_a_bundle_that_loads_with_same_topic_words_closer(
    tiny_corpus: Path, tmp_path: Path
) -> None:
    # Every word of the tiny corpus is frequent, so the default subsampling
    # would drop most of it.
    config = small_config(epochs=5, sample=0.0)
    result = train([tiny_corpus], config, tmp_path / "model", progress=False)
    bundle = load_bundle(result.bundle_path, verify=True)
    vectors = np.asarray(bundle.vectors)
    assert topic_separation(bundle, vectors) > 0.2  # type: ignore[arg-type]
    assert bundle.vectors.shape == (len(bundle.vocabulary), 16)
    assert bundle.manifest["source"] == "trained"
    assert bundle.manifest["config"]["dim"] == 16
    training = bundle.manifest["training"]
    assert training["words_per_second"] > 0
    assert training["backend"] in ("native", "torch")
    assert training["final_loss"] == pytest.approx(result.stats["final_loss"])
    assert set(bundle.manifest["evaluation"]) >= {"wordsim353", "simlex999"}
    state = bundle.load_training_state()
    assert state is not None
    assert state.output_vectors.shape == bundle.vectors.shape
    assert state.state["epochs_done"] == 5


@pytest.mark.parametrize("backend", ["torch", "auto"])
def test_train_with_subwords_stores_ngram_vectors(
    tiny_corpus: Path, tmp_path: Path, backend: str
) -> None:
    config = small_config(subwords=True, buckets=500, backend=backend)
    result = train(
        [tiny_corpus], config, tmp_path / "m", progress=False, evaluate=False
    )
    bundle = load_bundle(result.bundle_path)
    state = bundle.load_training_state()
    assert state is not None and state.subword_vectors is not None
    assert state.subword_vectors.shape == (500, 16)
    assert state.state["subwords"] == {"min_n": 3, "max_n": 6, "buckets": 500}
    assert result.scores is None


def test_training_loss_falls_from_first_to_last_epoch(
    tiny_corpus: Path, tmp_path: Path
) -> None:
    config = small_config(epochs=5)
    result = train(
        [tiny_corpus], config, tmp_path / "m", progress=False, evaluate=False
    )
    losses = result.stats["epoch_losses"]
    assert len(losses) == 5 and losses[-1] < losses[0]


@pytest.mark.skipif(not kernels.native_available(), reason="not built")
def test_same_seed_and_one_thread_give_identical_vectors(
    tiny_corpus: Path, tmp_path: Path
) -> None:
    config = small_config(backend="native")
    runs = [
        train([tiny_corpus], config, tmp_path / f"m{i}", progress=False, evaluate=False)
        for i in range(2)
    ]
    a, b = (np.asarray(load_bundle(r.bundle_path).vectors) for r in runs)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [("dim", 0, "dim"), ("window", 0, "window"), ("negative", 0, "negative")],
)
def test_settings_out_of_range_are_config_errors(
    tiny_corpus: Path, tmp_path: Path, setting: str, value: int, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        train([tiny_corpus], small_config(**{setting: value}), tmp_path / "m")
    assert not (tmp_path / "m").exists()


def test_negative_not_below_vocabulary_size_is_a_config_error(
    tiny_corpus: Path, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match="smaller than the vocabulary"):
        train([tiny_corpus], small_config(negative=500), tmp_path / "m")
    assert not (tmp_path / "m").exists()
    assert list(tmp_path.iterdir()) == [tiny_corpus]  # no encoding left behind


def test_chunks_end_at_sentence_ends_and_cover_every_id(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 50, size=10_000).astype(np.int32)
    ids[rng.choice(10_000, size=700, replace=False)] = -1
    ids[-1] = -1
    path = tmp_path / "ids.int32"
    ids.tofile(path)
    chunks = list(iter_chunks(path, 1000))
    assert all(c[-1] == -1 for c in chunks)
    np.testing.assert_array_equal(np.concatenate(chunks), ids)


def test_available_memory_counts_a_cgroups_inactive_page_cache_as_free(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from training import trainer

    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal: 8000000 kB\nMemAvailable: 4000000 kB\n")
    cgroup = tmp_path / "cgroup"
    cgroup.mkdir()
    (cgroup / "memory.max").write_text(f"{1 << 30}\n")
    (cgroup / "memory.current").write_text(f"{900 << 20}\n")
    monkeypatch.setattr(trainer, "MEMINFO", meminfo)
    monkeypatch.setattr(trainer, "CGROUP_MEMORY", cgroup)
    assert trainer.available_memory() == (1 << 30) - (900 << 20)
    (cgroup / "memory.stat").write_text(
        f"anon {300 << 20}\nfile {600 << 20}\ninactive_file {500 << 20}\n"
    )
    # 900 MiB charged, 500 MiB of it reclaimable cache: 624 MiB left of 1 GiB.
    assert trainer.available_memory() == (1 << 30) - (400 << 20)
