"""Task files: ``<taskdir>/<stream id>/<stage>.ok`` and ``.err``, one job per line.

Each line is ``base64(zlib(JSON(job)))``: readable with nothing but ``base64``, ``zlib``
and ``json``. A field value JSON cannot hold faithfully (a set, bytes, a custom object,
a dict with non-string keys, NaN) is stored as ``{"__impetus_pickle__": codec.dumps(v)}``
and restored by :func:`read`. JSON has no tuple: tuples come back as lists. Datetimes and
dates are written as ISO 8601 strings and come back as strings.

A pickled value is restored only from a line that carries a valid MAC (the
``__impetus_mac__`` field: HMAC-SHA256 over the rest of the record as canonical JSON)
made with the key the client wrote it with (impetus.streamkeys.taskfile_key): a line
crafted in the task directory cannot make the client unpickle anything. Reading without
restoring (``restore=False``) needs no key and unpickles nothing.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import json
import math
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from impetus.core import codec
from impetus.core.exceptions import ImpetusError

PICKLE_MARKER = "__impetus_pickle__"
MAC_FIELD = "__impetus_mac__"
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


def _mac(key: bytes, record: dict[str, Any]) -> str:
    text = json.dumps(record, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).hexdigest()


def encode_line(job: dict[str, Any], key: bytes | None = None) -> str:
    """One job as one line (without the newline); MACed with ``key`` when given (its
    pickled values are restored only with that key)."""
    record = {name: _field(value) for name, value in job.items() if name != MAC_FIELD}
    if key is not None:
        record[MAC_FIELD] = _mac(key, record)
    raw = json.dumps(record, separators=(",", ":"), allow_nan=False).encode("utf-8")
    return base64.b64encode(zlib.compress(raw)).decode("ascii")


def _has_pickles(record: dict[str, Any]) -> bool:
    return any(isinstance(v, dict) and PICKLE_MARKER in v for v in record.values())


def _verified(record: dict[str, Any], key: bytes | None) -> bool:
    mac = record.get(MAC_FIELD)
    if key is None or not isinstance(mac, str):
        return False
    rest = {name: value for name, value in record.items() if name != MAC_FIELD}
    return hmac.compare_digest(_mac(key, rest).encode(), mac.encode())


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


def decode_line(line: str, restore: bool = True, key: bytes | None = None) -> dict[str, Any]:
    """One line back to its job; TaskFileError for anything that is not a line we wrote.
    ``restore``: unpickle its pickled values, which needs the line's MAC to verify with
    ``key`` (TaskFileError otherwise)."""
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
    if restore and _has_pickles(record):
        if not _verified(record, key):
            raise TaskFileError(
                "it holds pickled values and no valid MAC of this client's task-file key "
                "(not written by this client?): not restored"
            )
        record = {name: _restore(value) for name, value in record.items()}
    record.pop(MAC_FIELD, None)
    return record


def write_line(fh: IO[str], job: dict[str, Any], key: bytes | None = None) -> None:
    """Append one job to an open text file."""
    fh.write(encode_line(job, key) + "\n")


def iter_jobs(
    path: str | Path, restore: bool = True, key: bytes | None = None
) -> Iterator[dict[str, Any]]:
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
                    yield decode_line(line, restore, key)
                except TaskFileError as exc:
                    raise TaskFileError(f"{path}:{number}: not a task file line ({exc})") from None


def read(path: str | Path, restore: bool = True, key: bytes | None = None) -> list[dict[str, Any]]:
    return list(iter_jobs(path, restore, key))


def stage_paths(directory: str | Path, stage: str) -> tuple[Path, Path]:
    """(``.ok`` path, ``.err`` path) of one stage."""
    base = Path(directory)
    return base / f"{stage}{OK_SUFFIX}", base / f"{stage}{ERR_SUFFIX}"
