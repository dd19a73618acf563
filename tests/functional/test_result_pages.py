"""Answers cut to fit Lambda's 6 MB: results pages by size, and cursors on list routes.

Before, a client asked for 500 results a page and got them all in one answer: 500 jobs of
~12 KB each (args, result, captured output) passed Lambda's 6 MB and every poll failed.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from conftest_api import AUTHKEY, Api

from impetus.api_client import ApiClient
from impetus.core import codec
from impetus.core.config import AwsSettings, ClientSettings
from impetus.core.jobs import READY, Outcome
from impetus.forks import ForkSender, FunctionTable
from impetus.ledger import STARTUP, JobLedger
from impetus.local.apiserver import LAMBDA_PAYLOAD_LIMIT, ApiServer, lambda_payload_size
from impetus.results import RESULTS_LIMIT, ResultCollector
from impetus.session import StreamSession
from impetus.storage.queue import Queue
from lambdas.api import pages

pytest_plugins = ["conftest_api"]

JOBS = 500
PART = 4000  # bytes of args, of result and of output each: ~12 KB a job


def blob(x: bytes) -> int:
    return len(x)


@pytest.fixture
def recorded(api_aws, monkeypatch, tmp_path):
    """The API handler behind the local server, every answer's Lambda payload size noted."""
    from lambdas.api import app as api_app

    api_app.reset_state()
    answers: list[tuple[str, int, dict[str, Any]]] = []

    def handler(event: dict[str, Any], context: Any) -> Any:
        result = api_app.handler(event, context)
        answers.append((event["rawPath"], lambda_payload_size(result), result))
        return result

    server = ApiServer(handler=handler).start()
    monkeypatch.setenv("IMPETUS_HOME", str(tmp_path / "home"))
    yield {"url": server.url, "queue": Queue(AwsSettings.from_env()), "answers": answers}
    server.stop()
    api_app.reset_state()


def _finish_all(queue: Queue, stream_id: str) -> None:
    """Run every job as a node would: a ~4 KB result and ~4 KB of captured output each."""
    done = 0
    while claim := queue.claim(stream_id, "node-1", max_jobs=100, lease=60):
        outcomes = {
            job.id: Outcome(
                READY,
                result=codec.dumps(os.urandom(PART * 3 // 4)),
                output={"stdout": "printed line\n" * (PART // 13)},
            )
            for job in claim.jobs
        }
        queue.complete(claim, outcomes)
        done += len(claim.jobs)
    assert done == JOBS


def test_500_jobs_of_12_kb_are_collected_completely_in_pages_under_6_mb(recorded):
    session = StreamSession.open(recorded["url"], AUTHKEY, "big")
    functions = FunctionTable()
    ledger = JobLedger(("s1",))
    sender = ForkSender(session, functions, ledger, lambda cb: ("s1", STARTUP))
    handed: dict[str, Any] = {}
    collector = ResultCollector(
        session,
        functions,
        ledger,
        None,
        lambda stage, ready, errors: handed.update({j["id"]: j for j in ready + errors}),
    )
    for i in range(JOBS):
        sender.fork(blob, codec.dumps(os.urandom(PART * 3 // 4)), job_id=f"j{i}")
    sender.flush()
    _finish_all(recorded["queue"], "big")

    mores = []
    while True:  # as the client's loops do: a page that says more is followed at once
        collector.collect("s1")
        mores.append(collector.more)
        if not collector.more:
            break

    assert len(handed) == JOBS and all(j["status"] == READY for j in handed.values())
    assert all(len(j["result"]) == PART * 3 // 4 for j in handed.values())
    assert all(j["output"]["stdout"].startswith("printed line") for j in handed.values())
    pages_ = [(size, r) for path, size, r in recorded["answers"] if path.endswith("/results")]
    bodies = [json.loads(r["body"]) for _, r in pages_]
    # The whole lot is past 6 MB: it came in several pages, each cut by size, not count.
    assert sum(size for size, _ in pages_) > LAMBDA_PAYLOAD_LIMIT
    assert mores[:-1] == [True] * (len(mores) - 1) and len(mores) >= 2
    assert all(0 < len(b["jobs"]) < RESULTS_LIMIT for b in bodies[:-1])
    # No answer of the API passed the page budget, let alone Lambda's limit.
    assert max(size for _, size, _ in recorded["answers"]) <= pages.PAGE_BUDGET + 8 * 1024


def test_a_page_always_holds_one_job_however_large(api: Api, monkeypatch):
    """A job bigger than the page budget still comes (one job is bounded well under 6 MB
    by the item and inline limits), alone, with ``more`` when others wait."""
    from test_api import create, job_batch

    create(api)
    assert api.post("/streams/s1/jobs", job_batch(3)).status == 200
    queue = Queue(AwsSettings.from_env())
    claim = queue.claim("s1", "node-a", max_jobs=3, lease=60)
    big = {"stdout": "y" * 300_000}
    queue.complete(
        claim, {j.id: Outcome(READY, result=codec.dumps(1), output=big) for j in claim.jobs}
    )
    monkeypatch.setattr(pages, "PAGE_BUDGET", 1000)  # smaller than one job
    first = api.get("/streams/s1/results", query="stage=stage1").body
    assert len(first["jobs"]) == 1 and first["more"] is True


def test_list_routes_follow_cursors_to_every_item(recorded, monkeypatch):
    """Store keys, streams, nodes and job listings page by size with a cursor; the client
    follows it and gets every item once."""
    monkeypatch.setattr(pages, "PAGE_BUDGET", 2000)
    client = ApiClient(ClientSettings(api_url=recorded["url"], authkey=AUTHKEY))
    for n in range(12):
        client.create_stream(f"st{n:02d}", {"about": "x" * 200})
    for n in range(40):
        client.store_put("st00", f"key-{n:03d}-" + "k" * 80, n)
    assert len(client.list_streams()) == 12
    assert sorted(s["id"] for s in client.list_streams()) == [f"st{n:02d}" for n in range(12)]
    keys = client.store_keys("st00")
    assert keys == sorted(f"key-{n:03d}-" + "k" * 80 for n in range(40))
    store_pages = [json.loads(r["body"]) for p, _, r in recorded["answers"] if p.endswith("/store")]
    assert len(store_pages) >= 2 and all(p["more"] for p in store_pages[:-1])
    assert not store_pages[-1]["more"] and "next" not in store_pages[-1]
