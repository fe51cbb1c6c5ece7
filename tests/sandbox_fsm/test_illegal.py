"""Triggers the lifecycle does not allow, and malformed ids: a clear error, nothing logged."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from lifekit import CID, SID

from sandbox_fsm import Runtime
from sandbox_fsm.errors import IllegalTransition, InvalidRequest, NotFound
from sandbox_fsm.spec import ContainerConfig, SandboxConfig

pytestmark = pytest.mark.root

SLEEPER = ContainerConfig(id=CID, args=("sleep", "60"))


def deleted(rt: Runtime) -> None:
    rt.create_sandbox(SandboxConfig(id=SID))
    rt.delete_sandbox(SID)


def stopped(rt: Runtime) -> None:
    rt.create_sandbox(SandboxConfig(id=SID))
    rt.start_sandbox(SID)
    rt.stop_sandbox(SID)


def running(rt: Runtime) -> None:
    rt.create_sandbox(SandboxConfig(id=SID))
    rt.start_sandbox(SID)


def container_running(rt: Runtime) -> None:
    running(rt)
    rt.create_container(SID, SLEEPER)
    rt.start_container(SID, CID)


def nothing(rt: Runtime) -> None:
    pass


# (setup, trigger, error type, words the message must contain)
CASES: dict[str, tuple[Callable, Callable, type, tuple[str, ...]]] = {
    "start-deleted": (deleted, lambda rt: rt.start_sandbox(SID), IllegalTransition,
                      ("start", SID, "deleted")),
    "create-again": (running, lambda rt: rt.create_sandbox(SandboxConfig(id=SID)),
                     IllegalTransition, ("create", SID, "running")),
    "container-in-stopped": (stopped, lambda rt: rt.create_container(SID, SLEEPER),
                             InvalidRequest, (CID, SID, "stopped")),
    "start-container-twice": (container_running, lambda rt: rt.start_container(SID, CID),
                              IllegalTransition, ("start", CID, SID, "running")),
    "delete-running": (running, lambda rt: rt.delete_sandbox(SID), IllegalTransition,
                       ("delete", SID, "running")),
    "delete-running-container": (container_running, lambda rt: rt.delete_container(SID, CID),
                                 IllegalTransition, ("delete", CID, "running")),
    "exec-in-stopped-sandbox": (stopped, lambda rt: rt.exec(SID, CID, ["true"]),
                                InvalidRequest, (CID, SID, "stopped")),
    "dotdot-sandbox": (nothing, lambda rt: rt.create_sandbox(SandboxConfig(id="../x")),
                       InvalidRequest, ("../x",)),
    "slash-sandbox": (nothing, lambda rt: rt.create_sandbox(SandboxConfig(id="a/b")),
                      InvalidRequest, ("a/b",)),
    "slash-container": (running, lambda rt: rt.create_container(
        SID, ContainerConfig(id="a/b")), InvalidRequest, ("a/b",)),
    "dotdot-container": (running, lambda rt: rt.create_container(
        SID, ContainerConfig(id="..")), InvalidRequest, ("'..'",)),
    "unknown-sandbox": (nothing, lambda rt: rt.start_sandbox("ghost"), NotFound, ("ghost",)),
}


@pytest.mark.parametrize("name", list(CASES))
def test_refused_without_a_trace(name: str, runtime: Runtime) -> None:
    setup, trigger, error, words = CASES[name]
    setup(runtime)
    before = runtime.store.last_position()
    with pytest.raises(error) as info:
        trigger(runtime)
    message = str(info.value)
    assert all(word in message for word in words), message
    assert runtime.store.last_position() == before
    if before >= 0:
        state = runtime.state(SID)
        assert state.operation is None
        if state.state != "deleted":
            runtime.delete_sandbox(SID, force=True)
