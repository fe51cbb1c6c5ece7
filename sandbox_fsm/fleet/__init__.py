"""A fleet's history in one place: every host's log shipped to a NATS JetStream stream,
read back, folded and verified there (see docs/fleet.md).

Import cost: nats-py is loaded with this package; the CLI imports it only for the
`ship` and `fleet` verbs.
"""

from .connect import NatsOptions, redact
from .errors import (
    FleetAuthFailed,
    FleetStreamMissing,
    FleetUnreachable,
    FleetVerifyFailed,
    LocalLogMismatch,
    StreamConflict,
)
from .hostid import resolve_host_id, save_host_id, stored_host_id
from .reader import Messages, read_messages
from .shipper import Shipper, ShipStatus
from .verify import Finding, HostReport, verify_fleet, verify_host
from .views import fleet_list, host_events, sandbox_streams
from .wire import Shipped

__all__ = [
    "Finding", "FleetAuthFailed", "FleetStreamMissing", "FleetUnreachable",
    "FleetVerifyFailed", "HostReport", "LocalLogMismatch", "Messages", "NatsOptions",
    "ShipStatus", "Shipped", "Shipper", "StreamConflict", "fleet_list", "host_events",
    "read_messages", "redact", "resolve_host_id", "sandbox_streams", "save_host_id",
    "stored_host_id", "verify_fleet", "verify_host",
]
