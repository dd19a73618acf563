"""Counter audit on moto: drifted counters are set back to the queue's own count, and
only when the difference holds still (moto in-process)."""

from __future__ import annotations

from impetus.core import codec
from impetus.scaler.audit import Auditor, audit


def _square(x):
    return x * x


CODE = codec.dump_function(_square)
DIGEST = codec.digest(CODE)


def fork(queue, stream, n, delay=0.0):
    specs = [
        {"name": "sq", "code": DIGEST, "args": codec.dumps(i), "stage": "s1", "delay": delay}
        for i in range(n)
    ]
    queue.enqueue(stream, specs, {DIGEST: CODE}, codec.PYTHON_VERSION)


def counts(queue, stream):
    return queue.streams.raw_counts(stream, ("waiting", "running", "delayed"))


def test_recount_reads_waiting_running_and_delayed_from_the_chunks(queue):
    queue.create_stream("r", {"shards": 2})
    fork(queue, "r", 25)
    fork(queue, "r", 3, delay=3600)
    claim = queue.claim("r", "node-1", max_jobs=4, lease=60)
    assert len(claim.jobs) == 4
    assert queue.recount("r") == {"waiting": 21, "running": 4, "delayed": 3}
    assert queue.recount("r") == counts(queue, "r")  # the counters agree when nothing drifted


def test_stranded_work_is_found_and_its_counter_restored(queue):
    """waiting at 0 while jobs wait: no agent would claim them and DFS would not scale."""
    queue.create_stream("s")
    fork(queue, "s", 5)
    queue.streams.count("s", waiting=-5)  # the drift: a count lost with its process
    auditor = Auditor(confirm_after=5)
    listing = queue.list_streams()
    assert audit(queue, listing, 0.0, auditor) == 0  # first sight: maybe counts in flight
    assert counts(queue, "s")["waiting"] == 0
    assert audit(queue, listing, 5.0, auditor) == 1
    assert counts(queue, "s") == {"waiting": 5, "running": 0, "delayed": 0}
    assert audit(queue, queue.list_streams(), 10.0, auditor) == 0  # not due again yet


def test_a_phantom_backlog_is_removed(queue):
    queue.create_stream("p")
    queue.streams.count("p", waiting=7, running=2)  # counts whose jobs never existed
    auditor = Auditor(confirm_after=5)
    audit(queue, queue.list_streams(), 0.0, auditor)
    assert audit(queue, queue.list_streams(), 6.0, auditor) == 1
    assert counts(queue, "p") == {"waiting": 0, "running": 0, "delayed": 0}


def test_counters_that_move_between_two_audits_are_left_alone(queue):
    queue.create_stream("m")
    fork(queue, "m", 4)
    queue.streams.count("m", waiting=-4)
    auditor = Auditor(confirm_after=5)
    audit(queue, queue.list_streams(), 0.0, auditor)
    queue.streams.count("m", waiting=1)  # an agent's flush landed: the difference changed
    assert audit(queue, queue.list_streams(), 5.0, auditor) == 0
    assert counts(queue, "m")["waiting"] == 1
    assert audit(queue, queue.list_streams(), 10.0, auditor) == 1  # stable now: corrected
    assert counts(queue, "m")["waiting"] == 4


def test_a_correction_never_overwrites_a_count_that_lands_after_the_read(queue):
    queue.create_stream("c")
    fork(queue, "c", 2)
    seen = queue.streams.read_counts("c")
    queue.streams.count("c", waiting=1)  # lands between the audit's read and its write
    assert not queue.streams.correct(seen, {"waiting": 9, "running": 0, "delayed": 0})
    assert counts(queue, "c")["waiting"] == 3
