"""ResultCollector's ``on_started``: each round hands over the ids newly seen started
(against the ApiClient test double of test_client_run)."""

from __future__ import annotations

from test_client_run import FakeApi, impetus_home  # noqa: F401  (autouse fixture)

from impetus.forks import FunctionTable
from impetus.ledger import JobLedger
from impetus.results import ResultCollector
from impetus.session import StreamSession


class StartsApi(FakeApi):
    """Answers the results page with a started list the test sets per round."""

    def __init__(self):
        super().__init__()
        self.started: dict[str, list[str]] = {}

    def results_page(self, stream_id, stage, limit=500):
        return {"jobs": self.results(stream_id, stage, limit), "started": self.started[stage]}


def test_on_started_gets_the_ids_newly_started_each_round():
    api = StartsApi()
    session = StreamSession(api, "s", {})
    seen: list[list[str]] = []
    collector = ResultCollector(
        session,
        FunctionTable(),
        JobLedger(("s1", "s2"), None),
        None,
        lambda stage, ready, errors: None,
        on_started=seen.append,
    )
    api.started = {"s1": ["a"], "s2": ["x"]}
    collector.receive("s1")
    collector.receive("s2")  # another stage's starts are its own
    api.started = {"s1": ["a", "b"], "s2": ["x"]}
    collector.receive("s1")
    collector.receive("s2")  # nothing new: not called
    api.started = {"s1": [], "s2": []}
    collector.receive("s1")
    api.started = {"s1": ["a"], "s2": []}  # started again (a rerun): new again
    collector.receive("s1")
    assert seen == [["a"], ["x"], ["b"], ["a"]]


def test_without_on_started_the_plain_results_are_read():
    api = FakeApi()  # no results_page at all
    session = StreamSession(api, "s", {})
    collector = ResultCollector(
        session, FunctionTable(), JobLedger(("s1",), None), None, lambda *a: None
    )
    assert collector.receive("s1") == []
    assert ("results", "s1") in api.calls
