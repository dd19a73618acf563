"""A job's captured output (stdout, stderr, logging) on its way to the client.

A node captures it (node_agent/capture.py: last 64 KiB of each) and hands it over in
``Outcome.output``. It travels as its own item in the jobs table,
``#output#<job>#<claim>``, written with the claim's results and referenced from the
result entry (``oref``), so the chunk item a claim rewrites stays small and a job that
prints nothing costs nothing. Collection attaches it to the job record as ``output``;
acknowledgement deletes it with the record's other spilled items.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from impetus.storage import dynamo

OUTPUT_PREFIX = "#output#"
STREAMS = ("stdout", "stderr", "log")


def ref(job_id: str, claim_id: str) -> str:
    """Per claim: a zombie's late output never overwrites the live attempt's."""
    return f"{OUTPUT_PREFIX}{job_id}#{claim_id}"


def spill(stream_id: str, job_id: str, claim_id: str, output: Any, entry: dict) -> list[dict]:
    """The item to write for an outcome's output (none when there is none); marks the
    result ``entry`` with its reference."""
    if not output:
        return []
    entry["oref"] = ref(job_id, claim_id)
    return [{"stream": stream_id, "job": entry["oref"], "output": output}]


def attach(
    client: Any,
    table: str,
    stream_id: str,
    jobs: list[dict[str, Any]],
    entries: Iterable[tuple[str, Any, dict[str, Any] | None]],
) -> None:
    """Set ``output`` on job dicts from their result entries' references (one batch get)."""
    refs = {job_id: e["oref"] for job_id, _, e in entries if e and "oref" in e}
    if not refs:
        return
    found = dynamo.batch_get(
        client, table, [{"stream": stream_id, "job": r} for r in set(refs.values())]
    )
    by_ref = {item["job"]: item.get("output") for item in found}
    for job in jobs:
        if job["id"] in refs:
            job["output"] = by_ref.get(refs[job["id"]])


def lines(job_id: str, output: dict[str, Any] | None) -> list[str]:
    """Output as the client shows it: every line prefixed with the job id (and the
    stream it came from, unless stdout)."""
    shown: list[str] = []
    for name in STREAMS:
        text = (output or {}).get(name)
        if not isinstance(text, str) or not text:
            continue
        prefix = f"[{job_id}]" if name == "stdout" else f"[{job_id} {name}]"
        if name in (output or {}).get("truncated", ()):
            shown.append(f"{prefix} ... (earlier output cut: the last 64 KiB are kept)")
        shown += [f"{prefix} {line}" for line in text.rstrip("\n").split("\n")]
    return shown
