"""A real VM under the qemu driver (TCG here): one boot shared by this module's tests.

Checks go to the hypervisor (QMP) and to the agent in the guest through the proxy; the
last test stops the VM and checks the host has nothing of it left.
"""

from __future__ import annotations

import os
import signal
import stat
import threading
import time

import pytest
from vmkit import BootedVm

from agent_io import AgentClient
from sandbox_fsm import host
from sandbox_fsm.drivers import qemu

pytestmark = pytest.mark.root


def _client(vm: BootedVm) -> AgentClient:
    return AgentClient(f"unix:{vm.proxy_socket}", sandbox_id="vm-test")


def test_vm_runs_with_the_chosen_accelerator_and_private_sockets(booted: BootedVm) -> None:
    assert qemu.running(booted.vm)
    accel, _ = qemu.choose_accel("auto")
    assert qemu.qmp(booted.vm.qmp, "query-kvm")["enabled"] is (accel == "kvm")
    for sock in (booted.vm.qmp, booted.vm.channel, booted.proxy_socket):
        mode = os.lstat(sock).st_mode
        assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600, sock
    # -nodefaults: only the devices we asked for (no NIC, no VGA)
    classes = {d["class_info"].get("desc", "") for bus in qemu.qmp(booted.vm.qmp, "query-pci")
               for d in bus["devices"]}
    assert not any("Ethernet" in c or "VGA" in c for c in classes), classes


def test_agent_answers_through_the_proxy(booted: BootedVm) -> None:
    client = _client(booted)
    try:
        assert client.wait_ready(30) == 1  # SERVING
        assert "sandbox-fsm-guest" in client.version().agent_version
    finally:
        client.close()


def test_two_host_clients_at_once(booted: BootedVm) -> None:
    errors: list[BaseException] = []
    answers: list[int] = []

    def work() -> None:
        client = _client(booted)
        try:
            for _ in range(10):
                answers.append(client.check())
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            client.close()

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and answers == [1] * 20


def test_the_agent_survives_a_proxy_killed_from_outside(booted: BootedVm) -> None:
    assert booted.proxy is not None
    host.signal_process(booted.proxy, signal.SIGKILL)
    assert host.wait_exit(booted.proxy, 10)
    booted.start_proxy()
    client = _client(booted)
    try:
        assert client.check() == 1
    finally:
        client.close()


def test_stop_ends_qemu_and_leaves_nothing(booted: BootedVm) -> None:
    assert booted.proxy is not None
    host.terminate(booted.proxy)
    started = time.monotonic()
    assert qemu.stop(booted.vm, grace=20.0)
    took = time.monotonic() - started
    assert not host.is_alive(booted.vm.ident)
    assert not qemu.running(booted.vm)
    assert not qemu.stop(booted.vm)  # already gone: nothing to do
    print(f"stop took {took:.2f}s")
