"""The HTML report of a 10,000-event sandbox: generation time, size, and open time.

One real lifecycle (process driver, a real guest agent) is recorded: a container create
that fails and rolls back (fault plan), a running container, then pause and resume
operations (one step each) until the sandbox has about `--events` events. Measured in one run:

- generation: `sandbox_view` + `render_report` (what `sbx report` does after reading),
  against the anchor `audit.timeline` + the `sbx audit` table of the same events;
- opening: Debian Chromium (headless, Playwright) loading the file until the page has
  drawn the timeline and the ledger, against the anchor of the same browser loading the
  `sbx audit` table as a plain <pre> page; then one zoom redraw and one position pick.

Usage: python bench/report_bench.py [--events N] [--repeat R] [--save FILE]
"""

from __future__ import annotations

import argparse
import dataclasses
import html
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from playwright.sync_api import Page, sync_playwright  # noqa: E402

from agent_io.faults import ENV_VAR  # noqa: E402
from eventstore import EventStore  # noqa: E402
from sandbox_fsm import ContainerConfig, Runtime, RuntimeConfig, SandboxConfig, audit  # noqa: E402
from sandbox_fsm.cli.history import timeline_table  # noqa: E402
from sandbox_fsm.errors import OperationFailed  # noqa: E402
from sandbox_fsm.report import Verification, render_report, sandbox_view  # noqa: E402
from sandbox_fsm.repository import stream_of  # noqa: E402

SID, CID = "big", "web"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]


def record(work: Path, events: int) -> None:
    base = RuntimeConfig.default()
    config = dataclasses.replace(base, hypervisor=dataclasses.replace(base.hypervisor,
                                                                      driver="process"))
    os.environ[ENV_VAR] = json.dumps([{"rpc": "CreateContainer", "nth": 1,
                                       "action": "error", "code": "INTERNAL"}])
    try:
        with Runtime.open(work / "state", work / "run", config, durable=False) as rt:
            rt.create_sandbox(SandboxConfig(id=SID))
            rt.start_sandbox(SID)
            container = ContainerConfig(id=CID, args=("sleep", "600"))
            try:
                rt.create_container(SID, container)
            except OperationFailed:
                pass
            rt.create_container(SID, container)
            rt.start_container(SID, CID)
            while rt.state(SID).version < events - 30:
                rt.pause_container(SID, CID)
                rt.resume_container(SID, CID)
            rt.stop_container(SID, CID)
            rt.delete_container(SID, CID)
            rt.stop_sandbox(SID)
            rt.delete_sandbox(SID)
    finally:
        del os.environ[ENV_VAR]


def best(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def open_time(page: Page, path: Path, ready: str) -> float:
    start = time.perf_counter()
    page.goto(path.as_uri())
    page.wait_for_selector(ready, state="attached")
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--save", metavar="FILE", help="keep a copy of the report here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sbx-report-bench-") as tmp:
        work = Path(tmp)
        t = time.perf_counter()
        record(work, args.events)
        print(f"recorded a real lifecycle in {time.perf_counter() - t:.1f} s")
        with EventStore.open(work / "state" / "events", readonly=True) as store:
            events = list(store.read_stream(stream_of(SID)))
            verification = Verification.of(store.verify(), None)
        ops = sum(e.type == "OperationStarted" for e in events)
        print(f"sandbox {SID!r}: {len(events)} events, {ops} operations")

        def generate() -> str:
            return render_report([sandbox_view(events, SID)], verification)

        def anchor() -> str:
            return timeline_table(audit.timeline(events), color=False)

        gen, base = best(generate, args.repeat), best(anchor, args.repeat)
        page_html, table = generate(), anchor()
        report, plain = work / "report.html", work / "audit.html"
        report.write_text(page_html)
        if args.save:
            Path(args.save).write_text(page_html)
        plain.write_text(f"<!doctype html><meta charset=utf-8><pre id=t>{html.escape(table)}"
                         "</pre><p id=done>")
        print(f"generate: report {gen * 1000:.0f} ms vs `sbx audit` table "
              f"{base * 1000:.0f} ms (ratio {gen / base:.2f}); report "
              f"{report.stat().st_size / 1e6:.2f} MB vs table {plain.stat().st_size / 1e6:.2f} MB")
        browse(report, plain, args.repeat)
    return 0


def browse(report: Path, plain: Path, repeat: int) -> None:
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            page = chromium.new_page(viewport={"width": 1400, "height": 1000})
            opened = statistics.median(
                open_time(page, report, ".at[data-position]:not([data-position=''])")
                for _ in range(repeat))
            bars = page.locator("rect.bar").count()
            zoom = page.evaluate("""() => { const g = window.sbxReport[0];
                const t = performance.now(); g.zoom(0.5); return performance.now() - t; }""")
            pick = page.evaluate("""() => { const g = window.sbxReport[0];
                const t = performance.now(); g.show(10); return performance.now() - t; }""")
            zoomed = page.locator("rect.bar").count()
            base = statistics.median(open_time(page, plain, "#done") for _ in range(repeat))
        finally:
            chromium.close()
    print(f"open in Chromium: report {opened * 1000:.0f} ms vs the table as plain HTML "
          f"{base * 1000:.0f} ms (ratio {opened / base:.2f}); zoom redraw {zoom:.0f} ms, "
          f"pick a position {pick:.0f} ms; bars drawn: {bars} at open, {zoomed} zoomed "
          "(only rows in view are drawn)")


if __name__ == "__main__":
    sys.exit(main())
