"""One stream on the API, as a client holds it: created on open, deleted on request.

:class:`StreamSession` owns the API client of a run and the stream's identity (id,
properties and key); :class:`StreamStore` is the stream's key-value store as a mapping.
The fork sender, the result collector, the pipeline app and the executor all talk to the
API through one session's ``api``.

The stream key (impetus.core.streamauth): a new stream's comes back from the API once and
is filed at once (impetus.streamkeys); a program restarted with the same id finds it there
and resumes. An id that exists without a key here is another client's stream:
:class:`~impetus.streamkeys.NoStreamKey`, and nothing of it is touched.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any

from impetus.api_client import ApiClient
from impetus.core.config import ClientSettings
from impetus.core.exceptions import ApiError, CollectorBusy, ImpetusError
from impetus.core.keys import STREAM_ID
from impetus.streamkeys import KeyStore, NoStreamKey

log = logging.getLogger(__name__)


class StreamDeleted(ImpetusError):
    """The stream was deleted while this client used it."""

    def __init__(self, stream_id: str) -> None:
        super().__init__(
            f"stream {stream_id} was deleted while this client ran (by a holder of its key)"
        )
        self.stream_id = stream_id


def deleted_stream(exc: ApiError, stream_id: str) -> BaseException:
    """StreamDeleted for the API's 404 on the stream itself, else ``exc``."""
    if exc.status == 404 and exc.code == "stream_not_found":
        return StreamDeleted(stream_id)
    return exc


class StreamStore(MutableMapping):
    """Dict-like view on the stream's key-value store; every access is one API call.

    Values are JSON. A missing key raises KeyError, as a dict does.
    """

    def __init__(self, api: ApiClient, stream_id: str) -> None:
        self._api = api
        self._id = stream_id

    def __getitem__(self, key: str) -> Any:
        try:
            return self._api.store_get(self._id, key)
        except ApiError as exc:
            if exc.status == 404:
                raise KeyError(key) from None
            raise

    def __setitem__(self, key: str, value: Any) -> None:
        self._api.store_put(self._id, key, value)

    def __delitem__(self, key: str) -> None:
        try:
            self._api.store_delete(self._id, key)
        except ApiError as exc:
            if exc.status == 404:
                raise KeyError(key) from None
            raise

    def keys(self) -> list[str]:  # type: ignore[override]  # one call, not a live view
        return list(self._api.store_keys(self._id))

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self.keys())


def checked_stream_id(stream_id: str | None) -> str:
    """The given stream id, validated, or a new random one."""
    stream_id = stream_id if stream_id is not None else uuid.uuid4().hex
    if not STREAM_ID.match(stream_id):
        raise ValueError(
            f"invalid stream id {stream_id!r}: 1-100 of [A-Za-z0-9_.-], starting with a"
            " letter, digit or _"
        )
    return stream_id


class CollectorLease:
    """This client's lease on collecting its stream, renewed by a daemon thread.

    One client collects a stream: a second program on the same stream id would take the
    first one's results. A client that died leaves its lease to expire (``TTL``); a
    restarted one waits for that once, then takes it over.
    """

    TTL = 30  # seconds a lease runs unless renewed
    RENEW_EVERY = 10.0

    def __init__(self, api: ApiClient, stream_id: str, sleep: Any = time.sleep) -> None:
        self._api = api
        self._stream = stream_id
        self.holder = uuid.uuid4().hex
        self._stop = threading.Event()
        self._take(sleep)
        self._thread = threading.Thread(
            target=self._renew, name=f"impetus-lease-{stream_id}", daemon=True
        )
        self._thread.start()

    def _take(self, sleep: Any) -> None:
        try:
            self._api.take_collector(self._stream, self.holder, self.TTL)
            return
        except ApiError as exc:
            if exc.status != 409:
                raise
            wait = exc.retry_after if exc.retry_after is not None else self.TTL
        log.warning("stream %s: waiting %.0f s for another client's lease", self._stream, wait)
        sleep(wait + 0.5)  # a dead holder's lease has expired by then; a live one renewed
        try:
            self._api.take_collector(self._stream, self.holder, self.TTL)
        except ApiError as exc:
            if exc.status != 409:
                raise
            raise CollectorBusy(
                f"another client is collecting stream {self._stream!r}: run this program "
                "with another stream id, or stop the other one",
                retry_after=exc.retry_after or self.TTL,
            ) from None

    def _renew(self) -> None:
        while not self._stop.wait(self.RENEW_EVERY):
            try:
                self._api.take_collector(self._stream, self.holder, self.TTL)
            except ApiError as exc:  # logged, and tried again at the next interval
                log.warning("stream %s: renewing the collector lease: %s", self._stream, exc)

    def release(self) -> None:
        """Stop renewing and give the lease up (best effort: it expires anyway)."""
        if self._stop.is_set():
            return
        self._stop.set()
        try:
            self._api.release_collector(self._stream, self.holder)
        except ApiError as exc:
            log.debug("stream %s: releasing the collector lease: %s", self._stream, exc)


class StreamSession:
    """A stream created (or joined again, by id) through ``api``, and this client's lease
    on collecting it.

    ``properties`` are this run's: when the id existed with other values, they are
    updated, so the run's properties win.
    """

    def __init__(self, api: ApiClient, stream_id: str, properties: Mapping[str, Any]) -> None:
        self.api = api
        self._keys = KeyStore(api.url)
        answer, self.key = self._open(stream_id, properties)
        self.id: str = answer.get("id", stream_id)
        self.properties: dict[str, Any] = dict(answer.get("properties") or {})
        if any(self.properties.get(k) != v for k, v in properties.items()):
            answer = api.update_properties(self.id, dict(properties))
            self.properties = dict(answer.get("properties") or {})
        self.store = StreamStore(api, self.id)
        self.lease = CollectorLease(api, self.id)

    def _open(self, stream_id: str, properties: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
        """Create the stream, or open it with the key filed for it: (answer, its key)."""
        key = self._keys.load(stream_id)
        if key is not None:
            self.api.use_stream_key(stream_id, key)
        try:
            answer = self.api.create_stream(stream_id, dict(properties))
        except ApiError as exc:
            if exc.status == 409 and exc.code == "stream_exists":
                raise NoStreamKey(stream_id) from None
            raise
        if answer.get("stream_key"):  # created now (or again, after a deletion)
            self._keys.save(stream_id, answer["stream_key"])
            return answer, answer["stream_key"]
        if key is None:  # the API opens an existing stream only for its key's holder
            raise NoStreamKey(stream_id)
        return answer, key

    @classmethod
    def open(
        cls,
        address: str | None,
        authkey: str | None,
        stream_id: str | None = None,
        properties: Mapping[str, Any] | None = None,
        api_class: Any = ApiClient,
    ) -> StreamSession:
        """A session on a new API client; ``address``/``authkey`` default as
        :meth:`ClientSettings.resolve` says. The id is checked before any request."""
        stream_id = checked_stream_id(stream_id)
        api = api_class(ClientSettings.resolve(address, authkey))
        return cls(api, stream_id, properties or {})

    def release(self) -> None:
        """Give up collecting the stream (the stream stays)."""
        self.lease.release()

    def delete(self) -> None:
        """Delete the stream; one deleted already (404) is fine."""
        self.lease.release()
        try:
            self.api.delete_stream(self.id)
        except ApiError as exc:
            if exc.status != 404:
                raise
        self._keys.forget(self.id)

    def close(self) -> None:
        """Give the lease up and close the API client's connections."""
        self.lease.release()
        self.api.close()
