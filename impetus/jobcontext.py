"""``impetus.context``: what a running job knows about itself, and its stream's store.

On a node, the worker sets the context around each job::

    from impetus import context

    def fetch(url):
        if not context.store.add(f"seen:{url}"):   # atomic: one job per URL wins
            return None
        ...
        context.store.put(f"page:{url}", len(body))
        return context.stream_id, context.job_id

A job holds no AWS credentials: its worker passes each store call to the node agent
(node_agent/requests.py), which makes it, one DynamoDB request, on the job's own stream
only. Outside a running job (in the client, say) every attribute raises
:class:`NoJobContext`; the client has ``self.store`` for the same store over the API.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from impetus.core.exceptions import ImpetusError, KeyNotFound

_MISSING = object()


class NoJobContext(ImpetusError):
    """impetus.context was used outside a job running on a node."""


class JobStore:
    """The running job's stream store: JSON values by string key."""

    def __init__(self, stream_id: str, store: Any) -> None:
        self._stream = stream_id
        self._store = store

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self._store.get(self._stream, key)
        except KeyNotFound:
            return default

    def put(self, key: str, value: Any) -> None:
        self._store.put(self._stream, key, value)

    def add(self, key: str, value: Any = True) -> bool:
        """Store ``value`` only if ``key`` is new; True when this call stored it.

        Conditional, so of many jobs adding one key exactly one gets True (deduplication).
        """
        return self._store.add(self._stream, key, value)

    def delete(self, key: str) -> bool:
        """Delete a key; False when it was not there."""
        try:
            self._store.delete(self._stream, key)
        except KeyNotFound:
            return False
        return True

    def keys(self) -> list[str]:
        return self._store.keys(self._stream)

    def __getitem__(self, key: str) -> Any:
        value = self.get(key, _MISSING)
        if value is _MISSING:
            raise KeyError(key)
        return value

    def __setitem__(self, key: str, value: Any) -> None:
        self.put(key, value)

    def __delitem__(self, key: str) -> None:
        if not self.delete(key):
            raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key, _MISSING) is not _MISSING


class JobContext:
    """The running job's stream id, job id and store (see the module doc)."""

    def __init__(self) -> None:
        # A plain attribute, not a thread-local: a worker runs one job at a time, and
        # threads the job starts should see its context too.
        self._current: tuple[str, str, JobStore] | None = None

    def _get(self) -> tuple[str, str, JobStore]:
        if self._current is None:
            raise NoJobContext("impetus.context is only set while a job runs on a node")
        return self._current

    @property
    def active(self) -> bool:
        return self._current is not None

    @property
    def stream_id(self) -> str:
        return self._get()[0]

    @property
    def job_id(self) -> str:
        return self._get()[1]

    @property
    def store(self) -> JobStore:
        return self._get()[2]

    @contextmanager
    def running(self, stream_id: str, job_id: str, store: Any) -> Iterator[JobContext]:
        """Set the context for one job (the worker's hook). ``store`` is what serves it:
        on a node, one that asks the agent (node_agent/worker.py PipeStore)."""
        self._current = (stream_id, job_id, JobStore(stream_id, store))
        try:
            yield self
        finally:
            self._current = None

    def __reduce__(self) -> str:
        # A job shipped by value (cloudpickle) that refers to ``context`` must find the
        # worker's one context, not a copy of the client's: pickle it by name.
        return "context"

    def __repr__(self) -> str:
        if self._current is None:
            return "<impetus.context: no job running>"
        return f"<impetus.context stream={self._current[0]!r} job={self._current[1]!r}>"


context = JobContext()
