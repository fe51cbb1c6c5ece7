"""The generated wire messages, re-exported so callers never import ``protos`` directly.

``sandbox_fsm`` builds requests through here (``from agent_io import messages as m;
m.agent.Storage(...)``), keeping the dependency direction sandbox_fsm -> agent_io -> protos.
"""

from google.protobuf.empty_pb2 import Empty

from protos import agent_pb2 as agent
from protos import health_pb2 as health
from protos import oci_pb2 as oci
from protos import types_pb2 as types

__all__ = ["Empty", "agent", "health", "oci", "types"]
