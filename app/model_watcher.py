"""Serving the active version of a data directory, and following it when it changes.

Each uvicorn worker process runs one `ModelWatcher`: a daemon thread that
reads DATA_DIR/active every `reload_interval` seconds and, when it names a
version other than the one served, loads and checks that version (every
checksum, the index, a test query) on the thread, then swaps it into the
`ModelHolder`. Requests keep the model they started with, so a swap fails
none of them. A version that fails its checks is never served: the error
goes to /health, the old model stays, and the same version is tried again
only after a back-off (or at once if `active` names another version).

A worker that has no model yet (it just started) and finds the active
version failing its checks serves the last version any worker loaded and
checked (DATA_DIR/last-good) instead of nothing; /health then shows the
two versions and the error.
"""

import logging
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio

from app.core.config import Settings
from app.model_holder import ModelHolder
from app.registry import ModelRegistry, RegistryError

logger = logging.getLogger(__name__)

NO_ACTIVE_VERSION = (
    "No model is active yet; activate one with `wordvec models activate VERSION` "
    "(or `wordvec models add BUNDLE_DIR --activate`), or wait for the default model."
)
# Seconds before retrying a version that failed its checks: doubled after each
# failure of the same version, up to the maximum.
FIRST_RETRY_DELAY = 5.0
MAX_RETRY_DELAY = 300.0


class ModelWatcher:
    """Keeps one worker's `ModelHolder` on the version DATA_DIR/active names."""

    def __init__(self, holder: ModelHolder, data_dir: Path, interval: float) -> None:
        self.holder = holder
        self.registry = ModelRegistry(data_dir)
        self.interval = interval
        # The registry name of the served version (the manifest may say otherwise
        # for a bundle published by hand).
        self.served_version: str | None = None
        self._failed_version: str | None = None
        self._retry_delay = FIRST_RETRY_DELAY
        self._retry_at = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def poll(self) -> None:
        """Serve the active version if it is not served yet and may be tried now.

        Blocks while a version loads (seconds for a large one); call it off
        the event loop. Never raises for a bad version or data directory: the
        error is recorded in the holder instead.
        """
        try:
            active = self.registry.active_version()
        except RegistryError as exc:
            self._record_failure(None, str(exc))
            return
        if active is None:
            self.holder.mark_waiting(NO_ACTIVE_VERSION)
            return
        if active == self.served_version:
            if self._failed_version is not None:
                # `active` went back to the served version: the failure is moot.
                self._failed_version = None
                self.holder.clear_load_error()
            return
        if not self._may_try(active):
            return
        logger.info("loading version %s (served: %s)", active, self.served_version)
        try:
            model = self.registry.load_checked(active)
        except RegistryError as exc:
            if self.served_version is None:
                self._fall_back(active)
            self._record_failure(active, str(exc))
            return
        self.holder.swap(model)
        self.served_version = active
        self._failed_version = None
        self._retry_delay = FIRST_RETRY_DELAY
        self.registry.record_good(active)

    def _fall_back(self, failed: str) -> None:
        good = self.registry.last_good_version()
        if good is None or good == failed:
            return
        try:
            model = self.registry.load_checked(good)
        except RegistryError as exc:
            logger.error("the last good version %s fails too: %s", good, exc)
            return
        self.holder.swap(model)
        self.served_version = good
        logger.warning(
            "serving the last good version %s: the active version %s fails its checks",
            good,
            failed,
        )

    def start(self) -> None:
        """Poll on a daemon thread every `interval` seconds until `stop`."""
        self._thread = threading.Thread(
            target=self._run, name="wordvec-model-watcher", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop polling; waits up to `timeout` s for a load in progress to end."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.poll()
            except Exception:
                # The thread must outlive any surprise, or the worker would
                # silently stop following activations.
                logger.exception("checking %s failed", self.registry.active_file)

    def _may_try(self, version: str) -> bool:
        return version != self._failed_version or time.monotonic() >= self._retry_at

    def _record_failure(self, version: str | None, message: str) -> None:
        if version is not None and version == self._failed_version:
            self._retry_delay = min(self._retry_delay * 2, MAX_RETRY_DELAY)
        else:
            self._retry_delay = FIRST_RETRY_DELAY
        self._failed_version = version
        self._retry_at = time.monotonic() + self._retry_delay
        logger.error(
            "keeping version %s: %s (next try in %.0f s)",
            self.served_version,
            message,
            self._retry_delay,
        )
        self.holder.record_failure(message)


@asynccontextmanager
async def watch_active_version(
    holder: ModelHolder, settings: Settings
) -> AsyncIterator[ModelWatcher]:
    """Serve `settings.data_dir`'s active version in this worker while the
    context is open.

    Loads it before returning control (so the worker takes requests only
    once it has its model, or knows none is active), then follows `active`
    on a thread until the context exits.
    """
    if settings.data_dir is None:
        raise ValueError("watch_active_version needs settings.data_dir")
    watcher = ModelWatcher(holder, settings.data_dir, settings.reload_interval)
    await anyio.to_thread.run_sync(watcher.poll)
    watcher.start()
    try:
        yield watcher
    finally:
        watcher.stop()
