"""impetus.context: set by the worker around each job, by reference across pickling."""

from __future__ import annotations

import pytest

from impetus import context
from impetus.core import codec
from impetus.jobcontext import JobContext, NoJobContext
from tests.nodeharness import make_job, run_jobs


def test_outside_a_job_every_attribute_raises():
    assert not context.active
    for name in ("stream_id", "job_id", "store"):
        with pytest.raises(NoJobContext, match="only set while a job runs"):
            getattr(context, name)


def test_running_sets_and_clears():
    ctx = JobContext()
    with ctx.running("s1", "j1", store=object()):
        assert (ctx.stream_id, ctx.job_id, ctx.active) == ("s1", "j1", True)
    assert not ctx.active


def test_the_context_pickles_as_a_reference():
    assert codec.loads(codec.dumps(context)) is context


def test_a_worker_sets_the_context_around_each_job():
    def who(_):
        from_global = context  # a by-value function refers to the worker's context
        return from_global.stream_id, from_global.job_id

    jobs = [make_job(who, None, job_id=i) | {"stream": "stream-7"} for i in ("a", "b")]
    outcomes = run_jobs(jobs)
    results = {job: codec.loads(outcome.result) for job, outcome in outcomes.items()}
    assert results == {"a": ("stream-7", "a"), "b": ("stream-7", "b")}
