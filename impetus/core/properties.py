"""Stream properties Impetus itself understands: the single source of their names,
types, defaults and meaning (the configuration reference is generated from this).

Any other property is kept on the stream and usable by node filters
(``impetus-node --properties k:v``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from impetus.core.exceptions import InvalidRequest


@dataclass(frozen=True)
class Property:
    name: str
    type: type
    default: Any
    minimum: float | None
    maximum: float | None
    help: str
    pattern: re.Pattern[str] | None = None
    rule: str | None = None  # the pattern in words, for the error message

    def check(self, value: Any) -> Any:
        if self.type is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, self.type) or isinstance(value, bool) is not (self.type is bool):
            raise InvalidRequest(f"property {self.name!r} must be {self.type.__name__}")
        if self.minimum is not None and value < self.minimum:
            raise InvalidRequest(f"property {self.name!r} must be >= {self.minimum}")
        if self.maximum is not None and value > self.maximum:
            raise InvalidRequest(f"property {self.name!r} must be <= {self.maximum}")
        if self.pattern is not None and not self.pattern.match(value):
            rule = self.rule or f"match {self.pattern.pattern}"
            raise InvalidRequest(f"property {self.name!r} must {rule}")
        return value


_DAY = 86400.0
# Queue shards of one stream: a claim Queries a few of them (impetus.storage.jobqueue.claim),
# collection, reaping and the recount visit each (see docs/architecture.md, "Queue
# shards"). 256 carry ~200,000 jobs/s at half of every partition's limit (the rule in
# impetus.storage.shardrule); 100,000 jobs/s take 127.
MAX_SHARDS = 256
# A stream's name is shown next to its id in a terminal: short enough to fit a line.
MAX_NAME = 100

PROPERTIES: dict[str, Property] = {
    p.name: p
    for p in (
        Property(
            "name",
            str,
            None,
            None,
            None,
            "What the stream is called in `impetus streams`, `watch`, `jobs` and `nodes`: "
            f"1-{MAX_NAME} printable characters. Default (set by the client when it "
            "creates the stream without an id): the program's file name for `Impetus` (the "
            "class name without a script); for `Executor` the first function it runs "
            "(`executor` until then: its stream exists before any function is submitted).",
            # \Z, not $: $ also matches before a trailing newline.
            re.compile(rf"^[^\x00-\x1f\x7f-\x9f]{{1,{MAX_NAME}}}\Z"),
            f"be 1-{MAX_NAME} printable characters",
        ),
        Property("mpps", int, 2, 1, 256, "Max worker processes per stream on one node."),
        Property("frequency", float, 0.0, 0, 3600, "Seconds a worker pauses between jobs."),
        Property("idle_timeout", float, 15.0, 0.1, _DAY, "Seconds an idle worker lives on."),
        Property(
            "time_limit",
            float,
            None,
            0.1,
            7 * _DAY,
            "Seconds a job may run: its worker (and every process it started) is then "
            "killed and the job ends as error `timeout: ...`, run again like a crash "
            "while `max_attempts` last (none: no limit).",
        ),
        Property(
            "shards",
            int,
            1,
            1,
            MAX_SHARDS,
            "Queue partitions of the stream (hot-key relief); only grows. Default: from "
            "`rate` if given, else 1; DFS grows it from the stream's arrival rate "
            "(docs/architecture.md, queue shards).",
        ),
        Property("lease", float, 60.0, 5, _DAY, "Seconds a claim lasts without heartbeat."),
        Property(
            "max_attempts", int, 3, 1, 100, "Runs lost to a dead worker or node before a job fails."
        ),
        Property("retries", int, 0, 0, 100, "Re-runs of a job whose function raised."),
        Property(
            "retry_backoff", float, 1.0, 0, 3600, "Base seconds of exponential retry backoff."
        ),
        Property("keep", bool, False, None, None, "Keep the stream after the client ends."),
        Property(
            "ttl",
            float,
            _DAY,
            1,
            30 * _DAY,
            "Seconds an unkept stream outlives its client's last activity (its collector "
            "lease, renewed every 10 s while the client runs): then DFS deletes it with "
            "everything it holds, so a killed client leaves nothing behind that costs.",
        ),
        # Autoscaling (DFS, see impetus/scaler/policy.py and docs/autoscaling.md).
        Property(
            "target_latency",
            float,
            30.0,
            1,
            _DAY,
            "Seconds a due job should wait at most: DFS sizes the fleet to start the "
            "stream's backlog within it.",
        ),
        Property("min_nodes", int, 0, 0, 10000, "Nodes DFS keeps for the stream while it exists."),
        Property(
            "max_nodes", int, None, 0, 10000, "Most nodes DFS runs for the stream (none: no cap)."
        ),
        Property(
            "node_class",
            str,
            "default",
            None,
            None,
            "Which node group (Auto Scaling group) serves the stream.",
            re.compile(r"^[A-Za-z0-9_.-]{1,64}$"),
        ),
        Property(
            "rate",
            float,
            None,
            0.001,
            1e6,
            "Fleet-wide jobs/s the stream may be run at (none: no cap): DFS runs no "
            "more nodes than this rate can keep busy.",
        ),
    )
}


# Names that meant something else once: refused, so that an old program fails loudly
# instead of setting a custom property nobody reads.
RENAMED = {
    "timeout": "'timeout' was renamed 'idle_timeout' (seconds an idle worker lives on); "
    "for a limit on a job's run time use 'time_limit'",
}


def validate(properties: dict[str, Any]) -> dict[str, Any]:
    """Check known properties' types and ranges; unknown ones pass through unchanged."""
    for name in properties:
        if name in RENAMED:
            raise InvalidRequest(f"property {RENAMED[name]}")
    checked = dict(properties)
    for name, value in properties.items():
        if name in PROPERTIES and value is not None:
            checked[name] = PROPERTIES[name].check(value)
    low, high = checked.get("min_nodes"), checked.get("max_nodes")
    if low is not None and high is not None and low > high:
        raise InvalidRequest("property 'min_nodes' must be <= 'max_nodes'")
    return checked


def get(properties: dict[str, Any], name: str) -> Any:
    """A property's value, or its default."""
    value = properties.get(name)
    return PROPERTIES[name].default if value is None else value
