"""The dashboard's data: one JSON-ready snapshot of streams, errors, nodes and DFS.

Everything comes through the same API client the CLI uses (``GET /streams``,
``GET /nodes``; a stream's jobs and errored job records only for the streams whose key
this user filed, as ``impetus jobs`` does), and DFS's decisions from the decision log
``impetus dfs log`` reads. Rates are differences between snapshots, kept here: the page
only draws what it is given.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any

from impetus.core.exceptions import ApiError
from impetus.progress import RateMeter
from impetus.storage.joblist import MAX_LIMIT

ERRORS_SHOWN = 10  # errored jobs shown per stream (their records are fetched once each)
RATE_WINDOW = 10.0  # seconds of snapshots a stream's throughput is measured over
FLEET_SAMPLES = 600  # fleet samples kept for the chart (20 minutes at one every 2 s)
DONE_STATUSES = ("ready", "acked")
WAITING_STATUSES = ("waiting", "delayed")

DfsReader = Callable[[], dict[str, Any]]


def stream_name(stream: dict[str, Any]) -> str:
    """A stream's name: its ``name`` property when it has one, else its id."""
    name = (stream.get("properties") or {}).get("name")
    return str(name) if name else str(stream["id"])


def totals(counts: dict[str, Any]) -> dict[str, int]:
    """done / errors / running / waiting from a stream's counters. ``finished`` counts
    errored jobs too (and ``acked`` what was collected of both), so done excludes them."""
    ended = int(counts["finished"]) + int(counts["acked"])
    errors = int(counts["errors"])
    return {
        "done": max(0, ended - errors),
        "errors": errors,
        "running": int(counts["running"]),
        "waiting": int(counts["waiting"]) + int(counts["delayed"]),
        "forked": int(counts["forked"]),
    }


def stage_rows(jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per stage, in first-seen order: done / errors / running / waiting job counts."""
    stages: dict[str, dict[str, Any]] = {}
    for job in jobs:
        row = stages.setdefault(
            job["stage"],
            {"stage": job["stage"], "done": 0, "errors": 0, "running": 0, "waiting": 0},
        )
        status = job["status"]
        if status in DONE_STATUSES:
            row["done"] += 1
        elif status == "error":
            row["errors"] += 1
        elif status == "running":
            row["running"] += 1
        elif status in WAITING_STATUSES:
            row["waiting"] += 1
    return list(stages.values())


def error_entry(stream_id: str, record: dict[str, Any]) -> dict[str, Any]:
    """What the page shows of an errored job: its error, traceback, output, attempts."""
    result = record.get("result") if isinstance(record.get("result"), dict) else {}
    output = record.get("output") or {}
    return {
        "stream": stream_id,
        "job": record["id"],
        "name": record.get("name"),
        "node": record.get("node"),
        "attempt": record.get("attempt") or 0,
        "type": result.get("type"),
        "error": result.get("error"),
        "traceback": result.get("traceback") or "",
        "output": {k: v for k, v in output.items() if isinstance(v, str) and v},
    }


def eta(left: int, rate: float | None) -> float | None:
    """Seconds until ``left`` jobs end at ``rate``: 0 when none are left, else None
    while nothing ends (no rate to extrapolate)."""
    if left <= 0:
        return 0.0
    return left / rate if rate else None


class Gatherer:
    """Builds snapshots from ``api`` (an :class:`impetus.api_client.ApiClient`) and
    ``dfs`` (a callable returning ``{"decisions": [...], "groups": [...]}``, or None)."""

    def __init__(
        self, api: Any, dfs: DfsReader | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        self.api = api
        self.dfs = dfs
        self.clock = clock
        self.throughput = RateMeter(RATE_WINDOW)  # the pipeline's own rate meter
        self.fleet: deque[dict[str, Any]] = deque(maxlen=FLEET_SAMPLES)
        self._keyed: dict[str, bool] = {}  # stream id -> this user filed its key
        self._records: dict[tuple[str, str, int], dict[str, Any]] = {}  # errored jobs
        self._details: dict[
            str, tuple[dict[str, Any], dict[str, Any]]
        ] = {}  # id -> counts, details

    def snapshot(self) -> dict[str, Any]:
        now = self.clock()
        streams = [self._stream(s, now) for s in self.api.list_streams()]
        live = {s["id"] for s in streams}
        self.throughput.forget_except(live)
        for gone in set(self._details) - live:
            del self._details[gone]
        nodes = [node_entry(n) for n in self.api.list_nodes()]
        return {
            "at": now,
            "api": self.api.url,
            "streams": streams,
            "totals": _sum(streams, ("done", "errors", "running", "waiting", "forked")),
            "nodes": nodes,
            "workers": _sum(nodes, ("busy", "idle", "total")),
            "dfs": self._dfs(now),
        }

    def job_record(self, stream_id: str, job_id: str) -> dict[str, Any]:
        """One job's record (``impetus job --json``), read with the filed key."""
        self._has_key(stream_id)
        return self.api.get_job(stream_id, job_id)

    def _has_key(self, stream_id: str) -> bool:
        if stream_id not in self._keyed:
            self._keyed[stream_id] = self.api.use_filed_key(stream_id)
        return self._keyed[stream_id]

    def _stream(self, stream: dict[str, Any], now: float) -> dict[str, Any]:
        sid = stream["id"]
        entry: dict[str, Any] = {"id": sid, "name": stream_name(stream), **totals(stream["counts"])}
        ended = entry["done"] + entry["errors"]
        entry["rate"] = self.throughput.observe(sid, ended, now)
        entry["eta"] = eta(entry["forked"] - ended, entry["rate"])
        entry.update(stages=None, retried=None, errored=[], keyed=self._has_key(sid))
        if entry["keyed"]:
            try:
                entry.update(self._stream_details(sid, stream["counts"]))
            except ApiError as exc:  # deleted meanwhile: the counts still stand
                entry["details_error"] = exc.message or str(exc)
        return entry

    def _stream_details(self, sid: str, counts: dict[str, Any]) -> dict[str, Any]:
        """Per-stage progress, retried jobs and errors, from the stream's job list. The
        listing reads the whole stream, so it is read again only when the stream's
        counters moved (they change after the queue does: a settled stream costs none)."""
        known = self._details.get(sid)
        if known and known[0] == counts:
            return known[1]
        jobs = self.api.list_jobs(sid, limit=MAX_LIMIT)["jobs"]
        errored = [j for j in jobs if j["status"] == "error"][:ERRORS_SHOWN]
        details = {
            "stages": stage_rows(jobs),
            "retried": sum(1 for j in jobs if (j.get("attempt") or 0) > 0),
            "errored": [self._error(sid, j) for j in errored],
        }
        self._details[sid] = (dict(counts), details)
        return details

    def _error(self, sid: str, summary: dict[str, Any]) -> dict[str, Any]:
        key = (sid, summary["id"], summary.get("attempt") or 0)
        if key not in self._records:  # an error's record does not change: read it once
            self._records[key] = error_entry(sid, self.api.get_job(sid, summary["id"]))
        return self._records[key]

    def _dfs(self, now: float) -> dict[str, Any]:
        if self.dfs is None:
            return {"decisions": [], "fleet": [], "error": "no decision log configured"}
        try:
            read = self.dfs()
        except Exception as exc:  # a missing table or permission: shown, not fatal
            return {"decisions": [], "fleet": list(self.fleet), "error": _one_line(exc)}
        for group in read.get("groups") or []:
            self.fleet.append({"at": now, **group})
        return {
            "decisions": [decision_entry(d) for d in read.get("decisions") or []],
            "fleet": list(self.fleet),
            "error": None,
        }


def node_entry(node: dict[str, Any]) -> dict[str, Any]:
    total = int(node.get("workers_total") or 0)
    busy = int(node.get("workers_busy") or 0)
    return {
        "node": node["node"],
        "state": node.get("state"),
        "busy": busy,
        "idle": max(0, total - busy),
        "total": total,
        "jobs_done": node.get("jobs_done"),
        "heartbeat": node.get("heartbeat"),
    }


def decision_entry(entry: dict[str, Any]) -> dict[str, Any]:
    """A decision-log entry (``impetus dfs log --json``) as the chart and table need it:
    the group's in-service count is what the policy saw when it decided."""
    d = entry["decision"]
    seen = (entry.get("inputs") or {}).get("group") or [{}]
    return {
        "at": float(entry["at_epoch"]),
        "group": d.get("node_class"),
        "action": d.get("action"),
        "previous": d.get("previous"),
        "desired": d.get("desired"),
        "needed": d.get("needed"),
        "in_service": seen[0].get("in_service"),
        "reason": d.get("reason") or "",
    }


def _sum(rows: list[dict[str, Any]], keys: tuple[str, ...]) -> dict[str, int]:
    return {k: sum(int(r.get(k) or 0) for r in rows) for k in keys}


def _one_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:300]
