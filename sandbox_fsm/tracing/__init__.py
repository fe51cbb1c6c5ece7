"""OpenTelemetry traces derived from the log (`sbx trace export`).

    from sandbox_fsm.tracing import SandboxTrace, sandbox_spans
    from sandbox_fsm.tracing.export import Sender, export_all, follow
"""

from .spans import SandboxTrace, sandbox_spans

__all__ = ["SandboxTrace", "sandbox_spans"]
