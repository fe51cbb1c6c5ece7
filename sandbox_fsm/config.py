"""Runtime configuration: a TOML file in the spirit of Kata's configuration.toml.

Every key is checked at load time, so a typo or a bad value fails before any sandbox
touches the host, with an error that names the file, the key and what is accepted.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import InvalidRequest

SHARED_FS = ("9p", "virtio-fs")
VIRTIO_FS_CACHE = ("none", "auto", "always")
BLOCK_DEVICE_DRIVERS = ("virtio-scsi", "virtio-blk", "virtio-mmio", "virtio-blk-ccw", "nvdimm")
HYPERVISOR_DRIVERS = ("process", "namespaces", "qemu")
TRACE_MODES = ("static", "dynamic")
TRACE_TYPES = ("isolated", "collated")
PROXY_TYPES = ("builtin", "process")
MACHINE_TYPES = ("q35", "microvm")
ACCELERATORS = ("auto", "kvm", "tcg")

# rpcs whose calls block until something happens in the guest: no deadline by default
UNBOUNDED_RPCS = ("WaitProcess", "GetOOMEvent", "ReadStdout", "ReadStderr")


class ConfigError(InvalidRequest):
    """A configuration value that cannot be used: names the file, the key and what is valid.
    Bad input like any other (exit code 2), and still a ValueError."""

    def __init__(self, path: str, key: str, problem: str, accepted: str) -> None:
        self.path, self.key, self.problem, self.accepted = path, key, problem, accepted
        super().__init__(f"{path}: {key}: {problem}; accepted: {accepted}")


def _choice(*values: str) -> dict[str, Any]:
    return {"choices": values}


def _min(low: float) -> dict[str, Any]:
    return {"min": low}


@dataclass(frozen=True)
class HypervisorConfig:
    """How the "VM" of a sandbox is made and what it shares with the host."""

    driver: str = field(default="", metadata=_choice(*HYPERVISOR_DRIVERS))
    shared_fs: str = field(default="9p", metadata=_choice(*SHARED_FS))
    msize_9p: int = field(default=8192, metadata=_min(1))
    virtio_fs_cache: str = field(default="auto", metadata=_choice(*VIRTIO_FS_CACHE))
    virtio_fs_cache_size: int = field(default=0, metadata=_min(0))
    block_device_driver: str = field(default="virtio-scsi", metadata=_choice(*BLOCK_DEVICE_DRIVERS))
    use_vsock: bool = False
    guest_hook_path: str = ""
    kernel_params: str = ""
    shm_size: int = field(default=0, metadata=_min(0))
    memory_section_size_mb: int = field(default=0, metadata=_min(0))
    disable_block_device_use: bool = False
    supports_fs_sharing: bool = True
    # The qemu driver: Kata's keys, plus `accel` (auto falls back to TCG when KVM cannot
    # run this guest kernel) and `image_cache` (where built guest images are kept).
    path: str = "/usr/bin/qemu-system-x86_64"
    kernel: str = ""
    initrd: str = ""
    machine_type: str = field(default="q35", metadata=_choice(*MACHINE_TYPES))
    default_vcpus: int = field(default=1, metadata=_min(1))
    default_memory: int = field(default=512, metadata=_min(64))
    accel: str = field(default="auto", metadata=_choice(*ACCELERATORS))
    boot_timeout: float = field(default=120.0, metadata=_min(1))


@dataclass(frozen=True)
class AgentTimeouts:
    """Deadlines in seconds for agent rpcs; 0 means no deadline."""

    check: float = field(default=30.0, metadata=_min(0))
    default: float = field(default=60.0, metadata=_min(0))
    rpc: Mapping[str, float] = field(
        default_factory=lambda: types.MappingProxyType(dict.fromkeys(UNBOUNDED_RPCS, 0.0))
    )

    def for_rpc(self, name: str) -> float | None:
        """The deadline for rpc `name` (None: wait forever), as the client should pass it."""
        seconds = self.check if name in ("Check", "Version") else self.rpc.get(name, self.default)
        return seconds or None


@dataclass(frozen=True)
class AgentConfig:
    """How the runtime talks to the guest agent and what it asks the guest kernel for."""

    keep_connection: bool = True
    debug: bool = False
    trace: bool = False
    trace_mode: str = field(default="dynamic", metadata=_choice(*TRACE_MODES))
    trace_type: str = field(default="isolated", metadata=_choice(*TRACE_TYPES))
    container_pipe_size: int = field(default=0, metadata=_min(0))
    kernel_modules: tuple[str, ...] = ()
    dial_timeout: float = field(default=30.0, metadata=_min(0))
    timeouts: AgentTimeouts = field(default_factory=AgentTimeouts)


@dataclass(frozen=True)
class ProxyConfig:
    """Whether the agent connection is proxied in-process or by a separate process."""

    type: str = field(default="builtin", metadata=_choice(*PROXY_TYPES))
    debug: bool = False


@dataclass(frozen=True)
class RuntimeSection:
    """Runtime-wide switches that change what a container may ask of the guest."""

    enable_agent_pidns: bool = False
    disable_guest_seccomp: bool = True
    sandbox_cgroup_only: bool = False


@dataclass(frozen=True)
class FleetConfig:
    """Where `sbx ship` sends this host's log and where `sbx fleet` reads every host's."""

    nats_url: str = ""
    stream: str = field(default="SBX_EVENTS", metadata={"pattern": r"[A-Za-z0-9_-]{1,64}"})
    replicas: int = field(default=1, metadata=_min(1))
    host_id: str = field(default="", metadata={"pattern": r"([A-Za-z0-9][A-Za-z0-9_-]{0,63})?"})


@dataclass(frozen=True)
class RuntimeConfig:
    """The whole configuration; `default()` works with no file at all."""

    hypervisor: HypervisorConfig = field(default_factory=HypervisorConfig)
    agent: AgentConfig = field(default_factory=AgentConfig)
    proxy: ProxyConfig = field(default_factory=ProxyConfig)
    runtime: RuntimeSection = field(default_factory=RuntimeSection)
    fleet: FleetConfig = field(default_factory=FleetConfig)
    source: str = "<defaults>"

    @classmethod
    def default(cls) -> RuntimeConfig:
        return _resolve(cls())


def default_driver() -> str:
    """Namespaces need root; anyone else gets plain processes."""
    return "namespaces" if os.geteuid() == 0 else "process"


def _resolve(config: RuntimeConfig) -> RuntimeConfig:
    if config.hypervisor.driver:
        return config
    hypervisor = dataclasses.replace(config.hypervisor, driver=default_driver())
    return dataclasses.replace(config, hypervisor=hypervisor)


def load_config(path: str | os.PathLike[str]) -> RuntimeConfig:
    """Read and validate a TOML configuration file; missing keys take their defaults."""
    where = str(path)
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(where, "<file>", f"cannot read: {exc.strerror}",
                          "a readable file") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(where, "<file>", f"not valid TOML ({exc})", "TOML syntax") from exc
    return parse_config(raw, source=where)


def parse_config(raw: Mapping[str, Any], *, source: str = "<dict>") -> RuntimeConfig:
    """Validate an already-parsed TOML document (the same rules as `load_config`)."""
    sections: dict[str, Any] = {}
    hints = typing.get_type_hints(RuntimeConfig)
    names = [f.name for f in dataclasses.fields(RuntimeConfig) if f.name != "source"]
    for name, value in raw.items():
        if name not in names:
            raise ConfigError(source, f"[{name}]", "unknown section", _listing(names, "[{}]"))
        if not isinstance(value, Mapping):
            raise ConfigError(source, f"[{name}]", "must be a table", "a table of keys")
        sections[name] = _section(hints[name], value, source, name)
    return _resolve(RuntimeConfig(**sections, source=source))


def _section(cls: type, table: Mapping[str, Any], source: str, section: str) -> Any:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for key, value in table.items():
        label = f"[{section}] {key}"
        if key not in fields:
            raise ConfigError(source, label, "unknown key", _listing(fields, "{}"))
        hint = hints[key]
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            if not isinstance(value, Mapping):
                raise ConfigError(source, label, "must be a table", f"[{section}.{key}]")
            loader = _timeouts if hint is AgentTimeouts else _section
            values[key] = loader(hint, value, source, f"{section}.{key}")
        else:
            values[key] = _value(hint, fields[key].metadata, value, source, label)
    return cls(**values)


def _timeouts(cls: type, table: Mapping[str, Any], source: str, section: str) -> AgentTimeouts:
    """`check` and `default` are fields; every other key must name an AgentService rpc."""
    known = _rpc_names()
    plain = {k: v for k, v in table.items() if k in ("check", "default")}
    per_rpc = dict(AgentTimeouts().rpc)
    for name, value in table.items():
        if name in plain:
            continue
        label = f"[{section}] {name}"
        if name not in known:
            raise ConfigError(source, label, "unknown rpc", "check, default, " + ", ".join(known))
        per_rpc[name] = _value(float, _min(0), value, source, label)
    base = _section(cls, plain, source, section)
    return dataclasses.replace(base, rpc=types.MappingProxyType(per_rpc))


def _rpc_names() -> tuple[str, ...]:
    from agent_io import messages as m

    service = m.agent.DESCRIPTOR.services_by_name["AgentService"]
    return tuple(sorted(method.name for method in service.methods))


def _value(hint: Any, meta: Mapping[str, Any], value: Any, source: str, label: str) -> Any:
    if typing.get_origin(hint) is tuple:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(source, label, f"{value!r} is not a list of strings",
                              "[\"...\", ...]")
        return tuple(value)
    ok = {
        bool: isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, int | float) and not isinstance(value, bool),
        str: isinstance(value, str),
    }[hint]
    if not ok:
        raise ConfigError(source, label, f"{value!r} has the wrong type", _accepted(hint, meta))
    if "choices" in meta and value not in meta["choices"]:
        raise ConfigError(source, label, f"{value!r} is not valid", _accepted(hint, meta))
    if "min" in meta and value < meta["min"]:
        raise ConfigError(source, label, f"{value!r} is too small", _accepted(hint, meta))
    if "pattern" in meta and not re.fullmatch(meta["pattern"], value):
        raise ConfigError(source, label, f"{value!r} is not valid", _accepted(hint, meta))
    return float(value) if hint is float else value


def _accepted(hint: type, meta: Mapping[str, Any]) -> str:
    if "choices" in meta:
        return ", ".join(repr(c) for c in meta["choices"])
    if "pattern" in meta:
        return f"a string matching {meta['pattern']}"
    noun = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}[hint]
    return f"{noun} >= {meta['min']}" if "min" in meta else noun


def _listing(names: typing.Iterable[str], fmt: str) -> str:
    return ", ".join(fmt.format(n) for n in names)


def refuse_unsupported(config: RuntimeConfig) -> None:
    """ConfigError for a switch this host cannot honour: vsock (no hypervisor sockets
    here) and sandbox-only cgroups (the runtime does not manage cgroups)."""
    if config.hypervisor.use_vsock:
        raise ConfigError(config.source, "[hypervisor] use_vsock",
                          "vsock is not supported on this host", "false")
    if config.runtime.sandbox_cgroup_only:
        raise ConfigError(config.source, "[runtime] sandbox_cgroup_only",
                          "this runtime does not manage cgroups", "false")
    if config.hypervisor.driver == "qemu" and config.hypervisor.shared_fs != "9p":
        raise ConfigError(config.source, "[hypervisor] shared_fs",
                          "the qemu driver shares with 9p only (virtiofsd is not wired "
                          "up yet)", "'9p'")
