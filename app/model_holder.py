"""The served model behind one reference that can be swapped while serving.

A request reads `ModelHolder.current` once, at its start, and keeps that
`VectorIndex` to the end, so a swap never changes the model under a request
that is already running: the old index stays alive until its last request
drops it (reference counting frees it; nothing closes it under a reader).
"""

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from app.core.errors import ModelNotReady
from index.search import VectorIndex
from training.errors import ConfigError, WordvecError

logger = logging.getLogger(__name__)

# "waiting": the server runs on a data directory where no version is active yet.
LoadState = Literal["starting", "waiting", "ok", "error"]


class ModelHolder:
    """Holds the `VectorIndex` being served, its load state and last load error."""

    def __init__(self) -> None:
        self._current: VectorIndex | None = None
        self._state: LoadState = "starting"
        self._last_load_error: str | None = None
        self._waiting_detail = ""
        self._swap_lock = threading.Lock()
        self._listeners: list[Callable[[VectorIndex], None]] = []

    @property
    def current(self) -> VectorIndex:
        """Return the served index; raise ModelNotReady when none is loaded."""
        model = self._current
        if model is None:
            raise ModelNotReady(self._not_ready_detail())
        return model

    @property
    def state(self) -> LoadState:
        return self._state

    @property
    def last_load_error(self) -> str | None:
        return self._last_load_error

    def peek(self) -> VectorIndex | None:
        """Return the served index, or None while there is none (never raises)."""
        return self._current

    def on_swap(self, listener: Callable[[VectorIndex], None]) -> None:
        """Call `listener(new_index)` after every swap (metrics use it)."""
        self._listeners.append(listener)

    def swap(self, model: VectorIndex) -> VectorIndex | None:
        """Serve `model` from now on and return the index it replaces.

        The caller must not close the returned index while requests may still
        hold it; dropping the reference is enough.
        """
        with self._swap_lock:
            previous, self._current = self._current, model
            self._state = "ok"
            self._last_load_error = None
        for listener in self._listeners:
            listener(model)
        logger.info(
            "serving model %s: %d words, dim %d, index %s",
            model.version,
            model.vocab_size,
            model.dim,
            model.index_info.get("kind", "unknown"),
        )
        return previous

    def load(self, bundle_path: Path, index_kind: str = "auto") -> None:
        """Load the bundle at `bundle_path` and swap it in; on failure keep
        serving the previous model (if any) and record the error."""
        try:
            model = VectorIndex.load(bundle_path)
            _check_index_kind(model, index_kind)
        except WordvecError as exc:
            logger.error("cannot load bundle %s: %s", bundle_path, exc)
            self.record_failure(str(exc))
        except Exception as exc:
            logger.exception("unexpected failure loading bundle %s", bundle_path)
            self.record_failure(f"unexpected {type(exc).__name__}: {exc}")
        else:
            self.swap(model)

    def record_failure(self, message: str) -> None:
        """Record why no model could be loaded (shown by /health)."""
        with self._swap_lock:
            self._last_load_error = message
            if self._current is None:
                self._state = "error"

    def clear_load_error(self) -> None:
        """Forget the last load error (the version that failed is no longer wanted)."""
        with self._swap_lock:
            self._last_load_error = None

    def mark_waiting(self, detail: str) -> None:
        """Record that there is nothing to serve yet and why; queries answer
        503 with `detail` until a model is swapped in. No-op once one is."""
        with self._swap_lock:
            if self._current is None:
                self._state = "waiting"
                self._waiting_detail = detail

    def _not_ready_detail(self) -> str:
        if self._state == "waiting":
            return self._waiting_detail
        if self._state == "error":
            return (
                "The model failed to load, so no query can be answered; "
                "GET /health says why."
            )
        return (
            "The model is still loading; retry in a few seconds "
            "(GET /health answers 200 once it is ready)."
        )


def _check_index_kind(model: VectorIndex, index_kind: str) -> None:
    kind = model.index_info.get("kind")
    if index_kind != "auto" and kind != index_kind:
        raise ConfigError(
            f"the bundle's index is {kind!r} but WORDVEC_INDEX_KIND asks for "
            f"{index_kind!r}; build that index or set WORDVEC_INDEX_KIND=auto"
        )
