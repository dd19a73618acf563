"""What the agent does for a worker that asks: the worker holds no AWS credentials.

Each answer is scoped to the asking worker: store calls act on its stream's store only,
and URLs are presigned for the job it is running, for that job's args object or its
result key, and nothing else. A request for another job is refused.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from impetus.core.exceptions import ImpetusError, InvalidRequest, KeyNotFound
from impetus.storage import payloads
from node_agent.frames import Report
from node_agent.handle import WorkerHandle

log = logging.getLogger(__name__)


class Refused(Exception):
    """A request the worker may not make."""


class WorkerRequests:
    """Answers workers' requests with the agent's store and payload bucket (made lazily:
    most streams never need them)."""

    def __init__(self, store: Callable[[], Any], bucket: Callable[[], payloads.Payloads]) -> None:
        self._make_store, self._make_bucket = store, bucket
        self._store: Any = None
        self._bucket: payloads.Payloads | None = None

    def answer(self, worker: WorkerHandle, report: Report) -> dict[str, Any]:
        """The reply frame for one request."""
        reply: dict[str, Any] = {"type": "reply", "id": report.request_id}
        try:
            value = self._value(worker, report)
        except KeyNotFound as exc:
            return reply | {"ok": False, "error": f"not_found: {exc}"}
        except (InvalidRequest, Refused) as exc:
            return reply | {"ok": False, "error": f"invalid: {exc}"}
        except ImpetusError as exc:
            return reply | {"ok": False, "error": str(exc)}
        except Exception as exc:  # AWS unreachable: the job sees an error, the agent lives
            log.warning("stream %s: %s request failed: %s", worker.stream_id, report.kind, exc)
            return reply | {"ok": False, "error": f"unavailable: {type(exc).__name__}"}
        return reply | {"ok": True, "value": value}

    def _value(self, worker: WorkerHandle, report: Report) -> Any:
        body = report.body or {}
        if report.kind == "store":
            return self._store_call(worker.stream_id, body)
        job = self._running_job(worker, report.job)
        if report.kind == "args_url":
            if job.get("transport") != "s3":
                raise Refused("the job's args travel inline")
            return self._payloads().download_url(job["args_ref"])
        key = payloads.result_key(job["stream"], job["id"], int(job.get("attempt") or 0))
        return {"key": key, "url": self._payloads().upload_url(key)}

    @staticmethod
    def _running_job(worker: WorkerHandle, job_id: str) -> dict[str, Any]:
        if not job_id or job_id != worker.current:
            raise Refused("URLs are only given for the job the worker is running")
        job = worker.job(job_id)
        if job is None:
            raise Refused("no such job")
        return job

    def _store_call(self, stream_id: str, body: dict[str, Any]) -> Any:
        store, op, key = self._store_or_new(), body["op"], body.get("key")
        if op == "get":
            return store.get(stream_id, key)
        if op == "put":
            return store.put(stream_id, key, body.get("value"))
        if op == "add":
            return store.add(stream_id, key, body.get("value"))
        if op == "delete":
            return store.delete(stream_id, key)
        return store.keys(stream_id)

    def _store_or_new(self) -> Any:
        if self._store is None:
            self._store = self._make_store()
        return self._store

    def _payloads(self) -> payloads.Payloads:
        if self._bucket is None:
            self._bucket = self._make_bucket()
        return self._bucket
