"""Shared pieces of the qemu driver tests: a booted VM and how to reach it."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from sandbox_fsm import host
from sandbox_fsm.drivers import guestimage, qemu, vmproxy


@dataclass
class BootedVm:
    dir: Path
    vm: qemu.VmProcess
    proxy: host.ProcessIdentity | None
    proxy_socket: str
    shared: Path
    kernel_release: str

    def start_proxy(self) -> host.ProcessIdentity:
        """Start (or restart) the VM's proxy and wait until the guest answered it."""
        self.proxy = start_proxy(self.dir, self.vm)
        return self.proxy


def start_proxy(base: Path, vm: qemu.VmProcess) -> host.ProcessIdentity:
    sock = str(base / "sock" / "proxy.sock")
    ident = host.spawn(vmproxy.proxy_argv(sock, vm.channel, 120.0),
                       log_path=base / "log" / "proxy.log")
    host.wait_for_path(sock, timeout=120.0, ident=ident)
    return ident


def private_dir(prefix: str) -> Path:
    """A 0700 dir with short paths (unix sockets must stay under 108 bytes)."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


def spec_for(image: guestimage.GuestImage, shared: Path) -> qemu.QemuSpec:
    accel, _ = qemu.choose_accel("auto")
    return qemu.QemuSpec(kernel=image.kernel.path, initrd=str(image.path), accel=accel,
                         vcpus=2, memory_mb=512, shared_dir=str(shared))
