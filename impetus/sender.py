"""The executor's background sender: ``submit`` buffers a fork and returns; a thread of
its own sends the buffer as soon as there is one (:meth:`impetus.forks.ForkSender.flush`),
so the caller never waits on the network. The buffer is bounded: a caller that forks far
faster than the API takes them waits for room (:data:`MAX_BUFFERED`)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from impetus.forks import FLUSH_JOBS, ForkSender
from impetus.session import StreamDeleted

log = logging.getLogger(__name__)

MAX_FAILURES = 3  # consecutive failed sends before the pending futures fail
MAX_BUFFERED = 40 * FLUSH_JOBS  # forks buffered before a fork waits for the sender


class BackgroundSender:
    """Sends ``forks`` from a daemon thread; ``on_sent`` after each batch went out,
    ``on_failure`` with the error after :data:`MAX_FAILURES` failed sends in a row (or a
    deleted stream)."""

    def __init__(
        self,
        forks: ForkSender,
        name: str,
        on_sent: Callable[[], None],
        on_failure: Callable[[BaseException], None],
    ) -> None:
        self._forks = forks
        self._on_sent = on_sent
        self._on_failure = on_failure
        self._wake = threading.Event()  # forks to send, or stopping
        self._stopped = False
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def forked(self) -> None:
        """A fork was buffered: wake the thread; wait while the buffer is full."""
        if not self._wake.is_set():  # set() takes the event's condition: not per submit
            self._wake.set()
        while self._forks.buffered >= MAX_BUFFERED and not self._stopped:
            time.sleep(0.005)

    def stop(self) -> None:
        """End the thread after the send on its way (forks still buffered stay there)."""
        self._stopped = True
        self._wake.set()
        self._thread.join()

    def _loop(self) -> None:
        failures = 0
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._stopped:
                return
            try:
                self._forks.flush()
                failures = 0
            except Exception as exc:  # the API is away: retry, then fail the futures
                failures += 1
                log.warning("sending forks failed: %s", exc)
                if failures >= MAX_FAILURES or isinstance(exc, StreamDeleted):
                    self._on_failure(exc)
                time.sleep(min(2.0, 0.1 * 2**failures))
                self._wake.set()
                continue
            self._on_sent()
