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

import base64
import contextlib
import copy
import functools
import importlib.metadata
import inspect
import json
import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from botocore.exceptions import ClientError
from moto.core import responses as core_responses
from moto.core.responses import ActionResult
from moto.dynamodb import models, responses
from moto.dynamodb.comparisons import ConditionExpressionParser
from moto.dynamodb.exceptions import ItemSizeTooLarge
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models import table as table_model
from moto.dynamodb.models.dynamo_type import DynamoType, Item, LimitedSizeDict
from moto.dynamodb.models.table import Table
from moto.dynamodb.models.utilities import dynamo_to_dict
from moto.dynamodb.parsing.ast_nodes import DepthFirstTraverser
from moto.dynamodb.parsing.expressions import UpdateExpressionParser
from moto.dynamodb.parsing.validators import ActionCountValidator, OverlappingPathsValidator
from moto.dynamodb.responses import DynamoHandler, DynamoResult
from moto.moto_api import recorder
from werkzeug.wrappers import Response

try:  # BackendRequest is new in moto 5.2.4, number_size in 5.2.6 (older: unpatched)
    from moto.dynamodb.models.utilities import number_size
    from moto.moto_server.werkzeug_app import BackendRequest
except ImportError:
    number_size = BackendRequest = None  # type: ignore[assignment,misc]

log = logging.getLogger(__name__)

MOTO_VERSIONS = ("5.2.6",)  # the moto releases these patches are verified against
_installed = False
_active = False  # the patches and the lane are in use (moto's version matched)
_patched: list[tuple[Any, str, Any, Any]] = []  # (owner, name, moto's value, ours)
_ITEM_SIZE_LIMIT = 405_000  # moto's own limit (AWS: 400 KB), see LimitedSizeDict


def _bytesize(value: Any) -> int:
    return len(value if isinstance(value, bytes) else value.encode("utf-8"))


def attribute_size(type_: str, value: Any) -> int:
    """What ``DynamoType({type_: value}).size()`` returns, without building DynamoTypes.

    Same branch order as moto: number, set, list, map, boolean (BOOL and NULL), other.
    """
    if type_ == "N":
        return number_size(str(value))
    if type_ in ("SS", "NS", "BS"):
        member = type_[0]
        return sum(attribute_size(member, v) for v in value)
    if type_ == "L":
        return sum(_size_of(v) for v in value)
    if type_ == "M":
        return sum(_bytesize(k) + _size_of(v) for k, v in value.items())
    if isinstance(value, bool):
        return 1
    return _bytesize(value)


def _size_of(value: Any) -> int:
    """Size of a list member or map value: a DynamoType, or a raw ``{type: value}``."""
    if isinstance(value, DynamoType):
        return attribute_size(value.type, value.value)
    ((type_, raw),) = value.items()
    return attribute_size(type_, raw)


def _replace(owner: Any, name: str, value: Any) -> Any:
    """Set ``owner.name`` to ``value``, remembering moto's own (for :func:`moto_original`)."""
    original = vars(owner)[name] if name in vars(owner) else getattr(owner, name)
    _patched.append((owner, name, original, value))
    setattr(owner, name, value)
    return value


# --- the lane -----------------------------------------------------------------------------
DYNAMODB_TARGET = "DynamoDB_20120810."


class DynamoDBLane:
    """WSGI app: DynamoDB requests to moto's DynamoDB handler, the rest to ``fallback``."""

    def __init__(self, fallback: Callable[..., Iterable[bytes]]) -> None:
        self._fallback = fallback

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        dynamodb = environ.get("HTTP_X_AMZ_TARGET", "").startswith(DYNAMODB_TARGET)
        if not (_active and dynamodb):  # another moto release: moto's own way throughout
            return self._fallback(environ, start_response)

        request = BackendRequest(environ)
        try:  # what moto's Flask view (moto.core.utils.convert_to_flask_response) does
            recorder._record_request(request)  # a no-op unless recording is on
            status, headers, body = DynamoHandler.dispatch(
                request, request.raw_url, dict(request.headers)
            )
        except ClientError as exc:
            status, headers, body = 400, {}, exc.response["Error"]["Message"]
        return Response(response=body, status=status, headers=headers)(environ, start_response)


# --- answers and Query copies ---------------------------------------------------------------
FAST_OPERATIONS = frozenset(
    {
        "GetItem",
        "PutItem",
        "UpdateItem",
        "DeleteItem",
        "Query",
        "Scan",
        "BatchGetItem",
        "BatchWriteItem",
        "TransactGetItems",
        "TransactWriteItems",
    }
)
DYNAMODB_CONTENT_TYPE = "application/x-amz-json-1.0"


class _NotWire(Exception):
    """The result holds something the one-pass writer leaves to moto (a timestamp, a
    string-typed value that is not a str)."""


def _binary(value: Any) -> str:
    # stored from the wire as base64 text; bytes after some moto transformations
    return base64.b64encode(value).decode("ascii") if isinstance(value, bytes) else value


_COLLECTIONS = (list, tuple, set, frozenset)


def _strings(type_: str, raw: Any) -> bool:
    """Whether a typed value's strings (S, N, SS/NS members) are str. moto's serializer
    writes others with ``str()`` (a legacy AttributeUpdates PUT of a BOOL stores
    ``{"S": True}``, written "True"): the rare answer holding one is left to it."""
    if type_ == "S" or type_ == "N":
        return isinstance(raw, str)
    if type_ == "SS" or type_ == "NS":
        return isinstance(raw, _COLLECTIONS) and all(isinstance(v, str) for v in raw)
    return True


def wire(value: Any) -> Any:
    """A DynamoDB result as the JSON moto's serializer writes: typed values as they are,
    binary as base64, members that are None left out (what ``dynamo_to_dict`` and the
    service-model walk did in two passes)."""
    if isinstance(value, DynamoType):
        type_, raw = value.type, value.value
        if isinstance(raw, str):  # S, N; B as base64 text
            return {type_: raw}
        if type_ == "B":
            return {"B": _binary(raw)}
        if type_ == "BS":
            return {"BS": [_binary(v) for v in raw]}
        if not _strings(type_, raw):
            raise _NotWire(type_)
        return {type_: wire(raw)}
    if isinstance(value, dict):
        if len(value) == 1:  # a typed value ({type: raw}) or a one-attribute map
            ((type_, raw),) = value.items()
            if not isinstance(raw, (dict, DynamoType)) and not _strings(type_, raw):
                raise _NotWire(type_)
        return {k: wire(v) for k, v in value.items() if v is not None}
    if isinstance(value, _COLLECTIONS):
        return [wire(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, bytes):
        return _binary(value)
    if hasattr(value, "to_json"):
        return wire(value.to_json())
    raise _NotWire(type(value).__name__)


def fast_dynamodb_result(result: Any, context: Any) -> tuple[int, dict[str, str], str] | None:
    """The answer of a data-plane DynamoDB result, or None to leave it to moto."""
    if context.operation_model.name not in FAST_OPERATIONS or not isinstance(result, dict):
        return None
    try:
        body = json.dumps(wire(result), separators=(",", ":"))
    except _NotWire:
        return None
    return 200, {"Content-Type": DYNAMODB_CONTENT_TYPE}, body


def _answers_in_one_pass() -> None:
    def __init__(self: Any, result: object) -> None:
        ActionResult.__init__(self, result)  # converted only if moto serialises it

    generic = DynamoResult.execute_result

    def execute_result(self: Any, context: Any) -> Any:
        answer = fast_dynamodb_result(self._result, context)  # the module's: tests spy on it
        if answer is not None:
            return answer
        self._result = dynamo_to_dict(self._result)
        return generic(self, context)

    _replace(DynamoResult, "__init__", __init__)
    _replace(DynamoResult, "execute_result", execute_result)


class _QueryCopy:
    """Stands in for ``copy`` inside moto's table model: a list of Items is copied
    shallowly (see "Query copies" above); everything else deep-copies as before."""

    copy = staticmethod(copy.copy)

    @staticmethod
    def deepcopy(value: Any, memo: Any = None) -> Any:
        if isinstance(value, list) and all(isinstance(v, Item) for v in value):
            return list(value)
        return copy.deepcopy(value, memo)


def _queries_without_copies() -> None:
    generic = Item.project

    def project(self: Any, projection_expressions: list[list[str]]) -> Any:
        if any(len(path) != 1 for path in projection_expressions):
            return generic(self, projection_expressions)
        item = object.__new__(Item)  # read-only view, serialised inside the server's lock
        item.hash_key, item.range_key = self.hash_key, self.range_key
        item.attrs = {p[0]: self.attrs[p[0]] for p in projection_expressions if p[0] in self.attrs}
        return item

    _replace(table_model, "copy", _QueryCopy)
    _replace(Item, "project", project)


# --- requests ------------------------------------------------------------------------------
def _blobs_decoded(value: Any) -> Any:
    """Request JSON with typed binary values ({"B": base64}, {"BS": [base64]}) as bytes,
    as moto's model-walking parser leaves them; everything else as ``json.loads`` did."""
    if isinstance(value, dict):
        if len(value) == 1:
            ((key, inner),) = value.items()
            if key == "B" and isinstance(inner, str):
                return {"B": base64.b64decode(inner)}
            if key == "BS" and isinstance(inner, list) and all(isinstance(v, str) for v in inner):
                return {"BS": [base64.b64decode(v) for v in inner]}
        return {k: _blobs_decoded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_blobs_decoded(v) for v in value]
    return value


def parse_dynamodb_request(body: bytes) -> dict[str, Any]:
    """A DynamoDB request's parameters, as moto's parser gives them."""
    return _blobs_decoded(json.loads(body)) if body else {}


def _requests_parsed_plainly() -> None:
    def parse_parameters(self: Any, request: Any) -> None:
        self.params = parse_dynamodb_request(request.data)

    _replace(DynamoHandler, "parse_parameters", parse_parameters)
    _replace(
        core_responses,
        "method_names_from_class",
        functools.lru_cache(maxsize=None)(core_responses.method_names_from_class),
    )


# --- item sizes ----------------------------------------------------------------------------
def _fast_sizes() -> None:
    def item_size(self: Any) -> int:
        size = self.__dict__.get("_impetus_size")
        if size is None:
            size = sum(
                _bytesize(k) + attribute_size(v.type, v.value) for k, v in self.attrs.items()
            )
            self.__dict__["_impetus_size"] = size
        return size

    _replace(DynamoType, "size", lambda self: attribute_size(self.type, self.value))
    _replace(Item, "size", item_size)


def _forget_size(table: Any, key: dict[str, Any]) -> None:
    """Drop the kept size of the item at ``key`` (an update may have changed it)."""
    try:
        hash_value = DynamoType(key[table.hash_key_attr])
        range_attr = table.range_key_attr
        range_value = DynamoType(key[range_attr]) if range_attr else None
        item = table.get_item(hash_value, range_value)
    except Exception:  # a malformed key: moto refuses the update itself
        return
    if item is not None:
        item.__dict__.pop("_impetus_size", None)


def _item_init_measures_once() -> None:
    def __init__(self: Any, hash_key: Any, range_key: Any, attrs: dict[str, Any]) -> None:
        self.hash_key = hash_key
        self.range_key = range_key
        values = {key: DynamoType(value) for key, value in attrs.items()}
        if sum(_bytesize(k) + v.size() for k, v in values.items()) > _ITEM_SIZE_LIMIT:
            raise ItemSizeTooLarge
        self.attrs = LimitedSizeDict()
        dict.update(self.attrs, values)  # measured above: skip the per-key re-measuring

    _replace(Item, "__init__", __init__)


# --- queries and updates -------------------------------------------------------------------
def _query_reads_one_partition() -> None:
    all_items, query = Table.all_items, Table.query
    signature = inspect.signature(query)

    def partition_items(self: Any) -> list[Any]:
        partition = getattr(self, "_impetus_partition", None)
        if partition is None:
            return all_items(self)
        found = self.items.get(partition)
        if found is None:
            return []
        return list(found.values()) if self.range_key_attr else [found]

    def scoped_query(self: Any, *args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(self, *args, **kwargs).arguments
        if bound.get("index_name") or bound.get("hash_key") is None:
            return query(self, *args, **kwargs)
        # Requests run one at a time (impetus.local.motoserver.SerialApp), so a marker on
        # the table scopes exactly this query's call to all_items.
        self._impetus_partition = bound["hash_key"]
        try:
            return query(self, *args, **kwargs)
        finally:
            self._impetus_partition = None

    _replace(Table, "all_items", partition_items)
    _replace(Table, "query", scoped_query)


class _SkippableCopy:
    """Stands in for the ``copy`` module inside one moto module. While ``skip`` is set
    (an update whose copy of the item would go unused), copying an Item gives None,
    which moto reads as "there was no item before"."""

    copy = staticmethod(copy.copy)

    def __init__(self) -> None:
        self.skip = False

    def deepcopy(self, value: Any, memo: Any = None) -> Any:
        if self.skip and isinstance(value, Item):
            return None
        return copy.deepcopy(value, memo)

    @contextlib.contextmanager
    def skipping(self, enabled: bool) -> Iterator[None]:
        self.skip = enabled
        try:
            yield
        finally:
            self.skip = False


def _update_without_unused_copies() -> None:
    # The backend's copy feeds the table's DynamoDB stream, and nothing else.
    backend_copy = _replace(models, "copy", _SkippableCopy())
    backend_update = DynamoDBBackend.update_item

    def update_item(self: Any, table_name: str, key: Any, *args: Any, **kwargs: Any) -> Any:
        table = self.tables.get(table_name)
        try:
            with backend_copy.skipping(table is not None and table.stream_shard is None):
                return backend_update(self, table_name, key, *args, **kwargs)
        finally:
            if table is not None:
                _forget_size(table, key)

    # The response's copy is the item before the update, for ReturnValues.
    response_copy = _replace(responses, "copy", _SkippableCopy())
    response_update = DynamoHandler.update_item

    def update_item_response(self: Any) -> Any:
        returns = self.body.get("ReturnValues", "NONE")
        with response_copy.skipping(returns in ("NONE", "ALL_NEW")):
            return response_update(self)

    _replace(DynamoDBBackend, "update_item", update_item)
    _replace(DynamoHandler, "update_item", update_item_response)


def _check_clauses_once() -> None:
    # Both only check (the node comes back unchanged) and only UpdateExpression nodes,
    # of which the root is one.
    _replace(ActionCountValidator, "traverse", lambda self, root: self.verify_action_counts(root))
    _replace(
        OverlappingPathsValidator,
        "traverse",
        lambda self, root: self.check_for_overlapping_paths(root),
    )


def _cache_update_parses() -> None:
    make = UpdateExpressionParser.make.__func__  # type: ignore[attr-defined]
    cached = functools.lru_cache(maxsize=1024)(lambda text: make(UpdateExpressionParser, text))
    _replace(UpdateExpressionParser, "make", classmethod(lambda cls, text: cached(text)))


def _frozen(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=repr)


def _keep_condition_parses(size: int = 512) -> None:
    parse = ConditionExpressionParser.parse
    kept: dict[tuple[str, str, str], tuple[Any, list[str], list[str]]] = {}

    def parse_kept(self: Any) -> Any:
        if not self.condition_expression:
            return parse(self)
        key = (
            self.condition_expression,
            _frozen(self.expression_attribute_names),
            _frozen(self.expression_attribute_values),
        )
        found = kept.get(key)
        if found is None:  # a parse that fails raises here, and nothing is kept
            found = (parse(self), list(self.expr_attr_names_found), self.expr_attr_values_found[:])
            if len(kept) >= size:
                kept.pop(next(iter(kept)))  # the oldest
            kept[key] = found
        else:
            self.expr_attr_names_found.extend(found[1])
            self.expr_attr_values_found.extend(found[2])
        return found[0]

    _replace(ConditionExpressionParser, "parse", parse_kept)


def _cache_processing_maps() -> None:
    def processing(self: Any) -> dict[Any, Any]:
        found = self.__dict__.get("_impetus_map")
        if found is None:
            found = self.__dict__["_impetus_map"] = self._processing_map()
        return found

    def nodes_to_be_processed(self: Any) -> tuple[Any, ...]:
        found = self.__dict__.get("_impetus_types")
        if found is None:
            found = self.__dict__["_impetus_types"] = tuple(processing(self))
        return found

    def process(self: Any, node: Any) -> Any:
        for class_key, processor in processing(self).items():
            if isinstance(node, class_key):
                return processor(node)
        return None

    _replace(DepthFirstTraverser, "nodes_to_be_processed", nodes_to_be_processed)
    _replace(DepthFirstTraverser, "process", process)


@contextlib.contextmanager
def moto_original() -> Iterator[None]:
    """moto exactly as released while the block runs (tests compare the two)."""
    for owner, name, original, _ in reversed(_patched):
        setattr(owner, name, original)
    try:
        yield
    finally:
        for owner, name, _, ours in _patched:
            setattr(owner, name, ours)


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
    _requests_parsed_plainly()
    _answers_in_one_pass()
    _queries_without_copies()
    _fast_sizes()
    _item_init_measures_once()
    _query_reads_one_partition()
    _update_without_unused_copies()
    _check_clauses_once()
    _cache_update_parses()
    _keep_condition_parses()
    _cache_processing_maps()
