"""Impetus.cancel (the pipeline API): cancelled forks never run and the run does not wait
for them."""

from __future__ import annotations

import pytest
from test_client_run import FakeApi, impetus_home, make, quiet  # noqa: F401

from impetus import Impetus


class CancellingApi(FakeApi):
    def cancel(self, stream_id, ids=None):
        self.calls.append(("cancel", ids))
        out = {"cancelled": [], "running_or_done": [], "unknown": []}
        for jid in ids if ids is not None else list(self.jobs):
            if jid not in self.jobs:
                out["unknown"].append(jid)
            elif self.jobs[jid]["done"] is not None:
                out["running_or_done"].append(jid)
            else:
                del self.jobs[jid]
                out["cancelled"].append(jid)
        return out


@pytest.fixture
def api(monkeypatch):
    fake = CancellingApi()
    monkeypatch.setattr(Impetus, "api_class", staticmethod(lambda settings: fake))
    return fake


class Cancels(Impetus):
    @Impetus.node
    def square(i):
        return i * i

    @Impetus.startup
    def start(self):
        for i in range(4):
            self.fork(self.square, args=i, job_id=f"sq-{i}")
        self.answer = self.cancel(["sq-1", "sq-3", "nope"])

    @Impetus.process
    def stage1(self, ready, errors):
        self.seen = getattr(self, "seen", []) + [job["id"] for job in ready]


def test_cancelled_forks_never_run_and_the_run_ends(api, tmp_path):
    app = make(Cancels, tmp_path)
    app.run(progress=quiet())
    assert app.answer == {"cancelled": ["sq-1", "sq-3"], "running_or_done": [], "unknown": ["nope"]}
    assert sorted(app.seen) == ["sq-0", "sq-2"]
