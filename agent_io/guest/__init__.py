"""Reference guest agent: a real Kata-v1 AgentService + Health gRPC server.

Run it with ``python -m agent_io.guest --listen unix:PATH --guest-dir DIR --shared-dir DIR``.
"""
