"""The measured request mix (bench/capacity_mix.py writes it as JSON), read and scaled.

Units per (table, key kind), all actors together:

* busy: per job (``busy.per_job``) and the hottest partition key's share per job
  (``busy.hot_per_job``), from one stream's run;
* idle: per node-second, measured with 1 and with S idle streams: S in between is
  interpolated linearly, beyond them the larger window's figure holds, except for Scans,
  recomputed from the scanned bytes (a Scan reads every item: ``S x item bytes``,
  strongly consistent, 1 MB per request);
* DFS: per tick, plus per node, per stream and per busy stream.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from impetus.core.exceptions import ConfigError

SCHEMA = 1
Key = tuple[str, str]  # (table, key kind)
READ_UNIT = 4096
PAGE = 1024 * 1024


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


def _merge(*parts: dict[Key, Units]) -> dict[Key, Units]:
    out: dict[Key, Units] = {}
    for part in parts:
        for key, units in part.items():
            out[key] = out.get(key, Units()) + units
    return out


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
            self.busy = _sum(data["busy"]["per_job"])
            self.busy_hot = _sum(data["busy"]["hot_per_job"])
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

    # --- DFS: per tick ------------------------------------------------------------------
    def _dfs_rows(self, name: str) -> dict[Key, Units]:
        return _sum([r for r in self.data["dfs"][name] if r["actor"] == "dfs"])

    def dfs_tick(self, nodes: float, streams: float, busy_streams: float) -> dict[Key, Units]:
        """One tick's units; its Scans recomputed for the table sizes."""

        def no_scan(rows: dict[Key, Units]) -> dict[Key, Units]:
            return {k: v for k, v in rows.items() if k[1] != "scan"}

        parts = [
            no_scan(self._dfs_rows("per_tick")),
            {k: v * nodes for k, v in no_scan(self._dfs_rows("per_node")).items()},
            {k: v * streams for k, v in no_scan(self._dfs_rows("per_stream")).items()},
            {k: v * busy_streams for k, v in no_scan(self._dfs_rows("per_busy_stream")).items()},
            {("streams", "scan"): scan_units(streams, self.item_bytes["stream"]),
             ("nodes", "scan"): scan_units(nodes, self.item_bytes["node"])},
        ]  # fmt: skip
        return _merge(*parts)

    def dfs_moto_seconds(self) -> dict[str, float]:
        return dict(self.data["dfs"]["seconds"])

    @property
    def extra(self) -> int:
        return int(self.data["dfs"]["extra"])
