"""The field types of request bodies and the checks behind them: AWS's and DynamoDB's
limits on sizes, nesting and numbers, and codec strings (impetus.core.codec).

A size limit raises a ``payload_too_large`` error (:data:`TOO_LARGE`), which the app
answers with 413; every other validation error is a 400.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator
from typing import Annotated, Any

from pydantic import AfterValidator, Field
from pydantic_core import PydanticCustomError

from impetus.core.codec import RAW_MARK
from lambdas.api.config import (
    DIGEST_PATTERN,
    JOB_ID_PATTERN,
    MAX_JSON_DEPTH,
    MAX_NUMBER_DIGITS,
    MAX_NUMBER_MAGNITUDE,
    MAX_PAYLOAD_BYTES,
    MAX_PROPERTIES_BYTES,
    MIN_NUMBER_MAGNITUDE,
    STAGE_PATTERN,
    STREAM_ID_PATTERN,
)

TOO_LARGE = "payload_too_large"


def json_size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


def json_depth(value: Any) -> int:
    """Nesting depth of containers (a scalar is 0), without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
        else:
            deepest = max(deepest, depth)
            continue
        deepest = max(deepest, depth + 1)
    return deepest


def _fits_dynamodb(number: int | float) -> bool:
    if isinstance(number, bool) or number == 0:
        return True
    if isinstance(number, int):
        # boto3 refuses any int it would have to round, trailing zeros included.
        return len(str(abs(number))) <= MAX_NUMBER_DIGITS
    return MIN_NUMBER_MAGNITUDE <= abs(number) <= MAX_NUMBER_MAGNITUDE


def _numbers(value: Any) -> Iterator[int | float]:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, (int, float)):
            yield item


def _dynamodb_numbers(value: Any) -> Any:
    if not all(_fits_dynamodb(n) for n in _numbers(value)):
        raise PydanticCustomError(
            "number_range", "numbers must have at most 38 digits and |x| in [1e-130, 9.99e125]"
        )
    return value


def _limited_json(max_bytes: int, what: str):
    def check(value: Any) -> Any:
        if json_depth(value) > MAX_JSON_DEPTH:
            raise PydanticCustomError(
                "json_too_deep", f"{what} nests deeper than {MAX_JSON_DEPTH} levels"
            )
        if json_size(value) > max_bytes:
            raise PydanticCustomError(TOO_LARGE, f"{what} exceeds {max_bytes} bytes as JSON")
        return value

    return AfterValidator(check)


def _codec_string(value: str) -> str:
    if len(value) > MAX_PAYLOAD_BYTES:
        raise PydanticCustomError(
            TOO_LARGE,
            f"payload exceeds {MAX_PAYLOAD_BYTES} bytes: send it through S3 "
            "(POST /streams/{id}/payloads, then transport 's3')",
        )
    try:  # impetus.core.codec.encode_bytes: base64, marked when uncompressed
        base64.b64decode(value.removeprefix(RAW_MARK), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise PydanticCustomError("codec_string", "not a base64 codec string") from exc
    return value


StreamId = Annotated[str, Field(pattern=STREAM_ID_PATTERN, min_length=1, max_length=100)]
JobId = Annotated[str, Field(pattern=JOB_ID_PATTERN, min_length=1, max_length=200)]
Stage = Annotated[str, Field(pattern=STAGE_PATTERN, min_length=1, max_length=100)]
Digest = Annotated[str, Field(pattern=DIGEST_PATTERN)]
CodecString = Annotated[str, Field(min_length=1), AfterValidator(_codec_string)]
Properties = Annotated[
    dict[str, Any],
    _limited_json(MAX_PROPERTIES_BYTES, "properties"),
    AfterValidator(_dynamodb_numbers),
]
StoreValue = Annotated[Any, _limited_json(MAX_PAYLOAD_BYTES, "value")]
