"""The seed's `disable_guest_seccomp` rule decides whether a container's seccomp profile
reaches the guest, where runc enforces it: both values, against the real guest."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from hostcheck import make_config

from sandbox_fsm import Runtime
from sandbox_fsm.spec import ContainerConfig, SandboxConfig

pytestmark = pytest.mark.root

SID = "sb"
PROFILE = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
           "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}


@pytest.mark.parametrize("disabled", [False, True])
def test_the_seccomp_profile_is_enforced_unless_the_rule_drops_it(dirs, disabled: bool):
    base = make_config("process")
    config = dataclasses.replace(base, runtime=dataclasses.replace(
        base.runtime, disable_guest_seccomp=disabled))
    with Runtime.open(Path(dirs[0]), Path(dirs[1]), config) as rt:
        rt.create_sandbox(SandboxConfig(SID))
        rt.start_sandbox(SID)
        rt.create_container(SID, ContainerConfig(
            "c", args=("sh", "-c", "mkdir /tmp/d && echo made"),
            oci={"linux": {"seccomp": PROFILE}}))
        sent = next(e.data["args"]["spec"] for e in rt.events(SID) if e.type == "StepStarted"
                    and e.data["step"] == "create_container_in_guest")
        assert ("seccomp" in sent["linux"]) is not disabled
        rt.start_container(SID, "c")
        status = rt.wait(SID, "c")
        out, err = rt.read_stdout(SID, "c"), rt.read_stderr(SID, "c")
        if disabled:
            assert (status, out) == (0, b"made\n"), err
        else:
            assert status == 1 and b"Operation not permitted" in err, (out, err)
        rt.delete_sandbox(SID, force=True)
