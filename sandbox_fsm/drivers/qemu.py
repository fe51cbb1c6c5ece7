"""The qemu driver's mechanics: launch a VM, ask it about itself over QMP, stop it.

A VM is started with `-nodefaults` (no device we did not ask for, no network), the
guest image as its initrd, the agent's virtio-serial port on a chardev socket for the
proxy, a console log file, and a QMP socket (0600). It is recorded as a `VmProcess`:
(pid, start time) like every process we own, plus the paths that reach it.

Stopping is polite first: the guest is asked to shut down over its own channel (the
agent stops its containers and powers off), then qemu is told to `quit` over QMP, and
only then is it SIGKILLed. Every step treats "already gone" as done.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import socket
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qemu.qmp.legacy import QEMUMonitorProtocol

from agent_io.vmchannel import ACK_MAGIC, Decoder, Hello, Kind, encode, hello

from .. import host

log = logging.getLogger("sandbox_fsm.drivers.qemu")

ACCELS = ("auto", "kvm", "tcg")
MACHINES = ("q35", "microvm")
SHARED_FS_TAG = "kataShared"
AGENT_PORT = "agent.channel.0"
DEFAULT_QEMU = "/usr/bin/qemu-system-x86_64"
_PVM_MODULE = "/sys/module/kvm_pvm"
_FLOCK = "hhqqi4x"  # struct flock on x86_64/aarch64: type, whence, start, len, pid


class QemuError(RuntimeError):
    """qemu could not be started or asked something."""


@dataclass(frozen=True)
class QemuSpec:
    """What a VM is made of: the hypervisor's half of `[hypervisor]` in configuration.toml."""

    kernel: str
    initrd: str
    qemu: str = DEFAULT_QEMU
    machine: str = "q35"
    accel: str = "tcg"
    vcpus: int = 1
    memory_mb: int = 512
    kernel_params: str = ""
    shared_dir: str = ""
    shared_fs: str = "9p"  # "9p", or "none" for no share
    msize_9p: int = 8192


@dataclass(frozen=True)
class VmPaths:
    """Where one VM's sockets and logs live (the sandbox's private dirs)."""

    qmp: str
    channel: str
    console: str
    pidfile: str
    log: str

    @classmethod
    def under(cls, sock_dir: str | os.PathLike[str],
              log_dir: str | os.PathLike[str]) -> VmPaths:
        s, lg = Path(sock_dir), Path(log_dir)
        return cls(qmp=str(s / "qmp.sock"), channel=str(s / "channel.sock"),
                   console=str(lg / "console.log"), pidfile=str(s / "qemu.pid"),
                   log=str(lg / "qemu.log"))


@dataclass(frozen=True)
class VmProcess:
    """A running qemu as the log records it."""

    pid: int
    start_time: int
    qmp: str
    channel: str
    console: str

    @property
    def ident(self) -> host.ProcessIdentity:
        return host.ProcessIdentity(self.pid, self.start_time)


def choose_accel(setting: str) -> tuple[str, str | None]:
    """(accelerator, notice): `auto` takes KVM only when this kernel can run on it.

    A PVM /dev/kvm (the kvm_pvm module) runs PVM-enabled guest kernels only; the stock
    Debian kernel hangs on it without a word, so auto falls back to TCG and says so.
    """
    if setting not in ACCELS:
        raise QemuError(f"accel {setting!r}: accepted: {', '.join(ACCELS)}")
    if setting != "auto":
        return setting, None
    if os.path.exists(_PVM_MODULE):
        return "tcg", "/dev/kvm is PVM (kvm_pvm), which cannot boot this guest kernel; " \
                      "using TCG (software emulation, slow)"
    if os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "kvm", None
    return "tcg", "/dev/kvm is not usable; using TCG (software emulation, slow)"


def pidfile_owner(path: str) -> host.ProcessIdentity | None:
    """The live process holding qemu's lock on `path` (qemu keeps its -pidfile locked).

    The kernel names the lock's owner (F_GETLK), so a qemu whose start was never recorded
    is found without trusting the file's contents or anybody's command line.
    """
    try:
        fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
    except (FileNotFoundError, OSError):
        return None
    try:
        query = struct.pack(_FLOCK, fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0)
        kind, _, _, _, pid = struct.unpack(_FLOCK, fcntl.fcntl(fd, fcntl.F_GETLK, query))
    finally:
        os.close(fd)
    if kind == fcntl.F_UNLCK or pid <= 0:
        return None
    return host.identity_of(pid)


def _opt(value: str) -> str:
    """A path inside a qemu -option string: commas are doubled."""
    return value.replace(",", ",,")


def _kernel_cmdline(spec: QemuSpec) -> str:
    fs = spec.shared_fs if spec.shared_dir else "none"
    ours = (f"console=ttyS0 panic=-1 printk.time=1 sbx.port={AGENT_PORT} sbx.fs={fs} "
            f"sbx.share={SHARED_FS_TAG} sbx.msize={spec.msize_9p}")
    return f"{ours} {spec.kernel_params}".strip()


def argv(spec: QemuSpec, paths: VmPaths, name: str) -> list[str]:
    """The qemu command line for spec (pure: recorded as the start step's intent)."""
    if spec.machine not in MACHINES:
        raise QemuError(f"machine_type {spec.machine!r}: accepted: {', '.join(MACHINES)}")
    if spec.accel not in ("kvm", "tcg"):
        raise QemuError(f"accel {spec.accel!r} must be resolved to kvm or tcg first")
    cmd = [spec.qemu, "-name", name, "-nodefaults", "-no-user-config", "-display", "none",
           "-no-reboot", "-machine", spec.machine, "-accel", spec.accel,
           *(["-cpu", "host"] if spec.accel == "kvm" else []),
           "-smp", str(spec.vcpus), "-m", str(spec.memory_mb),
           "-kernel", spec.kernel, "-initrd", spec.initrd,
           "-append", _kernel_cmdline(spec), "-pidfile", paths.pidfile,
           "-chardev", f"file,id=console,path={_opt(paths.console)}",
           "-serial", "chardev:console",
           "-chardev", f"socket,id=qmp,path={_opt(paths.qmp)},server=on,wait=off",
           "-mon", "chardev=qmp,mode=control",
           "-device", "virtio-serial-pci,id=serial0",
           "-chardev", f"socket,id=agent,path={_opt(paths.channel)},server=on,wait=off",
           "-device", f"virtserialport,bus=serial0.0,chardev=agent,name={AGENT_PORT}",
           "-object", "rng-random,id=rng0,filename=/dev/urandom",
           "-device", "virtio-rng-pci,rng=rng0"]
    if spec.shared_dir and spec.shared_fs == "9p":
        cmd += ["-fsdev", f"local,id=shared,path={_opt(spec.shared_dir)},security_model=none,"
                          "multidevs=remap",
                "-device", f"virtio-9p-pci,fsdev=shared,mount_tag={SHARED_FS_TAG}"]
    return cmd


def launch(command: list[str], paths: VmPaths, *, timeout: float = 30.0) -> VmProcess:
    """Start qemu and wait for its QMP socket; both sockets end up mode 0600."""
    for stale in (paths.qmp, paths.channel, paths.pidfile):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(stale)
    ident = host.spawn(command, log_path=paths.log)
    try:
        host.wait_for_path(paths.qmp, timeout=timeout, ident=ident)
        host.wait_for_path(paths.channel, timeout=timeout, ident=ident)
        for sock in (paths.qmp, paths.channel):
            os.chmod(sock, 0o600)
    except BaseException:
        host.terminate(ident, timeout=1.0)
        raise
    return VmProcess(ident.pid, ident.start_time, paths.qmp, paths.channel, paths.console)


def qmp(path: str, command: str, *, timeout: float = 5.0, **args: Any) -> Any:
    """One QMP command on a fresh connection (qemu serves one monitor client at a time)."""
    monitor = QEMUMonitorProtocol(path)
    try:
        monitor.connect(negotiate=True)
        monitor.settimeout(timeout)
        return monitor.cmd(command, **args)
    finally:
        monitor.close()


def running(vm: VmProcess) -> bool:
    """The recorded qemu is alive and its guest is running (QMP query-status)."""
    if not host.is_alive(vm.ident):
        return False
    try:
        return bool(qmp(vm.qmp, "query-status").get("running"))
    except (OSError, EOFError, ValueError) as exc:
        log.debug("query-status on %s failed: %s", vm.qmp, exc)
        return False


def _guest_shutdown(vm: VmProcess, grace: float) -> bool:
    """Ask the guest to power off over the agent channel and wait for qemu to exit.

    The channel only answers when no proxy holds it; the connection stays open until
    qemu exits, so the request is not lost with a closing chardev.
    """
    nonce = os.urandom(16)
    decoder = Decoder(ACK_MAGIC)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(min(grace, 2.0))
        try:
            sock.connect(vm.channel)
            sock.sendall(hello(nonce))
            while not any(isinstance(i, Hello) and i.nonce == nonce
                          for i in decoder.feed(sock.recv(65536) or b"")):
                pass
            sock.sendall(encode(Kind.SHUTDOWN, 0))
        except OSError:
            return False
        return host.wait_exit(vm.ident, grace)


def stop(vm: VmProcess, *, grace: float = 5.0) -> bool:
    """Guest shutdown, then QMP quit, then SIGKILL; False when it was already gone."""
    ident = vm.ident
    if not host.is_alive(ident):
        host.reap_children()
        return False
    if _guest_shutdown(vm, grace):
        return True
    with contextlib.suppress(OSError, EOFError, ValueError):
        qmp(vm.qmp, "quit", timeout=2.0)
        if host.wait_exit(ident, grace):
            return True
    host.signal_process(ident, 9)
    host.terminate(ident, timeout=0.1)
    return True


def console_tail(vm_console: str, limit: int = 4096) -> str:
    """The end of the guest console, for errors and `sbx logs --console`."""
    try:
        with open(vm_console, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - limit))
            return f.read().decode(errors="replace")
    except OSError:
        return ""


__all__ = ["ACCELS", "MACHINES", "QemuError", "QemuSpec", "VmPaths", "VmProcess", "argv",
           "choose_accel", "console_tail", "launch", "pidfile_owner", "qmp", "running", "stop"]
