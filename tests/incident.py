"""A real lifecycle with an incident in it, recorded once and read by report and trace tests.

A sandbox on the namespaces driver (root) whose first container create fails at the
guest's CreateContainer (a fault plan inherited by the real guest agent) and rolls back;
the second create succeeds, the container exits with status 3, and everything is
stopped and deleted. Then a second sandbox, CRASHED, whose `sbx run` is SIGKILLed with
check_agent's intent durable; `sbx recover` rolls its start back; then it is deleted. The log
is real: real guest agent, mounts, processes, LMDB.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hostcheck import make_config, scrub

from agent_io.faults import ENV_VAR
from sandbox_fsm import Runtime
from sandbox_fsm.errors import OperationFailed
from sandbox_fsm.spec import ContainerConfig, SandboxConfig

SID, CID, EXIT = "incident", "web", 3
CRASHED, CRASH_AT = "crashed", "check_agent:before"
FAULT = [{"rpc": "CreateContainer", "nth": 1, "action": "error", "code": "INTERNAL"}]
SBX = str(Path(sys.executable).parent / "sbx")


@dataclass
class IncidentLog:
    root: Path

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "SBX_STATE_DIR": str(self.root / "state"),
                "SBX_RUNTIME_DIR": str(self.root / "run")}

    def sbx(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([SBX, *args], capture_output=True, text=True, env=self.env,
                              timeout=60)

    def ok(self, *args: str) -> str:
        out = self.sbx(*args)
        assert out.returncode == 0, f"sbx {' '.join(args)}: {out.stderr}"
        return out.stdout

    def checkpoint(self) -> tuple[int, str]:
        """The log's (last position, hash), as `sbx checkpoint` prints it."""
        data = json.loads(self.ok("checkpoint"))
        return data["position"], data["hash"]

    def events(self) -> list[dict]:
        """The raw log as `sbx export` prints it: what the tests check the views against."""
        return self.events_of(SID)

    def events_of(self, sandbox_id: str) -> list[dict]:
        return [json.loads(line) for line in
                self.ok("export", "--sandbox", sandbox_id).splitlines()]


def record(root: Path) -> IncidentLog:
    driver = "namespaces" if os.geteuid() == 0 else "process"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(ENV_VAR, json.dumps(FAULT))       # the guest agent inherits the plan
        rt = Runtime.open(root / "state", root / "run", make_config(driver))
        try:
            rt.create_sandbox(SandboxConfig(id=SID))
            rt.start_sandbox(SID)
            config = ContainerConfig(id=CID, args=("sh", "-c", f"exit {EXIT}"))
            with pytest.raises(OperationFailed):
                rt.create_container(SID, config)
            rt.create_container(SID, config)
            rt.start_container(SID, CID)
            assert rt.wait(SID, CID) == EXIT
            rt.stop_container(SID, CID)
            rt.delete_container(SID, CID)
            rt.stop_sandbox(SID)
            rt.delete_sandbox(SID)
        finally:
            rt.close()
    log = IncidentLog(root)
    killed = subprocess.run([SBX, "run", "--id", CRASHED, "--", "true"], capture_output=True,
                            env={**log.env, "SBX_CRASH_AT": CRASH_AT}, timeout=60)
    assert killed.returncode == -9, killed.stderr
    log.ok("recover")                     # rolls the start back: the sandbox is created
    log.ok("delete", "--force", CRASHED)
    return log


def incident_log(factory: pytest.TempPathFactory) -> Iterator[IncidentLog]:
    """Generator body of a module fixture: the recorded log; the host checked clean after."""
    root = factory.mktemp("incident")
    try:
        yield record(root)
    finally:
        mounts, pids = scrub(root)
        assert not mounts and not pids, f"left mounts {mounts} and processes {pids}"
