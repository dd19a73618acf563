"""How long a client waits between two results polls.

Every poll is one API request (on AWS: API Gateway + Lambda + a Query), so a client
should ask often while results flow and rarely while none come. :class:`Pacer` answers
"how long until the next poll" from what the last one brought:

* a full page, or one the API says it cut short (``more``): at once (more are waiting);
* some results: the same wait again (it is the pace at which results arrive);
* nothing: the wait grows by ``growth``, from ``low`` up to ``high``.

A client waiting on slow jobs thus sends at most one request per ``high`` seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

LOW = 0.005  # seconds: the first wait
HIGH = 0.5  # seconds: the longest wait while jobs are out
GROWTH = 1.5


@dataclass
class Pacer:
    low: float = LOW
    high: float = HIGH
    growth: float = GROWTH
    wait: float = 0.0

    def reset(self) -> None:
        """New work went out: start again from ``low``."""
        self.wait = 0.0

    def after(self, got: int, page: int, more: bool = False) -> float:
        """The wait before the next poll, after one that returned ``got`` of at most
        ``page`` (``more``: the API left finished jobs out of it)."""
        if got >= page or more:
            self.wait = 0.0
        elif got:
            self.wait = max(self.low, self.wait)
        else:
            self.wait = min(self.high, max(self.low, self.wait * self.growth))
        return self.wait
