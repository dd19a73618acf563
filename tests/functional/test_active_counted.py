"""Where the active-streams record (poll) meets the counter items (counters), on moto
in-process: an enqueue decides "idle" from the summed counter items, every listing folds
counter items into their streams and leaves the record's items out, DFS's marked listing
is counted, a node's is not (a mark means "may have work")."""

from __future__ import annotations

from impetus.core import codec, jobs
from impetus.core.jobs import Outcome
from impetus.scaler.activity import Activity
from impetus.storage.activestreams import RECORD_PREFIX
from impetus.storage.streams import MARKED, may_hold_claims
from node_agent.streams import has_work
from tests.functional.test_active_streams import fork, marks


def test_an_enqueue_reads_idle_from_the_summed_counter_items(queue):
    queue.create_stream("s", {"shards": 4})
    fork(queue, "s", 3)
    token = marks(queue)["s"]
    # the stream item's own counters are all zero: the work is on its counter items
    item = queue.streams.get_item("s")
    assert int(item.get("waiting", 0)) == 0 and item["counter_shards"] == 4
    fork(queue, "s")  # busy by the sums (not by the item's zeros): no new mark
    assert marks(queue)["s"] == token
    while claim := queue.claim("s", "n1", 10, lease=30):
        done = {j.id: Outcome(jobs.READY, result=codec.dumps(0)) for j in claim.jobs}
        queue.complete(claim, done)
    assert queue.get_stream("s")["counts"]["waiting"] == 0
    fork(queue, "s")  # idle by the sums again: marked anew
    assert marks(queue)["s"] != token


def test_every_listing_folds_counter_items_and_skips_the_record(queue):
    queue.create_stream("a", {"shards": 3})
    queue.create_stream("b")
    fork(queue, "a", 5)
    scanned = queue.list_streams()
    assert [s["id"] for s in scanned] == ["a", "b"]  # no "<a>#c<k>", no "~active#..."
    assert not any(s["id"].startswith(RECORD_PREFIX) for s in scanned)
    assert scanned[0]["counts"]["waiting"] == 5 and scanned[0]["counts"]["forked"] == 5
    # DFS's listing between sweeps: the marked streams, counted
    listing, full = Activity(sweep_every=1e9, swept_at=0.0).listing(queue, now=1.0)
    assert not full and [s["id"] for s in listing] == ["a"]
    assert listing[0]["counts"]["waiting"] == 5 and MARKED not in listing[0]


def test_a_nodes_listing_takes_the_mark_for_may_have_work(queue):
    queue.create_stream("a", {"shards": 2})
    queue.create_stream("idle")
    fork(queue, "a", 2)
    listing = queue.list_active_streams(queue.active_view("node-1"))
    assert [s["id"] for s in listing] == ["a"]
    (a,) = listing
    # no counter item read: the stream item's own counts are zero, the mark says work
    assert a[MARKED] is True and a["counts"]["waiting"] == 0
    assert has_work(a) and may_hold_claims(a)
    # a described (counted) stream without a mark is judged by its counts as before
    assert not has_work(queue.get_stream("idle")) and not may_hold_claims(queue.get_stream("idle"))
