"""Seed conversions: users, env, kernel modules, networking and OCI specs to/from the wire."""

from __future__ import annotations

import copy
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent_io import messages as m
from agent_io.convert import (
    ArpNeighbor,
    IPAddr,
    NetInterface,
    NetRoute,
    arp_neighbor_from_proto,
    arp_neighbor_to_proto,
    env_list,
    interface_from_proto,
    interface_to_proto,
    ip_from_proto,
    kernel_modules,
    oci_spec_from_proto,
    oci_spec_to_proto,
    oci_user,
    route_from_proto,
    route_to_proto,
)

# -- users ------------------------------------------------------------------------------------


def test_user_with_uid_and_gid() -> None:
    user = oci_user("1000:100", additional_gids=[10, "20"], username="app")
    assert (user.UID, user.GID, list(user.AdditionalGids), user.Username) == (
        1000, 100, [10, 20], "app")


def test_user_without_gid_takes_the_primary_group() -> None:
    assert oci_user("1000", primary_gid=1000).GID == 1000
    # the seed's cmdToKataProcess: an explicit primary group wins over the gid in the string
    assert oci_user("1000:2000", primary_gid=1000).GID == 1000
    assert oci_user("1000:2000").GID == 2000
    assert oci_user("0").GID == 0
    assert oci_user(str(2**32 - 1)).UID == 2**32 - 1


@pytest.mark.parametrize("bad, named", [
    ("-1", "uid"), ("abc", "uid"), ("", "uid"), (str(2**32), "uid"),
    ("1:-2", "gid"), ("1:", "gid"), ("1:x", "gid"), (f"1:{2**32}", "gid"),
])
def test_malformed_user_is_a_value_error_naming_it(bad: str, named: str) -> None:
    with pytest.raises(ValueError, match=named) as info:
        oci_user(bad)
    assert repr(bad) in str(info.value) or bad.split(":")[-1] in str(info.value)


def test_bad_supplementary_group() -> None:
    with pytest.raises(ValueError, match="supplementary gid"):
        oci_user("1", additional_gids=[-3])
    with pytest.raises(ValueError, match="primary gid"):
        oci_user("1", primary_gid=2**32)


# -- env, kernel modules ----------------------------------------------------------------------


def test_env_from_pairs_and_mapping() -> None:
    assert env_list([("PATH", "/bin"), ("EMPTY", ""), ("EQ", "a=b")]) == [
        "PATH=/bin", "EMPTY=", "EQ=a=b"]
    assert env_list({"A": "1", "B": "2"}) == ["A=1", "B=2"]
    for bad in ("", "A=B"):
        with pytest.raises(ValueError, match=repr(bad)):
            env_list([(bad, "x")])


def test_kernel_modules_skip_blank_lines() -> None:
    mods = kernel_modules(["e1000e InterruptThrottleRate=3000,3000", "", "   ", "i915"])
    assert [(k.name, list(k.parameters)) for k in mods] == [
        ("e1000e", ["InterruptThrottleRate=3000,3000"]), ("i915", [])]


# -- networking -------------------------------------------------------------------------------


def test_interface_round_trip() -> None:
    iface = NetInterface(
        name="eth0", hw_addr="02:42:ac:11:00:02", mtu=1500, device="eth0", type="veth",
        addresses=(IPAddr("172.17.0.2", 16), IPAddr("fe80::42:acff:fe11:2", 64)),
    )
    msg = interface_to_proto(iface)
    assert [(a.family, a.mask) for a in msg.IPAddresses] == [(m.types.v4, "16"), (m.types.v6, "64")]
    assert (msg.hwAddr, msg.mtu) == ("02:42:ac:11:00:02", 1500)
    assert interface_from_proto(msg) == iface


def test_route_and_arp_round_trip() -> None:
    route = NetRoute(dest="10.0.0.0/8", gateway="172.17.0.1", device="eth0", scope=0)
    assert route_from_proto(route_to_proto(route)) == route
    neighbor = ArpNeighbor(IPAddr("172.17.0.1", 32), device="eth0", lladdr="02:00:00:00:00:01",
                           state=128, flags=0)
    assert arp_neighbor_from_proto(arp_neighbor_to_proto(neighbor)) == neighbor


def test_bad_addresses() -> None:
    with pytest.raises(ValueError, match="300.1.1.1"):
        IPAddr("300.1.1.1", 24)
    with pytest.raises(ValueError, match="prefix length 33"):
        IPAddr("10.0.0.1", 33)
    with pytest.raises(ValueError, match="mask"):
        ip_from_proto(m.types.IPAddress(address="10.0.0.1", mask="255.0.0.0"))
    with pytest.raises(ValueError, match="family"):
        ip_from_proto(m.types.IPAddress(family=m.types.v6, address="10.0.0.1", mask="8"))


# -- OCI spec ---------------------------------------------------------------------------------

SPEC = {
    "ociVersion": "1.0.2",
    "process": {
        "terminal": True,
        "consoleSize": {"height": 24, "width": 80},
        "user": {"uid": 0, "gid": 0, "additionalGids": [10], "username": "root"},
        "args": ["sh", "-c", "echo hi"],
        "env": ["PATH=/usr/bin:/bin", "TERM=xterm"],
        "cwd": "/",
        "capabilities": {
            "bounding": ["CAP_KILL", "CAP_CHOWN"], "effective": ["CAP_KILL"],
            "inheritable": ["CAP_KILL"], "permitted": ["CAP_KILL"], "ambient": ["CAP_KILL"],
        },
        "rlimits": [{"type": "RLIMIT_CORE", "hard": 0, "soft": 0},
                    {"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
        "noNewPrivileges": True,
        "apparmorProfile": "docker-default",
        "oomScoreAdj": -500,
        "selinuxLabel": "system_u:system_r:container_t:s0",
    },
    "root": {"path": "rootfs", "readonly": True},
    "hostname": "sandbox",
    "mounts": [
        {"destination": "/proc", "source": "proc", "type": "proc",
         "options": ["nosuid", "noexec"]},
        {"destination": "/data", "source": "/run/shared/data", "type": "bind",
         "options": ["rbind", "ro"]},
    ],
    "hooks": {
        "prestart": [{"path": "/bin/hook", "args": ["hook", "pre"], "env": ["X=1"],
                      "timeout": 5}],
        "poststart": [{"path": "/bin/hook"}],
        "poststop": [{"path": "/bin/hook", "args": ["hook", "post"]}],
    },
    "annotations": {"io.katacontainers.pkg.oci.container_type": "pod_sandbox"},
    "linux": {
        "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
        "gidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
        "sysctl": {"net.ipv4.ip_forward": "1"},
        "resources": {
            "devices": [{"allow": False, "access": "rwm"},
                        {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"}],
            "memory": {"limit": 536870912, "reservation": 1024, "swap": 1073741824,
                       "kernel": 4096, "kernelTCP": 2048, "swappiness": 60,
                       "disableOOMKiller": True},
            "cpu": {"shares": 1024, "quota": 100000, "period": 100000,
                    "realtimeRuntime": 950000, "realtimePeriod": 1000000,
                    "cpus": "0-1", "mems": "0"},
            "pids": {"limit": 1024},
            "blockIO": {
                "weight": 500, "leafWeight": 300,
                "weightDevice": [{"major": 8, "minor": 0, "weight": 500, "leafWeight": 300}],
                "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 600}],
                "throttleWriteBpsDevice": [{"major": 8, "minor": 16, "rate": 300}],
                "throttleReadIOPSDevice": [{"major": 8, "minor": 32, "rate": 100}],
                "throttleWriteIOPSDevice": [{"major": 8, "minor": 48, "rate": 50}],
            },
            "hugepageLimits": [{"pageSize": "2MB", "limit": 209715200}],
            "network": {"classID": 1048577, "priorities": [{"name": "eth0", "priority": 500}]},
        },
        "cgroupsPath": "/kata/sandbox/c1",
        "namespaces": [{"type": "pid"}, {"type": "network", "path": "/var/run/netns/x"}],
        "devices": [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229,
                     "fileMode": 438, "uid": 0, "gid": 0}],
        "seccomp": {
            "defaultAction": "SCMP_ACT_ERRNO",
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                          "args": [{"index": 0, "value": 0, "valueTwo": 1,
                                    "op": "SCMP_CMP_EQ"}]}],
        },
        "rootfsPropagation": "rslave",
        "maskedPaths": ["/proc/kcore"],
        "readonlyPaths": ["/proc/sys"],
        "mountLabel": "system_u:object_r:container_file_t:s0",
        "intelRdt": {"l3CacheSchema": "L3:0=ffff0"},
    },
}


def _without_zero_device_ids(spec: dict) -> dict:
    """The wire cannot carry an unset-vs-zero difference for LinuxDevice uid/gid."""
    out = copy.deepcopy(spec)
    for dev in out["linux"]["devices"]:
        for key in ("uid", "gid"):
            if dev.get(key) == 0:
                del dev[key]
    return out


def test_oci_spec_fields_land_in_kata_names() -> None:
    msg = oci_spec_to_proto(SPEC)
    assert msg.Version == "1.0.2"
    assert (msg.Process.User.UID, list(msg.Process.Args)) == (0, ["sh", "-c", "echo hi"])
    assert msg.Process.OOMScoreAdj == -500 and msg.Process.ConsoleSize.Width == 80
    assert msg.Linux.Resources.CPU.Cpus == "0-1"
    assert msg.Linux.Resources.BlockIO.ThrottleReadIOPSDevice[0].Rate == 100
    assert msg.Linux.Resources.HugepageLimits[0].Pagesize == "2MB"
    assert msg.Linux.Resources.Network.ClassID == 1048577
    assert msg.Linux.IntelRdt.L3CacheSchema == "L3:0=ffff0"
    assert msg.Linux.UIDMappings[0].HostID == 100000
    assert msg.Annotations["io.katacontainers.pkg.oci.container_type"] == "pod_sandbox"
    assert msg.Hooks.Prestart[0].Timeout == 5


def test_oci_spec_round_trip() -> None:
    msg = oci_spec_to_proto(SPEC)
    back = oci_spec_from_proto(msg)
    assert back == _without_zero_device_ids(SPEC)
    wire = m.oci.Spec.FromString(msg.SerializeToString())
    assert oci_spec_from_proto(wire) == back


def test_fields_the_wire_lacks_are_dropped() -> None:
    spec = {"ociVersion": "1.0.2", "domainname": "x", "windows": {"layerFolders": []},
            "solaris": {"milestone": "x"},
            "process": {"user": {"uid": 1, "gid": 2, "umask": 18}, "cwd": "/"}}
    assert oci_spec_from_proto(oci_spec_to_proto(spec)) == {
        "ociVersion": "1.0.2", "process": {"user": {"uid": 1, "gid": 2}, "cwd": "/"}}


@pytest.mark.parametrize("spec, where", [
    ({"process": {"user": {"uid": -1}}}, "process.user.uid"),
    ({"process": {"user": {"uid": "0"}}}, "process.user.uid"),
    ({"process": {"args": "sh"}}, "process.args"),
    ({"process": {"terminal": 1}}, "process.terminal"),
    ({"linux": {"resources": {"memory": {"limit": True}}}}, "linux.resources.memory.limit"),
    ({"mounts": [{"destination": "/a"}, "oops"]}, "mounts[1]"),
    ({"annotations": ["a"]}, "annotations"),
    ({"linux": {"uidMappings": [{"hostID": 2**32}]}}, "linux.uidMappings[0].hostID"),
])
def test_bad_oci_spec_values_name_the_field(spec: dict, where: str) -> None:
    with pytest.raises(ValueError, match=re.escape(f"OCI spec {where}:")):
        oci_spec_to_proto(spec)


_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)


@given(
    args=st.lists(_text, min_size=1, max_size=4),
    env=st.dictionaries(st.text("ABCXYZ_", min_size=1, max_size=6), _text, max_size=4),
    uid=st.integers(0, 2**32 - 1),
    limit=st.integers(1, 2**62),
    annotations=st.dictionaries(_text, _text, max_size=3),
)
def test_oci_spec_round_trip_property(args, env, uid, limit, annotations) -> None:
    spec = {"ociVersion": "1.0.2",
            "process": {"user": {"uid": uid, "gid": 0}, "args": args, "cwd": "/"},
            "linux": {"resources": {"memory": {"limit": limit}}}}
    if env:
        spec["process"]["env"] = env_list(env)
    if annotations:
        spec["annotations"] = annotations
    assert oci_spec_from_proto(oci_spec_to_proto(spec)) == spec
