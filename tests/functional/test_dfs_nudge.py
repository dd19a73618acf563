"""The API nudges DFS when a stream goes from empty to non-empty, and only then; a
failing nudge never fails the request."""

from __future__ import annotations

from conftest_api import Api
from test_api import create, job_batch

from impetus.scaler import nudge

pytest_plugins = ["conftest_api"]


class Recorder:
    """Stands in for the boto3 Lambda client (AWS, not our code)."""

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[dict] = []
        self.fail = fail

    def invoke(self, **kwargs):
        self.calls.append(kwargs)
        if self.fail:
            raise RuntimeError("TooManyRequestsException")
        return {"StatusCode": 202}


def test_first_jobs_of_an_empty_stream_nudge_dfs_once(api: Api, monkeypatch):
    lam = Recorder()
    monkeypatch.setattr(nudge, "_lambda", lam)
    monkeypatch.setenv("IMPETUS_DFS_FUNCTION", "impetus-dfs")
    create(api)
    assert api.post("/streams/s1/jobs", job_batch(2)).status == 200
    assert len(lam.calls) == 1 and lam.calls[0]["InvocationType"] == "Event"
    batch = job_batch(3)
    batch["jobs"] = batch["jobs"][2:]  # one new job while two still wait: no nudge
    assert api.post("/streams/s1/jobs", batch).status == 200
    assert len(lam.calls) == 1


def test_a_failed_nudge_does_not_fail_the_enqueue(api: Api, monkeypatch):
    lam = Recorder(fail=True)
    monkeypatch.setattr(nudge, "_lambda", lam)
    monkeypatch.setenv("IMPETUS_DFS_FUNCTION", "impetus-dfs")
    create(api)
    reply = api.post("/streams/s1/jobs", job_batch(1))
    assert reply.status == 200 and reply.body["accepted"] == ["job-0"] and lam.calls
