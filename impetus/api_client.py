"""HTTP client of the Impetus API (see docs/http-api.md): JSON over one pooled connection.

Retries with exponential backoff and jitter on connection errors and on 429/502/503/504,
for idempotent requests only. Every request this client makes with an id is idempotent:
``POST /streams`` with an id reuses the stream, ``POST /jobs`` skips known job ids,
acknowledging twice is harmless. The authkey travels only in the Authorization header; it
never appears in a URL, a log line or an exception's text.

Requests on a stream also carry the stream key's token (``X-Impetus-Stream-Key``, see
impetus.core.streamauth) when this client holds the key (:meth:`ApiClient.use_stream_key`;
``create_stream`` keeps the key of a stream it creates). The key itself is never sent.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlencode

import urllib3

from impetus.core import streamauth
from impetus.core.config import ClientSettings
from impetus.core.exceptions import ApiError
from impetus.streamkeys import KeyStore, NoStreamKey

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 502, 503, 504})
# API Gateway's authorizer refuses requests itself, with a bare {"message": ...} body:
# the API Lambda's codes for them, and a message that says what to check.
GATEWAY_REFUSALS = {
    401: ("unauthorized", "the API got no authkey (Unauthorized)"),
    403: (
        "forbidden",
        "the API refused the authkey (Forbidden): check IMPETUS_AUTHKEY or config.json",
    ),
    # API Gateway's answers when a request passes its or Lambda's payload limit, and when
    # the Lambda fails (an answer over Lambda's 6 MB, a crash): see docs/http-api.md#limits
    413: ("payload_too_large", "the request is over the API's payload limit (Lambda: 6 MB)"),
    500: ("internal_error", "the API failed (Internal Server Error); see its logs"),
}
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 60.0
MAX_ATTEMPTS = 6
BACKOFF_BASE = 0.2
BACKOFF_CAP = 5.0
# The job listing route answers at most this many jobs a page (lambdas/api: joblist.MAX_LIMIT);
# a larger ``limit`` is reached by following its pages.
JOBS_PAGE_MAX = 1000


def _segment(value: str) -> str:
    """One URL path segment: ids and store keys may hold characters like '/' or '#'."""
    return quote(str(value), safe="")


class ApiClient:
    """One method per API route; answers are the decoded JSON bodies."""

    def __init__(
        self,
        settings: ClientSettings,
        *,
        max_attempts: int = MAX_ATTEMPTS,
        backoff_base: float = BACKOFF_BASE,
        pool_size: int = 4,
    ) -> None:
        self._base = settings.api_url.rstrip("/")
        self._authkey = settings.authkey
        self._tokens: dict[str, str] = {}  # stream id -> its key's API token
        self._keys: dict[str, str] = {}  # stream id -> its key
        self._max_attempts = max(1, max_attempts)
        self._backoff_base = backoff_base
        # retries=False: urllib3's own retries would retry POSTs we did not mark idempotent.
        self._pool = urllib3.PoolManager(
            num_pools=2,
            maxsize=pool_size,
            retries=False,
            timeout=urllib3.Timeout(connect=CONNECT_TIMEOUT, read=READ_TIMEOUT),
        )

    def __repr__(self) -> str:  # never show the authkey
        return f"ApiClient({self._base!r})"

    @property
    def url(self) -> str:
        """The API's base URL (where keys are filed: impetus.streamkeys)."""
        return self._base

    def close(self) -> None:
        self._pool.clear()

    def use_stream_key(self, stream_id: str, key: str) -> None:
        """Send this key's token with every request on ``stream_id``."""
        self._keys[stream_id] = key
        self._tokens[stream_id] = streamauth.api_token(key)

    def stream_key(self, stream_id: str) -> str | None:
        """The key this client holds for the stream, if any."""
        return self._keys.get(stream_id)

    def use_filed_key(self, stream_id: str) -> bool:
        """Use the key this user filed for the stream (impetus.streamkeys), if any."""
        key = KeyStore(self._base).load(stream_id)
        if key is not None:
            self.use_stream_key(stream_id, key)
        return key is not None

    # --- streams ----------------------------------------------------------------------------
    def create_stream(
        self, stream_id: str | None = None, properties: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Create the stream, or open it again when it exists and this client holds its
        key (ApiError 409 ``stream_exists`` otherwise). A new stream's key comes back in
        the answer's ``stream_key`` and is used from then on."""
        body: dict[str, Any] = {"properties": properties or {}}
        if stream_id is not None:
            body["id"] = stream_id
        answer = self._call(
            "POST", "/streams", body, idempotent=stream_id is not None, stream=stream_id
        )
        if answer.get("stream_key"):
            self.use_stream_key(answer["id"], answer["stream_key"])
        return answer

    def get_stream(self, stream_id: str) -> dict[str, Any]:
        return self._call("GET", f"/streams/{_segment(stream_id)}", stream=stream_id)

    def list_streams(self) -> list[dict[str, Any]]:
        return self._all_pages("/streams", "streams")

    def update_properties(self, stream_id: str, properties: dict[str, Any]) -> dict[str, Any]:
        path = f"/streams/{_segment(stream_id)}"
        return self._call("PATCH", path, {"properties": properties}, stream=stream_id)

    def delete_stream(self, stream_id: str) -> dict[str, Any]:
        return self._call("DELETE", f"/streams/{_segment(stream_id)}", stream=stream_id)

    def take_collector(self, stream_id: str, holder: str, ttl: int) -> dict[str, Any]:
        """Take or renew the stream's collector lease; ApiError 409 (with ``retry_after``)
        while another client holds it."""
        body = {"holder": holder, "ttl": ttl}
        return self._call(
            "PUT", f"/streams/{_segment(stream_id)}/collector", body, stream=stream_id
        )

    def release_collector(self, stream_id: str, holder: str) -> bool:
        path = f"/streams/{_segment(stream_id)}/collector/{_segment(holder)}"
        return bool(self._call("DELETE", path, stream=stream_id).get("released"))

    # --- jobs -------------------------------------------------------------------------------
    def enqueue(
        self,
        stream_id: str,
        jobs: list[dict[str, Any]],
        functions: dict[str, str],
        python: str,
        cloudpickle: str,
    ) -> dict[str, list[str]]:
        """POST a batch of JobSpec dicts; idempotent because every job carries its id."""
        body = {"python": python, "cloudpickle": cloudpickle, "functions": functions, "jobs": jobs}
        return self._call(
            "POST", f"/streams/{_segment(stream_id)}/jobs", body, idempotent=True, stream=stream_id
        )

    def list_jobs(
        self, stream_id: str, status: str | None = None, limit: int = 100
    ) -> dict[str, Any]:
        """``{"jobs": [summary], "count": n}``: the first ``limit`` jobs, oldest
        first (joblist.ORDER), payloads left out (pages cut by size are followed until
        ``limit``)."""
        params: dict[str, Any] = {"limit": min(limit, JOBS_PAGE_MAX)}
        if status is not None:
            params["status"] = status
        path = f"/streams/{_segment(stream_id)}/jobs"
        answer: dict[str, Any] = {"jobs": [], "count": 0}
        for page in self._pages(path, params, stream_id):
            answer["jobs"] += page["jobs"]
            answer["count"] = page["count"]
            if len(answer["jobs"]) >= limit:
                break
            params["limit"] = min(limit - len(answer["jobs"]), JOBS_PAGE_MAX)
        return answer

    def get_job(self, stream_id: str, job_id: str) -> dict[str, Any]:
        return self._call(
            "GET", f"/streams/{_segment(stream_id)}/jobs/{_segment(job_id)}", stream=stream_id
        )

    def results(self, stream_id: str, stage: str, limit: int = 500) -> list[dict[str, Any]]:
        return self.results_page(stream_id, stage, limit)["jobs"]

    def results_page(self, stream_id: str, stage: str, limit: int = 500) -> dict[str, Any]:
        """``{"jobs": [finished job], "started": [id of a job started, not ended],
        "more": whether finished jobs were left out}``. The API cuts a page to fit its
        6 MB answer: after acknowledging these, ask again at once while ``more``."""
        query = urlencode({"stage": stage, "limit": limit})
        answer = self._call(
            "GET", f"/streams/{_segment(stream_id)}/results?{query}", stream=stream_id
        )
        return {
            "jobs": answer["jobs"],
            "started": answer.get("started", []),
            "more": bool(answer.get("more")),
        }

    def ack(self, stream_id: str, ids: list[str]) -> int:
        path = f"/streams/{_segment(stream_id)}/results/ack"
        answer = self._call("POST", path, {"ids": list(ids)}, idempotent=True, stream=stream_id)
        return answer["acked"]

    def cancel(self, stream_id: str, ids: list[str] | None = None) -> dict[str, list[str]]:
        """Take jobs no node has claimed out of the queue (``ids``; None: every waiting
        or delayed job of the stream): {"cancelled", "running_or_done", "unknown"}."""
        body = {} if ids is None else {"ids": list(ids)}
        path = f"/streams/{_segment(stream_id)}/cancel"
        return self._call("POST", path, body, idempotent=True, stream=stream_id)

    # --- large payloads (S3, through presigned URLs) ------------------------------------------
    def upload_urls(self, stream_id: str, count: int = 1) -> dict[str, Any]:
        """``{"uploads": [{"ref", "url"}], "content_type", "expires_in"}``."""
        path = f"/streams/{_segment(stream_id)}/payloads"
        return self._call("POST", path, {"count": count}, idempotent=True, stream=stream_id)

    def put_payload(self, url: str, content_type: str, data: str) -> None:
        """Upload to a presigned PUT URL (no authkey: the URL is the permission)."""
        self._transfer("PUT", url, data.encode(), {"Content-Type": content_type})

    def get_payload(self, url: str) -> str:
        return self._transfer("GET", url, None, {}).decode()

    def _transfer(self, method: str, url: str, body: bytes | None, headers: dict) -> bytes:
        for attempt in range(1, self._max_attempts + 1):
            try:
                response = self._pool.request(
                    method, url, body=body, headers=headers, redirect=False, preload_content=True
                )
            except urllib3.exceptions.HTTPError as exc:
                if attempt == self._max_attempts:
                    raise ApiError(0, "connection_error", f"payload {method}: {exc}") from None
                self._sleep(attempt, None, f"payload {method}: {type(exc).__name__}")
                continue
            if response.status >= 500 and attempt < self._max_attempts:
                self._sleep(attempt, None, f"payload {method}: {response.status}")
                continue
            if response.status >= 300:
                # The URL carries a temporary signature: never put it in the message.
                raise ApiError(response.status, "payload_error", f"payload {method} refused")
            return response.data
        raise AssertionError("unreachable")  # pragma: no cover

    # --- store ------------------------------------------------------------------------------
    def store_get(self, stream_id: str, key: str) -> Any:
        return self._call("GET", self._store_path(stream_id, key), stream=stream_id)["value"]

    def store_put(self, stream_id: str, key: str, value: Any) -> None:
        self._call("PUT", self._store_path(stream_id, key), {"value": value}, stream=stream_id)

    def store_delete(self, stream_id: str, key: str) -> None:
        self._call("DELETE", self._store_path(stream_id, key), stream=stream_id)

    def store_keys(self, stream_id: str) -> list[str]:
        return self._all_pages(f"/streams/{_segment(stream_id)}/store", "keys", stream_id)

    # --- nodes ------------------------------------------------------------------------------
    def list_nodes(self) -> list[dict[str, Any]]:
        return self._all_pages("/nodes", "nodes")

    # --- pages (docs/http-api.md#pages) ---------------------------------------------------------
    def _pages(
        self, path: str, params: dict[str, Any], stream: str | None = None
    ) -> Iterator[dict[str, Any]]:
        """The answers of a list route, page after page: ``after`` is each page's ``next``
        while it says ``more``. ``params`` may be changed between pages."""
        while True:
            query = urlencode(params)
            page = self._call("GET", f"{path}?{query}" if query else path, stream=stream)
            yield page
            if not page.get("more") or not page.get("next"):
                return
            params["after"] = page["next"]

    def _all_pages(self, path: str, field: str, stream: str | None = None) -> list[Any]:
        return [item for page in self._pages(path, {}, stream) for item in page[field]]

    @staticmethod
    def _store_path(stream_id: str, key: str) -> str:
        return f"/streams/{_segment(stream_id)}/store/{_segment(key)}"

    # --- transport --------------------------------------------------------------------------
    def _call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        idempotent: bool | None = None,
        stream: str | None = None,
    ) -> Any:
        """One request with retries; the decoded JSON answer, or ApiError. ``stream``:
        the stream the request is on (its key's token goes along when held)."""
        if idempotent is None:
            idempotent = method in ("GET", "PUT", "DELETE", "PATCH", "HEAD")
        data = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        headers = {"Authorization": f"Bearer {self._authkey}", "Accept": "application/json"}
        if stream is not None and stream in self._tokens:
            headers[streamauth.HEADER] = self._tokens[stream]
        if data is not None:
            headers["Content-Type"] = "application/json"
        attempts = self._max_attempts if idempotent else 1
        for attempt in range(1, attempts + 1):
            last = attempt == attempts
            try:
                response = self._pool.request(
                    method, self._base + path, body=data, headers=headers, redirect=False
                )
            except urllib3.exceptions.HTTPError as exc:
                if last:
                    raise ApiError(0, "connection_error", self._clean(str(exc))) from None
                self._sleep(attempt, None, f"{method} {path}: {type(exc).__name__}")
                continue
            if response.status in RETRY_STATUSES and not last:
                retry_after = response.headers.get("Retry-After")
                self._sleep(attempt, retry_after, f"{method} {path}: {response.status}")
                continue
            try:
                return self._answer(response)
            except ApiError as exc:
                if stream is not None and exc.code == "stream_key_required":
                    raise NoStreamKey(stream) from None  # this client holds no key for it
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _answer(self, response: Any) -> Any:
        text = response.data.decode("utf-8", "replace")
        try:
            payload = json.loads(text) if text else {}
        except ValueError:
            payload = None
        if response.status >= 400:
            if isinstance(payload, dict) and "error" in payload:
                code = str(payload.get("error"))
                message = str(payload.get("message", ""))
            elif isinstance(payload, dict) and response.status in GATEWAY_REFUSALS:
                code, message = GATEWAY_REFUSALS[response.status]
            else:
                code, message = "http_error", text[:200]
            raise ApiError(response.status, code, self._clean(message), _seconds(response.headers))
        if payload is None:
            raise ApiError(response.status, "bad_response", "the API answered with non-JSON")
        return payload

    def _sleep(self, attempt: int, retry_after: str | None, what: str) -> None:
        delay = random.uniform(0, min(BACKOFF_CAP, self._backoff_base * 2 ** (attempt - 1)))
        if retry_after:
            # An HTTP date instead of seconds: keep our own backoff.
            with contextlib.suppress(ValueError):
                delay = max(delay, min(float(retry_after), BACKOFF_CAP * 6))
        log.debug("retrying %s in %.2fs (attempt %d)", what, delay, attempt)
        time.sleep(delay)

    def _clean(self, text: str) -> str:
        """Belt and braces: an echoing proxy must not leak the authkey into exceptions."""
        return text.replace(self._authkey, "***") if self._authkey else text


def _seconds(headers: Any) -> float | None:
    """A Retry-After header in seconds (the API sends no HTTP dates), or None."""
    try:
        return float(headers.get("Retry-After"))
    except (TypeError, ValueError):
        return None
