"""Exceptions shared across Impetus. Each maps to one kind of failure a caller can act on."""

from __future__ import annotations


class ImpetusError(Exception):
    """Base class of every error Impetus raises on purpose."""


class ConfigError(ImpetusError):
    """Settings are missing or unreadable."""


class StreamNotFound(ImpetusError):
    """The stream does not exist (or is being deleted)."""


class JobNotFound(ImpetusError):
    """No job with that id in the stream."""


class KeyNotFound(ImpetusError):
    """No such key in the stream's store."""


class InvalidRequest(ImpetusError):
    """The caller sent something the Queue cannot accept."""


class Conflict(ImpetusError):
    """The request contradicts the resource's state (a stream's shards, which only grow)."""


class CollectorBusy(Conflict):
    """Another client holds the stream's collector lease; ``retry_after``: seconds until
    it expires unless renewed."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ClaimLost(ImpetusError):
    """A claim's lease is no longer ours (expired and reaped, or never granted)."""


class ApiError(ImpetusError):
    """The API answered with an error; ``status`` and ``code`` come from its JSON body."""

    def __init__(
        self, status: int, code: str, message: str, retry_after: float | None = None
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after  # the Retry-After header's seconds, if any
