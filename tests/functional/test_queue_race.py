"""Claimers racing over a real (serialised) moto server: every job is claimed once."""

from __future__ import annotations

import threading

from impetus.core import codec
from impetus.core.config import AwsSettings
from impetus.local.motoserver import MotoServer
from impetus.local.provision import provision
from impetus.storage.queue import Queue


def _noop(x):
    return x


def test_four_racing_claimers_claim_every_job_exactly_once():
    code = codec.dump_function(_noop)
    digest = codec.digest(code)
    ids = [f"job-{i:03d}" for i in range(200)]
    with MotoServer() as server:
        settings = AwsSettings(endpoint_url=server.endpoint_url, table_prefix="race")
        provision(settings)
        Queue(settings).create_stream("s")
        specs = [
            {"id": i, "name": "_noop", "code": digest, "args": codec.dumps(0), "stage": "a"}
            for i in ids
        ]
        Queue(settings).enqueue("s", specs, {digest: code}, codec.PYTHON_VERSION)

        claimed: list[str] = []
        lock = threading.Lock()

        def claimer(node: str) -> None:
            queue = Queue(settings)  # one client per node, as in a real fleet
            while claim := queue.claim("s", node, 3, lease=60):
                with lock:
                    claimed.extend(j.id for j in claim.jobs)

        threads = [threading.Thread(target=claimer, args=(f"n{i}",)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert sorted(claimed) == ids  # none twice, none missed
        counts = Queue(settings).get_stream("s")["counts"]
        assert counts["waiting"] == 0 and counts["running"] == 200
