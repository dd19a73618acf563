"""Stream tracking and per-stream parameters of the node agent (pure logic)."""

from __future__ import annotations

from impetus.core.properties import PROPERTIES
from node_agent.streams import StreamTracker, has_work, matches, stream_params


def desc(sid, waiting=0, delayed=0, **properties):
    return {"id": sid, "properties": properties, "counts": {"waiting": waiting, "delayed": delayed}}


def tracker(**node_filter):
    return StreamTracker(node_filter=node_filter, node_mpps=4, lease=60.0, min_lease=10.0)


def never(_sid):
    return False


def test_filter_matches_every_key_by_string_value():
    assert matches({}, {"anything": 1})
    assert matches({"node_class": "big", "gpu": "1"}, {"node_class": "big", "gpu": 1, "x": 2})
    assert not matches({"node_class": "big"}, {"node_class": "small"})
    assert not matches({"node_class": "big"}, {})


def test_params_defaults_come_from_impetus_properties():
    p = stream_params({}, node_mpps=3, lease=60.0, min_lease=10.0)
    defaults = (PROPERTIES["frequency"].default, PROPERTIES["idle_timeout"].default)
    assert (p.mpps, (p.frequency, p.idle_timeout), p.lease) == (3, defaults, 60.0)


def test_stream_mpps_only_lowers_the_node_value():
    assert stream_params({"mpps": 1}, 4, 60, 10).mpps == 1
    assert stream_params({"mpps": "3"}, 4, 60, 10).mpps == 3
    assert stream_params({"mpps": 16}, 4, 60, 10).mpps == 4
    assert stream_params({"mpps": 0}, 4, 60, 10).mpps == 4


def test_bad_numbers_fall_back_to_defaults_and_lease_stays_renewable():
    p = stream_params({"frequency": "fast", "idle_timeout": -1, "lease": 2}, 2, 60, 10)
    assert (p.frequency, p.idle_timeout, p.lease) == (PROPERTIES["frequency"].default, 15.0, 10.0)
    props = {"frequency": 0.5, "idle_timeout": "3", "lease": 120}
    assert stream_params(props, 2, 60, 10).lease == 120


def test_has_work_counts_waiting_and_delayed():
    assert has_work(desc("a", waiting=1))
    assert has_work(desc("a", delayed=1))
    assert not has_work(desc("a"))
    assert not has_work({"id": "a"})


def test_tracks_matching_streams_with_work_only():
    t = tracker(node_class="big")
    added, dropped = t.refresh(
        [
            desc("a", 5, node_class="big"),
            desc("b", 5, node_class="small"),
            desc("c", 0, node_class="big"),
        ],
        now=0.0,
        active=never,
    )
    assert (added, dropped) == (["a"], [])
    assert set(t.streams) == {"a"}


def test_drops_stream_idle_past_its_idle_timeout_not_before():
    t = tracker()
    t.refresh([desc("a", 1, idle_timeout=5)], now=0.0, active=never)
    assert t.refresh([desc("a", 0, idle_timeout=5)], now=4.0, active=never) == ([], [])
    assert not t.streams["a"].waiting
    assert t.refresh([desc("a", 0, idle_timeout=5)], now=5.5, active=never) == ([], ["a"])


def test_active_stream_is_kept_however_long_it_runs():
    t = tracker()
    t.refresh([desc("a", 1, idle_timeout=1)], now=0.0, active=never)
    assert t.refresh([desc("a", 0, idle_timeout=1)], now=100.0, active=lambda s: True)[1] == []
    # idle from the last moment it was active
    assert t.refresh([desc("a", 0, idle_timeout=1)], now=100.5, active=never)[1] == []
    assert t.refresh([desc("a", 0, idle_timeout=1)], now=101.5, active=never)[1] == ["a"]


def test_touch_and_new_work_reset_the_idle_clock():
    t = tracker()
    t.refresh([desc("a", 1, idle_timeout=5)], now=0.0, active=never)
    t.touch("a", 4.0)
    assert t.refresh([desc("a", 0, idle_timeout=5)], now=8.0, active=never)[1] == []
    t.refresh([desc("a", 3, idle_timeout=5)], now=12.0, active=never)
    assert t.refresh([desc("a", 0, idle_timeout=5)], now=16.0, active=never)[1] == []


def test_deleted_stream_is_dropped_once_nothing_is_in_hand():
    t = tracker()
    t.refresh([desc("a", 1)], now=0.0, active=never)
    assert t.refresh([], now=1.0, active=lambda s: True)[1] == []
    assert t.refresh([], now=2.0, active=never)[1] == ["a"]


def test_stream_whose_properties_stop_matching_gets_no_new_claims():
    t = tracker(node_class="big")
    t.refresh([desc("a", 5, node_class="big")], now=0.0, active=never)
    t.refresh([desc("a", 5, node_class="small")], now=1.0, active=never)
    assert not t.streams["a"].waiting


def test_property_changes_update_params():
    t = tracker()
    t.refresh([desc("a", 5, mpps=1)], now=0.0, active=never)
    t.refresh([desc("a", 5, mpps=3, frequency=0.2)], now=1.0, active=never)
    assert (t.streams["a"].params.mpps, t.streams["a"].params.frequency) == (3, 0.2)


def test_time_limit_is_none_unless_the_stream_sets_one():
    assert stream_params({}, 2, 60, 10).time_limit is None
    assert stream_params({"time_limit": 2.5}, 2, 60, 10).time_limit == 2.5
