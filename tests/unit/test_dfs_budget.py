"""The DFS tick's budget helpers (impetus/scaler/budget.py) and the choices they bound:
rotation, the request pool's order, the audit's per-tick share, the ttl checks' memory,
dead nodes seen by the reaper."""

from __future__ import annotations

import contextvars
import math
import threading
import time

from impetus.scaler import audit, budget, expire, reaping


def test_a_rotation_takes_every_id_within_ceil_ids_over_size_slices():
    rotation = budget.Rotation(7)
    ids = [f"s{i:02d}" for i in range(30)]
    seen: list[str] = []
    for _ in range(math.ceil(len(ids) / 7)):
        seen += rotation.take(reversed(ids))
    assert sorted(set(seen)) == ids
    assert len(seen) == len(set(seen)) + (7 * 5 - 30)  # only the last slice wraps


def test_a_rotation_survives_ids_that_come_and_go():
    rotation = budget.Rotation(2)
    assert rotation.take(["a", "b", "c"]) == ["a", "b"]
    assert rotation.take(["a", "c", "d"]) == ["c", "d"]  # b gone, d new: no skip
    assert rotation.take(["a", "c", "d"]) == ["a", "c"]


def test_fan_out_keeps_the_order_and_uses_several_threads():
    threads: set[int] = set()

    def work(i: int) -> int:
        threads.add(threading.get_ident())
        time.sleep(0.01)
        return i * i

    assert budget.fan_out(work, range(40), workers=8) == [i * i for i in range(40)]
    assert len(threads) > 1
    assert budget.fan_out(work, [3], workers=8) == [9]


def test_fan_out_runs_each_item_in_the_callers_context():
    """What the caller set in its context (the cost meter's actor) is seen on the pool's
    threads, and one item's changes do not leak into another's or back."""
    who: contextvars.ContextVar[str] = contextvars.ContextVar("who", default="nobody")

    def work(i: int) -> str:
        seen = who.get()
        who.set(f"item {i}")
        time.sleep(0.01)
        return seen

    token = who.set("dfs")
    try:
        assert budget.fan_out(work, range(8), workers=4) == ["dfs"] * 8
        assert who.get() == "dfs"
    finally:
        who.reset(token)


def test_the_audit_takes_at_most_its_share_longest_unaudited_first():
    auditor = audit.Auditor(per_tick=3)
    listing = [{"id": f"s{i}", "properties": {}} for i in range(5)]
    auditor.audited_at = {"s0": 10.0, "s1": 0.0}  # s2..s4 never audited
    now = 10_000.0
    assert audit.choose(listing, now, auditor) == ["s2", "s3", "s4"]
    for sid in ("s2", "s3", "s4"):
        auditor.audited_at[sid] = now
    assert audit.choose(listing, now, auditor) == ["s1", "s0"]  # the rest stayed due


def test_a_live_clients_stream_is_read_once_per_ttl():
    check = expire.ExpiryCheck(per_tick=2)
    listing = [
        {"id": f"s{i}", "created": float(i + 1), "properties": {"ttl": "60"}} for i in range(3)
    ]
    assert check.candidates(listing, 1_000.0) == ["s0", "s1"]  # oldest first, bounded
    check.not_before["s0"] = 1_500.0  # its client's lease was seen: not before a ttl
    assert check.candidates(listing, 1_000.0) == ["s1", "s2"]
    assert check.candidates(listing, 1_500.0) == ["s0", "s1"]


def test_a_node_that_vanished_holding_claims_counts_as_dead_once():
    reaper = reaping.Reaping(lease=60.0)
    alive = {"n1": {"expires": 200, "heartbeat": 100.0, "claims": 1, "streams": ["a"]}}
    assert reaper.see_nodes(alive, ["a", "b"], now=150.0) == []
    assert reaper.see_nodes({}, ["a", "b"], now=250.0) == ["n1"]  # gone from the table
    assert reaper.wanted == {"a": 160.0}  # its last beat + the lease
    assert reaper.see_nodes({}, ["a", "b"], now=260.0) == []
    expired = {"n2": {"expires": 100, "heartbeat": 90.0, "claims": 0}}  # no streams field
    assert reaper.see_nodes(expired, ["a", "b"], now=300.0) == ["n2"]
    assert reaper.wanted == {"a": 150.0, "b": 150.0}  # every busy stream, the rare case
    assert reaper.see_nodes(expired, ["a", "b"], now=310.0) == []  # lingering: once
