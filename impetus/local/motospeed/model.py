"""The model side of motospeed: item sizes, one-partition queries, updates without unused
copies, parses kept (see the package docstring)."""

from __future__ import annotations

import contextlib
import copy
import functools
import inspect
import json
from collections.abc import Iterator
from typing import Any

from moto.dynamodb import models, responses
from moto.dynamodb.comparisons import ConditionExpressionParser
from moto.dynamodb.exceptions import ItemSizeTooLarge
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType, Item, LimitedSizeDict
from moto.dynamodb.models.table import Table
from moto.dynamodb.parsing.ast_nodes import DepthFirstTraverser
from moto.dynamodb.parsing.expressions import UpdateExpressionParser
from moto.dynamodb.parsing.validators import ActionCountValidator, OverlappingPathsValidator
from moto.dynamodb.responses import DynamoHandler

try:  # BackendRequest is new in moto 5.2.4, number_size in 5.2.6 (older: unpatched)
    from moto.dynamodb.models.utilities import number_size
    from moto.moto_server.werkzeug_app import BackendRequest
except ImportError:
    number_size = BackendRequest = None  # type: ignore[assignment,misc]


from impetus.local.motospeed.patching import replace as _replace

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


# --- item sizes ----------------------------------------------------------------------------
def fast_sizes() -> None:
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


def item_init_measures_once() -> None:
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
def query_reads_one_partition() -> None:
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


def update_without_unused_copies() -> None:
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


def check_clauses_once() -> None:
    # Both only check (the node comes back unchanged) and only UpdateExpression nodes,
    # of which the root is one.
    _replace(ActionCountValidator, "traverse", lambda self, root: self.verify_action_counts(root))
    _replace(
        OverlappingPathsValidator,
        "traverse",
        lambda self, root: self.check_for_overlapping_paths(root),
    )


def cache_update_parses() -> None:
    make = UpdateExpressionParser.make.__func__  # type: ignore[attr-defined]
    cached = functools.lru_cache(maxsize=1024)(lambda text: make(UpdateExpressionParser, text))
    _replace(UpdateExpressionParser, "make", classmethod(lambda cls, text: cached(text)))


def _frozen(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=repr)


def keep_condition_parses(size: int = 512) -> None:
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


def cache_processing_maps() -> None:
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
