"""CPython's generic ``concurrent.futures`` tests with ``impetus.Executor`` under test.

The vendored file (``test_concurrent_futures.py``, unmodified) builds its thread- and
process-pool variants with ``create_executor_tests(mixin, executor_mixins=...)``; this
module adds one more executor mixin, :class:`ImpetusMixin`, and builds the Impetus
variants of the generic classes the same way. Only tests about the standard pools'
internals are skipped, each with its reason (:data:`SKIPPED`).

Each test runs in a child interpreter of its own (``python -m tests.cpython.adapter
NAME``) under a time limit: a future that never resolves blocks CPython's test body
for ever (``future.result()`` without a timeout), and one hung test must not take the
other results with it. The child reaches the stack the parent does (``IMPETUS_HOME``
or the address/authkey variables in the environment it inherits).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import unittest
from dataclasses import asdict, dataclass
from pathlib import Path

import impetus
from tests.cpython import test_concurrent_futures as cpython

REPO = Path(__file__).resolve().parents[2]
MARKER = "CPYTHON-OUTCOME "  # prefixes the child's one line of JSON on stdout
TEST_LIMIT = 150.0  # seconds per test: CPython's tearDown allows 300, its bodies sleep <= 6

# The generic classes of CPython 3.11's file, in the order the file defines them.
GENERIC = (
    cpython.ExecutorShutdownTest,
    cpython.WaitTests,
    cpython.AsCompletedTests,
    cpython.ExecutorTest,
)

_CHILD_INTERPRETER = (
    "the body starts a child interpreter that does `from concurrent.futures import "
    "{executor_type.__name__}`: only the standard pools can be named there (for "
    "impetus.Executor it would import and test the abstract base class); it tests the "
    "atexit hook that joins the standard pools' worker threads and processes"
)

#: ``Class.test`` (generic class names) -> why it does not apply to impetus.Executor.
SKIPPED = {
    "ExecutorShutdownTest.test_cancel_futures": (
        "its last assertion (some of 50 calls submitted just before shutdown finished) "
        "holds because a standard pool starts the first max_workers calls in the "
        "submitting process as they are submitted; Impetus's nodes claim from the queue "
        "on their own schedule, so shutdown(cancel_futures=True) right after submit may "
        "find every call still queued and cancel all 50, which the contract allows. The "
        "contract itself (queued calls cancelled and never run, started ones finish) is "
        "tests/e2e/test_executor_contract_e2e.py::"
        "test_shutdown_cancel_futures_cancels_the_queued_calls_only"
    ),
    "ExecutorShutdownTest.test_interpreter_shutdown": _CHILD_INTERPRETER,
    "ExecutorShutdownTest.test_submit_after_interpreter_shutdown": _CHILD_INTERPRETER,
    "ExecutorShutdownTest.test_hang_gh83386": _CHILD_INTERPRETER,
}


class ImpetusMixin(cpython.ExecutorMixin):
    """CPython's ExecutorMixin with impetus.Executor: a new stream per test.

    ``max_workers`` is the standard pools' argument; impetus.Executor takes stream
    properties instead, so setUp builds it without one (the rest is CPython's).
    """

    executor_type = impetus.Executor
    executor_kwargs: dict = {}

    def setUp(self) -> None:
        super(cpython.ExecutorMixin, self).setUp()  # BaseTestCase: thread bookkeeping
        self.t1 = time.monotonic()
        self.executor = self.executor_type(**self.executor_kwargs)


def impetus_classes() -> dict[str, type[unittest.TestCase]]:
    """Generic class name -> its Impetus variant, built by CPython's own helper."""
    classes = {}
    for generic in GENERIC:
        cpython.create_executor_tests(generic, executor_mixins=(ImpetusMixin,))
        name = "Impetus" + generic.__name__.removesuffix("Tests").removesuffix("Test") + "Test"
        cls = getattr(cpython, name)
        for test in unittest.defaultTestLoader.getTestCaseNames(cls):
            reason = SKIPPED.get(f"{generic.__name__}.{test}")
            if reason:
                setattr(cls, test, unittest.skip(reason)(getattr(cls, test)))
        classes[generic.__name__] = cls
    return classes


def test_names() -> list[str]:
    """``ImpetusClass.test_name`` of every test, in file order per class."""
    names = []
    for cls in impetus_classes().values():
        names += [f"{cls.__name__}.{t}" for t in unittest.defaultTestLoader.getTestCaseNames(cls)]
    return names


@dataclass
class Outcome:
    """One CPython test's result: passed, failed, skipped or timeout."""

    name: str
    status: str
    seconds: float
    detail: str = ""  # the traceback, the skip reason or the child's output
    threads_left: bool = False  # CPython's threading_cleanup saw threads still running


# --- the child: one test -----------------------------------------------------------------
def run_one(name: str) -> Outcome:
    """Run ``ImpetusClass.test_name`` here and say how it went."""
    from test import support

    impetus_classes()
    suite = unittest.defaultTestLoader.loadTestsFromName(name, cpython)
    result = unittest.TestResult()
    start = time.monotonic()
    suite.run(result)
    seconds = time.monotonic() - start
    problems = result.failures + result.errors
    if problems:
        status, detail = "failed", "\n".join(text for _, text in problems)
    elif result.skipped:
        status, detail = "skipped", result.skipped[0][1]
    elif result.testsRun == 1 and result.wasSuccessful():
        status, detail = "passed", ""
    else:
        status, detail = "failed", f"ran {result.testsRun} tests: {result}"
    return Outcome(name, status, seconds, detail, bool(support.environment_altered))


# --- the parent: every test, each in a child ----------------------------------------------
def run_in_child(name: str, limit: float = TEST_LIMIT) -> Outcome:
    """Run one test in a child interpreter; a test past ``limit`` is killed: timeout."""
    start = time.monotonic()
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.cpython.adapter", name],
        cwd=REPO,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = child.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        output, _ = child.communicate()
        return Outcome(name, "timeout", time.monotonic() - start, _tail(output))
    if MARKER in output:  # CPython's tearDown may print on the same line before it
        return Outcome(**json.loads(output.rpartition(MARKER)[2].splitlines()[0]))
    detail = f"the child exited {child.returncode} without an outcome\n{_tail(output)}"
    return Outcome(name, "failed", time.monotonic() - start, detail)


def run_all(limit: float = TEST_LIMIT, report=print) -> list[Outcome]:
    """Every test in order, each reported as it ends (``report`` gets one line)."""
    outcomes = []
    for name in test_names():
        outcome = run_in_child(name, limit)
        outcomes.append(outcome)
        leak = "  (threads left behind)" if outcome.threads_left else ""
        report(f"{outcome.status:8} {outcome.seconds:6.1f}s  {name}{leak}")
    return outcomes


def summary(outcomes: list[Outcome]) -> dict[str, int]:
    """Counts per status, every status present (zeros included)."""
    counts = dict.fromkeys(("passed", "failed", "timeout", "skipped"), 0)
    for outcome in outcomes:
        counts[outcome.status] += 1
    return counts


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join((text or "").splitlines()[-lines:])


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m tests.cpython.adapter ImpetusClass.test_name", file=sys.stderr)
        return 2
    outcome = run_one(argv[0])
    print("\n" + MARKER + json.dumps(asdict(outcome)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
