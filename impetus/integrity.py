"""What a client may unpickle of a job the API hands back.

Anyone who can write the tables, and before stream keys any holder of the authkey, can
put bytes in a job record or an outcome. The client therefore unpickles:

* a **result** only when its outcome carries a valid MAC made with the stream key
  (impetus.core.streamauth.OutcomeFacts: stream, job, attempt, status, code, the result's
  and the args' digests, the error record), which only a node (or the API) can make;
* **args** only when a digest vouches for the bytes: the one this run recorded when it
  forked the job (impetus.ledger), or, for a job an earlier run forked, the digest of the
  args the node verified against the job's signature, covered by that MAC. A job whose
  args differ from this run's own fork of that id gets no args unpickled.

Anything else becomes an error for that job (``integrity: ...``) and nothing of it is
unpickled. One exception: a lease reaped as lost is written by DFS, which holds no signing
key, so an unauthenticated ``lost`` error is passed on as it is (an error record is JSON
text; nothing is unpickled for it but args this run vouches for).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from impetus.core import streamauth
from impetus.core.jobs import ERROR, READY

LOST = "lost"


@dataclass(frozen=True)
class Verdict:
    """What may be unpickled of one job; ``problem``: why it is an integrity error."""

    result_ok: bool
    args_ok: bool
    problem: str = ""


class OutcomeVerifier:
    """Checks the jobs of one stream. ``fork_digest(job id)``: this run's digest of the
    args it forked under that id, or None."""

    def __init__(
        self, stream_id: str, stream_key: str, fork_digest: Callable[[str], str | None]
    ) -> None:
        self._stream = stream_id
        self._key = stream_key
        self._fork_digest = fork_digest

    def check(self, raw: dict[str, Any], result_text: str | None) -> Verdict:
        """``raw``: the API's job; ``result_text``: its encoded result (inline or fetched
        from S3), None for an error."""
        args = raw.get("args") or ""
        actual = streamauth.sha256_hex(args) if args else ""
        own = self._fork_digest(str(raw.get("id")))
        if own is not None and args and own != actual:
            return Verdict(False, False, "the args differ from what this client forked")
        mac = raw.get("outcome_mac")
        if mac is None:
            if _is_lost(raw):
                return Verdict(False, own is not None and bool(args))
            return Verdict(False, False, "the outcome is not authenticated (no MAC)")
        facts = self._facts(raw, actual, result_text)
        if not streamauth.outcome_verifies(self._key, facts, mac):
            return Verdict(
                False, False, "the outcome's MAC does not verify (changed, or another job's)"
            )
        vouched = own is not None or bool(facts.args_digest)
        return Verdict(raw.get("status") == READY, bool(args) and vouched)

    def _facts(
        self, raw: dict[str, Any], args_digest: str, result_text: str | None
    ) -> streamauth.OutcomeFacts:
        status = str(raw.get("status"))
        if raw.get("transport") == "s3":
            args_digest = str(raw.get("args_digest") or "")
        return streamauth.OutcomeFacts(
            stream=self._stream,
            job=str(raw.get("id")),
            attempt=int(raw.get("attempt") or 0),
            status=status,
            code=str(raw.get("code") or ""),
            args_digest=args_digest if raw.get("args_verified") else "",
            result_digest=(
                streamauth.sha256_hex(result_text)
                if status == READY and isinstance(result_text, str)
                else ""
            ),
            result_ref=str(raw.get("result_ref") or ""),
            error_digest=streamauth.error_digest(raw.get("result")) if status == ERROR else "",
        )


def _is_lost(raw: dict[str, Any]) -> bool:
    record = raw.get("result")
    return raw.get("status") == ERROR and isinstance(record, dict) and record.get("type") == LOST
