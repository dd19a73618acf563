"""The policy's parameters and their defaults (impetus.scaler.policy, impetus.scaler.idle).

Each default says why it is what it is; docs/autoscaling.md has the measurements.
"""

from __future__ import annotations

from dataclasses import dataclass

# None: a node may leave once idle for IDLE_BOOT_FRACTION of its group's boot estimate (about
# what a replacement would take to arrive); a number overrides it (IMPETUS_DFS_IDLE_SECONDS).
# Half a boot, not a whole one: the simulator bills less on every trace at the same p95
# (docs/autoscaling.md, "The idle rule").
IDLE_FLOOR: float | None = None
IDLE_BOOT_FRACTION = 0.5
# The nodes in service also start the jobs that arrive while a new node would boot: only
# this share of what they could start in a boot counts toward the backlog (the rest is
# left for arrivals). 1 assumed no arrivals and kept one node on a steady stream that
# needed two (docs/autoscaling.md, "Tuning").
REACH_SHARE = 0.5
# A stream that has work keeps ``throughput * d`` worker slots busy on average (Little's law
# on its measured throughput and job time). Scale-in keeps enough nodes that those slots are
# at most this share of the fleet's: with random arrivals a fleet run hotter than ~80 % makes
# queues that outlast the target latency (docs/autoscaling.md, "Idle capacity").
BUSY_SHARE = 0.75
# EC2 bills per second after a 60-second minimum
# (https://aws.amazon.com/ec2/pricing/on-demand/): a node that ran less is billed 60 s.
MIN_BILLED = 60.0
SCALE_IN_TICKS = 3
# Warm capacity (impetus.scaler.warm) covers the largest load of this many seconds back: two
# minutes spans the 30-60 s gaps between the batches of a pipeline's stages.
WARM_WINDOW: float | None = 120.0
# A node silent this long is not trusted to be idle (only for items without `expires`).
STALE_HEARTBEAT = 60.0
# An in-service instance without a first heartbeat this long after DFS first saw it did
# not boot (a failed download, a broken AMI, an agent that cannot start): it is
# terminated instead of billed forever. AL2023 boots and installs the node package in 1-3
# minutes; 10 leaves room for a slow dnf mirror (docs/autoscaling.md).
BOOT_DEADLINE = 600.0
FAILURE_WINDOW = 3600.0  # failed boots are counted over this window (the alarm's metric)


@dataclass(frozen=True)
class PolicyParams:
    idle_floor: float | None = IDLE_FLOOR  # seconds idle before a node may leave (None: boot/2)
    min_billed: float = MIN_BILLED  # ... and it has run at least its billing minimum
    scale_in_ticks: int = SCALE_IN_TICKS  # consecutive ticks that must agree on a scale-in
    stale_heartbeat: float = STALE_HEARTBEAT
    cancel_booting: bool = True  # terminate surplus nodes still booting at once
    boot_deadline: float = BOOT_DEADLINE  # seconds to a first heartbeat, else a failed boot
    reach_share: float = REACH_SHARE  # share of the in-service reach left for the backlog
    busy_share: float = BUSY_SHARE  # scale-in keeps the measured busy slots at most this share
    consolidate: bool = True  # drain the least-busy node when capacity stays idle (see idle.py)
    retire_idle: bool = True  # terminate idle victims at once (False: drain, then terminate)
    # idle nodes beyond those that start the last window's peak load leave once billed
    # (None: every idle node waits for the idle threshold)
    warm_window: float | None = WARM_WINDOW
