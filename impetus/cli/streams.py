"""``impetus streams``, ``impetus stream show|delete ID``, ``impetus jobs ID``, ``impetus job``,
``impetus cancel ID [JOB...]``."""

from __future__ import annotations

import argparse
import json
from typing import Any

from impetus import timeline
from impetus.cli.common import (
    NAME_WIDTH,
    STREAM_ID_HELP,
    add_json_flag,
    age,
    api,
    clip,
    print_json,
    print_list,
    stream_api,
    stream_name,
    table,
    write,
)
from impetus.storage.joblist import DEFAULT_LIMIT, LIST_STATUSES, MAX_LIMIT, ORDER

COUNT_COLUMNS = ("waiting", "delayed", "running", "finished", "errors", "acked", "forked")


def register(subparsers: Any) -> None:
    streams = subparsers.add_parser("streams", help="list streams with their backlog counts")
    add_json_flag(streams)
    streams.set_defaults(func=cmd_streams)

    stream = subparsers.add_parser("stream", help="show or delete one stream")
    actions = stream.add_subparsers(dest="stream_command", metavar="{show,delete}", required=True)
    show = actions.add_parser("show", help="properties and counts of a stream")
    show.add_argument("id", help=STREAM_ID_HELP)
    add_json_flag(show)
    show.set_defaults(func=cmd_show)
    delete = actions.add_parser("delete", help="delete a stream with its jobs and store")
    delete.add_argument("id", help=STREAM_ID_HELP)
    delete.set_defaults(func=cmd_delete)

    jobs = subparsers.add_parser("jobs", help="list a stream's jobs (payloads left out)")
    jobs.add_argument("id", help=STREAM_ID_HELP)
    jobs.add_argument("--status", choices=LIST_STATUSES, help="only jobs with this status")
    jobs.add_argument(
        "--limit",
        type=_limit,
        default=DEFAULT_LIMIT,
        help=f"at most this many, {ORDER} (default {DEFAULT_LIMIT}, max {MAX_LIMIT})",
    )
    add_json_flag(jobs)
    jobs.set_defaults(func=cmd_jobs)

    cancel = subparsers.add_parser(
        "cancel",
        help="take jobs no node has claimed out of the queue (never run)",
        description="Cancel waiting or delayed jobs: one line per job; exit 1 when one "
        "could not be cancelled (claimed already: running or done; or unknown).",
    )
    cancel.add_argument("id", help=STREAM_ID_HELP)
    cancel.add_argument("jobs", nargs="*", metavar="JOB", help="job ids (none: every waiting job)")
    add_json_flag(cancel)
    cancel.set_defaults(func=cmd_cancel)

    job = subparsers.add_parser("job", help="one job's record: status, error, output")
    job.add_argument("id", help=STREAM_ID_HELP)
    job.add_argument("job", help="job id")
    add_json_flag(job)
    job.set_defaults(func=cmd_job)


def _limit(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 1 <= value <= MAX_LIMIT:
        raise argparse.ArgumentTypeError(f"must be between 1 and {MAX_LIMIT}")
    return value


def cmd_streams(args: argparse.Namespace) -> int:
    streams = api().list_streams()
    if args.json:
        print_list([{**s, "name": stream_name(s)} for s in streams])
        return 0
    if not streams:
        write("no streams")
        return 0
    rows = [
        [s["id"], clip(stream_name(s), NAME_WIDTH), *_counts(s), age(s.get("created"))]
        for s in streams
    ]
    write(table(["STREAM", "NAME", *(c.upper() for c in COUNT_COLUMNS), "AGE"], rows))
    return 0


def _counts(stream: dict[str, Any]) -> list[Any]:
    return [stream["counts"][c] for c in COUNT_COLUMNS]


def cmd_show(args: argparse.Namespace) -> int:
    stream = stream_api(args.id).get_stream(args.id)
    if args.json:
        print_json({**stream, "name": stream_name(stream)})
        return 0
    named = f" {stream_name(stream)!r}" if stream_name(stream) else ""
    write(f"stream {stream['id']}{named} (created {age(stream.get('created'))} ago)")
    write("counts:     " + "  ".join(f"{c} {stream['counts'][c]}" for c in COUNT_COLUMNS))
    props = stream.get("properties") or {}
    write("properties: " + (json.dumps(props, sort_keys=True) if props else "(defaults)"))
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    stream_api(args.id).delete_stream(args.id)
    write(f"deleted stream {args.id}")
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    answer = stream_api(args.id).cancel(args.id, args.jobs or None)
    if args.json:
        print_json(answer)
    else:
        for key, said in (
            ("cancelled", "cancelled"),
            ("running_or_done", "running or done (not cancelled)"),
            ("unknown", "unknown (not cancelled)"),
        ):
            for job_id in answer.get(key, []):
                write(f"{job_id}: {said}")
        if not args.jobs and not answer.get("cancelled"):
            write("no waiting jobs")
    return 1 if answer.get("running_or_done") or answer.get("unknown") else 0


def cmd_jobs(args: argparse.Namespace) -> int:
    client = stream_api(args.id)
    answer = client.list_jobs(args.id, args.status, args.limit)
    if args.json:  # the list alone, as every listing (docs/cli.md, "JSON output")
        print_list(answer["jobs"])
        return 0
    jobs = answer["jobs"]
    rows = [
        [
            j["id"], j["name"], j["stage"], j["status"], j["node"], j["attempt"],
            _duration(j.get("started"), j.get("finished")),
        ]
        for j in jobs
    ]  # fmt: skip
    if rows:
        write(table(["JOB", "NAME", "STAGE", "STATUS", "NODE", "ATTEMPT", "TIME"], rows))
    what = f" {args.status}" if args.status else ""
    more = f" (showing {len(jobs)}; --limit for more)" if answer["count"] > len(jobs) else ""
    name = stream_name(client.get_stream(args.id))
    of = f" of stream {args.id}" + (f" ({name})" if name else "")
    write(f"{answer['count']}{what} jobs{of}, {ORDER}{more}")
    return 0


def _duration(started: float | None, finished: float | None) -> str | None:
    if not started or not finished:
        return None
    return f"{finished - started:.3f}s"


def cmd_job(args: argparse.Namespace) -> int:
    job = stream_api(args.id).get_job(args.id, args.job)
    if args.json:
        print_json(job)
        return 0
    for key in ("id", "name", "status", "callback", "node", "attempt", "priority"):
        if job.get(key) is not None:
            write(f"{key + ':':10s} {job[key]}")
    took = _duration(job.get("started"), job.get("finished"))
    if took:
        write(f"{'time:':10s} {took}")
    phases = timeline.phases_text(job.get("timeline") or {})
    if phases:
        write(f"{'timeline:':10s} {phases}")
    result = job.get("result")
    if job.get("status") == "error" and isinstance(result, dict):
        write(f"{'error:':10s} {result.get('type')}: {result.get('error')}")
        if result.get("traceback"):
            write(result["traceback"].rstrip())
    for name, text in (job.get("output") or {}).items():
        if isinstance(text, str) and text:
            write(f"--- {name} ---")
            write(text.rstrip("\n"))
    return 0
