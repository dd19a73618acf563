"""How functions, arguments and results travel: cloudpickle, zlib, base64.

Your own code travels *by value*: functions and classes from ``__main__`` (a script, a
notebook cell) or from a module that is not an installed package (your helper modules
next to the script or in the working directory, a test file) are pickled with their
code, so a node needs no copy of your source. That holds for the job's function, for
whatever it calls, and for the classes of its arguments: before pickling, every imported
module whose file is a ``.py`` outside the standard library, ``site-packages`` and
``dist-packages`` (and not part of Impetus) is registered with cloudpickle to travel by
value. Installed packages travel by reference and must be installed on the nodes too
(the node class's requirements). :func:`ship_by_value` ships more modules by value
explicitly (``Impetus(include_modules=[...])``, in the spirit of Lithops'
``include_modules``), e.g. a package of yours that is installed on the client but not on
the nodes; :func:`set_auto_ship` turns the automatic part off.
"""

from __future__ import annotations

import base64
import hashlib
import sys
import sysconfig
import threading
import zlib
from collections.abc import Iterable
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


RAW_MARK = "~"  # not in base64's alphabet: marks a payload sent uncompressed
COMPRESS_FROM = 512  # bytes: smaller pickles travel uncompressed


def encode_bytes(raw: bytes) -> str:
    """base64 of zlib of ``raw``; of ``raw`` itself, marked, below COMPRESS_FROM bytes:
    zlib.compress sets up its window per call (~90 µs), which dominated ``submit``."""
    if len(raw) < COMPRESS_FROM:
        return RAW_MARK + base64.b64encode(raw).decode("ascii")
    return base64.b64encode(zlib.compress(raw)).decode("ascii")


def decode_bytes(text: str) -> bytes:
    if text.startswith(RAW_MARK):
        return base64.b64decode(text[1:])
    return zlib.decompress(base64.b64decode(text))


def dumps(obj: Any) -> str:
    """Any picklable value -> :func:`encode_bytes` of its cloudpickle; local modules travel
    by value."""
    ship_local_modules()
    return encode_bytes(cloudpickle.dumps(obj))


def loads(text: str) -> Any:
    """Inverse of :func:`dumps`. Only call on verified input: unpickling runs code."""
    import pickle

    return pickle.loads(decode_bytes(text))


_OWN_PACKAGES = ("impetus", "node_agent", "lambdas")
_PACKAGE_DIRS = ("site-packages", "dist-packages")
_lock = threading.Lock()
_shipped: set[str] = set()  # module names registered to travel by value
_judged: dict[str, bool] = {}  # module name -> whether it is local (ships by value)
_auto_ship = True
_modules_seen: tuple[int, str | None] = (0, None)  # sys.modules when last judged


def _is_installed(module: ModuleType) -> bool:
    """True for stdlib, site-packages and Impetus itself: nodes have those already."""
    if module.__name__.split(".")[0] in _OWN_PACKAGES:
        return True
    file = getattr(module, "__file__", None)
    if not file:
        return True  # builtin or namespace: cannot ship it anyway
    path = Path(file).resolve()
    return str(path).startswith(_INSTALLED_ROOTS) or any(p in _PACKAGE_DIRS for p in path.parts)


def _is_local(module: ModuleType) -> bool:
    """A module of the user's own source: a ``.py`` file that no node installs."""
    if module.__name__ == "__main__":
        return False  # cloudpickle ships __main__ by value already
    file = getattr(module, "__file__", None)
    return bool(file) and str(file).endswith(".py") and not _is_installed(module)


def _register(name: str) -> None:
    if name not in _shipped:
        cloudpickle.register_pickle_by_value(sys.modules[name])
        _shipped.add(name)


def ship_local_modules() -> None:
    """Register every imported local module (see module doc) to travel by value.

    Registration lasts for the process: a module judged once is not judged again."""
    global _modules_seen
    if not _auto_ship:
        return
    # Called per dumps (10,000 submits: 10,000 calls): judge only when an import happened.
    # Imports append to sys.modules, so its size and last name tell a new one.
    seen = (len(sys.modules), next(reversed(sys.modules), None))
    if seen == _modules_seen:
        return
    with _lock:
        _modules_seen = seen
        for name, module in list(sys.modules.items()):
            if name in _judged or not isinstance(module, ModuleType):
                continue
            try:
                _judged[name] = local = _is_local(module)
            except (OSError, ValueError, RuntimeError):  # an odd __file__: leave it be
                _judged[name] = local = False
            if local:
                _register(name)


def ship_by_value(modules: Iterable[str | ModuleType]) -> None:
    """Ship these modules (imported, by name or object; packages with their submodules)
    by value from now on, even if they are installed on the client."""
    with _lock:
        for module in modules:
            name = module if isinstance(module, str) else module.__name__
            if name not in sys.modules:
                raise ValueError(f"include_modules: {name!r} is not imported; import it first")
            _register(name)


def set_auto_ship(enabled: bool) -> None:
    """Whether local modules travel by value automatically (default: yes)."""
    global _auto_ship
    _auto_ship = bool(enabled)


def dump_function(fn: Any) -> str:
    """Encode a callable by value (see module doc)."""
    module = sys.modules.get(getattr(fn, "__module__", "") or "")
    by_value = module is not None and module.__name__ != "__main__" and not _is_installed(module)
    if by_value and _auto_ship:
        with _lock:
            _register(module.__name__)
    return dumps(fn)


def digest(text: str) -> str:
    """Content address of an encoded payload (code items are stored once per digest)."""
    return hashlib.sha256(text.encode("ascii")).hexdigest()
