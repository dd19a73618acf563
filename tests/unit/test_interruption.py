"""Watching IMDSv2 for Spot signals (node_agent/interruption.py) against a fake metadata
server that insists on tokens, as EC2's does with the launch template's IMDSv2 setting."""

from __future__ import annotations

import time
import urllib.error
import urllib.request

import pytest

from node_agent.interruption import (
    INSTANCE_ACTION_PATH,
    REBALANCE_PATH,
    Imds,
    MetadataError,
    Notice,
    SpotState,
    Watcher,
    parse_time,
    read_notice,
)
from tests.imdsfake import FakeImds


@pytest.fixture
def imds():
    with FakeImds() as fake:
        yield fake


def test_the_fake_refuses_a_read_without_a_token(imds):
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(imds.url + INSTANCE_ACTION_PATH, timeout=2)
    assert caught.value.code == 401


def test_items_are_absent_until_ec2_sets_them_then_read_with_a_token(imds):
    client = Imds(imds.url)
    assert client.get(INSTANCE_ACTION_PATH) is None
    assert client.get(REBALANCE_PATH) is None
    at = imds.notice(120)
    notice = read_notice(client.get(INSTANCE_ACTION_PATH))
    assert notice == Notice("terminate", at)
    assert imds.statuses(INSTANCE_ACTION_PATH) == [404, 200]
    assert len(imds.tokens) == 1  # one session token for every read


def test_a_token_the_service_forgot_is_fetched_again(imds):
    client = Imds(imds.url)
    assert client.get(REBALANCE_PATH) is None
    imds.tokens.clear()  # e.g. the service restarted
    imds.rebalance()
    assert client.get(REBALANCE_PATH) is not None
    assert imds.statuses(REBALANCE_PATH) == [404, 401, 200]


def test_timestamps_and_bad_notices():
    assert parse_time("2017-09-18T08:22:00Z") == 1505722920.0
    with pytest.raises(MetadataError):
        read_notice('{"action": "terminate"}')
    with pytest.raises(MetadataError):
        read_notice("not json")


def test_the_watcher_reports_a_rebalance_once_then_the_notice_and_ends(imds):
    seen: list[object] = []
    watcher = Watcher(Imds(imds.url), 0.05, lambda: seen.append("rebalance"), seen.append)
    watcher.start()
    try:
        time.sleep(0.3)
        assert seen == []
        imds.rebalance()
        deadline = time.monotonic() + 5
        while not seen and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.2)
        assert seen == ["rebalance"]  # once, though the item stays
        at = imds.notice(100, action="stop")
        while len(seen) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert seen[1:] == [Notice("stop", at)]
        reads = len(imds.reads)
        time.sleep(0.3)
        assert len(imds.reads) == reads  # the watch is over
    finally:
        watcher.stop()


def test_the_watcher_outlives_a_service_that_is_down():
    seen: list[object] = []
    watcher = Watcher(Imds("http://127.0.0.1:9", timeout=0.2), 0.05, seen.append, seen.append)
    watcher.start()
    time.sleep(0.3)
    assert watcher._thread.is_alive() and seen == []
    watcher.stop()
    assert not watcher._thread.is_alive()


def test_spot_state_cutoff_is_the_margin_before_the_stated_time():
    state = SpotState()
    assert not state.interrupted and state.cutoff is None and not state.take_shed()
    state.rebalance()
    assert state.take_shed() and not state.take_shed()  # once per signal
    before = time.monotonic()
    state.interrupt(Notice("terminate", time.time() + 120), margin=15)
    assert state.interrupted and state.take_shed()
    assert state.cutoff == pytest.approx(before + 105, abs=0.5)
    state.interrupt(Notice("hibernate", time.time() - 5))  # no warning: cut at once
    assert state.cutoff == pytest.approx(time.monotonic(), abs=0.5)
