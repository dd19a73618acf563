"""The measured request mix (bench/capacity_mix.py writes it as JSON), read and scaled.

Units per (table, key kind), all actors together:

* busy: per job (``busy.per_job``) and the hottest partition key's share per job
  (``busy.hot_per_job``), from one stream's run;
* idle: per node-second, measured with 1 and with S idle streams: S in between is
  interpolated linearly, beyond them the larger window's figure holds, except for Scans,
  recomputed from the scanned bytes (a Scan reads every item: ``S x item bytes``,
  strongly consistent, 1 MB per request);
* busy nodes' polls: what a node reads of the streams table while work flows (the
  active-streams record's head and shards, the marked streams' items, a claim's
  properties) goes with its polling pace, not with the jobs: taken out of the per-job
  figures and given per node-second (:meth:`Mix.busy_node_reads`), from the busy run;
* DFS: per tick, plus per node, per stream and per busy stream, for plain ticks (the
  marked streams) and for sweeps (every stream, once a minute: the Scan, repairs, idle
  streams' audit and expiry).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from impetus.core.exceptions import ConfigError
from impetus.scaler.audit import AUDIT_PARTITIONS
from impetus.storage.jobqueue.layout import REAP_SHARDS

SCHEMA = 2
NODE = "node"  # the node agent's actor in the mix
# Reads of the streams table a node makes at its polling pace (its listing, a claim's
# cached properties), by key kind: units per node-second, not per job.
POLLED = ("stream item", "active head", "active shard")
POLL_OPS = ("GetItem", "BatchGetItem")
Key = tuple[str, str]  # (table, key kind)
READ_UNIT = 4096
PAGE = 1024 * 1024
# What DFS's audit reads per stream it audits (a stream's counts and its partitions'
# recount); an idle stream of 1 shard has 2 partitions (the shard and the delayed one).
AUDIT_KEYS = (
    ("streams", "stream item"),
    ("streams", "counter item"),
    ("queue", "shard partition"),
    ("queue", "delayed partition"),
)
IDLE_PARTITIONS = 2
REAP_KEY = ("queue", "shard partition")  # a busy stream's reaping Queries, one per shard


@dataclass(frozen=True)
class Units:
    requests: float = 0.0
    rcu: float = 0.0
    wcu: float = 0.0

    def __add__(self, other: Units) -> Units:
        return Units(self.requests + other.requests, self.rcu + other.rcu, self.wcu + other.wcu)

    def __mul__(self, k: float) -> Units:
        return Units(self.requests * k, self.rcu * k, self.wcu * k)


def _sum(rows: list[dict[str, Any]]) -> dict[Key, Units]:
    out: dict[Key, Units] = {}
    for r in rows:
        key = (r["table"], r["kind"])
        out[key] = out.get(key, Units()) + Units(r["requests"], r["rcu"], r["wcu"])
    return out


def _is_poll(r: dict[str, Any]) -> bool:
    return (
        r.get("actor") == NODE
        and r["table"] == "streams"
        and r["kind"] in POLLED
        and r.get("op") in POLL_OPS
    )


def _merge(*parts: dict[Key, Units]) -> dict[Key, Units]:
    out: dict[Key, Units] = {}
    for part in parts:
        for key, units in part.items():
            out[key] = out.get(key, Units()) + units
    return out


def _clamp(u: Units) -> Units:
    return Units(max(0.0, u.requests), max(0.0, u.rcu), max(0.0, u.wcu))


def scan_units(items: float, item_bytes: float) -> Units:
    """One strongly consistent Scan of ``items`` items: its requests (pages) and RCU."""
    size = items * item_bytes
    return Units(max(1, math.ceil(size / PAGE)), max(1.0, math.ceil(size / READ_UNIT)), 0.0)


class Mix:
    """A measured mix (the JSON of bench/capacity_mix.py)."""

    def __init__(self, data: dict[str, Any], source: str = "") -> None:
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            raise ConfigError(f"{source or 'the mix'}: not a capacity mix of schema {SCHEMA}")
        try:
            self.data = data
            self.source = source
            per_job = data["busy"]["per_job"]
            polls = _sum([r for r in per_job if _is_poll(r)])
            self.busy = _sum([r for r in per_job if not _is_poll(r)])
            # the hottest key of a polled kind, less the polls (the busy stream's item)
            self.busy_hot = {
                k: _clamp(u + polls.get(k, Units()) * -1)
                for k, u in _sum(data["busy"]["hot_per_job"]).items()
            }
            jobs_per_second = data["busy"]["jobs"] / data["busy"]["seconds"]
            self.busy_polls = {k: u * jobs_per_second for k, u in polls.items()}
            self.hot_keys = {
                (r["table"], r["kind"]): r["keys"] for r in data["busy"]["hot_per_job"]
            }
            idle = sorted(data["idle"], key=lambda w: w["streams"])
            self._idle_lo, self._idle_hi = idle[0], idle[-1]
            self.item_bytes: dict[str, float] = data["dfs"]["item_bytes"]
            self.lambda_per_job = float(data["busy"]["lambda_invocations_per_job"])
            self.lambda_seconds = float(data["busy"]["lambda_ms"]) / 1000
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise ConfigError(f"{source or 'the mix'}: malformed ({exc!r})") from None

    @classmethod
    def load(cls, path: str | Path) -> Mix:
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise ConfigError(f"cannot read the mix {path}: {exc.strerror}") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}: not JSON ({exc.msg})") from None
        return cls(data, str(path))

    # --- idle: per node-second ----------------------------------------------------------
    def _scans(self, window: dict[str, Any], streams: float, nodes: float) -> dict[Key, Units]:
        """Scans per node-second, their units recomputed for the scanned table's size."""
        out: dict[Key, Units] = {}
        sizes = {"streams": (streams, self.item_bytes["stream"]),
                 "nodes": (nodes, self.item_bytes["node"])}  # fmt: skip
        for r in window["per_node_second"]:
            if r["kind"] != "scan" or r["table"] not in sizes:
                continue
            key = (r["table"], "scan")
            out[key] = out.get(key, Units()) + scan_units(*sizes[r["table"]]) * r["requests"]
        return out

    def idle_per_node_second(self, streams: float, nodes: float = 1) -> dict[Key, Units]:
        lo, hi = self._idle_lo, self._idle_hi
        a = {k: v for k, v in _sum(lo["per_node_second"]).items() if k[1] != "scan"}
        b = {k: v for k, v in _sum(hi["per_node_second"]).items() if k[1] != "scan"}
        span = hi["streams"] - lo["streams"]
        # between the two windows only: beyond them, a difference of a few requests in a
        # few seconds (a heartbeat more or less) would be extrapolated into a trend
        t = min(1.0, max(0.0, (streams - lo["streams"]) / span)) if span else 0.0
        out: dict[Key, Units] = {}
        for key in set(a) | set(b):
            ua, ub = a.get(key, Units()), b.get(key, Units())
            u = ua + (ub + ua * -1) * t
            out[key] = Units(max(0.0, u.requests), max(0.0, u.rcu), max(0.0, u.wcu))
        # Scans: at the rate measured with S idle streams (the listing's pace is that of
        # an idle agent, whatever S), their units for this S
        return _merge(out, self._scans(hi, streams, nodes))

    def idle_hot_per_node_second(self) -> dict[Key, Units]:
        """The hottest key of each kind, per node-second (the larger window's)."""
        return _sum(self._idle_hi["hot_per_node_second"])

    # --- busy nodes' polls: per node-second ----------------------------------------------
    def busy_node_reads(self) -> dict[Key, Units]:
        """A busy node's reads of the streams table per second (its listing: the record's
        head and shards, the marked stream's item; its claims' properties)."""
        return dict(self.busy_polls)

    # --- DFS: per tick ------------------------------------------------------------------
    def _dfs_rows(self, name: str, sweep: bool) -> dict[Key, Units]:
        part = self.data["dfs"]["sweep"] if sweep else self.data["dfs"]
        rows = _sum([r for r in part[name] if r["actor"] == "dfs"])
        # a difference of two ticks can dip below zero where a one-off write (the unmark
        # of a stream deleted before) fell in the first: no item costs less than nothing
        return {k: _clamp(u) for k, u in rows.items()}

    def dfs_tick(
        self,
        nodes: float,
        streams: float,
        busy_streams: float,
        sweep: bool = False,
        shards: int = 1,
    ) -> dict[Key, Units]:
        """One tick's units (``sweep``: the once-a-minute one that lists every stream);
        its Scans recomputed for the table sizes: the nodes table every tick, the
        streams table (every stream item and its counter items) at sweeps only.

        Measured with 1 shard a stream; ``shards``: a busy stream's. A reap Queries at
        most ``REAP_SHARDS`` of them (:mod:`impetus.storage.jobqueue.settle`); an audit
        recounts at most ``AUDIT_PARTITIONS`` queue partitions a tick
        (:mod:`impetus.scaler.audit`): an idle stream's shard and delayed partition, so
        a sweep audits at most ``AUDIT_PARTITIONS / 2`` idle streams, the others wait."""

        def no_scan(rows: dict[Key, Units]) -> dict[Key, Units]:
            return {k: v for k, v in rows.items() if k[1] != "scan"}

        scans = {("nodes", "scan"): scan_units(nodes, self.item_bytes["node"])}
        if sweep:
            scans[("streams", "scan")] = scan_units(streams, self.item_bytes["stream"])
        audited = min(streams, AUDIT_PARTITIONS / IDLE_PARTITIONS)
        per_stream = no_scan(self._dfs_rows("per_stream", sweep))
        reaps = min(shards, REAP_SHARDS)
        parts = [
            no_scan(self._dfs_rows("per_tick", sweep)),
            {k: v * nodes for k, v in no_scan(self._dfs_rows("per_node", sweep)).items()},
            {k: v * (audited if k in AUDIT_KEYS else streams) for k, v in per_stream.items()},
            {k: v * busy_streams * (reaps if k == REAP_KEY else 1)
             for k, v in no_scan(self._dfs_rows("per_busy_stream", sweep)).items()},
            scans,
        ]  # fmt: skip
        return _merge(*parts)

    def dfs_moto_seconds(self, sweep: bool = False) -> dict[str, float]:
        part = self.data["dfs"]["sweep"] if sweep else self.data["dfs"]
        return dict(part["seconds"])

    @property
    def extra(self) -> int:
        return int(self.data["dfs"]["extra"])
