"""The incident report: one self-contained HTML page per set of sandboxes (`sbx report`).

    from sandbox_fsm.report import Verification, render_report, sandbox_view
"""

from .build import Verification, render_report, sandbox_view

__all__ = ["Verification", "render_report", "sandbox_view"]
