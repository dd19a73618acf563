"""``impetus watch``: a live view of streams and nodes, redrawn every second.

Each frame comes from two samples of the API (``GET /streams`` or one stream, and
``GET /nodes``): counters the queue keeps anyway (no scans), so watching costs two
requests a second. Rates are differences between samples: *done/s* counts jobs that
finished (``finished`` + ``acked``, both only ever grow together), *jobs/s* of a node is
its heartbeat's ``jobs_done`` difference (heartbeats come every few seconds, so node
rates are coarse). On a terminal the frame is redrawn in place with ANSI escapes;
otherwise frames are printed one after another.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, TextIO

from impetus.cli.textfmt import age, table
from impetus.core.exceptions import ApiError, StreamNotFound

CLEAR = "\x1b[H\x1b[2J"
HIDE_CURSOR = "\x1b[?25l"
SHOW_CURSOR = "\x1b[?25h"
BAR_WIDTH = 20


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
    counts = stream["counts"]
    return int(counts["finished"]) + int(counts["acked"])


def rate(now: float, before: float | None, dt: float) -> float | None:
    if before is None or dt <= 0:
        return None
    return max(0.0, (now - before) / dt)


def bar(fraction: float, width: int = BAR_WIDTH) -> str:
    filled = round(max(0.0, min(1.0, fraction)) * width)
    return "[" + "#" * filled + "." * (width - filled) + f"] {fraction * 100:3.0f}%"


def _fmt_rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def stream_rows(current: Sample, previous: Sample | None) -> tuple[list[list[Any]], float]:
    dt = current.time - previous.time if previous else 0.0
    before = {s["id"]: done(s) for s in previous.streams} if previous else {}
    rows, total = [], 0.0
    for s in current.streams:
        c = s["counts"]
        r = rate(done(s), before.get(s["id"]), dt)
        total += r or 0.0
        forked = int(c["forked"])
        progress = bar(done(s) / forked) if forked else "-"
        rows.append(
            [
                s["id"], c["waiting"], c["delayed"], c["running"], done(s), _fmt_rate(r),
                c["errors"], forked, progress,
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
                n["node"], n.get("state"),
                f"{n.get('workers_busy') or 0}/{n.get('workers_total') or 0}",
                n.get("jobs_done"), _fmt_rate(r), len(n.get("streams") or []),
                age(n.get("heartbeat"), current.time),
            ]
        )  # fmt: skip
    return rows


def render(current: Sample, previous: Sample | None, title: str = "") -> str:
    """One frame as plain text."""
    stamp = datetime.fromtimestamp(current.time, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    lines = [f"impetus watch  {title}  {stamp}".replace("  ", " ", 1).strip(), ""]
    rows, total_rate = stream_rows(current, previous)
    if current.gone:
        lines.append(f"stream {current.gone}: gone (finished and deleted, or never existed)")
    elif rows:
        headers = ["STREAM", "BACKLOG", "DELAYED", "RUNNING", "DONE", "DONE/S", "ERRORS"]
        lines.append(table([*headers, "FORKED", "PROGRESS"], rows))
    else:
        lines.append("no streams")
    backlog = sum(
        int(s["counts"]["waiting"]) + int(s["counts"]["delayed"]) for s in current.streams
    )
    running = sum(int(s["counts"]["running"]) for s in current.streams)
    errors = sum(int(s["counts"]["errors"]) for s in current.streams)
    busy = sum(int(n.get("workers_busy") or 0) for n in current.nodes)
    workers = sum(int(n.get("workers_total") or 0) for n in current.nodes)
    done_rate = _fmt_rate(total_rate if previous else None)
    summary = (
        f"backlog {backlog} · running {running} · done/s {done_rate} · errors {errors}"
        f" · nodes {len(current.nodes)} · workers {busy}/{workers} busy"
    )
    lines += ["", summary, ""]
    if current.nodes:
        headers = ["NODE", "STATE", "BUSY/WORKERS", "JOBS", "JOBS/S", "STREAMS", "BEAT"]
        lines.append(table(headers, node_rows(current, previous)))
    else:
        lines.append("no live nodes")
    return "\n".join(lines) + "\n"


def watch(
    api: Any,
    out: TextIO,
    stream_id: str | None = None,
    interval: float = 1.0,
    frames: int | None = None,
    title: str = "",
    tty: bool | None = None,
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
            frame = render(current, previous, title)
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
