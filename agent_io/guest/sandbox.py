"""Sandbox-wide facts the host sends once (CreateSandbox) plus what the agent recorded."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from agent_io.guest import syscalls
from agent_io.guest.errors import AlreadyExists, WrongState
from agent_io.guest.storage import Prepared

HOSTNAME_MAX = 64


@dataclass
class Recorded:
    """Requests that would change the machine, validated and kept instead of applied."""

    online_cpus: list[tuple[int, bool, bool]] = field(default_factory=list)
    probed_memory: list[int] = field(default_factory=list)
    reseeded_bytes: int = 0
    guest_time: tuple[int, int] | None = None
    tracing: bool = False


@dataclass
class Sandbox:
    id: str = ""
    hostname: str = ""
    dns: list[str] = field(default_factory=list)
    pidns: bool = False
    guest_hook_path: str = ""
    kernel_modules: list[tuple[str, list[str]]] = field(default_factory=list)
    storages: list[Prepared] = field(default_factory=list)


class SandboxState:
    """The one sandbox this agent serves (CreateSandbox once, DestroySandbox to reset)."""

    def __init__(self, own_uts: bool) -> None:
        self.own_uts = own_uts
        self.lock = threading.Lock()
        self.current: Sandbox | None = None
        self.recorded = Recorded()

    def begin(self, sb: Sandbox) -> None:
        if self.current is not None:
            raise AlreadyExists(f"CreateSandbox: sandbox {self.current.id!r} already exists")
        if len(sb.hostname) > HOSTNAME_MAX:
            raise ValueError(f"CreateSandbox: hostname {sb.hostname!r} longer than {HOSTNAME_MAX}")
        self.current = sb

    def apply_hostname(self, hostname: str) -> None:
        if hostname and self.own_uts:
            syscalls.sethostname(hostname)

    @staticmethod
    def write_resolv_conf(path: Path, dns: list[str]) -> None:
        """Write the DNS lines atomically as the guest's resolv.conf."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(".resolv.conf.tmp")
        tmp.write_text("".join(line.rstrip("\n") + "\n" for line in dns))
        os.replace(tmp, path)

    def set_tracing(self, on: bool, rpc: str) -> None:
        with self.lock:
            if self.recorded.tracing == on:
                raise WrongState(f"{rpc}: tracing is already {'on' if on else 'off'}")
            self.recorded.tracing = on
