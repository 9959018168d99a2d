"""A CPU-time watchdog for the fuzz tests: a reader caught in an endless loop
fails its example within seconds, naming the input, instead of hanging the
suite (Hypothesis's deadline only judges an example after it returns)."""

import contextlib
import signal
from collections.abc import Iterator
from types import FrameType


class Hang(AssertionError):
    """The watched block spun past its CPU-time budget."""


@contextlib.contextmanager
def cpu_watchdog(seconds: float, what: object) -> Iterator[None]:
    """Raise Hang, naming `what`, if the block uses `seconds` of CPU time.

    It counts CPU time (ITIMER_VIRTUAL, SIGVTALRM) rather than wall time, so
    a busy shared machine cannot set it off, and it leaves SIGALRM to
    pytest-timeout, the backstop for a hang that waits rather than spins or
    that never returns from C code. Main thread only, as signals are.
    """

    def expire(signum: int, frame: FrameType | None) -> None:
        shown = repr(what)
        if len(shown) > 300:
            shown = shown[:300] + "..."
        raise Hang(f"still running after {seconds:g} s of CPU time on {shown}")

    previous = signal.signal(signal.SIGVTALRM, expire)
    signal.setitimer(signal.ITIMER_VIRTUAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_VIRTUAL, 0)
        signal.signal(signal.SIGVTALRM, previous)
