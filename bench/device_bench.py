"""Loop-device benchmark: attach + mount + detach of an image rootfs, bare and through the
runtime (namespaces driver), and the journal's share of what the runtime adds.

Anchor (same run): the bare kernel work, `loopdev.attach` + mount(ext4) + umount +
`loopdev.detach`. Runtime: create_container + stop_container + delete_container of a
container whose rootfs is the image, alternated with the same cycle on the default rootfs;
the difference is what the device costs through the runtime (two journalled steps, the
agent's mount in the guest). The journal's share is the extra time spent in store appends
over that difference. Needs root. Runs on disk (state under /var/tmp). Prints a table and
a final JSON line.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sandbox_fsm import ContainerConfig, Runtime, RuntimeConfig, SandboxConfig, host  # noqa: E402
from sandbox_fsm.host import loopdev  # noqa: E402

SID = "bench"


def make_image(where: Path) -> Path:
    """A sparse 8 MB ext4 image with a busybox rootfs at /rootfs."""
    root = where / "content" / "rootfs" / "bin"
    for name in ("bin", "proc", "dev", "sys", "tmp", "run"):   # runc mounts onto all but bin
        (root.parent / name).mkdir(parents=True)
    shutil.copy("/bin/busybox", root / "busybox")
    (root / "sh").symlink_to("busybox")
    img = where / "disk.img"
    with open(img, "wb") as f:
        f.truncate(8 << 20)
    subprocess.run(["mkfs.ext4", "-q", "-d", str(where / "content"), str(img)], check=True)
    return img


def bare(img: Path, where: Path, rounds: int) -> list[float]:
    """Seconds per bare attach + mount + umount + detach."""
    target = where / "mnt"
    target.mkdir()
    tag = loopdev.make_tag("bench", str(os.getpid()))
    out = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        dev = loopdev.attach(img, tag)
        subprocess.run(["mount", "-t", "ext4", dev.path, str(target)], check=True)
        host.unmount(target)
        loopdev.detach(tag)
        out.append(time.perf_counter() - t0)
    return out


class Timed:
    """A runtime whose store appends are timed."""

    def __init__(self, rt: Runtime) -> None:
        self.spent = 0.0
        append = rt.store.append

        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return append(*args, **kwargs)
            finally:
                self.spent += time.perf_counter() - t0

        setattr(rt.store, "append", timed)  # noqa: B010 (a bound method replaced)


def cycle(rt: Runtime, timed: Timed, config: ContainerConfig) -> tuple[float, float]:
    """(wall seconds, seconds in appends) of create + stop + delete of one container."""
    spent, t0 = timed.spent, time.perf_counter()
    rt.create_container(SID, config)
    rt.stop_container(SID, config.id)
    rt.delete_container(SID, config.id)
    return time.perf_counter() - t0, timed.spent - spent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    where = Path(tempfile.mkdtemp(prefix="sbx-device-bench-", dir="/var/tmp"))
    try:
        img = make_image(where)
        raw = bare(img, where, args.rounds)
        base = RuntimeConfig.default()
        conf = dataclasses.replace(base, hypervisor=dataclasses.replace(
            base.hypervisor, driver="namespaces"))
        with Runtime.open(where / "state", where / "run", conf) as rt:
            timed = Timed(rt)
            rt.create_sandbox(SandboxConfig(id=SID))
            rt.start_sandbox(SID)
            image, plain = [], []
            for i in range(args.rounds):
                image.append(cycle(rt, timed, ContainerConfig(
                    id=f"i{i}", args=("/bin/sh",), rootfs_device={
                        "id": "root", "image": str(img), "fstype": "ext4"})))
                plain.append(cycle(rt, timed, ContainerConfig(id=f"p{i}", args=("true",))))
            rt.stop_sandbox(SID)
            rt.delete_sandbox(SID)
    finally:
        shutil.rmtree(where, ignore_errors=True)
    med = statistics.median
    bare_ms = med(raw) * 1e3
    added_ms = (med(w for w, _ in image) - med(w for w, _ in plain)) * 1e3
    journal_ms = (med(j for _, j in image) - med(j for _, j in plain)) * 1e3
    result = {
        "rounds": args.rounds, "bare_attach_mount_detach_ms": round(bare_ms, 2),
        "image_cycle_ms": round(med(w for w, _ in image) * 1e3, 2),
        "plain_cycle_ms": round(med(w for w, _ in plain) * 1e3, 2),
        "device_added_ms": round(added_ms, 2),
        "added_over_bare": round(added_ms / bare_ms, 2),
        "journal_added_ms": round(journal_ms, 2),
        "journal_share_of_added": round(journal_ms / added_ms, 3) if added_ms > 0 else None,
    }
    for key, value in result.items():
        print(f"{key:32} {value}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
