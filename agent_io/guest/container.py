"""A container: its process description, its processes, its storages, its run state."""

from __future__ import annotations

import signal
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path

from agent_io import messages as m
from agent_io.guest.errors import AlreadyExists, NotFound, WrongState
from agent_io.guest.paths import GuestPaths, is_rootfs
from agent_io.guest.process import Process, ProcessSpec, SpawnError
from agent_io.guest.storage import Prepared


def _ids(value: str, what: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise SpawnError(f"{what}: {value!r} is not a numeric id") from None


def process_spec(proc: m.oci.Process | None, string_user: m.agent.StringUser | None,
                 root: Path | None, where: str) -> ProcessSpec:
    """OCI Process (+ optional StringUser override) -> what to run, validated."""
    if proc is None or not proc.Args:
        raise SpawnError(f"{where}: OCI process has no Args")
    uid, gid, groups = proc.User.UID, proc.User.GID, list(proc.User.AdditionalGids)
    if string_user is not None and string_user.uid:
        uid = _ids(string_user.uid, f"{where}: string_user.uid")
        gid = _ids(string_user.gid or "0", f"{where}: string_user.gid")
        groups = [_ids(g, f"{where}: string_user.additionalGids")
                  for g in string_user.additionalGids]
    return ProcessSpec(
        args=list(proc.Args),
        env=list(proc.Env),
        cwd=proc.Cwd or "/",
        uid=uid,
        gid=gid,
        groups=groups,
        terminal=proc.Terminal,
        rows=proc.ConsoleSize.Height,
        cols=proc.ConsoleSize.Width,
        root=root,
    )


def container_spec(req: m.agent.CreateContainerRequest, paths: GuestPaths,
                   where: str) -> ProcessSpec:
    """The init process of CreateContainer; chroot only when Root.Path holds a rootfs."""
    oci = req.OCI
    root = None
    if oci.Root.Path:
        host_root = paths.host(oci.Root.Path, f"{where}: OCI Root.Path")
        root = host_root if is_rootfs(host_root) else None
    user = req.string_user if req.HasField("string_user") else None
    return process_spec(oci.Process if oci.HasField("Process") else None, user, root, where)


@dataclass
class Container:
    """Process table of one container; `init_exec` is the exec id of its first process."""

    id: str
    init_exec: str
    init_spec: ProcessSpec
    storages: list[Prepared] = field(default_factory=list)
    resources: m.oci.LinuxResources | None = None
    state: str = "created"
    processes: dict[str, Process] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def process(self, exec_id: str, rpc: str) -> Process:
        """Empty exec id or the container id names the init process."""
        key = self.init_exec if exec_id in ("", self.id) else exec_id
        proc = self.processes.get(key)
        if proc is None:
            what = "init process (not started)" if key == self.init_exec else f"exec {exec_id!r}"
            raise NotFound(f"{rpc}: container {self.id!r} has no {what}")
        return proc

    def add(self, proc: Process, rpc: str) -> None:
        if proc.exec_id in self.processes:
            raise AlreadyExists(f"{rpc}: container {self.id!r} already has exec {proc.exec_id!r}")
        self.processes[proc.exec_id] = proc

    def exec_spec(self, spec: ProcessSpec) -> ProcessSpec:
        """An exec runs in the same root as the init process."""
        return replace(spec, root=self.init_spec.root)

    def live(self) -> list[Process]:
        return [p for p in self.processes.values() if not p.exited]

    def signal_all(self, signum: int) -> None:
        for p in self.live():
            p.signal(signum, group=True)

    def pause(self, rpc: str) -> None:
        if self.state != "running":
            raise WrongState(f"{rpc}: container {self.id!r} is {self.state}, not running")
        self.signal_all(signal.SIGSTOP)
        self.state = "paused"

    def resume(self, rpc: str) -> None:
        if self.state != "paused":
            raise WrongState(f"{rpc}: container {self.id!r} is {self.state}, not paused")
        self.signal_all(signal.SIGCONT)
        self.state = "running"


class ContainerTable:
    """Containers by id, guarded by one lock (held only for lookups and inserts)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_id: dict[str, Container] = {}

    def add(self, c: Container, rpc: str) -> None:
        with self._lock:
            if c.id in self._by_id:
                raise AlreadyExists(f"{rpc}: container {c.id!r} already exists")
            self._by_id[c.id] = c

    def reserve(self, cid: str, rpc: str) -> None:
        with self._lock:
            if cid in self._by_id:
                raise AlreadyExists(f"{rpc}: container {cid!r} already exists")

    def get(self, cid: str, rpc: str) -> Container:
        with self._lock:
            c = self._by_id.get(cid)
        if c is None:
            raise NotFound(f"{rpc}: no container {cid!r}")
        return c

    def remove(self, cid: str) -> None:
        with self._lock:
            self._by_id.pop(cid, None)

    def all(self) -> list[Container]:
        with self._lock:
            return list(self._by_id.values())
