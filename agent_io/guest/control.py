"""What the agent does to a running container, through runc: signal, pause, resume,
update, stats, ps, destroy. The container's lock is held by the caller."""

from __future__ import annotations

import shutil
import signal
from typing import Any

from agent_io import convert
from agent_io import messages as m
from agent_io.guest import bundle
from agent_io.guest.container import Container
from agent_io.guest.errors import Timeout, WrongState
from agent_io.guest.runc import Runc, RuncError
from agent_io.guest.stdio import IsActive

_UNLIMITED = 1 << 62  # cgroup v1 reports "no limit" as about 2**63


def signal_container(runc: Runc, c: Container, exec_id: str, signum: int) -> None:
    """Empty exec id: every process of the container; the init by runc; an exec by pid."""
    if exec_id != "" and exec_id not in (c.id, c.init_exec):
        c.process(exec_id, "SignalProcess").signal(signum)
        return
    targets = c.live() if exec_id == "" else [c.process(exec_id, "SignalProcess")]
    if not any(not p.exited for p in targets):
        return  # nothing left to signal: not an error
    if signum == signal.SIGKILL:
        for p in targets:
            p.killed_by_agent = True
    args = ["kill", *(["--all"] if exec_id == "" else []), c.id, str(signum)]
    try:
        runc.run(args, c.bundle / "log.json")
    except RuncError:
        if any(not p.exited for p in targets if p.exec_id == c.init_exec):
            raise


def pause(runc: Runc, c: Container, rpc: str) -> None:
    if c.state != "running":
        raise WrongState(f"{rpc}: container {c.id!r} is {c.state}, not running")
    runc.run(["pause", c.id], c.bundle / "log.json")
    c.state = "paused"


def resume(runc: Runc, c: Container, rpc: str) -> None:
    if c.state != "paused":
        raise WrongState(f"{rpc}: container {c.id!r} is {c.state}, not paused")
    runc.run(["resume", c.id], c.bundle / "log.json")
    c.state = "running"


def update(runc: Runc, c: Container, resources: Any) -> None:
    """`runc update --resources FILE`: the cgroup limits change now."""
    spec = convert.oci_spec_from_proto(m.oci.Spec(Linux=m.oci.Linux(Resources=resources)))
    path = c.bundle / "resources.json"
    bundle.write_json(path, (spec.get("linux") or {}).get("resources") or {})
    runc.run(["update", "--resources", str(path), c.id], c.bundle / "log.json")


def pids(runc: Runc, c: Container) -> list[int]:
    """The container's processes (its cgroup's members), as `runc ps` lists them."""
    if not c.live():
        return []
    found = runc.json(["ps", "--format", "json", c.id], c.bundle / "log.json")
    return [int(p) for p in found or []]


def stats(runc: Runc, c: Container) -> Any:
    """CgroupStats from `runc events --stats`: the cgroup's own figures."""
    if not c.live():
        return m.agent.CgroupStats()
    data = (runc.json(["events", "--stats", c.id], c.bundle / "log.json") or {}).get("data", {})
    cpu, mem, pids_ = data.get("cpu", {}), data.get("memory", {}), data.get("pids", {})
    usage = cpu.get("usage", {})
    mem_usage = mem.get("usage", {})
    limit = mem_usage.get("limit", 0)
    return m.agent.CgroupStats(
        cpu_stats=m.agent.CpuStats(
            cpu_usage=m.agent.CpuUsage(
                total_usage=usage.get("total", 0), percpu_usage=usage.get("percpu", []),
                usage_in_usermode=usage.get("user", 0),
                usage_in_kernelmode=usage.get("kernel", 0)),
            throttling_data=m.agent.ThrottlingData(
                periods=cpu.get("throttling", {}).get("periods", 0),
                throttled_periods=cpu.get("throttling", {}).get("throttledPeriods", 0),
                throttled_time=cpu.get("throttling", {}).get("throttledTime", 0))),
        memory_stats=m.agent.MemoryStats(
            usage=m.agent.MemoryData(
                usage=mem_usage.get("usage", 0), max_usage=mem_usage.get("max", 0),
                failcnt=mem_usage.get("failcnt", 0), limit=0 if limit >= _UNLIMITED else limit),
            stats={k: v for k, v in mem.get("raw", {}).items() if isinstance(v, int)}),
        pids_stats=m.agent.PidsStats(current=pids_.get("current", 0),
                                     limit=pids_.get("limit", 0)),
    )


def destroy(runc: Runc, c: Container, timeout: float | None, is_active: IsActive) -> None:
    """SIGKILL everything (a paused container is thawed first), wait, `runc delete`."""
    if c.state == "paused":
        try:
            runc.run(["resume", c.id], c.bundle / "log.json")
        except RuncError:
            pass  # delete --force below still ends it
    c.state = "stopping"
    signal_container(runc, c, "", signal.SIGKILL)
    for p in c.all_processes():
        if p.wait(is_active, timeout) is None and not p.exited:
            raise Timeout(f"RemoveContainer {c.id!r}: exec {p.exec_id!r} (pid {p.pid}) "
                          f"still running after {timeout} s")
    try:
        runc.run(["delete", "--force", c.id], c.bundle / "log.json")
    except RuncError as exc:
        if "does not exist" not in str(exc):
            raise
    for p in c.all_processes():
        p.stdio.close()
    shutil.rmtree(c.bundle, ignore_errors=True)
    c.state = "stopped"
