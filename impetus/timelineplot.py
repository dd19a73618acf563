"""Drawing a :class:`impetus.timeline.Timeline` as a PNG with matplotlib.

It draws on a ``Figure`` with the Agg canvas directly, not through pyplot: choosing a
backend is global, and a plot call must not change the one a notebook or program uses.
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from impetus.timeline import Bar, Timeline

# (label, colour, bar height, start field, end field), drawn in this order (ran on top)
SEGMENTS = (
    ("waited (fork to claim)", "#d9d9d9", 0.3, "forked", "claimed"),
    ("claimed, not started", "#c6dbef", 0.3, "claimed", "started"),
    ("returned (finish to ack)", "#a1d99b", 0.3, "finished", "acked"),
    ("ran", "#2171b5", 0.7, "started", "finished"),
)
ERROR_COLOUR = "#cb181d"
DPI = 100


def _spans(bars: list[Bar], start: str, end: str) -> list[tuple[float, float]]:
    spans = []
    for bar in bars:
        a, b = getattr(bar, start), getattr(bar, end)
        if a is not None and b is not None and b >= a:
            spans.append((a, b - a))
    return spans


def draw(timeline: Timeline, path: str | Path) -> Path:
    """Write the timeline as a PNG at ``path``: one row per node and worker slot."""
    rows = timeline.rows
    height = 2.2 + 0.35 * max(1, len(rows))  # the legend's and labels' room, then rows
    # constrained layout leaves room for the legend outside the axes
    figure = Figure(figsize=(10, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for y, row in enumerate(rows):
        on_row = [b for b in timeline.bars if b.row == row]
        for label, colour, size, start, end in SEGMENTS:
            ran = label == "ran"
            for error in (False, True) if ran else (None,):
                chosen = on_row if error is None else [b for b in on_row if b.error == error]
                spans = _spans(chosen, start, end)
                if spans:
                    fill = ERROR_COLOUR if error else colour
                    # a white edge on runs: back-to-back jobs of a worker stay apart
                    edge = {"edgecolor": "white", "linewidth": 0.6} if ran else {"linewidth": 0}
                    axes.broken_barh(spans, (y - size / 2, size), facecolors=fill, **edge)
        failed = [b.finished for b in on_row if b.error and b.finished is not None]
        axes.plot(failed, [y] * len(failed), "x", color="black", markersize=7, zorder=3)
    axes.set_yticks(range(len(rows)), [r.label for r in rows])
    axes.set_ylim(len(rows) - 0.5, -0.5)  # first row on top
    axes.set_xlabel("seconds from the stream's first fork")
    axes.set_xlim(left=0)
    axes.grid(axis="x", alpha=0.3)
    axes.set_title(_title(timeline))
    handles = [Patch(color=colour, label=label) for label, colour, *_ in SEGMENTS]
    handles.append(Patch(color=ERROR_COLOUR, label="ran, error (x at its end)"))
    figure.legend(handles=handles, loc="outside lower center", ncol=3, fontsize="small")
    target = Path(path)
    figure.savefig(target, format="png")
    return target


def _title(timeline: Timeline) -> str:
    jobs = len(timeline.bars)
    text = f"{timeline.title}: {jobs} jobs on {len(timeline.rows)} workers"
    if timeline.errors:
        text += f", {timeline.errors} errors"
    if timeline.unplaced:
        text += f" ({timeline.unplaced} not run)"
    return text
