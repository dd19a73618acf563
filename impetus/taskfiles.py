"""Task files: ``<taskdir>/<stream id>/<stage>.ok`` and ``.err``, one job per line.

Each line is ``base64(zlib(JSON(job)))``: readable with nothing but ``base64``, ``zlib``
and ``json``. A field value JSON cannot hold faithfully (a set, bytes, a custom object,
a dict with non-string keys, NaN) is stored as ``{"__impetus_pickle__": codec.dumps(v)}``
and restored by :func:`read`. JSON has no tuple: tuples come back as lists. Datetimes and
dates are written as ISO 8601 strings and come back as strings.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import math
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from impetus.core import codec
from impetus.core.exceptions import ImpetusError

PICKLE_MARKER = "__impetus_pickle__"
MAX_INFLATE_RATIO = 50  # a line may decompress to at most this many times its size...
MIN_INFLATE_LIMIT = 1 << 20  # ...or 1 MB, whichever is more
OK_SUFFIX = ".ok"
ERR_SUFFIX = ".err"


class _NotPlain(Exception):
    """Raised while converting a value JSON cannot hold."""


def _plain(value: Any) -> Any:
    """The value as pure JSON types, or _NotPlain."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _NotPlain
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value) or PICKLE_MARKER in value:
            raise _NotPlain
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    raise _NotPlain


def _field(value: Any) -> Any:
    try:
        return _plain(value)
    except _NotPlain:
        return {PICKLE_MARKER: codec.dumps(value)}


def _restore(value: Any) -> Any:
    if isinstance(value, dict) and len(value) == 1 and PICKLE_MARKER in value:
        return codec.loads(value[PICKLE_MARKER])
    return value


def encode_line(job: dict[str, Any]) -> str:
    """One job as one line (without the newline)."""
    record = {key: _field(value) for key, value in job.items()}
    raw = json.dumps(record, separators=(",", ":"), allow_nan=False).encode("utf-8")
    return base64.b64encode(zlib.compress(raw)).decode("ascii")


class TaskFileError(ImpetusError, ValueError):
    """A line that is not a task file line (corrupt, crafted, or another file's)."""


def _inflate(data: bytes) -> bytes:
    """zlib with a bound: real lines compress a few times, a zlib bomb thousands of times
    (a crafted 272 KB file once decompressed to 859 MB)."""
    limit = max(MIN_INFLATE_LIMIT, MAX_INFLATE_RATIO * len(data))
    inflater = zlib.decompressobj()
    raw = inflater.decompress(data, limit)
    if inflater.unconsumed_tail:
        raise TaskFileError(f"decompresses past {limit} bytes ({MAX_INFLATE_RATIO}x its size)")
    return raw


def decode_line(line: str, restore: bool = True) -> dict[str, Any]:
    """One line back to its job; TaskFileError for anything that is not a line we wrote."""
    try:
        record = json.loads(_inflate(base64.b64decode(line.strip(), validate=True)))
    except TaskFileError:
        raise
    except (binascii.Error, zlib.error, ValueError) as exc:
        raise TaskFileError(f"not base64(zlib(JSON)): {exc}") from None
    except RecursionError:
        raise TaskFileError("JSON nested too deeply") from None
    if not isinstance(record, dict):
        raise TaskFileError(f"a JSON {type(record).__name__}, not a job object")
    if restore:
        record = {key: _restore(value) for key, value in record.items()}
    return record


def write_line(fh: IO[str], job: dict[str, Any]) -> None:
    """Append one job to an open text file."""
    fh.write(encode_line(job) + "\n")


def iter_jobs(path: str | Path, restore: bool = True) -> Iterator[dict[str, Any]]:
    """Jobs of one task file in file order; nothing when the file does not exist.

    ``restore=False`` leaves pickled values as their markers (no unpickling: cheap,
    and safe for files of unknown origin).
    """
    if not Path(path).exists():
        return
    with open(path, encoding="ascii", errors="replace") as fh:
        for number, line in enumerate(fh, 1):
            if line.strip():
                try:
                    yield decode_line(line, restore)
                except TaskFileError as exc:
                    raise TaskFileError(f"{path}:{number}: not a task file line ({exc})") from None


def read(path: str | Path, restore: bool = True) -> list[dict[str, Any]]:
    return list(iter_jobs(path, restore))


def stage_paths(directory: str | Path, stage: str) -> tuple[Path, Path]:
    """(``.ok`` path, ``.err`` path) of one stage."""
    base = Path(directory)
    return base / f"{stage}{OK_SUFFIX}", base / f"{stage}{ERR_SUFFIX}"
