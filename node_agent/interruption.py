"""Spot interruptions: watch the instance metadata service (IMDSv2) for the two-minute
interruption notice and the rebalance recommendation, and tell the agent.

What the agent does with them (node_agent/agent.py):

- **Rebalance recommendation** (the instance is at elevated risk): stop claiming, hand
  the queued jobs back at once, finish the running ones, then stay up drained (like a
  drain requested by DFS) until Auto Scaling replaces the instance.
- **Interruption notice** (``action`` at ``time``): the same, but running jobs get only
  until :data:`CUT_MARGIN` seconds before ``time``; those still running then are killed
  and go back unrun, their attempt not charged (the node goes away through no fault of
  theirs), and the agent stops.

The metadata items, from the EC2 user guide:

- ``PUT /latest/api/token`` with ``X-aws-ec2-metadata-token-ttl-seconds`` (1..21600)
  gives a session token, sent as ``X-aws-ec2-metadata-token`` on every read; a read
  without a valid token gets 401 (the launch template requires IMDSv2).
  https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/configuring-instance-metadata-service.html
- ``/latest/meta-data/spot/instance-action``: 404 until EC2 decides to stop, hibernate or
  terminate the Spot instance, then ``{"action": "terminate", "time": "2017-09-18T08:22:00Z"}``,
  about two minutes ahead. AWS recommends checking every 5 seconds.
  https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/spot-instance-termination-notices.html
- ``/latest/meta-data/events/recommendations/rebalance``: 404 until a recommendation,
  then ``{"noticeTime": "2020-10-27T08:22:00Z"}``; it may come with the notice or not at all.
  https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/rebalance-recommendations.html

Polling is a local HTTP call with no AWS API cost. The base URL is a setting
(``IMPETUS_IMDS_URL``, set in the user-data of node classes with Spot), so the tests
point it at a fake metadata server; unset, nothing is watched.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

log = logging.getLogger(__name__)

TOKEN_PATH = "/latest/api/token"
INSTANCE_ACTION_PATH = "/latest/meta-data/spot/instance-action"
REBALANCE_PATH = "/latest/meta-data/events/recommendations/rebalance"
TOKEN_TTL = 21600  # seconds: the longest a token may live (the EC2 user guide, above)
TOKEN_REFRESH = 60.0  # seconds before its expiry a token is replaced
REQUEST_TIMEOUT = 2.0  # seconds: the service is link-local; a slow answer is a failure
CUT_MARGIN = 15.0  # seconds before the stated interruption time running jobs are cut off


class MetadataError(Exception):
    """The metadata service did not answer as documented."""


class Imds:
    """A minimal IMDSv2 client: one session token, renewed before it expires."""

    def __init__(self, base_url: str, timeout: float = REQUEST_TIMEOUT) -> None:
        self.base_url = base_url.rstrip("/")
        self._timeout = timeout
        self._token = ""
        self._token_expires = 0.0  # monotonic

    def _token_now(self) -> str:
        if not self._token or time.monotonic() >= self._token_expires - TOKEN_REFRESH:
            request = urllib.request.Request(
                self.base_url + TOKEN_PATH,
                method="PUT",
                headers={"X-aws-ec2-metadata-token-ttl-seconds": str(TOKEN_TTL)},
            )
            with urllib.request.urlopen(request, timeout=self._timeout) as answer:
                self._token = answer.read().decode()
            self._token_expires = time.monotonic() + TOKEN_TTL
        return self._token

    def get(self, path: str) -> str | None:
        """The item's text; None when it is absent (404). A refused token (401) is
        fetched again once."""
        for _ in range(2):
            request = urllib.request.Request(
                self.base_url + path, headers={"X-aws-ec2-metadata-token": self._token_now()}
            )
            try:
                with urllib.request.urlopen(request, timeout=self._timeout) as answer:
                    return answer.read().decode()
            except urllib.error.HTTPError as exc:
                if exc.code == 404:
                    return None
                if exc.code != 401:
                    raise MetadataError(f"{path}: HTTP {exc.code}") from None
                self._token = ""
        raise MetadataError(f"{path}: the token was refused")


def parse_time(text: str) -> float:
    """An IMDS timestamp (``2017-09-18T08:22:00Z``, UTC) as epoch seconds."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@dataclass(frozen=True)
class Notice:
    """An interruption notice: what EC2 will do and when (epoch seconds)."""

    action: str
    at: float


def read_notice(text: str) -> Notice:
    try:
        body = json.loads(text)
        return Notice(action=str(body["action"]), at=parse_time(str(body["time"])))
    except (ValueError, KeyError, TypeError) as exc:
        raise MetadataError(f"unreadable instance-action {text[:80]!r}") from exc


class Watcher:
    """A daemon thread reading both items every ``interval`` seconds until stopped.
    ``on_rebalance()`` is called once, at the first recommendation; ``on_notice(notice)``
    once, at the interruption notice, after which the watch ends (nothing is left to
    learn). Failures are logged (once per kind) and the watch goes on."""

    def __init__(
        self,
        imds: Imds,
        interval: float,
        on_rebalance: Callable[[], None],
        on_notice: Callable[[Notice], None],
    ) -> None:
        self._imds = imds
        self._interval = interval
        self._on_rebalance = on_rebalance
        self._on_notice = on_notice
        self._rebalanced = False
        self._failed: set[str] = set()
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._run, name="spot-watch", daemon=True)

    def start(self) -> None:
        url, every = self._imds.base_url, self._interval
        log.info("watching %s for Spot interruptions every %gs", url, every)
        self._thread.start()

    def stop(self) -> None:
        self._halt.set()
        if self._thread.is_alive():
            self._thread.join(REQUEST_TIMEOUT * 3)

    def check(self) -> bool:
        """One look at both items; True once the notice came (the watch is over)."""
        text = self._imds.get(INSTANCE_ACTION_PATH)
        if text is not None:
            notice = read_notice(text)
            log.warning(
                "Spot interruption notice: %s in %.0fs", notice.action, notice.at - time.time()
            )
            self._on_notice(notice)
            return True
        if not self._rebalanced and self._imds.get(REBALANCE_PATH) is not None:
            self._rebalanced = True
            log.warning("rebalance recommendation: draining")
            self._on_rebalance()
        return False

    def _run(self) -> None:
        while not self._halt.is_set():
            try:
                if self.check():
                    return
            except Exception as exc:  # a failed look must not end the watch
                kind = type(exc).__name__
                level = logging.DEBUG if kind in self._failed else logging.WARNING
                self._failed.add(kind)
                log.log(level, "metadata check failed: %s", exc)
            self._halt.wait(self._interval)


class SpotState:
    """What the watcher told the agent, read by the agent's loop (thread-safe).

    ``shed`` asks the loop to hand back queued jobs (set by either signal, cleared by the
    loop); ``cutoff`` is when running jobs must be gone (monotonic; None: no notice)."""

    def __init__(self) -> None:
        self._shed = threading.Event()
        self._cutoff: float | None = None

    def rebalance(self) -> None:
        self._shed.set()

    def interrupt(self, notice: Notice, margin: float = CUT_MARGIN) -> None:
        left = notice.at - time.time() - margin
        self._cutoff = time.monotonic() + max(0.0, left)
        self._shed.set()

    @property
    def interrupted(self) -> bool:
        return self._cutoff is not None

    @property
    def cutoff(self) -> float | None:
        return self._cutoff

    def take_shed(self) -> bool:
        """Whether queued jobs are to be handed back now (once per signal)."""
        if not self._shed.is_set():
            return False
        self._shed.clear()
        return True
