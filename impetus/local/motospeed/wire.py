"""The wire side of motospeed: the DynamoDB lane past moto's dispatcher, answers written
in one pass, requests parsed plainly (see the package docstring)."""

from __future__ import annotations

import base64
import copy
import functools
import json
from collections.abc import Callable, Iterable
from typing import Any

from botocore.exceptions import ClientError
from moto.core import responses as core_responses
from moto.core.responses import ActionResult
from moto.dynamodb.models import table as table_model
from moto.dynamodb.models.dynamo_type import DynamoType, Item
from moto.dynamodb.models.utilities import dynamo_to_dict
from moto.dynamodb.responses import DynamoHandler, DynamoResult
from moto.moto_api import recorder
from werkzeug.wrappers import Response

try:  # BackendRequest is new in moto 5.2.4, number_size in 5.2.6 (older: unpatched)
    from moto.dynamodb.models.utilities import number_size
    from moto.moto_server.werkzeug_app import BackendRequest
except ImportError:
    number_size = BackendRequest = None  # type: ignore[assignment,misc]


from impetus.local.motospeed.patching import replace as _replace

# --- the lane -----------------------------------------------------------------------------
DYNAMODB_TARGET = "DynamoDB_20120810."


class DynamoDBLane:
    """WSGI app: DynamoDB requests to moto's DynamoDB handler, the rest to ``fallback``."""

    def __init__(self, fallback: Callable[..., Iterable[bytes]]) -> None:
        self._fallback = fallback

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        dynamodb = environ.get("HTTP_X_AMZ_TARGET", "").startswith(DYNAMODB_TARGET)
        if not (_is_active() and dynamodb):  # another moto release: moto's own way throughout
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


def _is_active() -> bool:
    """Whether the patches are in use (the package's flag, set by install())."""
    from impetus.local import motospeed

    return motospeed._active


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


def answers_in_one_pass() -> None:
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


def queries_without_copies() -> None:
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


def requests_parsed_plainly() -> None:
    def parse_parameters(self: Any, request: Any) -> None:
        self.params = parse_dynamodb_request(request.data)

    _replace(DynamoHandler, "parse_parameters", parse_parameters)
    _replace(
        core_responses,
        "method_names_from_class",
        functools.lru_cache(maxsize=None)(core_responses.method_names_from_class),
    )
