"""Host-side client of a Kata-v1-compatible guest agent, with the v1 host semantics.

Conventions (every method follows them):

* Arguments: plain Python values for simple things (ids, signals, sizes, bytes, paths,
  datetimes); proto messages from :mod:`agent_io.messages` for structured ones (OCI
  ``Spec``/``Process``/``LinuxResources``, ``Storage``, ``Device``, ``KernelModule``,
  ``types.Interface``/``Route``/``ARPNeighbor``).
* Results: ``None`` for rpcs answering ``Empty``; a plain value when the answer is one
  scalar (``wait_process`` -> int status, ``read_stdout`` -> bytes, ``write_stdin`` -> int,
  ``list_processes`` -> bytes, ``get_oom_event`` -> container id, ``check`` -> serving
  status int); a list for list wrappers (``Interfaces``, ``Routes``); otherwise the proto
  response (``version``, ``stats_container``, ``get_guest_details``, ``update_interface``).
* Failures: only :mod:`agent_io.errors` exceptions (never a raw ``grpc.RpcError``);
  bad arguments are ``ValueError``.

Connection rules (kata_agent.go v1): connect lazily; with ``keep_connection=False`` every
request gets its own channel, closed after it; after :meth:`AgentClient.mark_dead` every
call fails at once with ``AgentDead``; with ``proxy_pid`` the pid is probed before each
request so a dead proxy/guest is refused without dialing. Deadlines: 30 s for
Check/Version, 60 s by default, none for WaitProcess, GetOOMEvent, ReadStdout and
ReadStderr; override any with ``timeouts={"RpcName": seconds | None, "default": ...}``.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, cast

import grpc

from agent_io import messages as m
from agent_io.channel import (
    Stubs,
    merge_timeouts,
    pid_alive,
    translate,
)
from agent_io.errors import (
    AgentDead,
    AgentRpcError,
    AgentUnavailable,
)

log = logging.getLogger(__name__)

COPY_CHUNK_BYTES = 1 << 20
COPY_DIR_MODE = stat.S_IFDIR | 0o750
HOSTNAME_MAX_LEN = 64
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_FROM_TABLE = object()  # "use this rpc's deadline from the timeouts table"


class AgentClient:
    """Talks to one sandbox's guest agent at ``url`` (``unix:/abs/path``)."""

    def __init__(
        self,
        url: str,
        *,
        keep_connection: bool = True,
        timeouts: Mapping[str, float | None] | None = None,
        proxy_pid: int | None = None,
        sandbox_id: str | None = None,
        interceptors: Sequence[grpc.UnaryUnaryClientInterceptor] = (),
    ) -> None:
        if not url.startswith("unix:/"):
            raise ValueError(f"agent url {url!r} for sandbox {sandbox_id}: want unix:/abs/path")
        self.url = url
        self.keep_connection = keep_connection
        self.timeouts = merge_timeouts(timeouts)
        self.proxy_pid = proxy_pid if proxy_pid and proxy_pid > 0 else None
        self.sandbox_id = sandbox_id
        self._interceptors = tuple(interceptors)
        self._stubs: Stubs | None = None
        self._lock = threading.Lock()
        self._dead: str | None = None

    # -- connection ---------------------------------------------------------------------

    def __enter__(self) -> AgentClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Drop the connection; a later call reconnects lazily."""
        with self._lock:
            stubs, self._stubs = self._stubs, None
        if stubs is not None:
            stubs.channel.close()

    def mark_dead(self, why: str = "marked dead by the runtime") -> None:
        """Refuse every later call at once with AgentDead (the guest is known gone)."""
        self._dead = why
        self.close()

    @property
    def dead(self) -> bool:
        return self._dead is not None

    def timeout_for(self, rpc: str) -> float | None:
        return self.timeouts.get(rpc, self.timeouts["default"])

    def _refuse_if_dead(self, rpc: str, container_id: str | None) -> None:
        why = self._dead
        if why is None and self.proxy_pid is not None and not pid_alive(self.proxy_pid):
            why = f"proxy/guest pid {self.proxy_pid} is not running"
        if why is not None:
            raise AgentDead(why, rpc=rpc, sandbox_id=self.sandbox_id, container_id=container_id)

    def _call(
        self,
        rpc: str,
        request: Any,
        container_id: str | None = None,
        *,
        timeout: float | None | object = _FROM_TABLE,
        wait_for_ready: bool | None = None,
    ) -> Any:
        self._refuse_if_dead(rpc, container_id)
        deadline = self.timeout_for(rpc) if timeout is _FROM_TABLE else cast(float | None, timeout)
        if self.keep_connection:
            stubs = self._stubs
            if stubs is None:
                with self._lock:
                    if self._stubs is None:
                        self._stubs = Stubs(self.url, self._interceptors)
                    stubs = self._stubs
            owned = None
        else:
            stubs = owned = Stubs(self.url, self._interceptors)
        try:
            return stubs.method(rpc)(request, timeout=deadline, wait_for_ready=wait_for_ready)
        except grpc.RpcError as err:
            raise translate(err, rpc=rpc, url=self.url, dead=self._dead, deadline=deadline,
                            sandbox_id=self.sandbox_id, container_id=container_id) from None
        except ValueError as err:  # the channel was closed under us by close()/mark_dead()
            raise AgentUnavailable(
                f"connection closed during the call ({err})",
                rpc=rpc, sandbox_id=self.sandbox_id, container_id=container_id,
            ) from None
        finally:
            if owned is not None:
                owned.channel.close()

    # -- health ---------------------------------------------------------------------------

    def check(self) -> int:
        """Health.Check; returns the serving status (m.health.HealthCheckResponse.SERVING...)."""
        return self._call("Check", m.health.CheckRequest()).status

    def version(self) -> Any:
        """Health.Version -> m.health.VersionCheckResponse."""
        return self._call("Version", m.health.CheckRequest())

    def wait_ready(self, timeout: float) -> int:
        """Start-up probe: Check that waits for the socket to appear, up to ``timeout`` s."""
        return self._call(
            "Check", m.health.CheckRequest(), timeout=timeout, wait_for_ready=True
        ).status

    # -- sandbox --------------------------------------------------------------------------

    def create_sandbox(
        self,
        *,
        hostname: str,
        sandbox_id: str | None = None,
        dns: Iterable[str] = (),
        storages: Iterable[Any] = (),
        sandbox_pidns: bool = False,
        guest_hook_path: str = "",
        kernel_modules: Iterable[Any] = (),
    ) -> None:
        sid = sandbox_id if sandbox_id is not None else self.sandbox_id or ""
        if len(hostname) > HOSTNAME_MAX_LEN:
            raise ValueError(
                f"sandbox {sid}: hostname {hostname!r} longer than {HOSTNAME_MAX_LEN} chars"
            )
        self._call("CreateSandbox", m.agent.CreateSandboxRequest(
            hostname=hostname, dns=list(dns), storages=list(storages),
            sandbox_pidns=sandbox_pidns, sandbox_id=sid, guest_hook_path=guest_hook_path,
            kernel_modules=list(kernel_modules),
        ))

    def destroy_sandbox(self) -> None:
        self._call("DestroySandbox", m.agent.DestroySandboxRequest())

    # -- containers -----------------------------------------------------------------------

    def create_container(
        self,
        container_id: str,
        oci: Any,
        *,
        exec_id: str | None = None,
        string_user: Any = None,
        devices: Iterable[Any] = (),
        storages: Iterable[Any] = (),
        sandbox_pidns: bool = False,
        agent_pidns: bool = False,
    ) -> None:
        """CreateContainer with ``oci`` an m.oci.Spec; the exec id defaults to the container id."""
        self._call("CreateContainer", m.agent.CreateContainerRequest(
            container_id=container_id, exec_id=exec_id or container_id,
            string_user=string_user, devices=list(devices), storages=list(storages),
            OCI=oci, sandbox_pidns=sandbox_pidns, agent_pidns=agent_pidns,
        ), container_id)

    def start_container(self, container_id: str) -> None:
        self._call("StartContainer", m.agent.StartContainerRequest(container_id=container_id),
                   container_id)

    def remove_container(self, container_id: str, timeout: int = 0) -> None:
        """RemoveContainer; ``timeout`` 0 lets the agent wait forever (our deadline bounds it)."""
        self._call("RemoveContainer", m.agent.RemoveContainerRequest(
            container_id=container_id, timeout=timeout), container_id)

    def pause_container(self, container_id: str) -> None:
        self._call("PauseContainer", m.agent.PauseContainerRequest(container_id=container_id),
                   container_id)

    def resume_container(self, container_id: str) -> None:
        self._call("ResumeContainer",
                   m.agent.ResumeContainerRequest(container_id=container_id), container_id)

    def update_container(self, container_id: str, resources: Any) -> None:
        """UpdateContainer with ``resources`` an m.oci.LinuxResources."""
        self._call("UpdateContainer", m.agent.UpdateContainerRequest(
            container_id=container_id, resources=resources), container_id)

    def stats_container(self, container_id: str) -> Any:
        """-> m.agent.StatsContainerResponse."""
        return self._call("StatsContainer",
                          m.agent.StatsContainerRequest(container_id=container_id), container_id)

    def list_processes(
        self, container_id: str, format: str = "json", args: Iterable[str] = ()
    ) -> bytes:
        return self._call("ListProcesses", m.agent.ListProcessesRequest(
            container_id=container_id, format=format, args=list(args)), container_id
        ).process_list

    # -- processes ------------------------------------------------------------------------

    def exec_process(
        self, container_id: str, exec_id: str, process: Any, string_user: Any = None
    ) -> None:
        """ExecProcess with ``process`` an m.oci.Process."""
        self._call("ExecProcess", m.agent.ExecProcessRequest(
            container_id=container_id, exec_id=exec_id, process=process,
            string_user=string_user), container_id)

    def signal_process(
        self, container_id: str, signal: int, exec_id: str | None = None, *, all: bool = False
    ) -> None:
        """SignalProcess; ``all=True`` sends an empty exec id: every process of the container."""
        if all and exec_id:
            raise ValueError(f"container {container_id}: signal all=True with exec id {exec_id!r}")
        if not all and not exec_id:
            raise ValueError(f"container {container_id}: signal needs an exec id or all=True")
        self._call("SignalProcess", m.agent.SignalProcessRequest(
            container_id=container_id, exec_id="" if all else exec_id, signal=int(signal)),
            container_id)

    def wait_process(self, container_id: str, exec_id: str) -> int:
        """Block (no deadline by default) until the process exits; return its status."""
        return self._call("WaitProcess", m.agent.WaitProcessRequest(
            container_id=container_id, exec_id=exec_id), container_id).status

    def write_stdin(self, container_id: str, exec_id: str, data: bytes) -> int:
        """Returns how many bytes the agent wrote."""
        return self._call("WriteStdin", m.agent.WriteStreamRequest(
            container_id=container_id, exec_id=exec_id, data=bytes(data)), container_id).len

    def read_stdout(self, container_id: str, exec_id: str, size: int = 65536) -> bytes:
        """Up to ``size`` bytes of stdout; empty bytes means EOF."""
        return self._read("ReadStdout", container_id, exec_id, size)

    def read_stderr(self, container_id: str, exec_id: str, size: int = 65536) -> bytes:
        """Up to ``size`` bytes of stderr; empty bytes means EOF."""
        return self._read("ReadStderr", container_id, exec_id, size)

    def _read(self, rpc: str, container_id: str, exec_id: str, size: int) -> bytes:
        return self._call(rpc, m.agent.ReadStreamRequest(
            container_id=container_id, exec_id=exec_id, len=size), container_id).data

    def close_stdin(self, container_id: str, exec_id: str) -> None:
        self._call("CloseStdin", m.agent.CloseStdinRequest(
            container_id=container_id, exec_id=exec_id), container_id)

    def tty_win_resize(self, container_id: str, exec_id: str, rows: int, columns: int) -> None:
        self._call("TtyWinResize", m.agent.TtyWinResizeRequest(
            container_id=container_id, exec_id=exec_id, row=rows, column=columns), container_id)

    # -- network --------------------------------------------------------------------------

    def update_interface(self, interface: Any) -> Any:
        """UpdateInterface(m.types.Interface) -> the interface as the guest configured it."""
        return self._call("UpdateInterface", m.agent.UpdateInterfaceRequest(interface=interface))

    def update_interfaces(self, interfaces: Iterable[Any]) -> list[Any]:
        """One UpdateInterface per interface, in order (as the v1 host does at start)."""
        return [self.update_interface(i) for i in interfaces]

    def update_routes(self, routes: Iterable[Any]) -> list[Any]:
        """UpdateRoutes(m.types.Route...) -> the routes the guest now has."""
        return list(self._call("UpdateRoutes", m.agent.UpdateRoutesRequest(
            routes=m.agent.Routes(Routes=list(routes)))).Routes)

    def list_interfaces(self) -> list[Any]:
        return list(self._call("ListInterfaces", m.agent.ListInterfacesRequest()).Interfaces)

    def list_routes(self) -> list[Any]:
        return list(self._call("ListRoutes", m.agent.ListRoutesRequest()).Routes)

    def add_arp_neighbors(self, neighbors: Iterable[Any]) -> None:
        """AddARPNeighbors; an old agent answering UNIMPLEMENTED is a warning, not a failure."""
        request = m.agent.AddARPNeighborsRequest(
            neighbors=m.agent.ARPNeighbors(ARPNeighbors=list(neighbors)))
        try:
            self._call("AddARPNeighbors", request)
        except AgentRpcError as err:
            if err.code != "UNIMPLEMENTED":
                raise
            log.warning("sandbox %s: agent does not support AddARPNeighbors: %s",
                        self.sandbox_id, err.details)

    # -- guest ----------------------------------------------------------------------------

    def online_cpu_mem(self, nb_cpus: int, *, wait: bool = False, cpu_only: bool = False) -> None:
        self._call("OnlineCPUMem", m.agent.OnlineCPUMemRequest(
            wait=wait, nb_cpus=nb_cpus, cpu_only=cpu_only))

    def reseed_random_dev(self, data: bytes) -> None:
        self._call("ReseedRandomDev", m.agent.ReseedRandomDevRequest(data=bytes(data)))

    def get_guest_details(
        self, *, mem_block_size: bool = True, mem_hotplug_probe: bool = True
    ) -> Any:
        """-> m.agent.GuestDetailsResponse."""
        return self._call("GetGuestDetails", m.agent.GuestDetailsRequest(
            mem_block_size=mem_block_size, mem_hotplug_probe=mem_hotplug_probe))

    def mem_hotplug_by_probe(self, addr: int, size_mb: int, section_size_mb: int) -> None:
        """Probe one address per memory section of the hot-added range."""
        if section_size_mb <= 0:
            raise ValueError(
                f"sandbox {self.sandbox_id}: memory section size {section_size_mb} MiB must be > 0"
            )
        sections = size_mb // section_size_mb
        addrs = [addr + ((i * section_size_mb) << 20) for i in range(sections)]
        self._call("MemHotplugByProbe", m.agent.MemHotplugByProbeRequest(
            memHotplugProbeAddr=addrs))

    def set_guest_date_time(self, when: datetime) -> None:
        """Set the guest clock; ``when`` must be timezone-aware."""
        if when.tzinfo is None:
            raise ValueError(f"sandbox {self.sandbox_id}: guest time {when} has no timezone")
        delta = when - _EPOCH
        self._call("SetGuestDateTime", m.agent.SetGuestDateTimeRequest(
            Sec=delta.days * 86400 + delta.seconds, Usec=delta.microseconds))

    def copy_file(self, src: str | os.PathLike[str], dst: str) -> None:
        """Copy host file ``src`` to guest path ``dst`` in 1 MiB chunks (one empty request for
        an empty file), with the host file's mode, uid and gid."""
        with open(src, "rb") as f:
            st = os.fstat(f.fileno())

            def request(offset: int = 0, data: bytes = b"") -> m.agent.CopyFileRequest:
                return m.agent.CopyFileRequest(
                    path=dst, dir_mode=COPY_DIR_MODE, file_mode=st.st_mode,
                    file_size=st.st_size, uid=st.st_uid, gid=st.st_gid, offset=offset,
                    data=data)

            if st.st_size == 0:
                self._call("CopyFile", request())
                return
            offset = 0
            while chunk := f.read(COPY_CHUNK_BYTES):
                self._call("CopyFile", request(offset, chunk))
                offset += COPY_CHUNK_BYTES

    def get_oom_event(self) -> str:
        """Block (no deadline by default) until a container is OOM-killed; return its id."""
        return self._call("GetOOMEvent", m.agent.GetOOMEventRequest()).container_id

    def start_tracing(self) -> None:
        self._call("StartTracing", m.agent.StartTracingRequest())

    def stop_tracing(self) -> None:
        self._call("StopTracing", m.agent.StopTracingRequest())
