"""The request meter attributes units per table, key kind and partition key (moto
in-process), and a small measurement of the mix runs end to end (seconds)."""

from __future__ import annotations

from bench import costmeter
from impetus.capacity.mix import Mix, Units
from impetus.core import codec


def _square(x):
    return x * x


def test_units_are_attributed_per_table_key_kind_and_partition_key(queue):
    settings = queue.settings
    meter = costmeter.CostMeter(queue.client, settings.table_prefix)
    from impetus.core import aws
    from impetus.storage.queue import Queue

    metered = Queue(settings, client=meter.instrument(aws.client("dynamodb", settings)))
    metered.create_stream("s1")
    code = codec.dump_function(_square)
    specs = [{"name": "_square", "code": codec.digest(code), "args": codec.dumps(i),
              "stage": "s"} for i in range(30)]  # fmt: skip
    with meter.acting("api"):
        metered.enqueue("s1", specs, {codec.digest(code): code}, codec.PYTHON_VERSION)
    metered.list_streams()  # a node's listing: a Scan, the default actor
    usage = meter.reset()
    kinds = {(actor, table, kind) for actor, table, kind, _ in usage.by_key}
    assert ("api", "jobs", "job record") in kinds and ("api", "jobs", "code item") in kinds
    assert ("api", "queue", "shard partition") in kinds
    assert ("node", "streams", "scan") in kinds
    # per key: every job record of the stream is in the stream's item collection
    records = usage.per_key[("api", "jobs", "job record")]
    assert list(records) == ["s1"] and records["s1"].wcu >= 30
    assert list(usage.per_key[("api", "queue", "shard partition")]) == ["s1#0"]
    # the rows add up to the per-operation totals
    assert sum(c.wcu for c in usage.by_key.values()) == usage.wcu
    assert sum(c.requests for c in usage.by_key.values()) >= usage.dynamodb_requests


def test_a_small_measurement_gives_a_mix_the_model_reads(monkeypatch):
    import os

    from bench import capacity_mix
    from impetus.core import aws

    # the rig points the environment and impetus.core.aws.client at its own moto server
    # and meter (as bench/costs.py does): both are put back after this test
    monkeypatch.setattr(aws, "client", aws.client)
    # an API run earlier in this process left its authkey client behind, pointed at no
    # moto (real AWS): the rig's API is a fresh container and must not use it
    import boto3
    from aws_lambda_powertools.utilities.parameters import SecretsProvider

    from lambdas.api import auth

    stale = boto3.client("secretsmanager", region_name="us-east-1", endpoint_url=None)
    monkeypatch.setattr(auth, "_provider", SecretsProvider(boto3_client=stale))
    saved = dict(os.environ)
    try:
        data = capacity_mix.measure(jobs=10, idle_seconds=1.0, streams=3, extra=2)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    mix = Mix(data, "smoke")
    assert {w["streams"] for w in data["idle"]} == {1, 3}
    idle = mix.idle_per_node_second(3)
    assert ("streams", "active head") in idle  # the listing: the record's head,
    assert ("streams", "scan") not in idle  # no Scan of the streams
    assert [r["jobs"] for r in data["busy"]["runs"]] == [10, 20]

    def run_of_10(key):  # the split's two parts give back the smaller run
        return mix.busy.get(key, Units()) * 10 + mix.busy_per_run.get(key, Units())

    assert run_of_10(("queue", "shard partition")).wcu > 0
    assert run_of_10(("streams", "counter item")).wcu > 0  # counts on the counter items
    # created, leased and deleted once a run, whatever its size
    assert mix.busy_per_run[("streams", "stream item")].wcu > 0
    assert mix.busy_node_reads()[("streams", "stream item")].rcu > 0  # the marked stream
    assert mix.lambda_per_job * 10 + mix.lambda_per_run > 0
    tick = mix.dfs_tick(nodes=10, streams=10, busy_streams=1)
    assert ("streams", "scan") not in tick and tick[("nodes", "scan")].requests == 1
    sweep = mix.dfs_tick(nodes=10, streams=10, busy_streams=1, sweep=True)
    assert sweep[("streams", "scan")].requests == 1
