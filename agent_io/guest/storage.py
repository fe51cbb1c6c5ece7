"""Storages from CreateSandbox/CreateContainer: tmpfs mounts, local dirs, the shared volume."""

from __future__ import annotations

import os
import stat
import threading
from dataclasses import dataclass
from pathlib import Path

from agent_io import messages as m
from agent_io.guest import syscalls
from agent_io.guest.paths import GuestPaths

SHARED_DRIVERS = ("9p", "virtio-fs")
# Drives the host says it attached. One named by a block device node (a loop device the
# host attached) is mounted when the agent may mount; any other is accepted and recorded.
BLOCK_DRIVERS = ("blk", "blk-ccw", "mmioblk", "scsi", "nvdimm")
_FLAGS = {"ro": 1, "nosuid": syscalls.MS_NOSUID, "nodev": syscalls.MS_NODEV,
          "noexec": syscalls.MS_NOEXEC, "rw": 0}


class StorageError(ValueError):
    """A storage the agent cannot provide (unknown driver, bad option)."""


@dataclass(frozen=True)
class Prepared:
    """One storage as set up: where it lives on the host and whether the agent mounted it."""

    driver: str
    guest_path: str
    host_path: Path
    mounted: bool


def _mode(options: list[str], where: str) -> int | None:
    for opt in options:
        if opt.startswith("mode="):
            try:
                return int(opt[5:], 8)
            except ValueError:
                raise StorageError(f"{where}: bad mode option {opt!r}") from None
    return None


def _is_block_node(source: str) -> bool:
    """A /dev path naming a block device node (never a symlink to one)."""
    try:
        return source.startswith("/dev/") and stat.S_ISBLK(os.lstat(source).st_mode)
    except OSError:
        return False


class Storages:
    """Creates storages and remembers every mount it made so it can undo them."""

    def __init__(self, paths: GuestPaths, may_mount: bool) -> None:
        self._paths = paths
        self._may_mount = may_mount
        self._lock = threading.Lock()
        self._mounted: list[Path] = []

    def setup(self, storages: list, where: str) -> list[Prepared]:
        """Prepare each storage in order; on failure undo the ones this call made."""
        done: list[Prepared] = []
        try:
            for st in storages:
                done.append(self._one(st, where))
        except BaseException:
            self.release(done)
            raise
        return done

    def _one(self, st: m.agent.Storage, where: str) -> Prepared:
        what = f"{where}: storage {st.driver or st.fstype!r} at {st.mount_point!r}"
        if st.driver in SHARED_DRIVERS or st.source == "kataShared":
            return Prepared(st.driver, st.mount_point, self._paths.shared_dir, False)
        host = self._paths.host(st.mount_point, what)
        if st.driver in BLOCK_DRIVERS:
            node = self._may_mount and _is_block_node(st.source)
            if node:
                self._mount(st.source, host, st.fstype, list(st.options), what)
            return Prepared(st.driver, st.mount_point, host, node)
        if st.driver == "ephemeral" or st.fstype == "tmpfs":
            host.mkdir(parents=True, exist_ok=True)
            if not self._may_mount:
                return Prepared(st.driver or "tmpfs", st.mount_point, host, False)
            self._mount("tmpfs", host, "tmpfs", list(st.options), what)
            return Prepared(st.driver or "tmpfs", st.mount_point, host, True)
        if st.driver == "local":
            mode = _mode(list(st.options), what)
            host.mkdir(parents=True, exist_ok=True)
            if mode is not None:
                host.chmod(mode)
            return Prepared("local", st.mount_point, host, False)
        raise StorageError(f"{what}: unsupported driver {st.driver!r} (fstype {st.fstype!r})")

    def _mount(self, source: str, target: Path, fstype: str, options: list[str],
               what: str) -> None:
        """Mount `source` on `target` (made if missing); flag options become mount flags."""
        if not fstype:
            raise StorageError(f"{what}: no fstype to mount {source!r} with")
        target.mkdir(parents=True, exist_ok=True)
        flags = 0
        data = []
        for opt in options:
            if opt in _FLAGS:
                flags |= _FLAGS[opt]
            else:
                data.append(opt)
        syscalls.mount(source, str(target), fstype, flags, ",".join(data))
        with self._lock:
            self._mounted.append(target)

    def release(self, prepared: list[Prepared]) -> None:
        """Unmount what these storages mounted (reverse order); already gone is fine."""
        for p in reversed(prepared):
            if p.mounted:
                self._unmount(p.host_path)

    def release_all(self) -> None:
        with self._lock:
            targets = list(reversed(self._mounted))
        for target in targets:
            self._unmount(target)

    def _unmount(self, target: Path) -> None:
        with self._lock:
            if target not in self._mounted:
                return
            self._mounted.remove(target)
        try:
            syscalls.umount(str(target))
        except OSError:
            pass  # not mounted any more: nothing to release
