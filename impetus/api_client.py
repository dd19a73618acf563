"""HTTP client of the Impetus API (see docs/http-api.md): JSON over one pooled connection.

Retries with exponential backoff and jitter on connection errors and on 429/502/503/504,
for idempotent requests only. Every request this client makes with an id is idempotent:
``POST /streams`` with an id reuses the stream, ``POST /jobs`` skips known job ids,
acknowledging twice is harmless. The authkey travels only in the Authorization header; it
never appears in a URL, a log line or an exception's text.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import time
from typing import Any
from urllib.parse import quote, urlencode

import urllib3

from impetus.core.config import ClientSettings
from impetus.core.exceptions import ApiError

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
}
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 60.0
MAX_ATTEMPTS = 6
BACKOFF_BASE = 0.2
BACKOFF_CAP = 5.0


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

    def close(self) -> None:
        self._pool.clear()

    # --- streams ----------------------------------------------------------------------------
    def create_stream(
        self, stream_id: str | None = None, properties: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"properties": properties or {}}
        if stream_id is not None:
            body["id"] = stream_id
        return self._call("POST", "/streams", body, idempotent=stream_id is not None)

    def get_stream(self, stream_id: str) -> dict[str, Any]:
        return self._call("GET", f"/streams/{_segment(stream_id)}")

    def list_streams(self) -> list[dict[str, Any]]:
        return self._call("GET", "/streams")["streams"]

    def update_properties(self, stream_id: str, properties: dict[str, Any]) -> dict[str, Any]:
        path = f"/streams/{_segment(stream_id)}"
        return self._call("PATCH", path, {"properties": properties})

    def delete_stream(self, stream_id: str) -> dict[str, Any]:
        return self._call("DELETE", f"/streams/{_segment(stream_id)}")

    def take_collector(self, stream_id: str, holder: str, ttl: int) -> dict[str, Any]:
        """Take or renew the stream's collector lease; ApiError 409 (with ``retry_after``)
        while another client holds it."""
        body = {"holder": holder, "ttl": ttl}
        return self._call("PUT", f"/streams/{_segment(stream_id)}/collector", body)

    def release_collector(self, stream_id: str, holder: str) -> bool:
        path = f"/streams/{_segment(stream_id)}/collector/{_segment(holder)}"
        return bool(self._call("DELETE", path).get("released"))

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
        return self._call("POST", f"/streams/{_segment(stream_id)}/jobs", body, idempotent=True)

    def list_jobs(
        self, stream_id: str, status: str | None = None, limit: int = 100
    ) -> dict[str, Any]:
        """``{"jobs": [summary], "count": n}``: jobs in fork order, payloads left out."""
        params: dict[str, Any] = {"limit": limit}
        if status is not None:
            params["status"] = status
        return self._call("GET", f"/streams/{_segment(stream_id)}/jobs?{urlencode(params)}")

    def get_job(self, stream_id: str, job_id: str) -> dict[str, Any]:
        return self._call("GET", f"/streams/{_segment(stream_id)}/jobs/{_segment(job_id)}")

    def results(self, stream_id: str, stage: str, limit: int = 500) -> list[dict[str, Any]]:
        query = urlencode({"stage": stage, "limit": limit})
        return self._call("GET", f"/streams/{_segment(stream_id)}/results?{query}")["jobs"]

    def ack(self, stream_id: str, ids: list[str]) -> int:
        path = f"/streams/{_segment(stream_id)}/results/ack"
        return self._call("POST", path, {"ids": list(ids)}, idempotent=True)["acked"]

    # --- large payloads (S3, through presigned URLs) ------------------------------------------
    def upload_urls(self, stream_id: str, count: int = 1) -> dict[str, Any]:
        """``{"uploads": [{"ref", "url"}], "content_type", "expires_in"}``."""
        path = f"/streams/{_segment(stream_id)}/payloads"
        return self._call("POST", path, {"count": count}, idempotent=True)

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
        return self._call("GET", self._store_path(stream_id, key))["value"]

    def store_put(self, stream_id: str, key: str, value: Any) -> None:
        self._call("PUT", self._store_path(stream_id, key), {"value": value})

    def store_delete(self, stream_id: str, key: str) -> None:
        self._call("DELETE", self._store_path(stream_id, key))

    def store_keys(self, stream_id: str) -> list[str]:
        return self._call("GET", f"/streams/{_segment(stream_id)}/store")["keys"]

    # --- nodes ------------------------------------------------------------------------------
    def list_nodes(self) -> list[dict[str, Any]]:
        return self._call("GET", "/nodes")["nodes"]

    @staticmethod
    def _store_path(stream_id: str, key: str) -> str:
        return f"/streams/{_segment(stream_id)}/store/{_segment(key)}"

    # --- transport --------------------------------------------------------------------------
    def _call(
        self, method: str, path: str, body: Any = None, *, idempotent: bool | None = None
    ) -> Any:
        """One request with retries; the decoded JSON answer, or ApiError."""
        if idempotent is None:
            idempotent = method in ("GET", "PUT", "DELETE", "PATCH", "HEAD")
        data = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        headers = {"Authorization": f"Bearer {self._authkey}", "Accept": "application/json"}
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
            return self._answer(response)
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
