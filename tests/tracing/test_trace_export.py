"""`sbx trace export` of a real incident to a real OTLP/gRPC receiver.

Span names, tree, statuses and times are checked against the raw log (`sbx export`).
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest
from incident import CID, CRASHED, EXIT, SBX, SID, IncidentLog
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status
from otlp_receiver import Receiver

pytestmark = pytest.mark.root

OK, ERROR = Status.STATUS_CODE_OK, Status.STATUS_CODE_ERROR
SEED_OPERATIONS = ["createSandbox", "startSandbox", "createContainer", "createContainer",
                   "startContainer", "stopContainer", "deleteContainer", "stopSandbox",
                   "deleteSandbox"]


def attrs(span: Span | Span.Event) -> dict[str, object]:
    return {a.key: getattr(a.value, a.value.WhichOneof("value")) for a in span.attributes}


def export(log: IncidentLog, receiver: Receiver) -> list[Span]:
    receiver.clear()
    out = log.sbx("trace", "export", SID, "--otlp-endpoint", receiver.url)
    assert out.returncode == 0, out.stderr
    return receiver.spans()


def test_one_trace_per_sandbox_with_the_seed_names_and_stable_ids(
        incident_log: IncidentLog, receiver: Receiver) -> None:
    events = incident_log.events()
    spans = export(incident_log, receiver)
    assert len({s.trace_id for s in spans}) == 1 and len(spans[0].trace_id) == 16
    (root,) = [s for s in spans if not s.parent_span_id]
    assert root.name == f"sandbox {SID}"
    assert (root.start_time_unix_nano, root.end_time_unix_nano) == (
        events[0]["recorded_at"], events[-1]["recorded_at"])
    (exit_event,) = [e for e in root.events if e.name == "ProcessExited"]
    fact = next(e for e in events if e["type"] == "ProcessExited")
    assert exit_event.time_unix_nano == fact["recorded_at"]
    assert attrs(exit_event)["sbx.status"] == EXIT and attrs(exit_event)["sbx.container"] == CID

    ops = [s for s in spans if s.parent_span_id == root.span_id]
    ops.sort(key=lambda s: s.start_time_unix_nano)
    assert [s.name for s in ops] == SEED_OPERATIONS
    starts = [e for e in events if e["type"] == "OperationStarted"]
    ends = [e for e in events if e["type"] in ("OperationCompleted", "OperationAborted")]
    assert [s.start_time_unix_nano for s in ops] == [e["recorded_at"] for e in starts]
    assert [s.end_time_unix_nano for s in ops] == [e["recorded_at"] for e in ends]
    assert [s.status.code for s in ops] == [OK, OK, ERROR] + [OK] * 6
    assert "INTERNAL" in ops[2].status.message

    children = {op.span_id: [s for s in spans if s.parent_span_id == op.span_id] for op in ops}
    assert sum(map(len, children.values())) == len(spans) - 1 - len(ops)   # a tree
    step_starts = sorted(e["recorded_at"] for e in events if e["type"] == "StepStarted")
    steps = [s for s in spans if attrs(s).get("sbx.step.kind") == "step"]
    assert sorted(s.start_time_unix_nano for s in steps) == step_starts
    assert [s.name for s in children[ops[1].span_id]] == [
        "startVM", "startProxy", "check", "create_sandbox_in_guest"]

    failed = children[ops[2].span_id]
    assert [(s.name, s.status.code) for s in failed] == [
        ("bindMountContainerRootfs", OK), ("create_container_in_guest", ERROR),
        ("compensate create_container_in_guest", ERROR),
        ("compensate bindMountContainerRootfs", ERROR)]
    assert "INTERNAL" in failed[1].status.message
    compensated = [e for e in events if e["type"] == "StepCompensated"]
    assert [s.end_time_unix_nano for s in failed[2:]] == [e["recorded_at"] for e in compensated]
    assert all(s.start_time_unix_nano <= s.end_time_unix_nano for s in spans)

    again = export(incident_log, receiver)
    key = lambda s: s.span_id  # noqa: E731
    assert [s.SerializeToString(deterministic=True) for s in sorted(again, key=key)] == [
        s.SerializeToString(deterministic=True) for s in sorted(spans, key=key)]


def test_follow_exports_operations_as_they_complete(receiver: Receiver, tmp_path: Path) -> None:
    log = IncidentLog(tmp_path)
    follower = subprocess.Popen(
        [SBX, "trace", "export", "--follow", "--otlp-endpoint", receiver.url],
        env=log.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        log.ok("run", "--id", "f", "--", "true")
        spans = receiver.wait_for(lambda got: any(s.name == "sandbox f" for s in got))
        follower.send_signal(signal.SIGINT)
        _, err = follower.communicate(timeout=30)
        assert follower.returncode == 0, err
    finally:
        follower.kill()
        follower.wait()
    # A span sent twice (the root, when the follower's first pass already saw the
    # sandbox) has the same id: keep the last one sent, as a collector would.
    spans = list({s.span_id: s for s in spans}.values())
    (root,) = [s for s in spans if not s.parent_span_id]
    ops = sorted((s for s in spans if s.parent_span_id == root.span_id),
                 key=lambda s: s.start_time_unix_nano)
    assert [s.name for s in ops] == SEED_OPERATIONS[:2] + SEED_OPERATIONS[3:]  # one create
    assert len({s.trace_id for s in spans}) == 1
    events = log.events_of("f")
    assert root.end_time_unix_nano == events[-1]["recorded_at"]


def test_bad_input_and_an_absent_collector(incident_log: IncidentLog,
                                           receiver: Receiver) -> None:
    for args, code, words in [
            (["--otlp-endpoint", "ftp://x:1"], 2, "expected http://HOST:PORT"),
            (["--otlp-endpoint", "http://127.0.0.1"], 2, "expected http://HOST:PORT"),
            (["nope", "--otlp-endpoint", receiver.url], 4, "no sandbox 'nope'"),
            (["--otlp-endpoint", "http://127.0.0.1:1", "--timeout", "1"], 1,
             "did not accept")]:
        out = incident_log.sbx("trace", "export", *args)
        assert out.returncode == code, (args, out.stderr)
        assert words in out.stderr.strip().splitlines()[-1], out.stderr
        assert "Traceback" not in out.stderr
    assert receiver.spans() == []


def test_a_start_killed_and_rolled_back_by_recovery(incident_log: IncidentLog,
                                                   receiver: Receiver) -> None:
    out = incident_log.sbx("trace", "export", CRASHED, "--otlp-endpoint", receiver.url)
    assert out.returncode == 0, out.stderr
    spans = receiver.spans()
    (start,) = [s for s in spans if s.name == "startSandbox"]
    assert attrs(start)["sbx.recovery"] is True and start.status.code == ERROR
    steps = [s for s in spans if s.parent_span_id == start.span_id]
    assert [(s.name, s.status.code) for s in steps] == [
        ("startVM", OK), ("startProxy", OK), ("check", ERROR),
        ("compensate startProxy", ERROR), ("compensate startVM", ERROR)]
    assert "no outcome" in steps[2].status.message
    assert all(attrs(s)["sbx.recovery"] is True for s in steps[3:])
