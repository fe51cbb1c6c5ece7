"""Fixtures for CLI tests: the installed `sbx` in subprocesses, on dirs under tmp_path.

The host-cleanliness checks are tests/hostcheck.py's `leftovers`/`scrub`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hostcheck import busybox_tree, scrub

from eventstore import EventStore

SBX = str(Path(sys.executable).parent / "sbx")


class Sbx:
    """Runs the installed `sbx` with its state and runtime dirs under one test's tmp_path."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.env = {**os.environ, "SBX_STATE_DIR": str(root / "state"),
                    "SBX_RUNTIME_DIR": str(root / "run")}
        self.env.pop("SBX_AGENT_FAULTS", None)
        self.env.pop("SBX_CRASH_AT", None)
        self.procs: list[subprocess.Popen] = []

    def __call__(self, *args: str, input: str | None = None, env: dict | None = None,
                 timeout: float = 60) -> subprocess.CompletedProcess:
        """Output through files, not pipes: `create` hands its stdio to the process's
        shim (as runc hands it to the container), which outlives the command."""
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            done = subprocess.run([SBX, *args], input=input, stdout=out, stderr=err,
                                  text=True, env={**self.env, **(env or {})}, timeout=timeout)
            out.seek(0)
            err.seek(0)
            return subprocess.CompletedProcess(done.args, done.returncode,
                                               out.read().decode(errors="replace"),
                                               err.read().decode(errors="replace"))

    def popen(self, *args: str, **kwargs: object) -> subprocess.Popen:
        proc = subprocess.Popen([SBX, *args], env=self.env, text=True,  # type: ignore[call-overload]
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)
        self.procs.append(proc)
        return proc

    def ok(self, *args: str, **kwargs: object) -> subprocess.CompletedProcess:
        result = self(*args, **kwargs)  # type: ignore[arg-type]
        assert result.returncode == 0, f"sbx {' '.join(args)}: {result.stderr}"
        assert "Traceback" not in result.stderr
        return result

    def checkpoint(self) -> tuple[int, str]:
        """The log's (last position, hash), read in-process (cheaper than `sbx checkpoint`)."""
        with EventStore.open(self.root / "state" / "events", readonly=True) as store:
            return store.checkpoint()

    def export(self) -> list[dict]:
        out = self("export")
        return [json.loads(line) for line in out.stdout.splitlines()]

    def cleanup(self) -> None:
        for proc in self.procs:
            proc.kill()
            proc.wait()
            for stream in (proc.stdout, proc.stderr):
                if stream:
                    stream.close()


def _sbx_in(root: Path) -> Iterator[Sbx]:
    runner = Sbx(root)
    try:
        yield runner
    finally:
        runner.cleanup()
        mounts, pids = scrub(root)
        assert not mounts and not pids, f"test left mounts {mounts} and processes {pids}"


@pytest.fixture
def sbx(tmp_path: Path) -> Iterator[Sbx]:
    yield from _sbx_in(tmp_path)


@pytest.fixture(scope="module")
def module_sbx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sbx]:
    """One log for a module of read-mostly tests (each must leave it as it found it)."""
    yield from _sbx_in(tmp_path_factory.mktemp("sbx"))


@pytest.fixture
def make_bundle(tmp_path: Path):
    """make_bundle(args, **spec fields) -> an OCI bundle dir with an empty rootfs (so the
    host's commands run)."""
    return lambda args, **extra: write_bundle(tmp_path / "bundle", args, **extra)


def write_bundle(bundle: Path, args: list[str], **extra: object) -> Path:
    busybox_tree(bundle / "rootfs")
    config = {"ociVersion": "1.0.2",
              "process": {"terminal": False, "user": {"uid": 0, "gid": 0}, "args": args,
                          "env": ["PATH=/usr/local/bin:/usr/bin:/bin"], "cwd": "/"},
              "root": {"path": "rootfs"}, "hostname": "web",
              "annotations": {"org.example/owner": "ops"}, **extra}
    (bundle / "config.json").write_text(json.dumps(config))
    return bundle
