"""AgentService: the 32 Kata v1 rpcs, each with a real effect on processes, files, mounts."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import grpc

from agent_io import messages as m
from agent_io.guest import control
from agent_io.guest import process as procs
from agent_io.guest.container import Container, ContainerTable, process_spec
from agent_io.guest.copyfile import FileCopier
from agent_io.guest.errors import AlreadyExists, WrongState, rpc
from agent_io.guest.launcher import Launcher, LauncherConfig
from agent_io.guest.network import NetworkState
from agent_io.guest.oom import OomEvents
from agent_io.guest.paths import GuestPaths, check_id
from agent_io.guest.pstable import ps_table
from agent_io.guest.sandbox import Sandbox, SandboxState
from agent_io.guest.spawner import Reaper, Spawner
from agent_io.guest.storage import SHARED_DRIVERS, Storages
from protos import agent_pb2_grpc

AGENT_VERSION = "sandbox-fsm-guest 0.1.0"
_BLOCK_SIZE = Path("/sys/devices/system/memory/block_size_bytes")
_PROBE = Path("/sys/devices/system/memory/probe")
_EMPTY = m.Empty()
pb = m.agent
Ctx = grpc.ServicerContext


def _cid(req: Any, rpc_name: str) -> str:
    return check_id("container id", req.container_id, rpc_name)


def _eid(req: Any, rpc_name: str) -> str:
    return check_id("exec id", req.exec_id, rpc_name, allow_empty=True)


class AgentServicer(agent_pb2_grpc.AgentServiceServicer):
    """State of one guest: its sandbox, containers, storages, network, and recorded requests."""

    def __init__(self, paths: GuestPaths, *, may_mount: bool, own_uts: bool,
                 launcher: LauncherConfig) -> None:
        self.paths = paths
        self.storages = Storages(paths, may_mount)
        self.spawner = Spawner()
        self.reaper = Reaper()
        self.launcher = Launcher(paths, self.spawner, self.reaper, binary=launcher.runtime,
                                 init=launcher.init, token=launcher.token)
        self.containers = ContainerTable()
        self.network = NetworkState()
        self.oom = OomEvents()
        self.copier = FileCopier(paths.guest_dir)
        self.sandbox = SandboxState(own_uts)

    # -- sandbox ---------------------------------------------------------------------------

    @rpc
    def CreateSandbox(self, req: pb.CreateSandboxRequest, context: Ctx) -> m.Empty:
        if req.sandbox_id:
            check_id("sandbox id", req.sandbox_id, "CreateSandbox")
        sb = Sandbox(
            id=req.sandbox_id, hostname=req.hostname, dns=list(req.dns), pidns=req.sandbox_pidns,
            guest_hook_path=req.guest_hook_path,
            kernel_modules=[(k.name, list(k.parameters)) for k in req.kernel_modules],
        )
        with self.sandbox.lock:
            self.sandbox.begin(sb)
            try:
                self.sandbox.apply_hostname(req.hostname)
                self.sandbox.write_resolv_conf(self.paths.resolv_conf(), sb.dns)
                sb.storages = self.storages.setup(list(req.storages), "CreateSandbox")
            except BaseException:
                self.sandbox.current = None
                raise
        return _EMPTY

    @rpc
    def DestroySandbox(self, req: pb.DestroySandboxRequest, context: Ctx) -> m.Empty:
        for c in self.containers.all():
            self._destroy_container(c, timeout=None, context=context)
        with self.sandbox.lock:
            sb, self.sandbox.current = self.sandbox.current, None
        if sb is not None:
            self.storages.release(sb.storages)
        self.storages.release_all()
        return _EMPTY

    def shutdown(self) -> None:
        """End every container and unmount what the agent mounted (SIGTERM path); the
        guest's cgroups and runc's state go too (the janitor would, but it need not)."""
        for c in self.containers.all():
            self._destroy_container(c, timeout=5.0, context=None)
        self.storages.release_all()
        self.launcher.remove_all()

    # -- containers ------------------------------------------------------------------------

    @rpc
    def CreateContainer(self, req: pb.CreateContainerRequest, context: Ctx) -> m.Empty:
        cid = _cid(req, "CreateContainer")
        init_exec = check_id("exec id", req.exec_id, "CreateContainer", allow_empty=True) or cid
        where = f"CreateContainer {cid!r}"
        user = req.string_user if req.HasField("string_user") else None
        spec = process_spec(req.OCI.Process if req.OCI.HasField("Process") else None, user,
                            where)
        self.containers.reserve(cid, "CreateContainer")
        storages: list = []
        try:
            storages = self.storages.setup(list(req.storages), where)
            c = self.launcher.create(cid, init_exec, spec, req, where)
        except BaseException:
            self.storages.release(storages)
            self.containers.release(cid)
            raise
        c.storages = storages
        if c.pending is not None:
            self.oom.watch(c, c.pending)
        self.containers.add(c)
        return _EMPTY

    @rpc
    def StartContainer(self, req: pb.StartContainerRequest, context: Ctx) -> m.Empty:
        cid = _cid(req, "StartContainer")
        c = self.containers.get(cid, "StartContainer")
        with c.lock:
            if c.state != "created":
                raise WrongState(f"StartContainer: container {cid!r} is {c.state}, not created")
            c.add(self.launcher.start(c, f"StartContainer {cid!r}"), "StartContainer")
            c.state = "running"
        return _EMPTY

    @rpc
    def ExecProcess(self, req: pb.ExecProcessRequest, context: Ctx) -> m.Empty:
        cid = _cid(req, "ExecProcess")
        eid = check_id("exec id", req.exec_id, "ExecProcess")
        c = self.containers.get(cid, "ExecProcess")
        where = f"ExecProcess {cid!r}/{eid!r}"
        user = req.string_user if req.HasField("string_user") else None
        spec = process_spec(req.process if req.HasField("process") else None, user, where)
        with c.lock:
            if c.state not in ("running", "paused"):
                raise WrongState(f"{where}: container is {c.state}, not running")
            if eid in c.processes or eid == cid:
                raise AlreadyExists(f"{where}: exec id already exists")
            proc = self.launcher.exec(c, eid, spec, where)
            c.add(proc, where)
            self.oom.watch(c, proc)
        return _EMPTY

    @rpc
    def SignalProcess(self, req: pb.SignalProcessRequest, context: Ctx) -> m.Empty:
        cid, eid = _cid(req, "SignalProcess"), _eid(req, "SignalProcess")
        c = self.containers.get(cid, "SignalProcess")
        signum = req.signal
        if not 0 < signum < signal.NSIG:
            raise ValueError(f"SignalProcess {cid!r}: bad signal {signum}")
        control.signal_container(self.launcher.runc, c, eid, signum)
        return _EMPTY

    @rpc
    def WaitProcess(self, req: pb.WaitProcessRequest, context: Ctx) -> pb.WaitProcessResponse:
        cid, eid = _cid(req, "WaitProcess"), _eid(req, "WaitProcess")
        proc = self.containers.get(cid, "WaitProcess").process(eid, "WaitProcess")
        status = proc.wait(context.is_active)
        return m.agent.WaitProcessResponse(status=status if status is not None else -1)

    @rpc
    def RemoveContainer(self, req: pb.RemoveContainerRequest, context: Ctx) -> m.Empty:
        cid = _cid(req, "RemoveContainer")
        c = self.containers.get(cid, "RemoveContainer")
        self._destroy_container(c, timeout=req.timeout or None, context=context)
        return _EMPTY

    def _destroy_container(self, c: Container, timeout: float | None,
                           context: grpc.ServicerContext | None) -> None:
        """SIGKILL every process, wait (timeout None = no limit), runc delete, forget it."""
        is_active = context.is_active if context is not None else (lambda: True)
        with c.lock:
            control.destroy(self.launcher.runc, c, timeout, is_active)
            self.storages.release(c.storages)
        self.containers.remove(c.id)

    @rpc
    def PauseContainer(self, req: pb.PauseContainerRequest, context: Ctx) -> m.Empty:
        c = self.containers.get(_cid(req, "PauseContainer"), "PauseContainer")
        with c.lock:
            control.pause(self.launcher.runc, c, "PauseContainer")
        return _EMPTY

    @rpc
    def ResumeContainer(self, req: pb.ResumeContainerRequest, context: Ctx) -> m.Empty:
        c = self.containers.get(_cid(req, "ResumeContainer"), "ResumeContainer")
        with c.lock:
            control.resume(self.launcher.runc, c, "ResumeContainer")
        return _EMPTY

    @rpc
    def UpdateContainer(self, req: pb.UpdateContainerRequest, context: Ctx) -> m.Empty:
        c = self.containers.get(_cid(req, "UpdateContainer"), "UpdateContainer")
        with c.lock:
            control.update(self.launcher.runc, c, req.resources)
        return _EMPTY

    @rpc
    def StatsContainer(self, req: pb.StatsContainerRequest,
                       context: Ctx) -> pb.StatsContainerResponse:
        c = self.containers.get(_cid(req, "StatsContainer"), "StatsContainer")
        return m.agent.StatsContainerResponse(
            cgroup_stats=control.stats(self.launcher.runc, c))

    @rpc
    def ListProcesses(self, req: pb.ListProcessesRequest, context: Ctx) -> pb.ListProcessesResponse:
        cid = _cid(req, "ListProcesses")
        c = self.containers.get(cid, "ListProcesses")
        pids = control.pids(self.launcher.runc, c)
        table = ps_table(pids, req.format, list(req.args), f"ListProcesses {cid!r}")
        return m.agent.ListProcessesResponse(process_list=table)

    # -- stdio -----------------------------------------------------------------------------

    def _proc(self, req: Any, rpc_name: str) -> procs.Process:
        cid, eid = _cid(req, rpc_name), _eid(req, rpc_name)
        return self.containers.get(cid, rpc_name).process(eid, rpc_name)

    @rpc
    def WriteStdin(self, req: pb.WriteStreamRequest, context: Ctx) -> pb.WriteStreamResponse:
        proc = self._proc(req, "WriteStdin")
        where = f"WriteStdin {req.container_id!r}/{proc.exec_id!r}"
        return m.agent.WriteStreamResponse(len=proc.stdio.write_stdin(req.data, where))

    def _read(self, req: pb.ReadStreamRequest, context: grpc.ServicerContext, stream: str,
              rpc_name: str) -> pb.ReadStreamResponse:
        proc = self._proc(req, rpc_name)
        where = f"{rpc_name} {req.container_id!r}/{proc.exec_id!r}"
        data = proc.stdio.read(stream, req.len or 65536, context.is_active, where)
        return m.agent.ReadStreamResponse(data=data)

    @rpc
    def ReadStdout(self, req: pb.ReadStreamRequest, context: Ctx) -> pb.ReadStreamResponse:
        return self._read(req, context, "stdout", "ReadStdout")

    @rpc
    def ReadStderr(self, req: pb.ReadStreamRequest, context: Ctx) -> pb.ReadStreamResponse:
        return self._read(req, context, "stderr", "ReadStderr")

    @rpc
    def CloseStdin(self, req: pb.CloseStdinRequest, context: Ctx) -> m.Empty:
        self._proc(req, "CloseStdin").stdio.close_stdin()
        return _EMPTY

    @rpc
    def TtyWinResize(self, req: pb.TtyWinResizeRequest, context: Ctx) -> m.Empty:
        proc = self._proc(req, "TtyWinResize")
        proc.stdio.resize(req.row, req.column, f"TtyWinResize {req.container_id!r}")
        return _EMPTY

    # -- network ---------------------------------------------------------------------------

    @rpc
    def UpdateInterface(self, req: pb.UpdateInterfaceRequest, context: Ctx) -> m.types.Interface:
        return self.network.update_interface(req.interface)

    @rpc
    def UpdateRoutes(self, req: pb.UpdateRoutesRequest, context: Ctx) -> pb.Routes:
        return m.agent.Routes(Routes=self.network.update_routes(list(req.routes.Routes)))

    @rpc
    def ListInterfaces(self, req: pb.ListInterfacesRequest, context: Ctx) -> pb.Interfaces:
        return m.agent.Interfaces(Interfaces=self.network.interfaces())

    @rpc
    def ListRoutes(self, req: pb.ListRoutesRequest, context: Ctx) -> pb.Routes:
        return m.agent.Routes(Routes=self.network.routes())

    @rpc
    def AddARPNeighbors(self, req: pb.AddARPNeighborsRequest, context: Ctx) -> m.Empty:
        self.network.add_neighbors(list(req.neighbors.ARPNeighbors))
        return _EMPTY

    # -- guest machine (validated and recorded, never applied to the host) -----------------

    @rpc
    def GetGuestDetails(self, req: pb.GuestDetailsRequest, context: Ctx) -> pb.GuestDetailsResponse:
        details = m.agent.AgentDetails(
            version=AGENT_VERSION, init_daemon=os.getpid() == 1, supports_seccomp=True,
            storage_handlers=[*SHARED_DRIVERS, "ephemeral", "local"],
        )
        resp = m.agent.GuestDetailsResponse(agent_details=details)
        if req.mem_block_size:
            resp.mem_block_size_bytes = _block_size()
        if req.mem_hotplug_probe:
            resp.support_mem_hotplug_probe = _PROBE.exists()
        return resp

    @rpc
    def OnlineCPUMem(self, req: pb.OnlineCPUMemRequest, context: Ctx) -> m.Empty:
        if req.nb_cpus == 0 and req.cpu_only:
            raise ValueError("OnlineCPUMem: cpu_only with nb_cpus 0 onlines nothing")
        with self.sandbox.lock:
            self.sandbox.recorded.online_cpus.append((req.nb_cpus, req.cpu_only, req.wait))
        return _EMPTY

    @rpc
    def MemHotplugByProbe(self, req: pb.MemHotplugByProbeRequest, context: Ctx) -> m.Empty:
        block = _block_size()
        for addr in req.memHotplugProbeAddr:
            if block and addr % block:
                raise ValueError(f"MemHotplugByProbe: address 0x{addr:x} is not aligned to the "
                                 f"memory block size 0x{block:x}")
        with self.sandbox.lock:
            self.sandbox.recorded.probed_memory.extend(req.memHotplugProbeAddr)
        return _EMPTY

    @rpc
    def ReseedRandomDev(self, req: pb.ReseedRandomDevRequest, context: Ctx) -> m.Empty:
        if not req.data:
            raise ValueError("ReseedRandomDev: no seed data")
        with self.sandbox.lock:
            self.sandbox.recorded.reseeded_bytes += len(req.data)
        return _EMPTY

    @rpc
    def SetGuestDateTime(self, req: pb.SetGuestDateTimeRequest, context: Ctx) -> m.Empty:
        if req.Sec < 0 or not 0 <= req.Usec < 1_000_000:
            raise ValueError(f"SetGuestDateTime: bad time Sec={req.Sec} Usec={req.Usec}")
        with self.sandbox.lock:
            self.sandbox.recorded.guest_time = (req.Sec, req.Usec)
        return _EMPTY

    @rpc
    def CopyFile(self, req: pb.CopyFileRequest, context: Ctx) -> m.Empty:
        self.copier.chunk(req)
        return _EMPTY

    @rpc
    def GetOOMEvent(self, req: pb.GetOOMEventRequest, context: Ctx) -> pb.OOMEvent:
        cid = self.oom.next(context.is_active)
        if cid is None:
            context.abort(grpc.StatusCode.CANCELLED, "GetOOMEvent: caller went away")
        return m.agent.OOMEvent(container_id=cid)

    @rpc
    def StartTracing(self, req: pb.StartTracingRequest, context: Ctx) -> m.Empty:
        self.sandbox.set_tracing(True, "StartTracing")
        return _EMPTY

    @rpc
    def StopTracing(self, req: pb.StopTracingRequest, context: Ctx) -> m.Empty:
        self.sandbox.set_tracing(False, "StopTracing")
        return _EMPTY


def _block_size() -> int:
    try:
        return int(_BLOCK_SIZE.read_text().strip(), 16)
    except (OSError, ValueError):
        return 0
