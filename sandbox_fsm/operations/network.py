"""The sandbox network step of start: interfaces, routes and ARP neighbours into the guest.

The seed's order: one UpdateInterface per interface, UpdateRoutes, AddARPNeighbors (an
agent answering UNIMPLEMENTED for neighbours is a warning: the client handles it). The v1
protocol cannot remove an interface, so there is no compensation: the guest's network
dies with the guest, which `start_vm.undo` ends.
"""

from __future__ import annotations

from agent_io import convert

from ..names import Ev
from ..saga import Step
from ..spec import network_entries
from .context import OpContext


def _plan(ctx: OpContext) -> dict:
    return {"network": ctx.state.config.get("network") or {}}


def _setup(ctx: OpContext, args: dict) -> dict:
    interfaces, routes, neighbors = network_entries(args["network"])
    agent = ctx.agent()
    agent.update_interfaces([convert.interface_to_proto(i) for i in interfaces])
    if routes:
        agent.update_routes([convert.route_to_proto(r) for r in routes])
    if neighbors:
        agent.add_arp_neighbors([convert.arp_neighbor_to_proto(n) for n in neighbors])
    return {"interfaces": [i.name for i in interfaces], "routes": len(routes),
            "neighbors": len(neighbors)}


SETUP_NETWORK = Step("setup_network", Ev.NETWORK_CONFIGURED, _setup, None, _plan)

__all__ = ["SETUP_NETWORK"]
