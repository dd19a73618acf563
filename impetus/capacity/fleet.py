"""How a fleet of N node agents scales what one measured agent did, from the code's own
constants (the mix measures one agent; its pace depends on the fleet's size and state).

* Head reads: an idle agent reads its replica's head every
  ``idle_interval(fleet, poll_interval)`` seconds (:mod:`impetus.storage.activestreams`:
  at least ``poll_interval``, and the whole idle fleet shares ``IDLE_READS_PER_SECOND``
  reads/s, told by DFS, :mod:`impetus.scaler.fleetsize`). The mix's agent, alone,
  read it every ``poll_interval``: a fleet of N reads ``min(N / poll_interval, budget)``
  heads a second, not N times the measured rate.
* Heartbeats: every ``idle_heartbeat_interval`` (55 s) while a node holds nothing, every
  ``heartbeat_interval`` (5 s) while it holds leases (work flowing): a 5 s window of
  the mix catches one beat or none, so the rate comes from the constants and a beat's
  write units from the node item's measured size.
* Shard re-reads: an idle view holds no marks, so it re-reads its replica's ``SHARDS``
  shards (consistently, ~1 RCU each: they are small) only every ``FULL_REFRESH_EVERY``
  seconds, which no window of a few seconds catches.
* A drain signal (a bump of ``drains`` in a head) makes the drained nodes read their own
  item once: per drain, not per node-second, so it is left out (a few reads a tick).
"""

from __future__ import annotations

import math

from impetus.capacity.mix import Key, Mix, Units
from impetus.storage.activestreams import (
    FULL_REFRESH_EVERY,
    IDLE_READS_PER_SECOND,
    SHARDS,
    idle_interval,
)
from node_agent.config import (
    DEFAULT_HEARTBEAT_INTERVAL,
    DEFAULT_IDLE_HEARTBEAT_INTERVAL,
    DEFAULT_POLL_INTERVAL,
)

HEAD: Key = ("streams", "active head")
SHARD: Key = ("streams", "active shard")
NODE_ITEM: Key = ("nodes", "node item")
WRITE_UNIT = 1024


def poll_interval(mix: Mix) -> float:
    """The measured agent's poll interval (recorded in the mix; else the default)."""
    return float(mix.data.get("params", {}).get("node_poll_interval", DEFAULT_POLL_INTERVAL))


def head_share(mix: Mix, nodes: float) -> float:
    """What each of ``nodes`` idle agents reads of the head, as a fraction of the measured
    agent's reads: 1 up to ``IDLE_READS_PER_SECOND x poll_interval`` nodes, then less."""
    interval = poll_interval(mix)
    return interval / idle_interval(max(1, math.ceil(nodes)), interval, IDLE_READS_PER_SECOND)


def beat(mix: Mix, busy: bool) -> Units:
    """A node's heartbeat writes per second: one PutItem of its item per interval."""
    interval = DEFAULT_HEARTBEAT_INTERVAL if busy else DEFAULT_IDLE_HEARTBEAT_INTERVAL
    units = max(1, math.ceil(mix.item_bytes["node"] / WRITE_UNIT))
    return Units(1 / interval, 0.0, units / interval)


def shard_refresh(one_key: bool = False) -> Units:
    """An idle view's full re-read of its replica's shards, per second (``one_key``: of
    one shard, the hottest key's share)."""
    per_second = (1 if one_key else SHARDS) / FULL_REFRESH_EVERY
    return Units(per_second, per_second, 0.0)


def pace(
    mix: Mix, rows: dict[Key, Units], nodes: float, busy: bool, one_key: bool = False
) -> dict[Key, Units]:
    """A node's measured per-second ``rows`` (idle polls) at the fleet's pace: head reads
    by ``head_share``, heartbeats and shard re-reads from the constants (``one_key``:
    rows of the hottest key of each kind, a shard re-read then counts one shard)."""
    out = dict(rows)
    if HEAD in out:
        out[HEAD] = out[HEAD] * head_share(mix, nodes)
    out[NODE_ITEM] = beat(mix, busy)
    out[SHARD] = shard_refresh(one_key)
    return out
