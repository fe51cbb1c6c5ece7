"""Sandboxes whose VM is a real qemu (TCG here), through the runtime's saga steps.

One sandbox (one boot) is shared by the lifecycle tests; the loss test and the CLI test
boot their own. Checks ask the guest (command output), the hypervisor and the host
(processes naming the runtime dir, mounts under it), never log lines.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hostcheck import leftovers, scrub
from vmkit import private_dir

from agent_io import AgentClient
from sandbox_fsm import Runtime, RuntimeConfig
from sandbox_fsm.drivers import guestimage, qemu, vmproxy
from sandbox_fsm.host import (
    ProcessIdentity,
    is_alive,
    spawn,
    terminate,
    wait_exit,
    wait_for_path,
)
from sandbox_fsm.spec import ContainerConfig, Mount, SandboxConfig

pytestmark = pytest.mark.root

SID = "vm1"
VCPUS = 2


def qemu_config(image: guestimage.GuestImage) -> RuntimeConfig:
    base = RuntimeConfig.default()
    return dataclasses.replace(base, hypervisor=dataclasses.replace(
        base.hypervisor, driver="qemu", initrd=str(image.path), kernel=image.kernel.path,
        default_vcpus=VCPUS, boot_timeout=180.0))


def busybox_rootfs(root: Path) -> Path:
    """A tiny static busybox root filesystem (the guest runs it over 9p)."""
    (root / "bin").mkdir(parents=True)
    for d in ("proc", "dev", "sys", "tmp", "data"):
        (root / d).mkdir()
    subprocess.run(["cp", "/bin/busybox", str(root / "bin/busybox")], check=True)
    for applet in ("sh", "cat", "sleep", "echo", "uname"):
        (root / "bin" / applet).symlink_to("busybox")
    return root


def output(rt: Runtime, cid: str, exec_id: str | None = None) -> str:
    """Everything the process wrote to stdout, once it has exited."""
    chunks = []
    while data := rt.read_stdout(SID, cid, exec_id):
        chunks.append(data)
    rt.wait(SID, cid, exec_id)
    return b"".join(chunks).decode()


@pytest.fixture(scope="module")
def vm_rt(guest_image: guestimage.GuestImage) -> Iterator[tuple[Runtime, Path, Path]]:
    """A running qemu sandbox; deleted and checked clean after the module."""
    base = private_dir("sbx-q-")
    run, volume = base / "run", base / "volume"
    volume.mkdir()
    (volume / "hello").write_text("from the host\n")
    busybox_rootfs(base / "rootfs")
    rt = Runtime.open(base / "state", run, qemu_config(guest_image))
    try:
        rt.create_sandbox(SandboxConfig(SID))
        rt.start_sandbox(SID)
        yield rt, run, volume
        if rt.state(SID).state != "deleted":  # a test failed before the last one
            rt.delete_sandbox(SID, force=True)
    finally:
        rt.close()
        found = scrub(base)
        subprocess.run(["rm", "-rf", str(base)], check=False)
        assert found == ([], []), f"left behind: {found}"


def test_the_container_runs_on_the_guest_kernel_with_the_vm_cpus(vm_rt) -> None:
    rt, _, _ = vm_rt
    rt.create_container(SID, ContainerConfig("uname", args=("uname", "-r")))
    rt.start_container(SID, "uname")
    release = output(rt, "uname").strip()
    assert release == guestimage.find_kernel(rt.config.hypervisor.kernel).release
    assert release != platform.release()
    rt.stop_container(SID, "uname")
    rt.delete_container(SID, "uname")
    rt.create_container(SID, ContainerConfig("cpus", args=("cat", "/proc/cpuinfo")))
    rt.start_container(SID, "cpus")
    cpuinfo = output(rt, "cpus")
    assert sum(line.startswith("processor") for line in cpuinfo.splitlines()) == VCPUS
    assert "QEMU" in cpuinfo
    rt.stop_container(SID, "cpus")
    rt.delete_container(SID, "cpus")


def test_the_vm_is_what_was_asked_and_its_sockets_are_private(vm_rt) -> None:
    rt, _, _ = vm_rt
    state = rt.state(SID)
    vm, proxy = state.guest, state.proxy
    assert vm is not None and vm["driver"] == "qemu" and proxy is not None
    assert qemu.qmp(vm["qmp"], "query-status")["status"] == "running"
    accel, _ = qemu.choose_accel("auto")
    assert qemu.qmp(vm["qmp"], "query-kvm")["enabled"] is (accel == "kvm")
    for sock in (vm["qmp"], vm["socket"], proxy["socket"]):
        mode = os.lstat(sock).st_mode
        assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600, sock
    # -nodefaults: only the devices we asked for (no NIC, no VGA)
    classes = {d["class_info"].get("desc", "") for bus in qemu.qmp(vm["qmp"], "query-pci")
               for d in bus["devices"]}
    assert not any("Ethernet" in c or "VGA" in c for c in classes), classes


def test_sbx_logs_console_prints_the_guest_console(vm_rt) -> None:
    rt, run, _ = vm_rt
    sbx = str(Path(sys.executable).parent / "sbx")
    dirs = ["--state-dir", str(run.parent / "state"), "--runtime-dir", str(run)]
    shown = subprocess.run([sbx, *dirs, "logs", SID, "--console"], capture_output=True,
                           text=True, check=True).stdout
    release = guestimage.find_kernel(rt.config.hypervisor.kernel).release
    assert f"Linux version {release}" in shown          # the guest kernel's own banner
    missing = subprocess.run([sbx, *dirs, "logs", "nope", "--console"], capture_output=True,
                             text=True)
    assert missing.returncode == 4 and missing.stderr.count("\n") == 1


def test_two_containers_volume_exec_signal_pause(vm_rt) -> None:
    rt, run, volume = vm_rt
    for cid in ("a", "b"):
        rt.create_container(SID, ContainerConfig(
            cid, args=("sleep", "600"), rootfs=str(volume.parent / "rootfs"),
            mounts=(Mount(str(volume), "/data"),)))
        rt.start_container(SID, cid)
    exec_id = rt.exec(SID, "a", ["cat", "/data/hello"])
    assert output(rt, "a", exec_id) == "from the host\n"   # over 9p, from the host dir
    rt.pause_container(SID, "b")
    assert rt.state(SID).containers["b"].state == "paused"
    probe = rt.exec(SID, "a", ["sh", "-c", "echo alive"])
    assert output(rt, "a", probe) == "alive\n"            # the other container still runs
    rt.resume_container(SID, "b")
    assert rt.state(SID).containers["b"].state == "running"
    rt.kill(SID, "b", signal.SIGTERM)
    assert rt.wait(SID, "b") in (128 + signal.SIGTERM, -signal.SIGTERM, signal.SIGTERM)
    for cid in ("a", "b"):
        rt.stop_container(SID, cid)
        rt.delete_container(SID, cid)
    layout = rt.layout(SID)
    container_mounts = [m for m in leftovers(run)[0]
                        if m not in (str(layout.mounts), str(layout.shared))]
    assert container_mounts == []


def test_two_host_clients_at_once_through_the_proxy(vm_rt) -> None:
    rt, _, _ = vm_rt
    url = rt.state(SID).agent_url
    errors: list[BaseException] = []

    def other_client() -> None:
        client = AgentClient(url, sandbox_id=SID)
        try:
            for _ in range(20):
                assert client.check() == 1
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            client.close()

    t = threading.Thread(target=other_client)
    t.start()
    rt.create_container(SID, ContainerConfig("c", args=("echo", "both")))
    rt.start_container(SID, "c")
    assert output(rt, "c") == "both\n"
    t.join(60)
    assert not errors
    rt.stop_container(SID, "c")
    rt.delete_container(SID, "c")


def assert_agent_survives_a_proxy_restart(guest: dict, proxy: dict) -> None:
    """Kill the sandbox's proxy; a new one on the same channel reaches the same agent."""
    old = ProcessIdentity(proxy["pid"], proxy["start_time"])
    os.kill(old.pid, signal.SIGKILL)
    assert wait_exit(old, 10)
    sock = proxy["socket"] + ".2"
    new = spawn(vmproxy.proxy_argv(sock, guest["socket"], 60.0))
    try:
        wait_for_path(sock, timeout=60, ident=new)
        client = AgentClient(f"unix:{sock}", sandbox_id="lost")
        try:
            assert client.check() == 1
        finally:
            client.close()
    finally:
        terminate(new)


def test_stop_and_delete_leave_no_qemu_proxy_or_mount(vm_rt) -> None:
    rt, run, _ = vm_rt
    state = rt.state(SID)
    held = [ProcessIdentity(r["pid"], r["start_time"]) for r in (state.guest, state.proxy) if r]
    rt.stop_sandbox(SID)
    assert not any(is_alive(i) for i in held)
    rt.delete_sandbox(SID)
    assert not rt.state(SID).ledger
    assert leftovers(run) == ([], [])


def test_a_qemu_killed_from_outside_makes_the_sandbox_lost(
        guest_image: guestimage.GuestImage) -> None:
    base = private_dir("sbx-ql-")
    run = base / "run"
    try:
        with Runtime.open(base / "state", run, qemu_config(guest_image)) as rt:
            rt.create_sandbox(SandboxConfig("lost"))
            rt.start_sandbox("lost")
            rt.create_container("lost", ContainerConfig("c", args=("sleep", "600")))
            rt.start_container("lost", "c")
            guest, proxy = rt.state("lost").guest, rt.state("lost").proxy
            assert guest and proxy
            assert_agent_survives_a_proxy_restart(guest, proxy)
            vm = ProcessIdentity(guest["pid"], guest["start_time"])
            os.kill(vm.pid, signal.SIGKILL)
            assert wait_exit(vm, 20)
            report = rt.recover(step_timeout=10.0)
            assert report.ok, str(report)
            state = rt.state("lost")
            assert state.lost and state.state == "stopped"
            assert state.containers["c"].exit_status == 255
            rt.delete_sandbox("lost")
            assert not rt.state("lost").ledger
        assert leftovers(run) == ([], [])
    finally:
        found = scrub(base)
        subprocess.run(["rm", "-rf", str(base)], check=False)
        assert found == ([], [])


def test_sbx_run_prints_the_guest_kernel_release(guest_image: guestimage.GuestImage) -> None:
    base = private_dir("sbx-qc-")
    conf = base / "qemu.toml"
    conf.write_text(f'[hypervisor]\ndriver = "qemu"\ninitrd = "{guest_image.path}"\n'
                    f'kernel = "{guest_image.kernel.path}"\nboot_timeout = 180.0\n')
    sbx = str(Path(sys.executable).parent / "sbx")
    try:
        started = time.monotonic()
        proc = subprocess.run([sbx, "--state-dir", str(base / "state"), "--runtime-dir",
                               str(base / "run"), "--config", str(conf), "run", "--",
                               "uname", "-r"], capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout == guest_image.kernel.release + "\n"
        if os.path.exists("/sys/module/kvm_pvm"):
            assert proc.stderr.count("using TCG") == 1  # the one-line notice, once
        assert leftovers(base / "run") == ([], [])
        print(f"sbx run -- uname -r in a VM: {time.monotonic() - started:.1f}s")
    finally:
        found = scrub(base)
        subprocess.run(["rm", "-rf", str(base)], check=False)
        assert found == ([], [])
