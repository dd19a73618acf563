"""How the simulator bills a node that leaves (impetus.scaler.sim.policies.Impetus):
terminated instances wait in the termination lifecycle hook until their agent completes
the action, billed meanwhile and out of the policy's view."""

from __future__ import annotations

from impetus.scaler.model import GroupDecision
from impetus.scaler.sim import policies
from impetus.scaler.sim.fleet import Fleet
from impetus.scaler.sim.traces import Trace
from node_agent import scaling


def ready_fleet(nodes: int) -> tuple[Fleet, policies.Impetus]:
    fleet = Fleet(Trace("empty", (), 600.0, 1), seed=7)
    policy = policies.Impetus(fleet)
    fleet.launch(nodes)
    fleet.t = 100.0
    for node in fleet.alive():
        node.ready_at = node.in_service_at = node.idle_since = 10.0
    return fleet, policy


def decision(**kw) -> GroupDecision:
    return GroupDecision(node_class="default", group="sim", previous=2, needed=0, **kw)


def test_a_retired_node_is_billed_until_its_agent_completes_the_hook():
    fleet, policy = ready_fleet(2)
    leaving, staying = fleet.alive()
    policy.apply(fleet, decision(desired=1, retire=(leaving.id,)))
    assert [n.id for n in policy.inputs(fleet).nodes] == [staying.id]  # out of view at once
    assert leaving.terminated is None and leaving.state != "running"  # claims nothing more
    fleet.t += policy.LEAVE_SECONDS
    policy.act(fleet)
    assert leaving.terminated == 100.0 + policy.LEAVE_SECONDS
    assert staying.terminated is None and fleet.actions[-1].direction == "down"


def test_a_drained_node_waits_in_the_hook_for_its_agents_next_lifecycle_check():
    assert policies.Impetus.LIFECYCLE_POLL == scaling.LIFECYCLE_POLL
    fleet, policy = ready_fleet(1)
    (node,) = fleet.alive()
    node.state = "drained"
    fleet.t = 101.0  # just past a check (10 + 15 k s)
    policy.apply(fleet, decision(desired=0, terminate=(node.id,)))
    fleet.t = 104.0
    policy.act(fleet)
    assert node.terminated is None  # checks at 10 + 15 k s: the next one is 115
    fleet.t = 115.0
    policy.act(fleet)
    assert node.terminated == 115.0
