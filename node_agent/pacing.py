"""Adaptive polling: ask again soon while work is flowing, back off while it is not.

A node polls in two places: the stream listing (which streams have work) and the claims
of a tracked stream. At a fixed interval a sequential client waits up to that interval
for every job, and a faster fixed interval costs requests while idle. :class:`Backoff`
starts at ``low`` after activity and grows by ``growth`` on each idle poll up to
``high``, so an idle node costs what it did at the fixed interval (one listing per
``poll_interval``; on AWS one Scan of the small streams table per second per node, about
2.6 M read requests and ~$0.33 a month), while a busy one reacts within milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass

LOW = 0.01  # seconds: the first wait after activity
GROWTH = 1.5
HOT_SECONDS = 3.0  # activity this recent keeps the listing on the fast schedule
MAX_WAIT = 0.2  # longest block in the agent's loop: bounds how late a stop request is seen


@dataclass
class Backoff:
    """Waits from ``low`` growing to ``high`` while idle, back to ``low`` on activity."""

    high: float
    low: float = LOW
    growth: float = GROWTH
    current: float = LOW

    def active(self) -> None:
        """Work was seen: the next wait is short again."""
        self.current = self.low

    def next_wait(self) -> float:
        """The wait before the next idle poll; each call lengthens the following one."""
        wait = min(self.high, self.current)
        self.current = min(self.high, max(self.low, self.current * self.growth))
        return wait
