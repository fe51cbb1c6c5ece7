"""Configuration loading: defaults, the documented example, and errors that name the key."""

import os
from pathlib import Path

import pytest

from sandbox_fsm import Runtime, SandboxError
from sandbox_fsm.config import ConfigError, RuntimeConfig, load_config, parse_config

EXAMPLE = Path(__file__).resolve().parent.parent / "docs" / "configuration.example.toml"


def write(tmp_path, text):
    path = tmp_path / "sbx.toml"
    path.write_text(text)
    return path


def test_defaults_need_no_file():
    config = RuntimeConfig.default()
    assert config.hypervisor.driver == ("namespaces" if os.geteuid() == 0 else "process")
    assert config.hypervisor.shared_fs == "9p" and config.hypervisor.msize_9p == 8192
    assert config.agent.keep_connection and config.runtime.disable_guest_seccomp
    assert config.proxy.type == "builtin"


def test_empty_file_equals_defaults(tmp_path):
    config = load_config(write(tmp_path, ""))
    assert config.hypervisor == RuntimeConfig.default().hypervisor
    assert config.source == str(tmp_path / "sbx.toml")


def test_documented_example_loads():
    config = load_config(EXAMPLE)
    assert config.hypervisor.driver == "process"
    assert config.agent.kernel_modules == ("e1000e InterruptThrottleRate=3000,3000,3000 EEE=1",)
    assert config.agent.timeouts.for_rpc("CopyFile") == 120.0


def test_values_are_read(tmp_path):
    config = load_config(write(tmp_path, """
[hypervisor]
driver = "namespaces"
shared_fs = "virtio-fs"
virtio_fs_cache = "always"
virtio_fs_cache_size = 1024
use_vsock = true
[agent]
trace = true
trace_mode = "static"
dial_timeout = 5
[runtime]
enable_agent_pidns = true
"""))
    assert config.hypervisor.shared_fs == "virtio-fs" and config.hypervisor.use_vsock
    assert config.agent.trace_mode == "static" and config.agent.dial_timeout == 5.0
    assert config.runtime.enable_agent_pidns


def test_timeouts():
    raw = {"agent": {"timeouts": {"default": 10, "ExecProcess": 3}}}
    timeouts = parse_config(raw).agent.timeouts
    assert timeouts.for_rpc("ExecProcess") == 3.0
    assert timeouts.for_rpc("StartContainer") == 10.0
    assert timeouts.for_rpc("Check") == 30.0
    assert timeouts.for_rpc("WaitProcess") is None


@pytest.mark.parametrize(
    ("text", "key", "accepted"),
    [
        ('[hypervisor]\nshared_fs = "xfs"', "[hypervisor] shared_fs", "'9p', 'virtio-fs'"),
        ('[hypervisor]\ndriver = "firecracker"', "[hypervisor] driver",
         "'process', 'namespaces', 'qemu'"),
        ("[hypervisor]\nmsize_9p = -1", "[hypervisor] msize_9p", "an integer >= 1"),
        ("[hypervisor]\nshm_size = -4096", "[hypervisor] shm_size", "an integer >= 0"),
        ('[hypervisor]\nshm_size = "64M"', "[hypervisor] shm_size", "an integer >= 0"),
        ("[hypervisor]\nuse_vsock = 1", "[hypervisor] use_vsock", "true or false"),
        ('[hypervisor]\nblock_device_driver = "ide"', "[hypervisor] block_device_driver",
         "'virtio-scsi', 'virtio-blk', 'virtio-mmio', 'virtio-blk-ccw', 'nvdimm'"),
        ("[hypervisor]\nmsize = 1", "[hypervisor] msize", "shared_fs"),
        ('[agent]\ntrace_mode = "sometimes"', "[agent] trace_mode", "'static', 'dynamic'"),
        ('[agent]\ntrace_type = "x"', "[agent] trace_type", "'isolated', 'collated'"),
        ('[agent]\nkernel_modules = "i915"', "[agent] kernel_modules", "[\"...\", ...]"),
        ("[agent]\ndial_timeout = true", "[agent] dial_timeout", "a number >= 0"),
        ("[agent]\ntimeouts = 3", "[agent] timeouts", "[agent.timeouts]"),
        ("[agent.timeouts]\nWaitForever = 1", "[agent.timeouts] WaitForever", "ExecProcess"),
        ("[agent.timeouts]\ndefault = -1", "[agent.timeouts] default", "a number >= 0"),
        ('[proxy]\ntype = "kata-proxy"', "[proxy] type", "'builtin', 'process'"),
        ("[runtim]\nx = 1", "[runtim]", "[runtime]"),
        ("hypervisor = 1", "[hypervisor]", "a table"),
    ],
)
def test_bad_values_name_the_file_key_and_accepted_values(tmp_path, text, key, accepted):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    err = caught.value
    assert (err.path, err.key) == (str(path), key)
    assert accepted in err.accepted
    assert str(path) in str(err) and key in str(err)


def test_unreadable_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="missing.toml: <file>: cannot read"):
        load_config(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "[hypervisor\n"))


def test_a_config_error_is_bad_input_like_any_other():
    """A SandboxError with the CLI's usage exit code, and still a ValueError."""
    err = ConfigError("f.toml", "[agent] x", "unknown key", "y")
    assert isinstance(err, SandboxError) and isinstance(err, ValueError)
    assert err.exit_code == 2


@pytest.mark.parametrize(("section", "key"), [("hypervisor", "use_vsock"),
                                              ("runtime", "sandbox_cgroup_only")])
def test_switches_this_host_cannot_honour_are_refused_before_anything_is_written(
        tmp_path, section, key):
    path = write(tmp_path, f"[{section}]\n{key} = true")
    with pytest.raises(ConfigError, match=f"\\[{section}\\] {key}"):
        Runtime.open(tmp_path / "state", tmp_path / "run", path)
    assert not (tmp_path / "state").exists()
