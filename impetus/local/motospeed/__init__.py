"""Faster moto DynamoDB internals for the local stack, with moto's answers unchanged.

The local moto server is the queue's stand-in, and on a 2-core machine its CPU is taken
from the workers. Profiling a queue cycle (enqueue, claim, complete, collect, ack of
20-job chunks) showed moto spending its time on work whose result the request never
needed; each patch below removes one such cost and keeps what moto answers:

- **Answers**: DynamoDB data-plane answers (GetItem, Query, BatchWriteItem, ...) are
  already in wire format (typed attribute values). moto first converted them to plain
  Python (``dynamo_to_dict``) and then walked its service model to serialise them,
  together more than half of a request's time; they are now written by ``json.dumps``
  in one pass over the result (:func:`wire`); other answers, and the rare one holding
  what the serializer writes otherwise (a timestamp, a non-str string), as before.
- **Query copies**: a Query deep-copied every item it read before filtering and
  projecting; the copies only protected the stored items from the answer's
  serialisation, which happens inside the server's lock (nothing changes an item
  meanwhile), so a shallow list does. Projections on top-level names pick those
  attributes instead of rebuilding the item once per name.
- **Query candidates**: a table Query listed *every item of the table*, sorted them by
  (hash, range) and then kept the queried partition. It now lists that partition only
  (the same items, then sorted by range key exactly as before).
- **Item size**: ``DynamoType.size`` built a new ``DynamoType`` per map value and set
  member to measure it; it is now one walk over the stored values (same byte counts,
  numbers by moto's ``number_size``).
  An item's size is kept once measured and forgotten whenever UpdateItem (the only
  in-place change of a stored item; puts store new Items) touches it: a Query measured
  every item it read twice, for its 1 MB page limit.
- **Item size check on write**: ``Item()`` re-measured every attribute already set each
  time it set one more (quadratic in the item); it measures each attribute once and
  refuses the same items (the running total only grows, so "over the limit at some
  step" is "over the limit at the end").
- **UpdateItem's copies**: every update deep-copied the item it changed twice: once to
  feed a DynamoDB stream, once to answer ``ReturnValues``. A table without a stream
  skips the first, an update that asks for no old values (``NONE``, the default, or
  ``ALL_NEW``) the second.
- **UpdateItem's clause checks**: "at most one SET/REMOVE/ADD clause" and "no two
  actions on overlapping paths" ran for every sub-expression node and walked its subtree
  each time (quadratic in the number of actions, and a completion sets 20 results); each
  runs once, on the whole expression, whose clauses and actions include every
  subtree's. Only the message can differ, for an expression with two faults (which one
  is named first).
- **UpdateExpression parsing**: each update parsed its expression twice (once to list
  the placeholders it uses, once to run it). Parsed trees are now kept per expression
  text: moto only reads them, and the validator that transforms one works on its own
  deep copy. The queue's expressions repeat (the same text for every 20-job completion).
- **Condition parses**: an UpdateItem parsed its ConditionExpression twice (to check
  the placeholders used, then to run it), as a Query its FilterExpression; a parse is
  kept for the same expression, names and values (the tree only reads the item it is
  evaluated on), so the second is a lookup.
- **AST walks**: each of the 10 validators rebuilt its node-type table at every node it
  visited; it is built once per validator.
- **Requests**: a DynamoDB request body was parsed by walking the service model, whose
  only effect on DynamoDB's JSON is decoding binary values (B, BS) from base64; it is
  ``json.loads`` and that decoding. Each request also listed the handler class's
  methods (``inspect.getmembers``) to find the action; the list is kept per class.

And in front of moto's server: **the DynamoDB lane** (:class:`DynamoDBLane`). moto's
server finds each request's service by listing every moto module and matching the
host, then runs it through a Flask app (routing, request context, CORS) that calls
``DynamoHandler.dispatch``. A DynamoDB request names its operation in ``X-Amz-Target``;
the lane hands those straight to ``DynamoHandler.dispatch``, as the Flask view would,
and leaves every other request to moto's dispatcher. For small items that overhead was
most of a request's time.

:func:`install` applies the patches (idempotent), :func:`moto_original` lifts them for a
block; ``tests/functional/test_motospeed.py`` and ``test_motoserver_fast.py`` compare
patched and released moto answer for answer. Verified against moto 5.2.6 only
(:data:`MOTO_VERSIONS`; until 5.2.5 moto sized a number by its text, and older 5.2
releases differ in more patched code): any other release runs unpatched, with a warning.
To admit one, diff moto's source of every patched function against 5.2.6's and run
those tests on it.
"""

from __future__ import annotations

import importlib.metadata
import logging

from impetus.local.motospeed import model, wire
from impetus.local.motospeed.model import attribute_size
from impetus.local.motospeed.patching import moto_original
from impetus.local.motospeed.wire import (
    DynamoDBLane,
    fast_dynamodb_result,
    parse_dynamodb_request,
)

__all__ = [
    "MOTO_VERSIONS",
    "DynamoDBLane",
    "attribute_size",
    "fast_dynamodb_result",
    "install",
    "moto_original",
    "parse_dynamodb_request",
]

log = logging.getLogger(__name__)

MOTO_VERSIONS = ("5.2.6",)  # the moto releases these patches are verified against
_installed = False
_active = False  # the patches and the lane are in use (moto's version matched)


def install() -> None:
    """Apply every patch above to moto in this process (idempotent). A moto release
    they were not verified against is left as it is: correct, slower."""
    global _installed, _active
    if _installed:
        return
    _installed = True
    found = importlib.metadata.version("moto")
    if found not in MOTO_VERSIONS:
        log.warning(
            "moto %s is not %s (motospeed's verified releases): the local server runs"
            " without motospeed",
            found,
            " or ".join(MOTO_VERSIONS),
        )
        return
    _active = True
    wire.requests_parsed_plainly()
    wire.answers_in_one_pass()
    wire.queries_without_copies()
    model.fast_sizes()
    model.item_init_measures_once()
    model.query_reads_one_partition()
    model.update_without_unused_copies()
    model.check_clauses_once()
    model.cache_update_parses()
    model.keep_condition_parses()
    model.cache_processing_maps()
