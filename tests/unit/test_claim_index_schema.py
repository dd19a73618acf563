"""The claim index's definition, its key kind in the capacity model, and how the cost
meter bills its writes (no AWS: pure functions)."""

from __future__ import annotations

from bench.indexwrites import entry_writes, index_entry, written
from impetus.capacity import keys
from impetus.capacity.model import Scenario, _hot_share
from impetus.storage.jobqueue import layout
from impetus.storage.tables import CLAIM_INDEX, QUEUE, TABLES


def test_the_queue_table_declares_the_index_and_its_key_attributes_once():
    kwargs = TABLES[QUEUE].create_table_kwargs("p")
    names = [a["AttributeName"] for a in kwargs["AttributeDefinitions"]]
    assert names == ["pk", "sk", "cpk", "csk"]
    (index,) = kwargs["GlobalSecondaryIndexes"]
    assert index["IndexName"] == "claimable"
    assert index["Projection"]["ProjectionType"] == "INCLUDE"
    assert "ProvisionedThroughput" not in index  # on-demand
    others = [t for name, t in TABLES.items() if name != QUEUE]
    assert all("GlobalSecondaryIndexes" not in t.create_table_kwargs("p") for t in others)


def test_a_claim_candidate_reads_exactly_the_projection():
    fields = [f.strip().lstrip("#") for f in layout.CANDIDATE_FIELDS.split(",")]
    assert fields == ["pk", "sk", *CLAIM_INDEX.projected]  # table keys come projected


def test_ready_chunks_carry_the_index_keys_delayed_and_spent_ones_do_not():
    ready = layout.new_chunk("s", "s#3", "k", ["a", "b"], "st", 0, 0)
    assert (ready["cpk"], ready["csk"]) == ("s#3", "k")
    delayed = layout.new_chunk("s", layout.delayed_pk("s"), "k", ["a"], "st", 0, 0)
    assert "cpk" not in delayed and "csk" not in delayed
    spent = layout.in_claim_index(dict(ready, cursor=2))
    assert "cpk" not in spent and "csk" not in spent
    assert layout.LEAVE_CLAIM_INDEX == "REMOVE #cpk, #csk"


def test_an_index_key_is_the_claim_index_kind_one_partition_per_shard():
    assert keys.classify("queue", {"cpk": {"S": "s#7"}}) == ("claim index", "s#7")
    assert keys.classify("queue", {"pk": "s#7", "sk": "x"}) == ("shard partition", "s#7")
    assert keys.spread("queue", "claim index") == "stream"
    s = Scenario(nodes=10, streams=1, rate=1000.0, shards=4)
    assert _hot_share(("queue", "claim index"), s, 1000.0) == 250.0
    assert _hot_share(("queue", "delayed partition"), s, 1000.0) == 1000.0


def test_index_writes_billed_as_dynamodb_does():
    keys_ = ["pk", "sk"]
    item = {k: {"S": v} for k, v in (("pk", "s#0"), ("sk", "a"), ("cpk", "s#0"), ("csk", "a"))}
    item.update(cursor={"N": "0"}, n={"N": "2"}, jobs={"L": []})
    entry = index_entry(item, CLAIM_INDEX, keys_)
    assert "jobs" not in entry and entry["cursor"] == {"N": "0"}
    unkeyed = {k: v for k, v in item.items() if k not in ("cpk", "csk")}
    assert index_entry(unkeyed, CLAIM_INDEX, keys_) is None  # sparse: not in the index
    moved = dict(entry, cursor={"N": "1"})
    assert entry_writes(None, entry, CLAIM_INDEX) == [entry]  # put
    assert entry_writes(entry, None, CLAIM_INDEX) == [entry]  # removal
    assert entry_writes(entry, moved, CLAIM_INDEX) == [moved]  # a projected attribute
    assert entry_writes(entry, entry, CLAIM_INDEX) == []  # nothing projected changed
    rekeyed = dict(entry, csk={"S": "b"})
    assert entry_writes(entry, rekeyed, CLAIM_INDEX) == [entry, rekeyed]  # delete + put


def test_the_written_items_of_each_write_request():
    def key_of(table, spec):
        return {"pk": spec["Item"]["pk"], "sk": spec["Item"]["sk"]}

    k = {"pk": {"S": "p"}, "sk": {"S": "s"}}
    assert written("UpdateItem", {"TableName": "t", "Key": k}, key_of) == [("t", k)]
    assert written("PutItem", {"TableName": "t", "Item": {**k, "x": {"N": "1"}}}, key_of) == [
        ("t", k)
    ]
    batch = {"RequestItems": {"t": [{"PutRequest": {"Item": k}}, {"DeleteRequest": {"Key": k}}]}}
    assert written("BatchWriteItem", batch, key_of) == [("t", k), ("t", k)]
    transact = {
        "TransactItems": [
            {"Put": {"TableName": "t", "Item": k}},
            {"ConditionCheck": {"TableName": "t", "Key": k}},
            {"Delete": {"TableName": "t", "Key": k}},
        ]
    }
    assert written("TransactWriteItems", transact, key_of) == [("t", k), ("t", k)]
    assert written("GetItem", {"TableName": "t", "Key": k}, key_of) == []
