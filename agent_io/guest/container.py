"""A container: its process description, its processes, its storages, its run state."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from agent_io import convert
from agent_io import messages as m
from agent_io.guest.errors import AlreadyExists, NotFound
from agent_io.guest.process import Process, ProcessSpec
from agent_io.guest.storage import Prepared


class SpawnError(ValueError):
    """The process could not be started (bad args, cwd, identity, or runc refused it)."""


def _ids(value: str, what: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise SpawnError(f"{what}: {value!r} is not a numeric id") from None


def process_spec(proc: m.oci.Process | None, string_user: m.agent.StringUser | None,
                 where: str) -> ProcessSpec:
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
        args=list(proc.Args), env=list(proc.Env), cwd=proc.Cwd or "/",
        uid=uid, gid=gid, groups=groups, terminal=proc.Terminal,
        rows=proc.ConsoleSize.Height, cols=proc.ConsoleSize.Width,
        oci=convert.oci_spec_from_proto(m.oci.Spec(Process=proc))["process"],
    )


@dataclass
class Container:
    """Process table of one container; `init_exec` is the exec id of its first process.

    runc made the init process at create time (`pending` until StartContainer)."""

    id: str
    init_exec: str
    init_spec: ProcessSpec
    bundle: Path
    storages: list[Prepared] = field(default_factory=list)
    state: str = "created"
    pending: Process | None = None
    cgroups: list[Path] = field(default_factory=list)
    oom_seen: int = 0
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

    def all_processes(self) -> list[Process]:
        return [*self.processes.values(), *([self.pending] if self.pending else [])]

    def live(self) -> list[Process]:
        return [p for p in self.all_processes() if not p.exited]


class ContainerTable:
    """Containers by id, guarded by one lock (held only for lookups and inserts)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_id: dict[str, Container] = {}
        self._reserved: set[str] = set()

    def reserve(self, cid: str, rpc: str) -> None:
        """Claim an id while the container is being made (a second create is refused)."""
        with self._lock:
            if cid in self._by_id or cid in self._reserved:
                raise AlreadyExists(f"{rpc}: container {cid!r} already exists")
            self._reserved.add(cid)

    def add(self, c: Container) -> None:
        with self._lock:
            self._reserved.discard(c.id)
            self._by_id[c.id] = c

    def release(self, cid: str) -> None:
        with self._lock:
            self._reserved.discard(cid)

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
