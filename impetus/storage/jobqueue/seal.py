"""Seal: the MAC a node writes with each outcome (see impetus.core.streamauth).

The client unpickles a result only when its outcome carries a MAC made with the stream's
key over :class:`~impetus.core.streamauth.OutcomeFacts`; only whoever holds the signing
key (nodes, the API) can make one. Leases reaped as lost get none: the reaper (DFS)
does not hold the signing key, and a ``lost`` error carries nothing to unpickle.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from impetus.core import streamauth
from impetus.core.claims import Claim, ClaimedJob
from impetus.core.jobs import Outcome
from impetus.core.signing import UnknownVersion
from impetus.storage.jobqueue.items import QueueItems

log = logging.getLogger(__name__)

MAC = "m"  # the entry's MAC field
ARGS_VERIFIED = "av"  # whether the MAC covers the args' digest


def verified_args_digest(job: ClaimedJob) -> str:
    """The digest of the args the node verified against the job's signature; "" when it
    did not (the gate refused the job before that check)."""
    if not job.verified:
        return ""
    return job.args_digest if job.transport == "s3" else streamauth.sha256_hex(job.args)


class Sealer:
    """MACs result entries with the stream key. ``payload`` reads an S3 result's text."""

    def __init__(self, items: QueueItems, payload: Callable[[str], str] | None) -> None:
        self.items = items
        self._payload = payload

    def key(self, stream_id: str) -> str | None:
        """The stream's key; None when there is none to MAC with (a stream from before
        owners, a key version the secret no longer has: the client reports those jobs
        as integrity errors). KeyUnavailable propagates: complete the claim later."""
        try:
            return self.items.stream_key(stream_id)
        except UnknownVersion:
            log.error("stream %s: its key version is gone; outcomes go unsealed", stream_id)
            return None

    def seal(
        self, key: str, claim: Claim, job: ClaimedJob, outcome: Outcome, entry: dict[str, Any]
    ) -> None:
        args_digest = verified_args_digest(job)
        facts = streamauth.OutcomeFacts(
            stream=claim.stream,
            job=job.id,
            attempt=int(entry["a"]),
            status=entry["s"],
            code=job.code_digest,
            args_digest=args_digest,
            result_digest=self._result_digest(outcome, entry),
            result_ref=entry.get("s3") or "",
            error_digest=streamauth.error_digest(entry.get("e")),
        )
        entry[MAC] = streamauth.outcome_mac(key, facts)
        entry[ARGS_VERIFIED] = bool(args_digest)

    def _result_digest(self, outcome: Outcome, entry: dict[str, Any]) -> str:
        if "r" in entry:
            return streamauth.sha256_hex(entry["r"])
        if "ref" in entry:  # spilled into its own item: the same text
            return streamauth.sha256_hex(outcome.result or "")
        if "s3" in entry:
            if outcome.result_digest:  # its worker hashed what it uploaded
                return outcome.result_digest
            if self._payload is None:
                raise RuntimeError("a large result in S3, and no payload store to read it")
            return streamauth.sha256_hex(self._payload(entry["s3"]))
        return ""
