"""How functions, arguments and results travel: cloudpickle, zlib, base64.

Functions travel *by value*: a function from ``__main__`` or from a module that is not an
installed package (a script, a test file) is pickled with its code, so a node needs no
copy of the client's source. Installed packages (stdlib, site-packages) travel by
reference and must be installed on the nodes too.
"""

from __future__ import annotations

import base64
import hashlib
import sys
import sysconfig
import zlib
from pathlib import Path
from types import ModuleType
from typing import Any

import cloudpickle

PYTHON_VERSION = f"{sys.version_info.major}.{sys.version_info.minor}"
# Pickles load reliably only with the cloudpickle that made them: a job records both
# versions and a node refuses a job whose versions are not its own.
CLOUDPICKLE_VERSION = cloudpickle.__version__

_INSTALLED_ROOTS = tuple(
    str(Path(p).resolve())
    for p in {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}
)


def encode_bytes(raw: bytes) -> str:
    return base64.b64encode(zlib.compress(raw)).decode("ascii")


def decode_bytes(text: str) -> bytes:
    return zlib.decompress(base64.b64decode(text))


def dumps(obj: Any) -> str:
    """Any picklable value -> base64(zlib(cloudpickle))."""
    return encode_bytes(cloudpickle.dumps(obj))


def loads(text: str) -> Any:
    """Inverse of :func:`dumps`. Only call on verified input: unpickling runs code."""
    import pickle

    return pickle.loads(decode_bytes(text))


_OWN_PACKAGES = ("impetus", "node_agent", "lambdas")


def _is_installed(module: ModuleType) -> bool:
    """True for stdlib, site-packages and Impetus itself: nodes have those already."""
    if module.__name__.split(".")[0] in _OWN_PACKAGES:
        return True
    file = getattr(module, "__file__", None)
    if not file:
        return True  # builtin or namespace: cannot ship it anyway
    return str(Path(file).resolve()).startswith(_INSTALLED_ROOTS)


def dump_function(fn: Any) -> str:
    """Encode a callable by value (see module doc)."""
    module = sys.modules.get(getattr(fn, "__module__", "") or "")
    by_value = module is not None and module.__name__ != "__main__" and not _is_installed(module)
    if by_value:
        cloudpickle.register_pickle_by_value(module)
    try:
        return dumps(fn)
    finally:
        if by_value:
            cloudpickle.unregister_pickle_by_value(module)


def digest(text: str) -> str:
    """Content address of an encoded payload (code items are stored once per digest)."""
    return hashlib.sha256(text.encode("ascii")).hexdigest()
