"""Where a client keeps the keys of the streams it created, and its task-file key.

``$IMPETUS_HOME/streams/<api host>/<stream id>.key`` (default ``~/.impetus``): one key
per file, the directory mode 0700 and the file 0600, written atomically. A program
restarted with the same stream id finds its key there and resumes; the CLI finds the keys
of the streams this user created. A key is never put in a log line, a URL or a command
line; the API sends it once, when the stream is created (impetus.core.streamauth).

The task-file key (``$IMPETUS_HOME/taskfiles.key``, 0600, drawn on first use) MACs the
lines a client writes to its task files (impetus.taskfiles): a line restored at shutdown
must carry its MAC, so a line crafted in the task directory cannot make it unpickle
anything. It is this user's, not a stream's: task files outlive their stream (a finished
program run again with the same id reads them back).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

from impetus.core import streamauth
from impetus.core.config import impetus_home
from impetus.core.exceptions import ImpetusError
from impetus.core.keys import STREAM_ID


class NoStreamKey(ImpetusError):
    """This user holds no key for the stream (another client created it, or the key file
    is gone)."""

    def __init__(self, stream_id: str) -> None:
        super().__init__(f"no key for stream {stream_id} (created by another client?)")
        self.stream_id = stream_id


def _host_dir(api_url: str) -> str:
    """The API's host (and port) as a directory name."""
    netloc = urlsplit(api_url).netloc or api_url
    return re.sub(r"[^A-Za-z0-9._-]", "_", netloc) or "api"


class KeyStore:
    """Stream keys of one API, by stream id."""

    def __init__(self, api_url: str, home: Path | None = None) -> None:
        self.directory = (home or impetus_home()) / "streams" / _host_dir(api_url)

    def path(self, stream_id: str) -> Path:
        if not STREAM_ID.match(stream_id):
            raise ValueError(f"invalid stream id {stream_id!r}")
        return self.directory / f"{stream_id}.key"

    def load(self, stream_id: str) -> str | None:
        """The stream's key; None when this user has none (or the file is not a key)."""
        try:
            text = self.path(stream_id).read_text(encoding="ascii").strip()
        except (FileNotFoundError, UnicodeDecodeError):
            return None
        return text if streamauth.KEY_PATTERN.match(text) else None

    def require(self, stream_id: str) -> str:
        key = self.load(stream_id)
        if key is None:
            raise NoStreamKey(stream_id)
        return key

    def save(self, stream_id: str, key: str) -> Path:
        """Write the key (0600, in a 0700 directory), replacing an older one."""
        if not streamauth.KEY_PATTERN.match(key):
            raise ValueError("not a stream key")
        path = self.path(stream_id)
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.directory, 0o700)
        _write_private(path, key)
        return path

    def forget(self, stream_id: str) -> None:
        """Remove the key of a deleted stream."""
        self.path(stream_id).unlink(missing_ok=True)


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, mode 0600 from the start."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".key-")  # mode 0600
    try:
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(text + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def taskfile_key(stream_id: str, home: Path | None = None) -> bytes:
    """The key a client MACs the task-file lines of ``stream_id`` with."""
    path = (home or impetus_home()) / "taskfiles.key"
    secret = _read_secret(path)
    if secret is None:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".key-")  # mode 0600
        try:
            with os.fdopen(fd, "w", encoding="ascii") as fh:
                fh.write(secrets.token_hex(32) + "\n")
            os.link(tmp, path)  # atomic, and never over a key another process drew first
        except FileExistsError:
            pass
        finally:
            Path(tmp).unlink(missing_ok=True)
        secret = _read_secret(path)
        if secret is None:
            raise ImpetusError(f"{path} is not a task-file key; remove it")
    return hmac.new(
        bytes.fromhex(secret), f"taskfile:{stream_id}".encode(), hashlib.sha256
    ).digest()


def _read_secret(path: Path) -> str | None:
    try:
        text = path.read_text(encoding="ascii").strip()
    except (FileNotFoundError, UnicodeDecodeError):
        return None
    return text if streamauth.KEY_PATTERN.match(text) else None
