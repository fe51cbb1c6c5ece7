"""OCI clients benchmark: `docker run --rm IMG true` and `ctr run --rm IMG ID true` with
sbx as the runtime against runc, in the same run, alternating so machine noise hits both.

Starts a private containerd and dockerd under a temp dir (tests/oci/daemons.py), builds
the busybox image there (tests/oci/image.py), and stops both by pid at the end. Prints
the median wall time of each and the sbx / runc ratio, then one JSON line. Needs root.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "oci"))

from daemons import IMAGE, SBX, Containerd, Dockerd  # noqa: E402
from hostcheck import scrub  # noqa: E402
from image import build_image  # noqa: E402


def timed(call: Callable[[], subprocess.CompletedProcess]) -> float:
    start = time.perf_counter()
    out = call()
    elapsed = time.perf_counter() - start
    if out.returncode != 0:
        raise SystemExit(f"{out.args}: exit {out.returncode}: {out.stderr}")
    return elapsed


def measure(cd: Containerd, dk: Dockerd, rounds: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {k: [] for k in
                                     ("docker/runc", "docker/sbx", "ctr/runc", "ctr/sbx")}
    tag = IMAGE.removeprefix("docker.io/")
    runc_root = str(cd.root / "runc-root")
    sbx_flags = ["--runc-binary", SBX, "--runc-root", str(cd.root / "sbx-root")]
    for i in range(rounds + 1):             # round 0 warms caches up, not counted
        pairs: dict[str, list[str]] = {
            "docker/runc": ["run", "--rm", tag, "true"],
            "docker/sbx": ["run", "--rm", "--runtime", "sbx", tag, "true"],
            "ctr/runc": ["run", "--rm", "--runc-root", runc_root, IMAGE, f"r{i}", "true"],
            "ctr/sbx": ["run", "--rm", *sbx_flags, IMAGE, f"s{i}", "true"],
        }
        for name, argv in pairs.items():
            client = dk.docker if name.startswith("docker") else cd.ctr
            elapsed = timed(lambda: client(*argv))   # noqa: B023 - called at once
            if i:
                times[name].append(elapsed)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="3 rounds")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("oci_bench needs root (containerd, dockerd, mounts)")
    rounds = 3 if args.quick else args.rounds
    with tempfile.TemporaryDirectory(prefix="sbx-oci-bench-", dir="/var/tmp") as tmp:
        root = Path(tmp)
        daemons: list[Containerd | Dockerd] = []
        try:
            tar = build_image(root / "busybox.tar", IMAGE)
            cd = Containerd(root / "cd")
            daemons.append(cd)
            cd.ctr("image", "import", str(tar))
            dk = Dockerd(root / "dk", SBX)
            daemons.append(dk)
            dk.docker("load", "-i", str(tar))
            times = measure(cd, dk, rounds)
        finally:
            for daemon in daemons:
                daemon.stop()
            scrub(root)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"{'client / runtime':<14} {'median s':>9}  (runs: {rounds})")
    for name, value in med.items():
        print(f"{name:<14} {value:>9.3f}")
    ratios = {c: med[f"{c}/sbx"] / med[f"{c}/runc"] for c in ("docker", "ctr")}
    for client, ratio in ratios.items():
        print(f"{client}: sbx / runc = {ratio:.1f}x")
    print(json.dumps({"medians_s": med, "ratios": ratios, "rounds": rounds}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
