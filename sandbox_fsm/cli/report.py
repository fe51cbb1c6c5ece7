"""`sbx report`: the incident report as one HTML file (sandbox_fsm.report).

Read-only over the log like `sbx audit`; the page's libraries (Jinja2) are imported only
when the command runs, so other commands do not pay for them.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..errors import InvalidRequest, NotFound
from ..repository import STREAM_PREFIX
from . import context
from .history import read_anchor

if TYPE_CHECKING:
    from ..repository import Repository


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("report", parents=[common],
                       help="an HTML incident report: timeline, state path, ledger at any "
                       "position, exits, verification (one self-contained file)")
    p.add_argument("ids", nargs="*", metavar="SANDBOX", type=context.sandbox_id,
                   help="sandboxes to show (default: every sandbox in the log)")
    p.add_argument("-o", "--output", required=True, metavar="FILE",
                   help="where to write the page (- for stdout)")
    p.add_argument("--anchor", metavar="FILE",
                   help="a `sbx checkpoint` output to verify the log against")
    p.set_defaults(func=cmd_report)


def sandboxes(rt: Repository | None, ids: Sequence[str], args: argparse.Namespace
              ) -> list[tuple[str, list[Any]]]:
    """(id, events) of the named sandboxes, or of all; NotFound before anything is written."""
    if rt is None:
        raise NotFound(f"no event log at {context.events_path(args)!r}")
    if not ids:
        ids = [s[len(STREAM_PREFIX):] for s in rt.store.streams(STREAM_PREFIX)]
        if not ids:
            raise NotFound(f"no sandbox in the log at {context.events_path(args)!r}")
    return [(sid, rt.events(sid)) for sid in dict.fromkeys(ids)]


def _check_output(path: str) -> None:
    if path == "-":
        return
    if os.path.isdir(path):
        raise InvalidRequest(f"-o {path!r} is a directory; give a file name")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise InvalidRequest(f"-o {path!r}: directory {parent!r} does not exist")


def write_output(path: str, text: str) -> None:
    """Write the whole page or nothing: a temporary file renamed over the target."""
    if path == "-":
        sys.stdout.write(text)
        return
    parent = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=parent, prefix=".sbx-report-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def cmd_report(args: argparse.Namespace) -> int:
    from ..report import Verification, render_report, sandbox_view

    _check_output(args.output)
    anchor = read_anchor(args.anchor) if args.anchor else None
    with context.reader(args) as rt:
        chosen = sandboxes(rt, args.ids, args)
        assert rt is not None
        verification = Verification.of(rt.store.verify(anchor), anchor)
        views = [sandbox_view(events, sid) for sid, events in chosen]
    write_output(args.output, render_report(views, verification,
                                            log_path=context.events_path(args)))
    if args.output != "-":
        print(f"wrote {args.output}: {len(views)} sandbox{'es' if len(views) != 1 else ''}, "
              f"{sum(v['count'] for v in views)} events; hash chain "
              + (f"ok up to position {verification.ok_up_to}" if verification.ok else
                 f"BROKEN at position {verification.first_bad_position}"), file=sys.stderr)
    return 0 if verification.ok else 1     # as `sbx verify`: the page still shows it
