"""Startup benchmark: whole-process wall times of `sbx` beside their anchors, in one run.

- `sbx run --rootfs R -- true` (namespaces driver) against `runc run` of the same
  busybox-static rootfs R, built here (target: at most 5x);
- `sbx list` on a log holding the sandboxes this run made, and `sbx state` of a created
  container (`sbx create` of the same bundle runc runs), each at most 60 ms, beside
  `python -c pass` from the same interpreter (the floor);
- docker with the sbx runtime against docker with runc, and the qemu driver cold against
  a warm VM cache, when this tree and host have them; otherwise a line saying why not.

Every figure is the median of its rounds; the rounds interleave the commands so that
machine noise hits all of them alike. The commands may write bytecode caches (as an
installed sbx has them): a PYTHONDONTWRITEBYTECODE in the caller's environment would
make every run compile sbx's modules again, which is no startup cost of sbx. Needs root
(namespaces, runc). Prints a table and a final JSON line. Everything lives in a temp dir
under --dir, removed at the end.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUSYBOX = "/bin/busybox"
STATE_ID = "bench-state"
TARGETS = {"run_vs_runc": 5.0, "list_s": 0.060, "state_s": 0.060}


def busybox_rootfs(root: Path) -> Path:
    """A root filesystem of one static busybox and the applets `true` and `sh`."""
    rootfs = root / "rootfs"
    for d in ("bin", "proc", "dev", "sys", "tmp", "etc"):
        (rootfs / d).mkdir(parents=True)
    shutil.copy2(BUSYBOX, rootfs / "bin" / "busybox")
    for applet in ("true", "sh"):
        (rootfs / "bin" / applet).symlink_to("busybox")
    return rootfs


def runc_bundle(root: Path, rootfs: Path) -> Path:
    """An OCI bundle (runc's own default spec) whose process is `true` in `rootfs`."""
    bundle = root / "bundle"
    bundle.mkdir()
    subprocess.run(["runc", "spec"], cwd=bundle, check=True)
    config = json.loads((bundle / "config.json").read_text())
    config["process"].update(terminal=False, args=["/bin/true"])
    config["root"] = {"path": str(rootfs), "readonly": True}
    (bundle / "config.json").write_text(json.dumps(config))
    return bundle


def wall(cmd: Sequence[str]) -> float:
    """Seconds one whole process takes; it must succeed."""
    with tempfile.TemporaryFile("w+") as err:  # a file, not a pipe: `sbx create` leaves
        start = time.perf_counter()           # a shim that keeps its stderr open
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=err)
        elapsed = time.perf_counter() - start
        if proc.returncode != 0:
            err.seek(0)
            raise SystemExit(f"startup_bench: {' '.join(cmd)} exited {proc.returncode}: "
                             f"{err.read().strip()[-400:]}")
    return elapsed


class Commands:
    """The commands one round runs, each bound to this run's private dirs."""

    def __init__(self, root: Path, rootfs: Path, bundle: Path) -> None:
        sbx = [str(Path(sys.executable).with_name("sbx")), "--state-dir", str(root / "state"),
               "--runtime-dir", str(root / "run")]
        self.sbx, self.rootfs, self.bundle = sbx, rootfs, bundle
        self.runc = ["runc", "--root", str(root / "runc")]
        self.rounds = 0

    def runc_run(self) -> float:
        cid = f"bench-{os.getpid()}-{self.rounds}"
        try:
            return wall([*self.runc, "run", "--bundle", str(self.bundle), cid])
        finally:
            subprocess.run([*self.runc, "delete", "--force", cid], capture_output=True)

    def sbx_run(self) -> float:
        return wall([*self.sbx, "run", "--id", f"bench-{self.rounds}", "--rootfs",
                     str(self.rootfs), "--", "true"])

    def sbx_list(self) -> float:
        return wall([*self.sbx, "list"])

    def sbx_state(self) -> float:
        return wall([*self.sbx, "state", STATE_ID])

    def python(self) -> float:
        return wall([sys.executable, "-c", "pass"])

    def round(self) -> dict[str, float]:
        out = {"runc_run_s": self.runc_run(), "run_s": self.sbx_run()}
        out.update(list_s=self.sbx_list(), state_s=self.sbx_state(), python_s=self.python())
        self.rounds += 1
        return out


def not_measured() -> dict[str, str]:
    """Figures this tree or host cannot produce yet, with the reason."""
    why: dict[str, str] = {}
    if importlib.util.find_spec("sandbox_fsm.shim") is None:
        why["docker_vs_runc"] = "the OCI runtime shim docker needs (issue #13) is not in this tree"
    elif shutil.which("dockerd") is None:
        why["docker_vs_runc"] = "dockerd is not installed"
    else:
        why["docker_vs_runc"] = "docker figures are in bench/oci_bench.py (its private dockerd)"
    why["qemu_cached_vs_cold"] = "the qemu driver has no VM cache in this tree (issue #16)"
    return why


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="3 rounds instead of 8")
    ap.add_argument("--dir", default="/var/tmp", help="parent of the temp dir (on disk)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("startup_bench: needs root (the namespaces driver and runc)")
    if shutil.which("runc") is None or not os.path.exists(BUSYBOX):
        raise SystemExit("startup_bench: needs runc and busybox-static (make sysdeps)")
    rounds = 3 if args.quick else 8
    root = Path(tempfile.mkdtemp(prefix="sbx-startup-bench-", dir=args.dir))
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT),
                                                            os.environ.get("PYTHONPATH")]))
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    try:
        rootfs = busybox_rootfs(root)
        bundle = runc_bundle(root, rootfs)
        commands = Commands(root, rootfs, bundle)
        wall([*commands.sbx, "create", "--bundle", str(bundle), STATE_ID])
        try:
            commands.round()  # warm caches (page cache, pyc) before anything counts
            samples: dict[str, list[float]] = {}
            for _ in range(rounds):
                for name, value in commands.round().items():
                    samples.setdefault(name, []).append(value)
        finally:
            wall([*commands.sbx, "delete", "--force", STATE_ID])
    finally:
        shutil.rmtree(root, ignore_errors=True)
    report(rounds, {name: statistics.median(v) for name, v in samples.items()})


def report(rounds: int, med: dict[str, float]) -> None:
    fig: dict[str, object] = {
        "rounds": rounds, **med, "run_vs_runc": med["run_s"] / med["runc_run_s"],
        "list_vs_python": med["list_s"] / med["python_s"],
        "state_vs_python": med["state_s"] / med["python_s"],
    }
    show: list[tuple[str, Callable[[float], str]]] = [
        ("runc_run_s", "{:.3f} s".format), ("run_s", "{:.3f} s".format),
        ("run_vs_runc", "{:.1f}x".format), ("python_s", "{:.3f} s".format),
        ("list_s", "{:.3f} s".format), ("list_vs_python", "{:.1f}x".format),
        ("state_s", "{:.3f} s".format), ("state_vs_python", "{:.1f}x".format)]
    print(f"{'figure':22} {'value':>10} {'target':>9}")
    for key, fmt in show:
        val = float(fig[key])  # type: ignore[arg-type]
        goal = TARGETS.get(key)
        mark = "" if goal is None else (" ok" if val <= goal else " MISS")
        print(f"{key:22} {fmt(val):>10} {'' if goal is None else f'<={goal:g}':>9}{mark}")
    missing = not_measured()
    for key, why in missing.items():
        print(f"{key:22} not measured: {why}")
    print(json.dumps({"bench": "startup", **fig, "not_measured": missing}))


if __name__ == "__main__":
    main()
