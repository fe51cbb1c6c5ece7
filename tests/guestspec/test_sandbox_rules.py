"""Sandbox start rules: DNS, shared volume, shm, kernel modules, kernel params, devices."""

import dataclasses

import pytest

from sandbox_fsm.config import AgentConfig, HypervisorConfig
from sandbox_fsm.guestspec.agent import (
    AgentSocketDevice,
    SharedFsDevice,
    agent_kernel_params,
    agent_socket_kind,
    hypervisor_devices,
    trace_settings,
)
from sandbox_fsm.guestspec.errors import GuestSpecError, UnsupportedOnHost
from sandbox_fsm.guestspec.sandbox import (
    dns_lines,
    kernel_modules,
    sandbox_shm_storage,
    sandbox_storages,
    shared_volume_storage,
)


def test_dns_lines_read_from_the_resolv_conf_mount(tmp_path):
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 10.0.0.1\nsearch example.org\n")
    spec = {"mounts": [{"destination": "/etc/hosts", "source": "/nope"},
                       {"destination": "/etc/resolv.conf", "source": str(resolv)}]}
    assert dns_lines(spec) == ["nameserver 10.0.0.1", "search example.org"]


def test_dns_without_the_mount_is_empty():
    assert dns_lines({"mounts": [{"destination": "/etc/hosts", "source": "/x"}]}) == []
    assert dns_lines({}) == []


def test_dns_missing_file_names_it(tmp_path):
    missing = tmp_path / "gone.conf"
    spec = {"mounts": [{"destination": "/etc/resolv.conf", "source": str(missing)}]}
    with pytest.raises(GuestSpecError, match="gone.conf"):
        dns_lines(spec)


def test_9p_shared_volume():
    s = shared_volume_storage("9p", msize_9p=8192, virtio_fs_cache="auto", virtio_fs_cache_size=0)
    assert (s.driver, s.source, s.fstype) == ("9p", "kataShared", "9p")
    assert s.mount_point == "/run/kata-containers/shared/containers/"
    assert list(s.options) == ["trans=virtio,version=9p2000.L,cache=mmap", "nodev", "msize=8192"]


@pytest.mark.parametrize(
    ("cache", "size", "options"),
    [("none", 1024, []), ("auto", 0, []), ("auto", 1024, ["dax"]), ("always", 8, ["dax"])],
)
def test_virtio_fs_dax_only_with_a_cache_and_a_window(cache, size, options):
    s = shared_volume_storage("virtio-fs", msize_9p=8192, virtio_fs_cache=cache,
                              virtio_fs_cache_size=size)
    assert (s.driver, s.source, s.fstype) == ("virtio-fs", "kataShared", "virtiofs")
    assert list(s.options) == options


@pytest.mark.parametrize("shared_fs", ["9p", "virtio-fs"])
def test_repeated_sandboxes_get_identical_options(shared_fs):
    hv = HypervisorConfig(driver="process", shared_fs=shared_fs, virtio_fs_cache="always",
                          virtio_fs_cache_size=64, shm_size=1 << 20)
    first, second, third = (sandbox_storages(hv) for _ in range(3))
    assert first == second == third


def test_unknown_shared_fs_is_an_error():
    with pytest.raises(GuestSpecError, match="'9p', 'virtio-fs'"):
        shared_volume_storage("nfs", msize_9p=1, virtio_fs_cache="none", virtio_fs_cache_size=0)


def test_sandbox_shm_storage():
    s = sandbox_shm_storage(65536)
    assert (s.driver, s.source, s.fstype) == ("ephemeral", "shm", "tmpfs")
    assert s.mount_point == "/run/kata-containers/sandbox/shm"
    assert list(s.options) == ["noexec", "nosuid", "nodev", "mode=1777", "size=65536"]


def test_sandbox_storages_follow_fs_sharing_and_shm_size():
    hv = HypervisorConfig(driver="process")
    assert [s.driver for s in sandbox_storages(hv)] == ["9p"]
    with_shm = dataclasses.replace(hv, shm_size=4096)
    assert [s.driver for s in sandbox_storages(with_shm)] == ["9p", "ephemeral"]
    no_sharing = dataclasses.replace(with_shm, supports_fs_sharing=False)
    assert [s.source for s in sandbox_storages(no_sharing)] == ["shm"]
    assert sandbox_storages(dataclasses.replace(no_sharing, shm_size=0)) == []


def test_kernel_modules_from_lines():
    mods = kernel_modules(["e1000e InterruptThrottleRate=3000,3000", "  ", "i915", " vfio  a b "])
    assert [(k.name, list(k.parameters)) for k in mods] == [
        ("e1000e", ["InterruptThrottleRate=3000,3000"]),
        ("i915", []),
        ("vfio", ["a", "b"]),
    ]


def test_kernel_params_in_seed_order():
    agent = AgentConfig(debug=True, trace=True, trace_mode="static", trace_type="collated",
                        container_pipe_size=4096)
    assert agent_kernel_params(agent) == [
        ("agent.log", "debug"), ("agent.trace", "collated"),
        ("agent.container_pipe_size", "4096"),
    ]


def test_kernel_params_default_empty_and_dynamic_trace_adds_nothing():
    assert agent_kernel_params(AgentConfig()) == []
    assert agent_kernel_params(AgentConfig(trace=True, trace_mode="dynamic")) == []


def test_trace_defaults_and_static_disables_vm_shutdown():
    off = trace_settings(False, "bogus", "bogus")
    assert not off.enabled and not off.disable_vm_shutdown
    dynamic = trace_settings(True)
    assert (dynamic.mode, dynamic.type, dynamic.dynamic_tracing) == ("dynamic", "isolated", True)
    assert not dynamic.disable_vm_shutdown
    static = trace_settings(True, "static", "collated")
    assert static.disable_vm_shutdown and not static.dynamic_tracing


def test_trace_validation_lists_valid_values():
    with pytest.raises(GuestSpecError, match="'static', 'dynamic'"):
        trace_settings(True, "sometimes")
    with pytest.raises(GuestSpecError, match="'isolated', 'collated'"):
        trace_settings(True, "static", "mixed")


def test_devices_unix_socket_and_shared_fs():
    devices = hypervisor_devices(socket_kind="unix", socket_path="/run/s/agent.sock",
                                 share_path="/run/s/shared", shared_fs="9p",
                                 supports_fs_sharing=True)
    assert devices == [AgentSocketDevice("unix", "/run/s/agent.sock"),
                       SharedFsDevice("9p", "/run/s/shared", "kataShared")]
    only_socket = hypervisor_devices(socket_kind="unix", socket_path="/a", share_path="/b",
                                     shared_fs="9p", supports_fs_sharing=False)
    assert only_socket == [AgentSocketDevice("unix", "/a")]


@pytest.mark.parametrize("kind", ["vsock", "hybrid-vsock"])
def test_vsock_is_not_supported_on_this_host(kind):
    with pytest.raises(UnsupportedOnHost, match="not supported on this host"):
        hypervisor_devices(socket_kind=kind, socket_path="/a", share_path="/b",
                           shared_fs="9p", supports_fs_sharing=True)


def test_socket_kind_from_config_and_unknown_kind():
    assert agent_socket_kind(True) == "vsock" and agent_socket_kind(False) == "unix"
    with pytest.raises(GuestSpecError, match="'unix', 'vsock', 'hybrid-vsock'"):
        hypervisor_devices(socket_kind="tcp", socket_path="/a", share_path="/b",
                           shared_fs="9p", supports_fs_sharing=True)
