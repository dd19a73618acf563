"""Arrival traces for the simulator: (arrival second, run seconds) per job, seeded.

- ``steady``: Poisson arrivals at 1.5 jobs/s for an hour.
- ``bursty``: four bursts an hour, each a program forking 3-4 batches of 200-500 jobs
  30-60 s apart (a pipeline whose stages fork as results come back; a batch is one
  buffered fork call, arriving within 1 s); silence between.
- ``diurnal``: a compressed day: Poisson arrivals whose rate rises from 0 to 4 jobs/s
  and falls back over the hour.

Job run times are log-normal with a mean of 2 s (sigma 0.5) in every trace.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

TRACES = ("steady", "bursty", "diurnal")
HOUR = 3600.0
MEAN_JOB_SECONDS = 2.0
_SIGMA = 0.5


@dataclass(frozen=True)
class Trace:
    name: str
    jobs: tuple[tuple[float, float], ...]  # (arrival s, run s), sorted by arrival
    length: float  # seconds of arrivals
    bursts: int  # separate bursts of work (for "reversals per burst")


def _duration(rng: random.Random) -> float:
    mu = math.log(MEAN_JOB_SECONDS) - _SIGMA**2 / 2
    return rng.lognormvariate(mu, _SIGMA)


def _poisson(rng: random.Random, rate_at, length: float, peak: float) -> list[float]:
    """Arrival times of a Poisson process with rate ``rate_at(t)`` <= ``peak`` (thinning)."""
    t, out = 0.0, []
    while True:
        t += rng.expovariate(peak)
        if t >= length:
            return out
        if rng.random() * peak <= rate_at(t):
            out.append(t)


def steady(rng: random.Random) -> Trace:
    arrivals = _poisson(rng, lambda t: 1.5, HOUR, 1.5)
    return Trace("steady", tuple((a, _duration(rng)) for a in arrivals), HOUR, 1)


def bursty(rng: random.Random) -> Trace:
    arrivals: list[float] = []
    starts = (300.0, 1200.0, 2100.0, 3000.0)
    for start in starts:
        t = start
        for _ in range(rng.randint(3, 4)):
            size = rng.randint(200, 500)
            arrivals += [t + rng.uniform(0, 1) for _ in range(size)]  # one buffered fork batch
            t += rng.uniform(30, 60)
    arrivals.sort()
    return Trace("bursty", tuple((a, _duration(rng)) for a in arrivals), HOUR, len(starts))


def diurnal(rng: random.Random) -> Trace:
    def rate(t: float) -> float:
        return 2.0 * (1 - math.cos(2 * math.pi * t / HOUR))

    arrivals = _poisson(rng, rate, HOUR, 4.0)
    return Trace("diurnal", tuple((a, _duration(rng)) for a in arrivals), HOUR, 1)


def make(name: str, seed: int = 1) -> Trace:
    if name not in TRACES:
        raise ValueError(f"unknown trace {name!r}: one of {', '.join(TRACES)}")
    return {"steady": steady, "bursty": bursty, "diurnal": diurnal}[name](random.Random(seed))
