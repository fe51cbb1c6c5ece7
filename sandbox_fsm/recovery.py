"""`recover()`: finish what a dead process left half-done, then match the ledger to reality.

- an open operation whose owner is dead: creating/starting ones (and every other one that
  acquires resources) roll back; stopping/deleting ones roll forward;
- a live sandbox whose guest or proxy is gone is lost: SandboxLost (containers exit 255),
  then its host resources are released;
- a mount the ledger holds but mountinfo does not show is recorded as gone; a mount under
  the sandbox dir the ledger does not know is reported, never removed.

Every action is an event, so a crash during recovery resumes where it stopped; a second
`recover()` in a row finds nothing to do. Each sandbox gets a time limit.
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from agent_io import AgentClient, AgentError
from agent_io.client import DEFAULT_TIMEOUTS
from eventstore import NewEvent

from . import host
from .errors import SandboxError
from .names import ACTIVE, STARTED, Ev, Kind, Op, State
from .operations import operation_for
from .operations.context import OpContext, identity
from .saga import Operation, Saga, StepRecord, StreamWriter
from .state import SandboxState

if TYPE_CHECKING:
    from .runtime import Runtime

# A WaitProcess on an exited process answers at once over the local socket; a running one
# is left waiting only this long.
EXIT_PROBE_S = 0.1

LIVE_STATES = (State.CREATED, State.RUNNING, State.PAUSED, State.FAILED, State.STOPPED)
LOST_EXIT_STATUS = 255  # what containerd reports for a task whose shim vanished


class _BoundedContext(OpContext):
    """An operation's context whose agent rpcs carry deadlines of at most `step_timeout`,
    so a hung guest costs recovery one bounded wait, not the runtime's 60 s deadlines."""

    step_timeout: float = 30.0
    _client: AgentClient | None = None

    def agent(self) -> AgentClient:
        state = self.state
        if self._client is None or self._client.url != state.agent_url:
            self.close()
            if not state.agent_url:
                return self.host.agent_for(state)  # raises: no running guest
            process = state.proxy or state.guest
            self._client = AgentClient(
                state.agent_url, keep_connection=True, sandbox_id=state.id,
                proxy_pid=process["pid"] if process else None,
                timeouts=bounded_timeouts(self.step_timeout))
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def bounded_timeouts(limit: float) -> dict[str, float]:
    """Every deadline of the client's table (including the unbounded ones) capped at limit."""
    return {rpc: min(limit, t) if t else limit for rpc, t in DEFAULT_TIMEOUTS.items()}


@dataclass
class SandboxRecovery:
    """What recovery found and did for one sandbox."""

    id: str
    found: list[str] = field(default_factory=list)
    done: list[str] = field(default_factory=list)
    state: str = ""
    held: list[str] = field(default_factory=list)
    error: str | None = None
    timed_out: bool = False


@dataclass
class RecoveryReport:
    dry_run: bool
    sandboxes: list[SandboxRecovery] = field(default_factory=list)
    scanned: int = 0

    @property
    def ok(self) -> bool:
        return not any(s.error or s.timed_out for s in self.sandboxes)

    def __str__(self) -> str:
        lines = [f"recovery{' (dry run)' if self.dry_run else ''}: scanned {self.scanned} "
                 f"sandboxes, acted on {len(self.sandboxes)}"]
        for s in self.sandboxes:
            lines.append(f"  {s.id}: {s.state}" + (" TIMED OUT" if s.timed_out else "")
                         + (f" ERROR {s.error}" if s.error else ""))
            lines += [f"    found: {f}" for f in s.found] + [f"    did: {d}" for d in s.done]
            if s.held:
                lines.append(f"    still held: {', '.join(s.held)}")
        return "\n".join(lines)


def recover(rt: Runtime, *, dry_run: bool = False, step_timeout: float = 30.0,
            sandbox_timeout: float | None = None, parallel: int = 8) -> RecoveryReport:
    """Recover every sandbox of the log; see the module docstring.

    Up to `parallel` sandboxes are recovered at once, each on its own daemon thread.
    Agent rpcs get deadlines of at most `step_timeout`; a sandbox whose recovery takes
    longer than `sandbox_timeout` (default 4 x step_timeout: an unmount that blocks, say)
    is left to its thread and reported with what it still holds; the others go on.
    """
    limit = sandbox_timeout if sandbox_timeout is not None else step_timeout * 4
    report = RecoveryReport(dry_run)
    report.scanned, todo = rt.live_sandboxes()
    todo.reverse()
    results: list[SandboxRecovery] = []
    finished: queue.SimpleQueue[SandboxRecovery] = queue.SimpleQueue()
    active: dict[str, float] = {}  # sandbox id -> deadline
    while todo or active:
        while todo and len(active) < max(1, parallel):
            result = SandboxRecovery(todo.pop())
            threading.Thread(target=_guarded, args=(rt, result, dry_run, step_timeout, finished),
                             name=f"recover-{result.id}", daemon=True).start()
            results.append(result)
            active[result.id] = time.monotonic() + limit
        try:
            active.pop(finished.get(timeout=max(0.0, min(active.values()) - time.monotonic())
                                    ).id, None)
        except queue.Empty:
            now = time.monotonic()
            for result in results:
                if active.get(result.id, now + 1) <= now:
                    del active[result.id]
                    _timed_out(rt, result, limit)
    report.sandboxes = [r for r in results if r.found or r.done or r.error]
    return report


def _timed_out(rt: Runtime, result: SandboxRecovery, limit: float) -> None:
    result.timed_out = True
    result.error = (f"recovery of sandbox {result.id!r} did not finish within {limit:g}s "
                    f"(its thread goes on in the background)")
    try:
        result.held = rt.state(result.id).held()
    except SandboxError as exc:
        result.error += f"; its state could not be read: {exc}"


def _guarded(rt: Runtime, result: SandboxRecovery, dry_run: bool, step_timeout: float,
             finished: queue.SimpleQueue[SandboxRecovery]) -> None:
    try:
        with rt._lock(result.id):
            _recover_sandbox(rt, result, dry_run, step_timeout)
            state = rt.state(result.id)
            result.state, result.held = state.state, state.held()
    except Exception as exc:  # reported per sandbox; the others go on
        result.error = f"{type(exc).__name__}: {exc}"
    finally:
        finished.put(result)


def _recover_sandbox(rt: Runtime, result: SandboxRecovery, dry_run: bool,
                     step_timeout: float) -> None:
    state = rt.state(result.id)
    if state.operation is not None:
        if not _finish_operation(rt, state, result, dry_run, step_timeout):
            return
        state = rt.state(result.id)
    if state.state in LIVE_STATES:
        _reconcile(rt, state, result, dry_run, step_timeout)


def _finish_operation(rt: Runtime, state: SandboxState, result: SandboxRecovery,
                      dry_run: bool, step_timeout: float) -> bool:
    """Roll the open operation back or forward; False when its owner is still alive."""
    from .runtime import stream_of

    op = state.operation
    assert op is not None
    owner = op.get("owner") or {}
    me = rt.owner
    if owner and (owner["pid"], owner["start_time"]) != (me.pid, me.start_time) and \
            host.is_alive(host.ProcessIdentity(owner["pid"], owner["start_time"])):
        result.found.append(f"{op['operation']} in progress in live pid {owner['pid']}: left alone")
        return False
    operation = operation_for(op["operation"], op.get("params") or {})
    records = [StepRecord(r["index"], r["step"], r["args"], _outcome(r["outcome"]),
                          r["failed"], r["compensated"])
               for r in sorted(op["records"].values(), key=lambda r: r["index"])]
    forward = operation.on_crash == "forward"
    result.found.append(f"interrupted {op['operation']} (op {op['op']}) after "
                        f"{sum(r.outcome is not None for r in records)}/{len(operation.steps)} "
                        f"steps{' during its compensation' if op['compensating'] else ''}")
    if dry_run:
        result.done.append("would roll " + ("forward" if forward else "back"))
        return True
    ctx = _BoundedContext(rt, state.id, rt.layout(state.id), op.get("container"),
                          op.get("params") or {}, records)
    ctx.step_timeout = step_timeout
    saga = Saga(StreamWriter(rt.store, stream_of(state.id), state.version), rt.knob)
    try:
        if forward:
            _roll_forward(saga, operation, ctx, op, records, result)
        else:
            _roll_back(saga, operation, ctx, op, records, result)
    finally:
        ctx.close()
    return True


def _roll_forward(saga: Saga, operation: Operation, ctx: OpContext, op: dict,
                  records: list[StepRecord], result: SandboxRecovery) -> None:
    """Run the remaining steps, the in-doubt one again with its recorded arguments."""
    doubt = next((r for r in records if r.outcome is None), None)
    index = doubt.index if doubt else len(records)
    if doubt:
        records.remove(doubt)
    out = saga.run_from(operation, ctx, op=op["op"], index=index, records=records,
                        pending=[], from_state=op["from"], to_state=op["to"],
                        redo_args=doubt.args if doubt else None)
    if out.completed:
        result.done.append(f"rolled {op['operation']} forward: completed")
    else:
        result.done.append(f"rolled {op['operation']} forward: failed at {out.failed_step}, "
                           f"left {out.state}")
        result.error = (f"{op['operation']} could not be finished: step {out.failed_step}: "
                        f"{out.error}")


def _roll_back(saga: Saga, operation: Operation, ctx: OpContext, op: dict,
               records: list[StepRecord], result: SandboxRecovery) -> None:
    """Compensate in reverse, resuming at the first step not yet compensated."""
    if not op["compensating"]:
        saga.writer.append([NewEvent(Ev.COMPENSATION_STARTED, {"op": op["op"]})])
    errors = saga.compensate(operation, ctx, op=op["op"], records=records,
                             from_state=op["from"])
    done = sum(r.compensated for r in records)
    result.done.append(f"rolled {op['operation']} back ({done} steps compensated)"
                       + (f" with errors: {errors}" if errors else ""))
    if errors:
        result.error = "; ".join(f"{step}.undo: {why}" for step, why in errors)


def _outcome(data: dict | None) -> dict | None:
    if data is None:
        return None
    return {k: v for k, v in data.items() if k not in ("op", "step", "index")}


def _reconcile(rt: Runtime, state: SandboxState, result: SandboxRecovery, dry_run: bool,
               step_timeout: float) -> None:
    """Match the ledger with /proc and mountinfo; record what changed; release a lost one."""
    from .runtime import stream_of

    dead = [r["role"] for r in (state.guest, state.proxy)
            if r is not None and not host.is_alive(identity(r))]
    gone = [r["key"] for r in state.ledger.values()
            if r["kind"] == Kind.MOUNT and not host.is_mounted(r["path"])]
    for path in _unknown_mounts(rt, state):
        result.found.append(f"unknown mount {path} (not in the ledger; left alone)")
    if dead:
        result.found.append(f"{' and '.join(dead)} process gone: sandbox lost")
    if gone:
        result.found.append(f"mounts no longer in place: {', '.join(gone)}")
    live = [c.id for c in state.containers.values()
            if c.state in ACTIVE and c.exit_status is None]
    exits = [(cid, LOST_EXIT_STATUS) for cid in live] if dead else \
        _container_exits(rt, state, step_timeout)
    for cid, status in exits:
        result.found.append(f"container {cid} exited with status {status}")
    if dry_run:
        return
    facts = []
    if gone:
        facts.append(NewEvent(Ev.RESOURCES_RELEASED, {"released": gone, "reason": "not mounted"}))
    facts += [NewEvent(Ev.PROCESS_EXITED, {"container": cid, "exec_id": "", "status": status})
              for cid, status in exits]
    if dead and not state.lost:
        facts.append(NewEvent(Ev.SANDBOX_LOST, {"dead": dead, "exit_status": LOST_EXIT_STATUS,
                                              "state": State.STOPPED}))
    if facts:
        StreamWriter(rt.store, stream_of(state.id), state.version).append(facts)
        result.done.append(f"recorded {', '.join(e.type for e in facts)}")
    if dead:
        rt.forget_agent(state.id)
        lost = rt.state(state.id)
        rt._run(lost, operation_for(Op.RELEASE_LOST_SANDBOX, {}), container_id=None,
                from_state=lost.state, to_state=lost.state)
        result.done.append("released the lost sandbox's host resources")


def _unknown_mounts(rt: Runtime, state: SandboxState) -> list[str]:
    """Mounts under the sandbox dir the ledger does not hold (copies made by a recursive
    bind of a held mount's `copies` dir, and shared/ mirrors of mounts/ entries, made by
    mount propagation, count as held)."""
    layout = rt.layout(state.id)
    mounts = [r for r in state.ledger.values() if r["kind"] == Kind.MOUNT]
    held = {r["path"] for r in mounts}
    for r in mounts:
        if r.get("copies"):
            src = r["copies"] + "/"
            held |= {r["path"] + "/" + p[len(src):] for p in set(held) if p.startswith(src)}
    mounts_dir = str(layout.mounts) + "/"
    held |= {str(layout.shared / p[len(mounts_dir):]) for p in held if p.startswith(mounts_dir)}
    return [m.mount_point for m in host.mounts_under(layout.root) if m.mount_point not in held]


def _container_exits(rt: Runtime, state: SandboxState, timeout: float) -> list[tuple[str, int]]:
    """Containers whose init process has exited, asked with short WaitProcess calls made
    all at once (a running container costs one probe's wait, not one each)."""
    running = [c.id for c in state.containers.values()
               if c.state in STARTED and c.exit_status is None]
    if not running or not state.agent_url:
        return []

    def probe(cid: str) -> int | None:
        try:
            return client.wait_process(cid, cid)
        except AgentError:
            return None

    with AgentClient(state.agent_url, keep_connection=True, sandbox_id=state.id,
                     timeouts={"WaitProcess": min(EXIT_PROBE_S, timeout),
                               "default": timeout}) as client, \
            ThreadPoolExecutor(min(len(running), 16)) as pool:
        statuses = list(pool.map(probe, running))
    return [(cid, status) for cid, status in zip(running, statuses, strict=True)
            if status is not None]
