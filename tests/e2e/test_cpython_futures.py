"""CPython's own concurrent.futures tests, bodies unmodified, against impetus.Executor.

The generic tests of CPython 3.11's test_concurrent_futures (ExecutorTest, WaitTests,
AsCompletedTests, ExecutorShutdownTest; tests/cpython/README.md) on the local stack
(2 nodes, 2 worker processes each), each CPython test in a child interpreter of its own
with a time limit (tests/cpython/adapter.py). Every test passes except the ones about
the standard pools' internals, skipped with their reasons (adapter.SKIPPED).

`python bench/cpython_futures.py --runs 5` runs it five times over, each on a fresh stack.
"""

from __future__ import annotations

import pytest

from tests.cpython import adapter

pytestmark = pytest.mark.e2e


@pytest.mark.timeout(1800)  # 28 tests, each limited to adapter.TEST_LIMIT; ~2 min if green
def test_cpython_generic_executor_tests_pass_on_impetus(local_stack):
    outcomes = adapter.run_all(report=print)  # one line per CPython test (pytest -s)
    counts = adapter.summary(outcomes)
    print(f"CPython test_concurrent_futures on impetus.Executor: {counts}")
    bad = [o for o in outcomes if o.status in ("failed", "timeout")]
    assert not bad, f"{len(bad)} of {len(outcomes)} CPython tests did not pass:\n" + "\n".join(
        f"--- {o.name}: {o.status} after {o.seconds:.1f} s\n{o.detail}" for o in bad
    )
    skipped = {o.name.split(".", 1)[1] for o in outcomes if o.status == "skipped"}
    assert skipped == {name.split(".", 1)[1] for name in adapter.SKIPPED}  # no other skip
    assert counts["passed"] == len(outcomes) - len(adapter.SKIPPED) > 0
