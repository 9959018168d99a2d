"""`wordvec train --dry-run`: the whole training path on a slice of the corpus.

It reads the first tokens of every corpus file (about `DRY_RUN_TOKENS` in
all), then encodes, trains one epoch, evaluates, writes a bundle into a
temporary directory, loads it back with its checksums verified and deletes
it. It takes seconds, so it checks a corpus, the settings and the install
before a long run, and the test suite runs it.
"""

import dataclasses
import logging
import tempfile
from pathlib import Path

from training.bundle import check_bundle_output, load_bundle
from training.config import DRY_RUN_TOKENS, TrainConfig
from training.corpus import CorpusPaths, corpus_files, iter_texts
from training.errors import CorpusError
from training.tokenizer import tokenize
from training.trainer import TrainResult, train

logger = logging.getLogger(__name__)


def dry_run(
    paths: CorpusPaths,
    config: TrainConfig,
    output_dir: Path,
    *,
    progress: bool = True,
    max_tokens: int = DRY_RUN_TOKENS,
) -> TrainResult:
    """Train one epoch on the first `max_tokens` tokens of the corpus and
    return the run's result; its `bundle_path` no longer exists.

    Nothing is written at `output_dir`; it is only checked as a real run
    checks it (free, and creatable). Raises what `training.trainer.train` raises.
    """
    config.validate()
    check_bundle_output(Path(output_dir))
    config = dataclasses.replace(config, epochs=1)
    with tempfile.TemporaryDirectory(prefix="wordvec-dry-run-") as workdir:
        sample = write_sample(paths, Path(workdir) / "sample.txt", max_tokens)
        result = train([sample], config, Path(workdir) / "bundle", progress=progress)
        if result.rank == 0:
            load_bundle(result.bundle_path, verify=True)
            logger.info("dry run: the bundle loads and passes its checksums")
    return result


def write_sample(paths: CorpusPaths, target: Path, max_tokens: int) -> Path:
    """Write the first texts of each corpus file to `target`, one a line,
    until it holds about `max_tokens` tokens shared evenly among the files;
    returns `target`.

    Raises CorpusError for an unreadable file or a sample without words.
    """
    files = corpus_files(paths)
    per_file = max(1, max_tokens // len(files))
    written = 0
    with open(target, "w", encoding="utf-8") as out:
        for path in files:
            tokens = 0
            for text in iter_texts([path]):
                # A text unit may span lines (a Wikipedia paragraph).
                line = " ".join(text.split())
                out.write(line + "\n")
                tokens += len(tokenize(line, lowercase=False))
                if tokens >= per_file:
                    break
            written += tokens
    if written == 0:
        raise CorpusError(
            f"the first texts of the {len(files)} corpus file(s) hold no words; "
            "give text files with words in them"
        )
    logger.info("dry run: %d tokens from the start of %d file(s)", written, len(files))
    return target
