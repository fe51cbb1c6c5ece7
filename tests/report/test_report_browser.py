"""`sbx report` of a real incident, opened in a real headless Chromium.

The page is checked against the raw log (`sbx export`) and against `sbx audit --at`,
not against the report's own code.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from incident import CID, CRASH_AT, CRASHED, EXIT, SID, IncidentLog
from playwright.sync_api import Browser, Locator, Page, Request, Route

pytestmark = pytest.mark.root

SECTION = f"section[data-sandbox={SID}]"


def open_report(browser: Browser, html: Path, sandbox: str = SID) -> tuple[Page, list[str]]:
    """The page, and a list that collects script errors and any network request made."""
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on("console", lambda msg: problems.append(f"console {msg.type}: {msg.text}")
            if msg.type in ("error", "warning") else None)

    def no_network(route: Route, request: Request) -> None:
        if not request.url.startswith("file://"):
            problems.append(f"network request: {request.url}")
            route.abort()
        else:
            route.continue_()
    page.route("**/*", no_network)
    page.goto(html.as_uri())
    page.wait_for_selector(f"section[data-sandbox={sandbox}] .at:not([data-position=''])")
    return page, problems


def ledger_shown(page: Page) -> dict[str, tuple[str, str]]:
    rows = page.locator(f"{SECTION} .at table.ledger tr[data-key]")
    return {r.get_attribute("data-key") or "": (r.locator("td").nth(1).inner_text(),
                                                r.locator("td").nth(2).inner_text())
            for r in rows.all()}


def ledger_audited(log: IncidentLog, position: int) -> dict[str, dict]:
    return json.loads(log.ok("audit", SID, "--json", "--at", str(position)))["ledger"]


def assert_same_ledger(page: Page, log: IncidentLog, position: int) -> dict[str, dict]:
    assert page.locator(f"{SECTION} .at").get_attribute("data-position") == str(position)
    shown, audited = ledger_shown(page), ledger_audited(log, position)
    assert set(shown) == set(audited)
    for key, res in audited.items():
        kind, detail = shown[key]
        assert kind == res["kind"]
        for field in ("pid", "start_time", "path", "role"):
            if res.get(field) not in (None, ""):
                assert f"{field}={res[field]}" in detail.split(), (key, field, detail)
    return audited


def assert_bars_and_marks(sec: Locator, events: list[dict]) -> None:
    """The chart shows every operation, step run and compensation; the incident marked."""
    # One bar per operation, one per step run, one per compensation, as the log has them.
    count = {t: sum(e["type"] == t for e in events) for t in
             ("OperationStarted", "StepStarted", "StepCompensated")}
    assert sec.locator("rect.bar.op").count() == count["OperationStarted"] == 9
    assert sec.locator("rect.bar.step").count() == count["StepStarted"]
    assert sec.locator("rect.bar.comp").count() == count["StepCompensated"] == 2

    # The failed step is marked with its error, its operation aborted, compensations marked.
    failed = sec.locator("rect.bar.step.failed")
    assert failed.count() == 1
    assert failed.get_attribute("data-step") == "create_container_in_guest"
    error = sec.locator("text.errtext").first.text_content() or ""
    assert "create_container_in_guest" in error and "INTERNAL" in error
    comps = sec.locator("rect.bar.comp.compensated")
    assert [comps.nth(i).get_attribute("data-step") for i in range(comps.count())] == [
        "create_container_in_guest", "mount_rootfs"]
    aborted = sec.locator("text.label.aborted")
    assert aborted.count() == 1 and f"create_container {CID}" in (aborted.text_content() or "")
    assert sec.locator("table.failures tr.failed").count() == 1
    assert sec.locator("table.failures tr.compensated").count() == 2


def test_report_of_a_rolled_back_create_in_chromium(incident_log: IncidentLog, browser: Browser,
                                                    tmp_path: Path) -> None:
    log = incident_log
    events = log.events()
    html = tmp_path / "report.html"
    out = log.sbx("report", SID, "-o", str(html))
    assert out.returncode == 0, out.stderr
    page, problems = open_report(browser, html)
    sec = page.locator(SECTION)

    assert_bars_and_marks(sec, events)
    failed, aborted = sec.locator("rect.bar.step.failed"), sec.locator("text.label.aborted")

    # The exit and the verification status are shown.
    assert f"exited with status {EXIT}" in sec.locator("table.facts").inner_text()
    last = max(e["position"] for e in events)
    verify = page.locator("#verification")
    assert verify.get_attribute("data-ok") == "true"
    assert verify.get_attribute("data-up-to") == str(log.checkpoint()[0])
    assert verify.get_attribute("data-anchored") == "false"
    assert "deleted" in sec.locator("figure.path").first.inner_text()

    # Zoom on the aborted operation, pick the failed step: the ledger is `sbx audit --at`'s.
    aborted.click()
    failed.click()
    step_failed = next(e for e in events if e["type"] == "StepFailed")
    held = assert_same_ledger(page, log, step_failed["position"])
    assert "process:guest" in held and any(k.startswith("mount:") for k in held)

    # Pick with the slider: the position after the container started (guest running).
    started = next(i for i, e in enumerate(events) if e["type"] == "ContainerStarted")
    sec.locator(".pos-range").fill(str(started))
    assert_same_ledger(page, log, events[started]["position"])
    sec.locator(".pos-input").fill(str(last))
    sec.locator(".pos-input").dispatch_event("change")
    assert assert_same_ledger(page, log, last) == {}
    assert "sandbox deleted" in sec.locator(".at").inner_text()

    failed.click()
    sec.locator("button[data-act=fit]").click()
    shot = tmp_path / "report.png"
    sec.screenshot(path=str(shot))
    assert shot.stat().st_size > 10_000
    print(f"screenshot: {shot}")
    assert problems == []
    page.close()


def test_recovery_after_a_kill_is_marked(incident_log: IncidentLog, browser: Browser,
                                         tmp_path: Path) -> None:
    """The killed start: check_agent left in doubt, recovery's compensations marked."""
    events = incident_log.events_of(CRASHED)
    html = tmp_path / "crashed.html"
    incident_log.ok("report", CRASHED, "-o", str(html))
    page, problems = open_report(browser, html, CRASHED)
    sec = page.locator(f"section[data-sandbox={CRASHED}]")
    doubt = sec.locator("rect.bar.step.indoubt")
    assert doubt.count() == 1 and doubt.get_attribute("data-step") == CRASH_AT.split(":")[0]
    undone = sec.locator("rect.bar.comp.recovery")
    assert [undone.nth(i).get_attribute("data-step") for i in range(undone.count())] == [
        e["data"]["step"] for e in events if e["type"] == "StepCompensated"]
    assert "start_sandbox" in (sec.locator("text.label.recovery").text_content() or "")
    assert sec.locator("table.failures tr.indoubt").count() == 1
    assert problems == []
    page.close()
