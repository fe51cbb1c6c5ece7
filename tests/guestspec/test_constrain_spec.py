"""constrain_spec field by field, PID namespace handling, the agent PID namespace switch."""

import copy

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sandbox_fsm.guestspec.constrain import agent_pidns, constrain_spec, is_systemd_cgroup


def full_spec():
    return {
        "ociVersion": "1.0.2",
        "process": {"args": ["sh"], "selinuxLabel": "system_u:system_r:container_t:s0"},
        "root": {"path": "rootfs"},
        "hooks": {"prestart": [{"path": "/usr/bin/hook"}]},
        "annotations": {"a": "b"},
        "linux": {
            "seccomp": {"defaultAction": "SCMP_ACT_ERRNO"},
            "mountLabel": "system_u:object_r:container_file_t:s0",
            "cgroupsPath": "system.slice:docker:abc123",
            "resources": {
                "devices": [{"allow": False, "access": "rwm"}],
                "pids": {"limit": 10},
                "blockIO": {"weight": 10},
                "hugepageLimits": [{"pageSize": "2MB", "limit": 1}],
                "network": {"classID": 1},
                "memory": {"limit": 1 << 20},
                "cpu": {"shares": 1024, "quota": 1000, "period": 100000, "cpus": "0-1",
                        "mems": "0"},
            },
            "namespaces": [
                {"type": "pid", "path": "/proc/1/ns/pid"},
                {"type": "network", "path": "/var/run/netns/x"},
                {"type": "ipc", "path": "/proc/1/ns/ipc"},
                {"type": "uts"},
                {"type": "mount"},
                {"type": "cgroup"},
            ],
            "devices": [
                {"type": "c", "path": "/dev/vfio/12", "major": 240, "minor": 0},
                {"type": "c", "path": "/dev/fuse", "major": 10, "minor": 229},
                {"type": "b", "path": "/dev/vfio/odd", "major": 8, "minor": 0},
            ],
        },
    }


def constrain(spec, enabled=True, supported=True):
    return constrain_spec(spec, guest_seccomp_enabled=enabled, guest_seccomp_supported=supported)


def test_hooks_dropped_and_selinux_label_cleared():
    out, _ = constrain(full_spec())
    assert "hooks" not in out
    assert out["process"]["selinuxLabel"] == ""
    assert out["annotations"] == {"a": "b"} and out["root"] == {"path": "rootfs"}


@pytest.mark.parametrize(("enabled", "supported", "kept"),
                         [(True, True, True), (True, False, False), (False, True, False),
                          (False, False, False)])
def test_seccomp_only_when_enabled_and_supported(enabled, supported, kept):
    out, _ = constrain(full_spec(), enabled, supported)
    assert ("seccomp" in out["linux"]) is kept


def test_resources_reduced_to_cpu_and_memory_without_cpus_and_mems():
    out, _ = constrain(full_spec())
    assert out["linux"]["resources"] == {
        "memory": {"limit": 1 << 20},
        "cpu": {"shares": 1024, "quota": 1000, "period": 100000},
    }


@pytest.mark.parametrize(
    ("path", "converted"),
    [("system.slice:docker:abc123", "/docker/abc123"),
     ("kubepods-besteffort.slice:cri-containerd:x", "/cri-containerd/x"),
     ("/kubepods/besteffort/x", "/kubepods/besteffort/x"),
     ("system:docker:abc", "system:docker:abc")],
)
def test_systemd_cgroup_path_converted_to_cgroupfs(path, converted):
    spec = full_spec()
    spec["linux"]["cgroupsPath"] = path
    out, _ = constrain(spec)
    assert out["linux"]["cgroupsPath"] == converted
    assert is_systemd_cgroup(path) is (path != converted)


def test_namespaces_network_cgroup_dropped_paths_emptied_pid_removed():
    out, sandbox_pidns = constrain(full_spec())
    assert out["linux"]["namespaces"] == [{"type": "ipc"}, {"type": "uts"}, {"type": "mount"}]
    assert sandbox_pidns is True


def test_pid_namespace_without_path_does_not_share():
    spec = full_spec()
    spec["linux"]["namespaces"] = [{"type": "pid"}, {"type": "mount"}]
    out, sandbox_pidns = constrain(spec)
    assert out["linux"]["namespaces"] == [{"type": "mount"}] and sandbox_pidns is False


def test_vfio_character_devices_removed():
    out, _ = constrain(full_spec())
    assert [d["path"] for d in out["linux"]["devices"]] == ["/dev/fuse", "/dev/vfio/odd"]


def test_mount_label_and_unknown_fields_kept():
    out, _ = constrain(full_spec())
    assert out["linux"]["mountLabel"] == "system_u:object_r:container_file_t:s0"
    assert out["ociVersion"] == "1.0.2"


def test_spec_without_linux_or_process():
    assert constrain({"hooks": {}, "root": {"path": "r"}}) == ({"root": {"path": "r"}}, False)


NS_TYPES = ["pid", "network", "ipc", "uts", "mount", "user", "cgroup"]
namespaces = st.lists(st.sampled_from(NS_TYPES), unique=True).flatmap(
    lambda types: st.tuples(*[
        st.fixed_dictionaries({"type": st.just(t)},
                              optional={"path": st.sampled_from(["", "/proc/1/ns/x"])})
        for t in types
    ]).map(list)
)
devices = st.lists(st.fixed_dictionaries({
    "type": st.sampled_from(["c", "b", "u"]),
    "path": st.sampled_from(["/dev/vfio/1", "/dev/fuse", "/dev/vfio/vfio", "/dev/sda"])}))
specs = st.fixed_dictionaries(
    {"root": st.just({"path": "rootfs"})},
    optional={
        "hooks": st.just({"poststop": []}),
        "process": st.fixed_dictionaries({}, optional={"selinuxLabel": st.text(max_size=5)}),
        "linux": st.fixed_dictionaries({}, optional={
            "namespaces": namespaces,
            "devices": devices,
            "seccomp": st.just({"defaultAction": "SCMP_ACT_ALLOW"}),
            "cgroupsPath": st.sampled_from(["", "/a/b", "x.slice:p:n", "a:b:c"]),
            "resources": st.fixed_dictionaries({}, optional={
                "cpu": st.fixed_dictionaries({}, optional={"cpus": st.just("0"),
                                                           "shares": st.integers(0, 9)}),
                "pids": st.just({"limit": 1}),
                "memory": st.just({"limit": 1}),
            }),
        }),
    },
)


@given(specs, st.booleans(), st.booleans())
def test_constrain_never_mutates_and_is_idempotent(spec, enabled, supported):
    before = copy.deepcopy(spec)
    once, _ = constrain(spec, enabled, supported)
    assert spec == before
    twice, shares_again = constrain(once, enabled, supported)
    assert twice == once
    assert shares_again is False
    assert not any(ns["type"] in ("pid", "network", "cgroup")
                   for ns in once.get("linux", {}).get("namespaces", []))


@pytest.mark.parametrize(
    ("env", "enabled", "decision"),
    [
        (["PATH=/bin"], True, (False, None)),
        (["KATA_AGENT_PIDNS=true"], True, True),
        (["KATA_AGENT_PIDNS=1"], True, True),
        (["KATA_AGENT_PIDNS=true", "KATA_AGENT_PIDNS=false"], True, (False, None)),
        (["KATA_AGENT_PIDNS=true", "KATA_AGENT_PIDNS=maybe"], True, True),
        (["KATA_AGENT_PIDNS=yes"], True, (False, None)),
    ],
)
def test_agent_pidns_from_env(env, enabled, decision):
    shared, warning = agent_pidns(env, enabled=enabled)
    if decision is True:
        assert shared is True and "share the PID namespace of the agent" in warning
    else:
        assert (shared, warning) == decision


def test_agent_pidns_refused_by_config_warns():
    shared, warning = agent_pidns(["KATA_AGENT_PIDNS=True"], enabled=False)
    assert shared is False and "enable_agent_pidns" in warning


def test_constrained_spec_crosses_the_wire():
    from agent_io.convert import oci_spec_to_proto

    out, _ = constrain(full_spec(), enabled=False)
    wire = oci_spec_to_proto(out)
    assert [ns.Type for ns in wire.Linux.Namespaces] == ["ipc", "uts", "mount"]
    assert wire.Linux.CgroupsPath == "/docker/abc123" and not wire.HasField("Hooks")
