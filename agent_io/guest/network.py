"""Network state the host pushes (interfaces, routes, ARP neighbours), kept in memory."""

from __future__ import annotations

import ipaddress
import threading

from agent_io import messages as m


class NetworkError(ValueError):
    """An interface, route or neighbour whose addresses do not parse."""


def _check_ip(value: str, where: str) -> None:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise NetworkError(f"{where}: {value!r} is not an IP address") from None


class NetworkState:
    """Interfaces by name, the route table, ARP neighbours: validated, then recorded."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._interfaces: dict[str, m.types.Interface] = {}
        self._routes: list[m.types.Route] = []
        self._neighbors: list[m.types.ARPNeighbor] = []

    def update_interface(self, iface: m.types.Interface) -> m.types.Interface:
        where = f"UpdateInterface {iface.name!r}"
        if not iface.name:
            raise NetworkError(f"{where}: interface has no name")
        for addr in iface.IPAddresses:
            _check_ip(addr.address, where)
        with self._lock:
            self._interfaces[iface.name] = iface
        return iface

    def interfaces(self) -> list[m.types.Interface]:
        with self._lock:
            return list(self._interfaces.values())

    def update_routes(self, routes: list[m.types.Route]) -> list[m.types.Route]:
        """Replace the route table, as the v1 agent does."""
        for r in routes:
            where = f"UpdateRoutes dest {r.dest!r}"
            if r.dest and r.dest != "default":
                try:
                    ipaddress.ip_network(r.dest, strict=False)
                except ValueError:
                    raise NetworkError(f"{where}: {r.dest!r} is not a network") from None
            if r.gateway:
                _check_ip(r.gateway, where)
        with self._lock:
            self._routes = list(routes)
            return list(self._routes)

    def routes(self) -> list[m.types.Route]:
        with self._lock:
            return list(self._routes)

    def add_neighbors(self, neighbors: list[m.types.ARPNeighbor]) -> None:
        for n in neighbors:
            _check_ip(n.toIPAddress.address, f"AddARPNeighbors device {n.device!r}")
        with self._lock:
            self._neighbors.extend(neighbors)

    def neighbors(self) -> list[m.types.ARPNeighbor]:
        with self._lock:
            return list(self._neighbors)
