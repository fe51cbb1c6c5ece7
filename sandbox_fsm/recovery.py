"""`recover()`: finish what a dead process left half-done, then match the ledger to reality.

- an open operation whose owner is dead is finished by the saga (`Saga.resume`):
  creating/starting ones (and every other one that acquires resources) roll back;
  stopping/deleting ones roll forward;
- a live sandbox whose guest or proxy is gone is lost: SandboxLost (containers exit 255),
  then its host resources are released;
- a mount the ledger holds but mountinfo does not show is recorded as gone; a mount under
  the sandbox dir the ledger does not know is reported, never removed.

This module decides policy only (what to finish, what to reconcile, how long to wait);
the saga protocol is saga.py's, the host's answers host/'s. Every action is an event, so
a crash during recovery resumes where it stopped; a second `recover()` in a row finds
nothing to do. Each sandbox gets a time limit.
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from agent_io import AgentClient, AgentError
from eventstore import NewEvent, RecordedEvent

from . import host
from .agents import Agents
from .config import RuntimeConfig
from .engine import Engine
from .errors import SandboxError
from .host import loopdev
from .machines import SANDBOX
from .names import ACTIVE, STARTED, Ev, Kind, Op, State, Trigger
from .operations import devices, operation_for
from .operations.context import StepHost, context_for, identity
from .saga import records_of
from .state import SandboxState

# A WaitProcess on an exited process answers at once over the local socket; a running one
# is left waiting only this long.
EXIT_PROBE_S = 0.1

LIVE_STATES = (State.CREATED, State.RUNNING, State.PAUSED, State.FAILED, State.STOPPED)
LOST_EXIT_STATUS = 255  # what containerd reports for a task whose shim vanished


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


def recover(engine: Engine, agents: Agents, *, dry_run: bool = False,
            step_timeout: float = 30.0, sandbox_timeout: float | None = None,
            parallel: int = 8) -> RecoveryReport:
    """Recover every sandbox of the log; see the module docstring.

    Up to `parallel` sandboxes are recovered at once, each on its own daemon thread.
    Agent rpcs get deadlines of at most `step_timeout`; a sandbox whose recovery takes
    longer than `sandbox_timeout` (default 4 x step_timeout: an unmount that blocks, say)
    is left to its thread and reported with what it still holds; the others go on.
    """
    limit = sandbox_timeout if sandbox_timeout is not None else step_timeout * 4
    one = _Pass(engine, agents, dry_run, step_timeout)
    report = RecoveryReport(dry_run)
    report.scanned, todo = engine.repo.live_sandboxes()
    todo.reverse()
    results: list[SandboxRecovery] = []
    finished: queue.SimpleQueue[SandboxRecovery] = queue.SimpleQueue()
    active: dict[str, float] = {}  # sandbox id -> deadline
    while todo or active:
        while todo and len(active) < max(1, parallel):
            result = SandboxRecovery(todo.pop())
            threading.Thread(target=one.guarded, args=(result, finished),
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
                    _timed_out(engine, result, limit)
    report.sandboxes = [r for r in results if r.found or r.done or r.error]
    return report


def _timed_out(engine: Engine, result: SandboxRecovery, limit: float) -> None:
    result.timed_out = True
    result.error = (f"recovery of sandbox {result.id!r} did not finish within {limit:g}s "
                    f"(its thread goes on in the background)")
    try:
        result.held = engine.repo.state(result.id).held()
    except SandboxError as exc:
        result.error += f"; its state could not be read: {exc}"


@dataclass(frozen=True)
class _Pass:
    """One recovery pass: what every sandbox's thread shares."""

    engine: Engine
    agents: Agents
    dry_run: bool
    step_timeout: float

    def guarded(self, result: SandboxRecovery,
                finished: queue.SimpleQueue[SandboxRecovery]) -> None:
        repo = self.engine.repo
        try:
            with self.engine.lock(result.id):
                self.recover_sandbox(result)
                state = repo.state(result.id)
                result.state, result.held = state.state, state.held()
        except Exception as exc:  # reported per sandbox; the others go on
            result.error = f"{type(exc).__name__}: {exc}"
        finally:
            finished.put(result)

    def recover_sandbox(self, result: SandboxRecovery) -> None:
        state = self.engine.repo.state(result.id)
        if state.operation is not None:
            if not self.finish_operation(state, result):
                return
            state = self.engine.repo.state(result.id)
        if state.state in LIVE_STATES:
            self.reconcile(state, result)
        elif state.state == State.DELETED and state.ledger:
            self.release_deleted(state, result)

    def release_deleted(self, state: SandboxState, result: SandboxRecovery) -> None:
        """A deleted sandbox still holding something (a delete from `failed` once skipped
        the teardown): release it as a lost sandbox's, then remove what is left of its dir."""
        result.found.append(f"deleted, yet still holds {', '.join(state.held())}")
        if self.dry_run:
            return
        self.engine.host.forget_agent(state.id)
        self.engine.run(state, operation_for(Op.RELEASE_DELETED_SANDBOX, {}), container_id=None,
                        from_state=state.state, to_state=state.state)
        result.done.append("released what the deleted sandbox still held")

    def finish_operation(self, state: SandboxState, result: SandboxRecovery) -> bool:
        """Have the saga finish the open operation; False when its owner still lives."""
        op = state.operation
        assert op is not None
        owner = op.get("owner") or {}
        me = self.engine.owner
        if owner and (owner["pid"], owner["start_time"]) != (me.pid, me.start_time) and \
                host.is_alive(host.ProcessIdentity(owner["pid"], owner["start_time"])):
            result.found.append(
                f"{op['operation']} in progress in live pid {owner['pid']}: left alone")
            return False
        operation = operation_for(op["operation"], op.get("params") or {})
        records = records_of(op)
        way = "forward" if operation.on_crash == "forward" else "back"
        result.found.append(
            f"interrupted {op['operation']} (op {op['op']}) after "
            f"{sum(r.outcome is not None for r in records)}/{len(operation.steps)} "
            f"steps{' during its compensation' if op['compensating'] else ''}")
        if self.dry_run:
            result.done.append(f"would roll {way}")
            return True
        bounded = BoundedHost(self.engine.host, self.agents, self.step_timeout)
        ctx = context_for(bounded, state.id, bounded.layout(state.id), op.get("container"),
                          op.get("params") or {}, records)
        try:
            out = self.engine.saga(state).resume(operation, ctx, op, records)
        finally:
            bounded.close()
        if way == "back":
            done = sum(r.compensated for r in records)
            errors = out.compensation_errors
            result.done.append(f"rolled {op['operation']} back ({done} steps compensated)"
                               + (f" with errors: {errors}" if errors else ""))
            if errors:
                result.error = "; ".join(f"{step}.undo: {why}" for step, why in errors)
        elif out.completed:
            result.done.append(f"rolled {op['operation']} forward: completed")
        else:
            result.done.append(f"rolled {op['operation']} forward: failed at "
                               f"{out.failed_step}, left {out.state}")
            result.error = (f"{op['operation']} could not be finished: step "
                            f"{out.failed_step}: {out.error}")
        return True

    def reconcile(self, state: SandboxState, result: SandboxRecovery) -> None:
        """Match the ledger with /proc and mountinfo; record what changed; release a
        lost sandbox's host resources."""
        dead = [r["role"] for r in (state.guest, state.proxy)
                if r is not None and not host.is_alive(identity(r))]
        gone = [r["key"] for r in state.ledger.values()
                if r["kind"] == Kind.MOUNT and not host.is_mounted(r["path"])]
        for path in _unknown_mounts(self.engine.host.layout(state.id), state):
            result.found.append(f"unknown mount {path} (not in the ledger; left alone)")
        if dead:
            result.found.append(f"{' and '.join(dead)} process gone: sandbox lost")
        if gone:
            result.found.append(f"mounts no longer in place: {', '.join(gone)}")
        live = [c.id for c in state.containers.values()
                if c.state in ACTIVE and c.exit_status is None]
        exits = [(cid, LOST_EXIT_STATUS) for cid in live] if dead else \
            self.container_exits(state)
        for cid, status in exits:
            result.found.append(f"container {cid} exited with status {status}")
        if self.dry_run:
            self.reconcile_devices(state, result)
            return
        facts = [NewEvent(Ev.RESOURCES_RELEASED, {"released": gone, "reason": "not mounted"})
                 ] if gone else []
        facts += self.reconcile_devices(state, result)
        facts += [NewEvent(Ev.PROCESS_EXITED, {"container": cid, "exec_id": "",
                                               "status": status}) for cid, status in exits]
        if dead and not state.lost:
            after = SANDBOX.target(state.state, Trigger.LOSE, what=f"sandbox {state.id!r}")
            facts.append(NewEvent(Ev.SANDBOX_LOST, {
                "dead": dead, "exit_status": LOST_EXIT_STATUS, "state": after}))
        if facts:
            self.engine.saga(state).writer.append(facts)
            result.done.append(f"recorded {', '.join(e.type for e in facts)}")
        if dead:
            self.release_lost(state.id)
            result.done.append("released the lost sandbox's host resources")

    def reconcile_devices(self, state: SandboxState, result: SandboxRecovery) -> list[NewEvent]:
        """Detach loop devices tagged for this sandbox that the ledger does not hold; the
        fact that releases ledger devices the kernel no longer has."""
        gone, strays = devices.reconcile(self.engine.host.layout(state.id), state.ledger)
        for dev in strays:
            result.found.append(f"loop device {dev.path} ({dev.backing_file}) tagged {dev.tag}"
                                " for this sandbox, not in the ledger")
            if not self.dry_run:
                loopdev.detach(dev.tag)
                result.done.append(f"detached {dev.path}")
        if gone:
            result.found.append(f"devices no longer attached: {', '.join(gone)}")
        return [NewEvent(Ev.RESOURCES_RELEASED, {"released": gone, "reason": "not attached"})
                ] if gone else []

    def release_lost(self, sandbox_id: str) -> None:
        self.engine.host.forget_agent(sandbox_id)
        lost = self.engine.repo.state(sandbox_id)
        self.engine.run(lost, operation_for(Op.RELEASE_LOST_SANDBOX, {}), container_id=None,
                        from_state=lost.state, to_state=lost.state)

    def container_exits(self, state: SandboxState) -> list[tuple[str, int]]:
        """Containers whose init process has exited, asked with short WaitProcess calls
        made all at once (a running container costs one probe's wait, not one each)."""
        running = [c.id for c in state.containers.values()
                   if c.state in STARTED and c.exit_status is None]
        if not running or not state.agent_url:
            return []
        probe_s = min(EXIT_PROBE_S, self.step_timeout)
        with self.agents.new_client(state, cap=self.step_timeout, keep_connection=True,
                                    overrides={"WaitProcess": probe_s}) as client, \
                ThreadPoolExecutor(min(len(running), 16)) as pool:
            statuses = list(pool.map(lambda cid: _exit_of(client, cid), running))
        return [(cid, status) for cid, status in zip(running, statuses, strict=True)
                if status is not None]


def _exit_of(client: AgentClient, cid: str) -> int | None:
    try:
        return client.wait_process(cid, cid)
    except AgentError:
        return None


class BoundedHost:
    """The runtime as steps see it, except that every agent rpc carries a deadline of at
    most `step_timeout`: a hung guest costs recovery one bounded wait, not the runtime's
    60 s deadlines (or none, for the blocking rpcs)."""

    def __init__(self, inner: StepHost, agents: Agents, step_timeout: float) -> None:
        self._inner = inner
        self._agents = agents
        self._cap = step_timeout
        self._client: AgentClient | None = None

    @property
    def config(self) -> RuntimeConfig:
        return self._inner.config

    @property
    def driver(self) -> str:
        return self._inner.driver

    @property
    def private_paths(self) -> list[str]:
        return self._inner.private_paths

    def layout(self, sandbox_id: str) -> host.SandboxLayout:
        return self._inner.layout(sandbox_id)

    @property
    def image_cache(self) -> Path:
        return self._inner.image_cache

    def state(self, sandbox_id: str) -> SandboxState:
        return self._inner.state(sandbox_id)

    def events(self, sandbox_id: str) -> list[RecordedEvent]:
        return self._inner.events(sandbox_id)

    def forget_agent(self, sandbox_id: str) -> None:
        self._inner.forget_agent(sandbox_id)

    def agent_for(self, state: SandboxState) -> AgentClient:
        if self._client is None or self._client.url != state.agent_url:
            self.close()
            self._client = self._agents.new_client(state, cap=self._cap,
                                                   keep_connection=True)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def _unknown_mounts(layout: host.SandboxLayout, state: SandboxState) -> list[str]:
    """Mounts under the sandbox dir the ledger does not hold (copies made by a recursive
    bind of a held mount's `copies` dir, and shared/ mirrors of mounts/ entries, made by
    mount propagation, count as held)."""
    mounts = [r for r in state.ledger.values() if r["kind"] == Kind.MOUNT]
    held = {r["path"] for r in mounts}
    for r in mounts:
        if r.get("copies"):
            src = r["copies"] + "/"
            held |= {r["path"] + "/" + p[len(src):] for p in set(held) if p.startswith(src)}
    mounts_dir = str(layout.mounts) + "/"
    held |= {str(layout.shared / p[len(mounts_dir):]) for p in held if p.startswith(mounts_dir)}
    return [m.mount_point for m in host.mounts_under(layout.root) if m.mount_point not in held]
