"""Containers made by runc: bundle, create (the init waits), start, exec, with stdio.

The agent writes each container's bundle from the spec CreateContainer received and lets
runc do what makes a container contain (namespaces, pivot_root, capabilities, seccomp,
cgroups). runc hands processes back as pids in a pid file; they are re-parented to the
agent (a child subreaper, or the init of its PID namespace), whose reaper reports their
exit. The pty of a terminal process comes back over runc's console socket.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent_io import convert
from agent_io.guest import bundle, cgroups
from agent_io.guest.console import ConsoleSocket
from agent_io.guest.container import Container, SpawnError
from agent_io.guest.paths import GuestPaths
from agent_io.guest.process import Process, ProcessSpec
from agent_io.guest.runc import Runc, RuncError
from agent_io.guest.spawner import Reaper, Spawner
from agent_io.guest.stdio import Stdio
from agent_io.rootfs import DEFAULT_PATH, check_rootfs

START_WAIT_S = 5.0


def _proc_status(pid: int) -> dict[str, str] | None:
    """/proc/<pid>/status as a dict; None once the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
    except (FileNotFoundError, ProcessLookupError):
        return None


def _env(spec: ProcessSpec) -> list[str]:
    """The process env with PATH (and TERM for a terminal) defaulted, as before runc."""
    env = [e for e in spec.env if "=" in e]
    names = {e.split("=", 1)[0] for e in env}
    if "PATH" not in names:
        env.append(f"PATH={DEFAULT_PATH}")
    if spec.terminal and "TERM" not in names:
        env.append("TERM=xterm")
    return env


@dataclass(frozen=True)
class LauncherConfig:
    """runc (or crun) to run, the init to put first in a container (None: the command
    itself is pid 1), and the token naming this guest's cgroup parent."""

    runtime: str
    init: Path | None
    token: str


class Launcher:
    """Drives runc for one guest: its state root and the bundles, in the agent's own dir.

    A bundle dir also holds the console sockets of its processes: runc (create chdirs to
    the bundle; exec is started there) finds them by a short relative name."""

    def __init__(self, paths: GuestPaths, spawner: Spawner, reaper: Reaper, *, binary: str,
                 init: Path | None, token: str) -> None:
        self.paths = paths
        self.reaper = reaper
        self.init = init
        self.token = token
        self.runc = Runc(binary, paths.private / "runc", spawner, reaper)
        self.bundles = paths.private / "bundles"

    def remove_all(self) -> None:
        """After every container is deleted: the guest's cgroup parent and runc's state."""
        cgroups.remove_tree(cgroups.parent_dirs(self.token), timeout=5.0)
        shutil.rmtree(self.paths.private, ignore_errors=True)

    def cgroups_path(self, cid: str) -> str:
        """Relative: runc nests it under the agent's own cgroup, on v1 and v2 alike."""
        return f"sbx-{self.token}/{cid}"

    def process_json(self, spec: ProcessSpec, caps: dict[str, Any] | None,
                     init: bool) -> dict[str, Any]:
        ident = bundle.Identity(spec.uid, spec.gid, spec.groups)
        return bundle.process_json({**spec.oci, "args": spec.args, "cwd": spec.cwd},
                                   ident, _env(spec), caps, init and self.init is not None)

    def create(self, cid: str, init_exec: str, spec: ProcessSpec, req: Any,
               where: str) -> Container:
        """Write the bundle and `runc create`: the init exists, stopped before its exec."""
        oci = convert.oci_spec_from_proto(req.OCI)
        root = oci.get("root") or {}
        if not root.get("path"):
            raise SpawnError(f"{where}: the OCI spec has no root.path (a rootfs is required)")
        rootfs = self.paths.host(root["path"], f"{where}: OCI root.path")
        check_rootfs(rootfs, spec.args, _env(spec), spec.cwd, f"{where}: rootfs")
        readonly = bool(root.get("readonly"))
        mounts = bundle.mounts_for(
            bundle.caller_mounts(oci.get("mounts", []), self.paths, where), readonly,
            self.init)
        process = self.process_json(spec, spec.oci.get("capabilities"), init=True)
        config = bundle.config_json(oci, process, rootfs, readonly=readonly, mounts=mounts,
                                    cgroups_path=self.cgroups_path(cid))
        for d in (self.paths.private, self.runc.root, self.bundles):  # made on first use
            d.mkdir(mode=0o700, exist_ok=True)
        path = self.bundles / cid
        shutil.rmtree(path, ignore_errors=True)  # a create this agent already undid
        path.mkdir(mode=0o700)
        bundle.write_json(path / "config.json", config)
        try:
            proc = self._spawn(["create", "--bundle", str(path)], cid, init_exec, spec,
                               path / "init.pid", where)
        except SpawnError:
            self._forget(cid, path)
            raise
        c = Container(id=cid, init_exec=init_exec, init_spec=spec, bundle=path, pending=proc)
        try:
            c.cgroups = cgroups.dirs_of(proc.pid)
        except OSError:
            pass  # it died already; its exit will be reported
        return c

    def _forget(self, cid: str, path: Path) -> None:
        """Undo a create that failed half-way: whatever runc made, and the bundle."""
        try:
            self.runc.run(["delete", "--force", cid], path / "log.json")
        except RuncError:
            pass  # runc made nothing
        shutil.rmtree(path, ignore_errors=True)

    def start(self, c: Container, where: str) -> Process:
        try:
            self.runc.run(["start", c.id], c.bundle / "log.json")
        except RuncError as exc:
            raise SpawnError(f"{where}: {exc}") from None
        proc, c.pending = c.pending, None
        assert proc is not None
        self._wait_exec(proc)
        return proc

    def _wait_exec(self, proc: Process) -> None:
        """`runc start` answers before the init has left runc: a signal sent to a PID
        namespace's init before it handles signals is dropped (or ends runc's own init
        with status 2). Return once the init runs our program and, for the init helper,
        blocks its signals (it forwards them from then on)."""
        deadline = time.monotonic() + START_WAIT_S
        while not proc.exited and time.monotonic() < deadline:
            status = _proc_status(proc.pid)
            if status is None:
                return
            started = not status.get("Name", "").startswith("runc")
            if started and (self.init is None or int(status.get("SigBlk", "0"), 16)):
                return
            time.sleep(0.001)

    def exec(self, c: Container, eid: str, spec: ProcessSpec, where: str) -> Process:
        init_caps = c.init_spec.oci.get("capabilities")
        process = self.process_json(spec, spec.oci.get("capabilities") or init_caps, init=False)
        path = c.bundle / f"exec-{eid}.json"
        bundle.write_json(path, process)
        return self._spawn(["exec", "--detach", "--process", str(path)], c.id, eid, spec,
                           c.bundle / f"exec-{eid}.pid", where)

    def _spawn(self, verb: list[str], cid: str, exec_id: str, spec: ProcessSpec,
               pid_file: Path, where: str) -> Process:
        """Run a create/exec verb with the process's stdio; the Process it started."""
        stdio = Stdio(spec.terminal)
        console = ConsoleSocket(pid_file.parent) if spec.terminal else None
        null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        args = [*verb, "--pid-file", str(pid_file)]
        if console is not None:
            args += ["--console-socket", console.name]
        try:
            self.runc.run([*args, cid], pid_file.parent / "log.json",
                          stdio=stdio.child_fds or (null, null, null), cwd=pid_file.parent)
            if console is not None:
                stdio.attach_terminal(console.receive(where), spec.rows, spec.cols)
            pid = int(pid_file.read_text())
        except (RuncError, OSError, ValueError) as exc:
            stdio.close_child_ends()
            stdio.close()
            raise SpawnError(f"{where}: cannot start {spec.args!r}: {exc}") from None
        finally:
            os.close(null)
            if console is not None:
                console.close()
        stdio.close_child_ends()
        proc = Process(exec_id, spec, stdio, pid)
        self.reaper.watch(pid, proc._reaped)
        return proc
