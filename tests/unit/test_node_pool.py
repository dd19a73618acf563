"""Worker pool arithmetic and adaptive batch sizing (pure logic)."""

from __future__ import annotations

from node_agent.sizing import (
    MAX_CLAIM,
    BatchSizer,
    claim_size,
    queued_share,
    should_retire,
    split_jobs,
)


def test_claim_size_counts_idle_and_spawnable_slots():
    assert claim_size(idle=0, total=0, max_workers=2, batch=1) == 2
    assert claim_size(idle=1, total=2, max_workers=2, batch=4) == 4
    assert claim_size(idle=0, total=2, max_workers=2, batch=4) == 0
    assert claim_size(idle=0, total=3, max_workers=2, batch=4) == 0  # mpps lowered
    assert claim_size(idle=10, total=10, max_workers=10, batch=16) == MAX_CLAIM


def test_never_spawns_more_workers_than_jobs():
    assert split_jobs(1, idle=0, spawnable=4, batch=1) == ([1], 1)
    assert split_jobs(3, idle=0, spawnable=4, batch=1) == ([1, 1, 1], 3)
    assert split_jobs(0, idle=0, spawnable=4, batch=1) == ([], 0)


def test_idle_workers_are_used_before_spawning():
    assert split_jobs(2, idle=2, spawnable=2, batch=1) == ([1, 1], 0)
    assert split_jobs(3, idle=1, spawnable=2, batch=1) == ([1, 1, 1], 2)


def test_short_jobs_are_batched_on_few_workers():
    assert split_jobs(10, idle=0, spawnable=2, batch=16) == ([10], 1)
    assert split_jobs(20, idle=0, spawnable=2, batch=16) == ([10, 10], 2)
    # existing idle workers all get a share, even of a small claim
    assert split_jobs(3, idle=2, spawnable=0, batch=16) == ([2, 1], 0)


def test_split_covers_every_job_within_the_slots():
    for n in range(1, 40):
        for idle in range(3):
            for spawnable in range(3):
                if idle + spawnable == 0:
                    continue
                sizes, spawn = split_jobs(n, idle, spawnable, batch=4)
                assert sum(sizes) == n and min(sizes) >= 1
                assert len(sizes) <= idle + spawnable and spawn <= spawnable
                assert len(sizes) - spawn <= idle


def test_retire_after_timeout():
    assert not should_retire(idle_since=10.0, now=24.0, timeout=15.0)
    assert should_retire(idle_since=10.0, now=25.5, timeout=15.0)


def test_batch_starts_at_one_and_grows_for_short_jobs():
    sizer = BatchSizer()
    assert sizer.size() == 1
    for _ in range(20):
        sizer.observe(0.001)
    assert sizer.size() == 16
    assert sizer.size(frequency=0.1) == 4  # 500 ms target / 101 ms per job


def test_long_jobs_get_one_per_worker():
    sizer = BatchSizer()
    sizer.observe(2.0)
    assert sizer.size() == 1


def test_batch_adapts_when_durations_change():
    sizer = BatchSizer()
    for _ in range(10):
        sizer.observe(0.001)
    for _ in range(10):
        sizer.observe(1.0)
    assert sizer.size() == 1
    assert BatchSizer(average=0.0).size() == 16


def test_claim_size_counts_busy_workers_with_room_for_a_next_batch():
    assert claim_size(idle=0, total=2, max_workers=2, batch=4, roomy=2) == 8
    assert claim_size(idle=1, total=2, max_workers=2, batch=4, roomy=1) == 8


def test_free_workers_take_jobs_before_any_is_queued_behind_a_busy_one():
    assert queued_share(8, idle=2, spawnable=0, batch=4, roomy=2) == []
    assert queued_share(10, idle=1, spawnable=0, batch=4, roomy=1) == [4]  # 2 stay over
    assert queued_share(9, idle=0, spawnable=1, batch=4, roomy=1) == [4]
    assert queued_share(6, idle=0, spawnable=0, batch=4, roomy=2) == [4, 2]
    assert queued_share(6, idle=0, spawnable=0, batch=4, roomy=0) == []


def test_only_jobs_known_to_be_short_are_queued_behind_busy_workers():
    sizer = BatchSizer(target=0.5)
    assert not sizer.queue_ahead()  # unknown duration: never
    sizer.observe(0.05)
    assert sizer.queue_ahead()
    assert not sizer.queue_ahead(frequency=1.0)  # paced: the pause counts as work
    long = BatchSizer(target=0.5)
    long.observe(3.0)
    assert not long.queue_ahead()  # would hold the next job from an idle worker for 3 s
