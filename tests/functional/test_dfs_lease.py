"""One DFS decision loop at a time without reserved concurrency: the lease in the
decisions table (impetus.scaler.loop, impetus.storage.decisions.LoopLease), on moto."""

from __future__ import annotations

import logging
import time

from impetus.scaler import loop, tick
from impetus.scaler.config import DfsSettings
from impetus.storage.decisions import DecisionLog, LoopLease
from tests.functional.test_dfs_handler import env, fork, group  # noqa: F401 (fixture)

T0 = float(int(time.time()))  # streams are created at the real time: no ttl expiry


class Clock:
    """A controllable clock with a Lambda deadline that runs down with it."""

    def __init__(self, now: float = T0, budget: float = 50.0) -> None:
        self.now, self.deadline = now, now + budget

    def __call__(self) -> float:
        return self.now

    def remaining(self) -> float:
        return max(0.0, self.deadline - self.now)


def invocation(clock: Clock, holder: str, sleep=None) -> loop.Invocation:
    def advance(seconds: float) -> None:
        clock.now += seconds

    return loop.Invocation(
        remaining=clock.remaining, sleep=sleep or advance, clock=clock, holder=holder
    )


def test_an_overlapping_invocation_leaves_and_makes_no_decision(env, caplog):  # noqa: F811
    queue, asg, ddb = env["queue"], env["asg"], env["ddb"]
    queue.create_stream("s", {"mpps": 2, "target_latency": 1.0})
    fork(queue, "s", 1)
    settings, clients = DfsSettings.from_env(), tick.Clients.create(DfsSettings.from_env())
    clock = Clock()
    second: dict = {}

    def sleep_and_overlap(seconds: float) -> None:
        """While the first loop waits between ticks, a nudge starts a second invocation."""
        clock.now += seconds
        if not second:
            second.update(loop.run(settings, clients, invocation(Clock(clock.now), "nudge")))
            fork(queue, "s", 3)  # more work: only the first loop may act on it

    with caplog.at_level(logging.INFO, logger="impetus.scaler.loop"):
        first = loop.run(settings, clients, invocation(clock, "schedule", sleep_and_overlap))
    assert second == {"ticks": 0, "last": None, "left": "lease held by another invocation"}
    assert "another DFS invocation (schedule) holds the decision loop" in caplog.text
    assert first["ticks"] >= 2 and group(asg)["DesiredCapacity"] == 2
    # one set of decisions: every logged decision is the first loop's (desired 0->1->2)
    actions = [(e["decision"]["previous"], e["decision"]["desired"]) for e in _log(ddb)]
    assert actions[:2] == [(0, 1), (1, 2)]
    assert LoopLease(ddb, "test-decisions", "x").holder_of() == {}  # released at the end


def test_a_knock_gets_one_more_tick_before_the_holder_lets_go(env):  # noqa: F811
    queue, asg, ddb = env["queue"], env["asg"], env["ddb"]
    queue.create_stream("s", {"mpps": 2})
    settings, clients = DfsSettings.from_env(), tick.Clients.create(DfsSettings.from_env())
    clock = Clock()
    real_run = tick.run
    calls = []

    def run_then_nudge(*args, **kwargs):
        """The first tick finds nothing to do; meanwhile work arrives and its nudge knocks."""
        result = real_run(*args, **kwargs)
        calls.append(result)
        if len(calls) == 1:
            fork(queue, "s", 1)
            refused = loop.run(settings, clients, invocation(Clock(clock.now), "nudge"))
            assert refused["ticks"] == 0
        return result

    tick.run, saved = run_then_nudge, tick.run
    try:
        result = loop.run(settings, clients, invocation(clock, "schedule"))
    finally:
        tick.run = saved
    assert result["ticks"] == 2 and group(asg)["DesiredCapacity"] == 1
    assert LoopLease(ddb, "test-decisions", "x").holder_of() == {}


def test_a_crashed_holders_lease_expires_and_the_next_tick_takes_it(env):  # noqa: F811
    queue, asg, ddb = env["queue"], env["asg"], env["ddb"]
    queue.create_stream("s", {"mpps": 2})
    fork(queue, "s", 1)
    crashed = LoopLease(ddb, "test-decisions", "crashed")
    deadline = T0 + 50  # its invocation's deadline; the lease outlives it by LEASE_MARGIN
    assert crashed.acquire(T0, deadline + loop.LEASE_MARGIN)
    settings, clients = DfsSettings.from_env(), tick.Clients.create(DfsSettings.from_env())
    before = loop.run(settings, clients, invocation(Clock(deadline + 5), "early"))
    assert before["ticks"] == 0 and group(asg)["DesiredCapacity"] == 0
    after = loop.run(settings, clients, invocation(Clock(deadline + loop.LEASE_MARGIN + 1), "next"))
    assert after["ticks"] >= 1 and group(asg)["DesiredCapacity"] == 1
    assert not crashed.release() or crashed.holder_of() == {}  # the dead holder owns nothing


def test_the_lease_lasts_a_little_past_the_invocations_deadline(env):  # noqa: F811
    clock = Clock(budget=50.0)
    lease = LoopLease(env["ddb"], "test-decisions", "me")
    assert lease.acquire(clock(), invocation(clock, "me").lease_until())
    assert lease.holder_of()["expires"] == T0 + 50 + loop.LEASE_MARGIN
    other = LoopLease(env["ddb"], "test-decisions", "other")
    assert not other.acquire(T0 + 50 + loop.LEASE_MARGIN - 0.5, T0 + 200)
    assert lease.acquire(T0 + 1, T0 + 61)  # the holder renews
    assert lease.release() and other.acquire(T0 + 2, T0 + 62)


def _log(ddb) -> list[dict]:
    return DecisionLog(ddb, "test-decisions").recent(limit=50)
