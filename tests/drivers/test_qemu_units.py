"""The qemu driver's pure parts and host probes, without booting: accelerator choice,
the command line, the pidfile lock that names an unrecorded qemu, config refusals."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sandbox_fsm import Runtime, RuntimeConfig
from sandbox_fsm.config import ConfigError
from sandbox_fsm.drivers import qemu
from sandbox_fsm.host import identity_of


def test_accel_auto_refuses_pvm_kvm_with_a_notice() -> None:
    assert qemu.choose_accel("tcg") == ("tcg", None)
    assert qemu.choose_accel("kvm") == ("kvm", None)
    accel, notice = qemu.choose_accel("auto")
    if os.path.exists("/sys/module/kvm_pvm"):
        assert accel == "tcg" and notice is not None and "PVM" in notice
        assert "\n" not in notice
    with pytest.raises(qemu.QemuError, match="accepted"):
        qemu.choose_accel("hvf")


def test_command_line_has_no_default_devices_and_escapes_commas(tmp_path: Path) -> None:
    odd = tmp_path / "a,b"
    paths = qemu.VmPaths.under(odd, odd)
    spec = qemu.QemuSpec(kernel="/k", initrd="/i", shared_dir=str(odd / "shared"),
                         kernel_params="agent.log=debug")
    argv = qemu.argv(spec, paths, "sbx-x")
    assert argv[argv.index("-accel") + 1] == "tcg" and "-nodefaults" in argv
    assert "-netdev" not in argv and "-nic" not in argv
    assert f"socket,id=qmp,path={tmp_path}/a,,b/qmp.sock,server=on,wait=off" in argv
    assert argv[argv.index("-append") + 1].endswith("agent.log=debug")
    with pytest.raises(qemu.QemuError):
        qemu.argv(dataclasses.replace(spec, machine="pc-i440fx"), paths, "x")


def test_pidfile_owner_is_the_process_holding_the_lock(tmp_path: Path) -> None:
    pidfile = tmp_path / "qemu.pid"
    assert qemu.pidfile_owner(str(pidfile)) is None
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, os, sys, time\n"
        f"fd = os.open({str(pidfile)!r}, os.O_CREAT | os.O_WRONLY, 0o600)\n"
        "fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
        "os.write(fd, b'1\\n')\n"   # the contents lie: only the lock counts
        "print('locked', flush=True)\n"
        "time.sleep(60)\n")], stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"locked\n"
        assert qemu.pidfile_owner(str(pidfile)) == identity_of(holder.pid)
    finally:
        holder.kill()
        holder.wait()
    assert qemu.pidfile_owner(str(pidfile)) is None


def test_qemu_with_virtio_fs_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    base = RuntimeConfig.default()
    config = dataclasses.replace(base, hypervisor=dataclasses.replace(
        base.hypervisor, driver="qemu", shared_fs="virtio-fs"))
    with pytest.raises(ConfigError, match="shared_fs"):
        Runtime.open(tmp_path / "state", tmp_path / "run", config)
    assert not (tmp_path / "state").exists()
