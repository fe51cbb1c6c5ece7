"""VM benchmark: the qemu driver's boot, split, and a whole VM lifecycle, durable or not.

Three measurements in one run, alternated so machine noise hits them alike:

- boot (the anchor, no runtime, no log): qemu launch (spawn to QMP socket), then the
  guest's own phases read from its console (`sbx-init: <phase> uptime=<s>`, guest clock:
  kernel boot until /init runs, init until the agent is started), then agent ready
  (host wall clock until the VM proxy has its answer: Python imports under TCG dominate);
- lifecycle: create, start (boot), a container running `true`, stop, delete through the
  runtime, with a durable log (fsync per commit) and with durable=False.

Prints each phase's median, the ratio lifecycle / boot (what the runtime adds to a boot)
and durable / non-durable, and a final JSON line. What is the guest's (kernel, init,
Python imports in the VM) and what is ours (launch, proxy handshake, saga, log) is named.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sandbox_fsm import Runtime, RuntimeConfig, host  # noqa: E402
from sandbox_fsm.drivers import guestimage, qemu, vmproxy  # noqa: E402
from sandbox_fsm.spec import ContainerConfig, SandboxConfig  # noqa: E402

MARK = re.compile(r"sbx-init: (\w+) uptime=([0-9.]+)")


def guest_marks(console: str) -> dict[str, float]:
    """The init's phase marks, in guest seconds since the kernel started."""
    with open(console, errors="replace") as f:
        return {m.group(1): float(m.group(2)) for m in MARK.finditer(f.read())}


def boot_once(image: guestimage.GuestImage, base: Path, vcpus: int) -> dict[str, float]:
    """Launch a VM, wait for its agent through a VM proxy, stop it: the boot split."""
    for sub in ("sock", "log", "shared"):
        (base / sub).mkdir(mode=0o700, parents=True)
    paths = qemu.VmPaths.under(base / "sock", base / "log")
    accel, _ = qemu.choose_accel("auto")
    spec = qemu.QemuSpec(kernel=image.kernel.path, initrd=str(image.path), accel=accel,
                         vcpus=vcpus, shared_dir=str(base / "shared"))
    t0 = time.monotonic()
    vm = qemu.launch(qemu.argv(spec, paths, "sbx-bench"), paths)
    t1 = time.monotonic()
    sock = str(base / "sock" / "proxy.sock")
    proxy = host.spawn(vmproxy.proxy_argv(sock, vm.channel, 300.0))
    try:
        host.wait_for_path(sock, timeout=300, ident=proxy)
        t2 = time.monotonic()
    finally:
        host.terminate(proxy)
        qemu.stop(vm)
    marks = guest_marks(paths.console)
    kernel, agent_start = marks.get("start", 0.0), marks.get("agent", 0.0)
    return {"qemu_launch": t1 - t0, "kernel_boot_guest": kernel,
            "init_guest": agent_start - kernel,
            "agent_ready": max(0.0, (t2 - t1) - agent_start), "boot_total": t2 - t0}


def lifecycle_once(config: RuntimeConfig, base: Path, durable: bool) -> float:
    """create .. delete of one sandbox with one `true` container; wall seconds."""
    started = time.monotonic()
    with Runtime.open(base / "state", base / "run", config, durable=durable) as rt:
        rt.create_sandbox(SandboxConfig("vm"))
        rt.start_sandbox("vm")
        rt.create_container("vm", ContainerConfig("c", args=("true",)))
        rt.start_container("vm", "c")
        rt.wait("vm", "c")
        rt.stop_container("vm", "c")
        rt.delete_container("vm", "c")
        rt.stop_sandbox("vm")
        rt.delete_sandbox("vm")
    return time.monotonic() - started


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=2, help="rounds (each boots 3 VMs)")
    p.add_argument("--vcpus", type=int, default=1)
    p.add_argument("--cache-dir", default="build/guest-images")
    args = p.parse_args()
    image = guestimage.ensure(args.cache_dir)
    base_conf = RuntimeConfig.default()
    config = dataclasses.replace(base_conf, hypervisor=dataclasses.replace(
        base_conf.hypervisor, driver="qemu", initrd=str(image.path), kernel=image.kernel.path,
        default_vcpus=args.vcpus, boot_timeout=300.0))
    boots: list[dict[str, float]] = []
    cycles: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(args.runs):
        for what in ("boot", True, False):
            work = Path(tempfile.mkdtemp(prefix="sbx-vb-", dir=os.getcwd()))
            try:
                if what == "boot":
                    boots.append(boot_once(image, work, args.vcpus))
                else:
                    cycles[bool(what)].append(lifecycle_once(config, work, bool(what)))
            finally:
                shutil.rmtree(work, ignore_errors=True)
    med = {k: statistics.median(b[k] for b in boots) for k in boots[0]}
    durable, plain = statistics.median(cycles[True]), statistics.median(cycles[False])
    accel, _ = qemu.choose_accel("auto")
    print(f"guest image: {image.size / 1e6:.1f} MB initramfs; accel {accel}; "
          f"{args.runs} runs, medians")
    rows = [("qemu launch (spawn to QMP socket)", "ours", med["qemu_launch"]),
            ("kernel boot to /init (guest clock)", "guest", med["kernel_boot_guest"]),
            ("init: mounts + modules (guest clock)", "guest", med["init_guest"]),
            ("agent ready: Python imports + proxy handshake", "guest+ours", med["agent_ready"]),
            ("boot total, qemu start to agent ready", "", med["boot_total"]),
            ("VM lifecycle, durable log", "", durable),
            ("VM lifecycle, durable=False", "", plain)]
    for name, whose, value in rows:
        print(f"  {name:<48} {whose:<10} {value:8.2f} s")
    print(f"  lifecycle / boot anchor: {durable / med['boot_total']:.2f}x; "
          f"durable / non-durable: {durable / plain:.3f}x")
    print(json.dumps({"boot": med, "lifecycle_durable_s": durable,
                      "lifecycle_nondurable_s": plain, "image_bytes": image.size,
                      "accel": accel, "ratio_lifecycle_boot": durable / med["boot_total"],
                      "ratio_durable": durable / plain}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
