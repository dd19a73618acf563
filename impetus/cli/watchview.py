"""``impetus watch``: a live view of streams and nodes, redrawn every second.

Each frame comes from two samples of the API (``GET /streams`` or one stream, and
``GET /nodes``): counters the queue keeps anyway (no scans), so watching costs two
requests a second. Rates are differences between samples: *done/s* counts jobs that
finished (``finished`` + ``acked``, both only ever grow together), *jobs/s* of a node is
its heartbeat's ``jobs_done`` difference (heartbeats come every few seconds, so node
rates are coarse). On a terminal the frame is redrawn in place with ANSI escapes;
otherwise frames are printed one after another.

A frame fits 80 columns (names and ids are cut with an ellipsis, big counts written
``123k``). A stream's *claimed* jobs are held by nodes, running or waiting in a node's
hand-over queue; *running* (the summary) counts busy workers. Progress counts jobs that
ended well; errored jobs show apart (``x`` in the bar, the ERRORS column).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, TextIO

from impetus.cli.textfmt import age, clip, table
from impetus.core.exceptions import ApiError, StreamNotFound

CLEAR = "\x1b[H\x1b[2J"
HIDE_CURSOR = "\x1b[?25l"
SHOW_CURSOR = "\x1b[?25h"
WIDTH = 80  # a frame fits a default terminal
BAR_WIDTH = 8
NAME_WIDTH = 14  # a stream's name, then its id, cut with an ellipsis
ID_WIDTH = 7
NODE_WIDTH = 20
# CLAIMED: jobs nodes hold (running or about to); the summary's "running" is what runs.
STREAM_HEADERS = ["STREAM", "ID", "BACKLOG", "CLAIMED", "DONE", "ERR", "DONE/S", "PROGRESS"]
NODE_HEADERS = ["NODE", "STATE", "BUSY/WORKERS", "JOBS", "JOBS/S", "STREAMS", "BEAT"]


@dataclass
class Sample:
    time: float
    streams: list[dict[str, Any]] = field(default_factory=list)
    nodes: list[dict[str, Any]] = field(default_factory=list)
    gone: str | None = None  # the watched stream, once it no longer exists


def take_sample(api: Any, stream_id: str | None = None, now: float | None = None) -> Sample:
    """Streams (or the one watched) and live nodes; a watched stream that vanished
    (deleted at the end of its run) is reported in ``gone``."""
    at = time.time() if now is None else now
    if stream_id is None:
        streams = api.list_streams()
        gone = None
    else:
        try:
            streams, gone = [api.get_stream(stream_id)], None
        except ApiError as exc:
            if exc.status != 404:
                raise
            streams, gone = [], stream_id
    return Sample(at, streams, api.list_nodes(), gone)


def done(stream: dict[str, Any]) -> int:
    """Jobs that ended, well or in error (``errors`` is a part of ``finished``)."""
    counts = stream["counts"]
    return int(counts["finished"]) + int(counts["acked"])


def rate(now: float, before: float | None, dt: float) -> float | None:
    if before is None or dt <= 0:
        return None
    return max(0.0, (now - before) / dt)


def bar(ok: int, errors: int, total: int, width: int = BAR_WIDTH) -> str:
    """``[###xx.....]  40%``: ``#`` ended well, ``x`` errored, ``.`` not ended; the
    percentage counts only the jobs that ended well, so errors never make it 100 %."""
    if total <= 0:
        return "-"
    # Rounded down for ok and up for errors: full only when every job ended well, and a
    # single error is always visible.
    good = min(width, ok * width // total)
    bad = min(width - good, -(-errors * width // total))
    cells = "#" * good + "x" * bad + "." * (width - good - bad)
    return f"[{cells}] {ok * 100 // total:3d}%"


def num(value: Any) -> str:
    """A count in at most 4 characters: 12345 -> '12k', 1234567 -> '1.2M'."""
    n = int(value or 0)
    if n < 10_000:
        return str(n)
    for unit, size in (("k", 1e3), ("M", 1e6), ("G", 1e9), ("T", 1e12)):
        scaled = n / size
        if scaled < 9.95:
            return f"{scaled:.1f}{unit}"
        if round(scaled) < 1000:
            return f"{round(scaled)}{unit}"
    return f"{n:.0e}"


def _fmt_rate(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}" if value < 10_000 else num(value)


def short_id(stream_id: str) -> str:
    return clip(stream_id, ID_WIDTH) or stream_id


def stream_rows(current: Sample, previous: Sample | None) -> tuple[list[list[Any]], float]:
    dt = current.time - previous.time if previous else 0.0
    before = {s["id"]: done(s) for s in previous.streams} if previous else {}
    rows, total = [], 0.0
    for s in current.streams:
        c = s["counts"]
        r = rate(done(s), before.get(s["id"]), dt)
        total += r or 0.0
        errors, forked = int(c["errors"]), int(c["forked"])
        name = (s.get("properties") or {}).get("name") or "-"
        rows.append(
            [
                clip(name, NAME_WIDTH), short_id(s["id"]),
                num(int(c["waiting"]) + int(c["delayed"])), num(c["running"]),
                num(done(s) - errors), num(errors), _fmt_rate(r),
                bar(done(s) - errors, errors, forked),
            ]
        )  # fmt: skip
    return rows, total


def node_rows(current: Sample, previous: Sample | None) -> list[list[Any]]:
    before = {n["node"]: n for n in previous.nodes} if previous else {}
    rows = []
    for n in current.nodes:
        old = before.get(n["node"])
        r = None
        if old and n.get("heartbeat") and old.get("heartbeat"):
            beat_dt = float(n["heartbeat"]) - float(old["heartbeat"])
            if beat_dt > 0:
                r = rate(n.get("jobs_done") or 0, old.get("jobs_done") or 0, beat_dt)
        rows.append(
            [
                clip(n["node"], NODE_WIDTH), n.get("state"),
                f"{n.get('workers_busy') or 0}/{n.get('workers_total') or 0}",
                num(n.get("jobs_done")), _fmt_rate(r), len(n.get("streams") or []),
                age(n.get("heartbeat"), current.time),
            ]
        )  # fmt: skip
    return rows


def running_on_workers(current: Sample) -> int:
    """Jobs running now: the busy workers (one job each) of the nodes serving the streams
    shown, never more than those streams' claimed jobs. A claimed job may still wait in
    a node's hand-over queue, so ``claimed`` alone overstates what runs."""
    shown = {s["id"] for s in current.streams}
    busy = sum(
        int(n.get("workers_busy") or 0)
        for n in current.nodes
        if not n.get("streams") or shown.intersection(n["streams"])
    )
    return min(busy, sum(int(s["counts"]["running"]) for s in current.streams))


def summary(current: Sample, total_rate: float | None) -> list[str]:
    counts = [s["counts"] for s in current.streams]
    backlog = sum(int(c["waiting"]) + int(c["delayed"]) for c in counts)
    claimed = sum(int(c["running"]) for c in counts)
    errors = sum(int(c["errors"]) for c in counts)
    busy = sum(int(n.get("workers_busy") or 0) for n in current.nodes)
    workers = sum(int(n.get("workers_total") or 0) for n in current.nodes)
    return [
        f"backlog {num(backlog)} · claimed {num(claimed)} · running "
        f"{num(running_on_workers(current))} · done/s {_fmt_rate(total_rate)} · "
        f"errors {num(errors)}",
        f"nodes {len(current.nodes)} · workers {busy}/{workers} busy",
    ]


def render(current: Sample, previous: Sample | None, title: str = "", width: int = WIDTH) -> str:
    """One frame as plain text, no line longer than ``width`` (cut with an ellipsis)."""
    stamp = datetime.fromtimestamp(current.time, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    lines = [f"impetus watch  {title}  {stamp}".replace("  ", " ", 1).strip(), ""]
    rows, total_rate = stream_rows(current, previous)
    if current.gone:
        lines.append(f"stream {current.gone}: gone (finished and deleted, or never existed)")
    elif rows:
        lines.append(table(STREAM_HEADERS, rows))
    else:
        lines.append("no streams")
    lines += ["", *summary(current, total_rate if previous else None), ""]
    if current.nodes:
        lines.append(table(NODE_HEADERS, node_rows(current, previous)))
    else:
        lines.append("no live nodes")
    text = "\n".join(clip(line, width) or "" for line in "\n".join(lines).split("\n"))
    return text + "\n"


def watch(
    api: Any,
    out: TextIO,
    stream_id: str | None = None,
    interval: float = 1.0,
    frames: int | None = None,
    title: str = "",
    tty: bool | None = None,
    width: int = WIDTH,
) -> int:
    """Draw frames until ``frames`` were drawn, the watched stream is gone, or Ctrl-C.

    The first frame waits one interval, so that its rates are measured, not guessed.
    """
    tty = bool(getattr(out, "isatty", lambda: False)()) if tty is None else tty
    previous = take_sample(api, stream_id)
    if previous.gone:
        raise StreamNotFound(f"no stream {stream_id!r}")
    drawn = 0
    if tty:
        out.write(HIDE_CURSOR)
    try:
        while frames is None or drawn < frames:
            time.sleep(max(0.0, previous.time + interval - time.time()))
            current = take_sample(api, stream_id)
            frame = render(current, previous, title, width)
            if tty:
                out.write(CLEAR + frame)
            else:
                out.write(("\n" if drawn else "") + frame)
            out.flush()
            drawn += 1
            previous = current
            if current.gone:
                break
    except KeyboardInterrupt:
        pass
    finally:
        if tty:
            out.write(SHOW_CURSOR)
            out.flush()
    return 0
