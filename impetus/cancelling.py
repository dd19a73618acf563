"""Cancelling an executor's jobs: out of the fork buffer if not sent, else out of the
queue (``POST /streams/{id}/cancel``); see impetus.storage.jobqueue.cancel."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from impetus.forks import ForkSender
from impetus.session import StreamSession

log = logging.getLogger(__name__)

IN_FLIGHT_WAIT = 10.0  # seconds a cancel waits for a batch on its way to arrive


class JobCanceller:
    """Cancels jobs of one stream that its ForkSender forked."""

    def __init__(self, session: StreamSession, forks: ForkSender) -> None:
        self._session = session
        self._forks = forks

    def cancel(self, job_ids: set[str]) -> tuple[set[str], set[str]]:
        """(cancelled, running or done) job ids: unsent ones leave the buffer; sent ones
        are cancelled in the queue. A job on its way (the API does not know it yet) is
        asked about again once the sender is idle."""
        out = set(self._forks.withdraw(job_ids))
        ask = sorted(job_ids - out)
        running: set[str] = set()
        for _ in range(2):
            if not ask:
                break
            answer = self._session.api.cancel(self._session.id, ask)
            out |= set(answer.get("cancelled", []))
            running |= set(answer.get("running_or_done", []))
            ask = sorted(answer.get("unknown", []))
            deadline = time.monotonic() + IN_FLIGHT_WAIT
            while ask and not self._forks.idle and time.monotonic() < deadline:
                time.sleep(0.01)
        return out, running | set(ask)

    def cancel_stream(self, job_ids: Iterable[str]) -> set[str]:
        """Everything not yet claimed: ``job_ids`` out of the buffer, every waiting job of
        the stream out of the queue. The ids cancelled (empty when the API is away)."""
        cancelled = set(self._forks.withdraw(job_ids))
        try:
            answer = self._session.api.cancel(self._session.id)
        except Exception as exc:
            log.warning("stream %s: cancelling failed: %s", self._session.id, exc)
            return cancelled
        return cancelled | set(answer.get("cancelled", []))
