"""Errors the training floor raises for bad input.

Every message names the offending value and says what to do about it; the
command line prints the message on one line and exits non-zero.
"""


class WordvecError(Exception):
    """Base class of every error wordvec raises on purpose."""


class CorpusError(WordvecError):
    """The corpus is missing, unreadable, empty or not text."""


class ConfigError(WordvecError, ValueError):
    """A training or evaluation setting is out of its valid range."""


class BundleError(WordvecError):
    """A model bundle is missing, incomplete or fails its checksums."""


class FormatError(WordvecError):
    """A vector file does not follow the format it claims."""


class EvaluationError(WordvecError):
    """An evaluation set is missing, unreadable or holds no usable line."""


class FinetuneCancelled(WordvecError):
    """A fine-tune was stopped on request (cancelled or out of time); it wrote
    no bundle."""


class DistributedError(WordvecError):
    """A training process of a multi-process run failed, lost contact with the
    others, or the processes were given different corpora or settings."""


class LostContact(DistributedError):
    """A training process could not reach the others of its group, usually
    because one of them failed first."""
