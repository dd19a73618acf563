"""The measured request mix (bench/capacity_mix.py writes it as JSON), read and scaled.

Units per (table, key kind), all actors together:

* busy: from one stream's runs at two sizes (n and 2n jobs), split (:func:`split_runs`)
  into what grows with the jobs, per job (``busy.per_job``, the hottest partition key's
  share: ``busy.hot_per_job``), and what a run costs once whatever its size, per run
  (``busy.per_run``, ``busy.hot_per_run``: creating the stream and its counter items,
  putting the code item, the collector's lease, the delete); schema 2 mixes (before the
  split) charge everything per job;
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
from impetus.scaler.budget import OLDEST_STREAMS_PER_TICK, REAP_STREAMS_PER_TICK
from impetus.storage.jobqueue.layout import OLDEST_SAMPLE, REAP_SHARDS

SCHEMA = 3
READABLE = (2, 3)  # 2: one busy run, no per-run part (every unit charged per job)
UNITS = ("requests", "rcu", "wcu")
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
REAP_OPS = ("GetItem", "Query")  # a reap: the stream's item, then its shards
OLDEST_KEY = ("queue", "claim index")  # the oldest-wait sample reads the claim index


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


def _busy(
    rows: list[dict[str, Any]], hot_rows: list[dict[str, Any]]
) -> tuple[dict[Key, Units], dict[Key, Units], dict[Key, Units]]:
    """Busy rows (per job or per run): (units less the nodes' polls, the hottest keys
    less the polls of a polled kind (the busy stream's item), the polls)."""
    polls = _sum([r for r in rows if _is_poll(r)])
    hot = {k: _clamp(u + polls.get(k, Units()) * -1) for k, u in _sum(hot_rows).items()}
    return _sum([r for r in rows if not _is_poll(r)]), hot, polls


def split_count(small: float, large: float, jobs: tuple[int, int]) -> tuple[float, float]:
    """A count of two runs (``small`` of ``jobs[0]`` jobs, ``large`` of ``jobs[1]``) split
    into (per job, per run): the slope ``(large - small) / (jobs[1] - jobs[0])`` and the
    intercept ``small - jobs[0] x per job``, each clamped at 0 (a measurement's noise, a
    batch more or less, costs no less than nothing)."""
    n, m = jobs
    if not 0 < n < m:
        raise ValueError("two runs of 0 < n < m jobs")
    per_job = max(0.0, (large - small) / (m - n))
    return per_job, max(0.0, small - n * per_job)


def split_runs(
    small: list[dict[str, Any]],
    large: list[dict[str, Any]],
    jobs: tuple[int, int],
    key: tuple[str, ...],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Rows of two runs' totals, matched on the fields ``key``, split (:func:`split_count`)
    into (per job rows, per run rows); rows all zero are left out."""
    a = {tuple(r[f] for f in key): r for r in small}
    b = {tuple(r[f] for f in key): r for r in large}
    per_job: list[dict[str, Any]] = []
    per_run: list[dict[str, Any]] = []
    for k in sorted(set(a) | set(b)):
        ra, rb = a.get(k, {}), b.get(k, {})
        parts = {f: split_count(ra.get(f, 0.0), rb.get(f, 0.0), jobs) for f in UNITS}
        for i, out in enumerate((per_job, per_run)):
            units = {f: part[i] for f, part in parts.items()}
            if any(v > 1e-12 for v in units.values()):
                out.append({**ra, **rb, **units})
    return per_job, per_run


def scan_units(items: float, item_bytes: float) -> Units:
    """One strongly consistent Scan of ``items`` items: its requests (pages) and RCU."""
    size = items * item_bytes
    return Units(max(1, math.ceil(size / PAGE)), max(1.0, math.ceil(size / READ_UNIT)), 0.0)


class Mix:
    """A measured mix (the JSON of bench/capacity_mix.py)."""

    def __init__(self, data: dict[str, Any], source: str = "") -> None:
        if not isinstance(data, dict) or data.get("schema") not in READABLE:
            raise ConfigError(
                f"{source or 'the mix'}: not a capacity mix of schema {SCHEMA} (nor 2): "
                "re-measure it with bench/capacity_mix.py"
            )
        try:
            self.data = data
            self.source = source
            busy = data["busy"]
            split = data["schema"] >= 3  # schema 2: no per-run part
            self.busy, self.busy_hot, polls = _busy(busy["per_job"], busy["hot_per_job"])
            self.busy_per_run, self.busy_hot_per_run, run_polls = _busy(
                busy["per_run"] if split else [], busy["hot_per_run"] if split else []
            )
            # a node's polls go with its pace: the (larger) run's, per second of it
            self.busy_polls = {
                k: (polls.get(k, Units()) * busy["jobs"] + run_polls.get(k, Units()))
                * (1 / busy["seconds"])
                for k in set(polls) | set(run_polls)
            }
            self.lambda_per_run = float(busy["lambda_invocations_per_run"] if split else 0)
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
        parts = [
            no_scan(self._dfs_rows("per_tick", sweep)),
            {k: v * nodes for k, v in no_scan(self._dfs_rows("per_node", sweep)).items()},
            {k: v * (audited if k in AUDIT_KEYS else streams) for k, v in per_stream.items()},
            self._busy_stream_work(busy_streams, sweep, shards),
            scans,
        ]  # fmt: skip
        return _merge(*parts)

    def _busy_stream_work(self, busy: float, sweep: bool, shards: int) -> dict[Key, Units]:
        """What the tick does per busy stream, within the budget's caps
        (:mod:`impetus.scaler.budget`): the rotating reap slice (a GetItem of the stream
        and a Query per shard, at most ``REAP_SHARDS``) takes ``REAP_STREAMS_PER_TICK``
        streams a tick; the oldest-wait sample Queries the claim index of at most
        ``OLDEST_SAMPLE`` shards of ``OLDEST_STREAMS_PER_TICK`` streams; the listing's
        BatchGets grow with every busy stream. The mix measured ``extra`` busy streams,
        under the reap cap and over the sample's: each measured row is per stream up to
        its cap."""
        part = self.data["dfs"]["sweep"] if sweep else self.data["dfs"]
        out: dict[Key, Units] = {}
        for r in part["per_busy_stream"]:
            if r["actor"] != "dfs" or r["kind"] == "scan":
                continue
            key = (r["table"], r["kind"])
            units = _clamp(Units(r["requests"], r["rcu"], r["wcu"]))
            if key == OLDEST_KEY:
                measured = min(self.extra, OLDEST_STREAMS_PER_TICK)
                each = units * (self.extra / measured) * min(shards, OLDEST_SAMPLE)
                scaled = each * min(busy, OLDEST_STREAMS_PER_TICK)
            elif r["op"] in REAP_OPS:
                reaps = min(shards, REAP_SHARDS) if key == REAP_KEY else 1
                scaled = units * reaps * min(busy, REAP_STREAMS_PER_TICK)
            else:
                scaled = units * busy
            out[key] = out.get(key, Units()) + scaled
        return out

    def dfs_moto_seconds(self, sweep: bool = False) -> dict[str, float]:
        part = self.data["dfs"]["sweep"] if sweep else self.data["dfs"]
        return dict(part["seconds"])

    @property
    def extra(self) -> int:
        return int(self.data["dfs"]["extra"])
