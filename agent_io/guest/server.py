"""Serve the agent on a unix socket; stop cleanly on SIGTERM/SIGINT."""

from __future__ import annotations

import logging
import os
import signal
import stat
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc

from agent_io.faults import FaultPlan
from agent_io.guest import syscalls, vmport
from agent_io.guest.admission import WORKERS, BlockingAdmission, LateCalls
from agent_io.guest.health import HealthServicer
from agent_io.guest.launcher import LauncherConfig
from agent_io.guest.paths import GuestPaths
from agent_io.guest.servicer import AgentServicer
from protos import agent_pb2_grpc, health_pb2_grpc

log = logging.getLogger("agent_io.guest")


class ListenError(ValueError):
    """The --listen address cannot be used safely."""


def socket_path(listen: str) -> Path:
    """Validate `unix:/abs/path`: its directory must exist and not be world-writable."""
    if not listen.startswith("unix:"):
        raise ListenError(f"--listen {listen!r}: only unix:/absolute/path is supported")
    path = Path(listen[len("unix:"):])
    if not path.is_absolute():
        raise ListenError(f"--listen {listen!r}: socket path must be absolute")
    parent = path.parent
    try:
        mode = parent.stat().st_mode
    except FileNotFoundError:
        raise ListenError(f"--listen {listen!r}: directory {parent} does not exist") from None
    if mode & stat.S_IWOTH:
        raise ListenError(f"--listen {listen!r}: directory {parent} is world-writable "
                          f"(mode {stat.S_IMODE(mode):o}); use a 0700 directory")
    if path.exists() or path.is_symlink():
        if not stat.S_ISSOCK(path.lstat().st_mode):
            raise ListenError(f"--listen {listen!r}: {path} exists and is not a socket")
        path.unlink()  # stale socket of an earlier agent
    return path


def serve(listen: str, guest_dir: Path, shared_dir: Path, faults: str | None,
          namespaced: bool, launcher: LauncherConfig, *, kernel_params: str = "",
          vm_port: str = "") -> int:
    """Run until SIGTERM/SIGINT; then end every container process, unmount, remove the socket.

    `kernel_params` is what a VM's kernel would have booted with: kept as the guest's
    /proc/cmdline (under the guest dir) so the host's choice can be read back.
    `vm_port` names the virtio-serial port of a real VM: the machine is the agent's own
    (it mounts and sets the hostname), and the host reaches it through that port.
    """
    stop = threading.Event()  # armed first: a SIGTERM during start-up is still clean
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    path = socket_path(listen)
    for what, d in (("--guest-dir", guest_dir), ("--shared-dir", shared_dir)):
        if not d.is_dir():
            raise ListenError(f"{what} {d} is not a directory")
    plan = FaultPlan.load(faults)
    if kernel_params:
        cmdline = guest_dir / "proc" / "cmdline"
        cmdline.parent.mkdir(exist_ok=True)
        cmdline.write_text(kernel_params + "\n")
    if not namespaced:
        syscalls.prctl(syscalls.PR_SET_CHILD_SUBREAPER, 1)  # orphans come back to be reaped
    root = os.geteuid() == 0
    owns_machine = namespaced or bool(vm_port)
    agent = AgentServicer(GuestPaths(guest_dir, shared_dir), may_mount=root and owns_machine,
                          own_uts=owns_machine, launcher=launcher)
    interceptors = [BlockingAdmission(), *([plan.server_interceptor()] if plan else []),
                    LateCalls()]
    server = grpc.server(ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="rpc"),
                         interceptors=interceptors)
    agent_pb2_grpc.add_AgentServiceServicer_to_server(agent, server)
    health_pb2_grpc.add_HealthServicer_to_server(HealthServicer(), server)
    old_umask = os.umask(0o177)  # the socket is born 0600
    try:
        server.add_insecure_port(f"unix:{path}")
        server.start()
    finally:
        os.umask(old_umask)
    os.chmod(path, 0o600)
    log.info("guest agent serving on %s (namespaced=%s)", path, namespaced)
    if vm_port:
        vmport.start(vm_port, str(path), stop)
    while not stop.wait(1.0):
        pass
    plan.release()
    server.stop(grace=2.0).wait()
    agent.shutdown()
    path.unlink(missing_ok=True)
    return 0
