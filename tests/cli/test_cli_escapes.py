"""Escapes a hostile user tries from inside `sbx run`, on both drivers: each one fails
inside the container, and the host is checked afterwards, by the test itself."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from hostcheck import busybox_tree

pytestmark = pytest.mark.root

# Harmless kernel knobs whose value the host reads before and after a write attempt.
PROC_SYS_KNOB = Path("/proc/sys/vm/dirty_expire_centisecs")
SYS_KNOBS = (Path("/sys/kernel/mm/transparent_hugepage/khugepaged/scan_sleep_millisecs"),
             Path("/sys/kernel/mm/ksm/sleep_millisecs"), Path("/sys/kernel/uevent_helper"))


@pytest.fixture(params=["process", "namespaces"])
def run(request, sbx, tmp_path):
    """run(*sbx run args) -> CompletedProcess, with the driver of this case."""
    config = tmp_path / f"{request.param}.toml"
    config.write_text(f'[hypervisor]\ndriver = "{request.param}"\n')
    return lambda *args: sbx("--config", str(config), "run", *args)


def _sh(run, script: str, *opts: str):
    return run(*opts, "--", "sh", "-c", script)


def test_proc_1_root_is_the_containers_root(run, tmp_path):
    target = tmp_path / "x"
    target.mkdir()
    out = _sh(run, f"cat /proc/1/comm; echo pwned > /proc/1/root{target}/pwned && echo WROTE")
    assert "WROTE" not in out.stdout, out
    assert out.stdout.splitlines()[0] == ".sbx-init"   # pid 1 is the container's init
    assert not (target / "pwned").exists()


def test_the_default_rootfs_is_the_hosts_read_only(run, tmp_path):
    out = _sh(run, "touch /usr/sbx-escape; touch /sbx-escape; mount -o remount,rw / "
                   "&& echo REMOUNTED; echo tmp > /tmp/t && cat /tmp/t")
    assert out.stdout == "tmp\n" and out.stderr.count("Read-only file system") >= 2, out
    assert not Path("/usr/sbx-escape").exists() and not Path("/sbx-escape").exists()


def test_a_read_only_volume_cannot_be_remounted(run, tmp_path):
    data = tmp_path / "d"
    data.mkdir()
    (data / "f").write_text("original\n")
    out = _sh(run, "mount -o remount,rw,bind /ro && echo CHANGED > /ro/f; echo CHANGED > /ro/f",
              "-v", f"{data}:/ro:ro")
    assert out.returncode != 0 and "Read-only file system" in out.stderr, out
    assert (data / "f").read_text() == "original\n"


def test_an_empty_rootfs_is_refused_before_anything_is_written(sbx, tmp_path):
    empty = tmp_path / "e"
    empty.mkdir()
    marker = tmp_path / "WRITTEN"
    out = sbx("run", "--rootfs", str(empty), "--", "/bin/sh", "-c", f"touch {marker}")
    assert out.returncode == 2 and f"'{empty}' is empty" in out.stderr, out
    assert not marker.exists() and not (tmp_path / "state").exists()


def _host_disk() -> tuple[int, int]:
    dev = os.stat("/").st_dev
    return os.major(dev), os.minor(dev)


def test_the_host_disk_cannot_be_made_read_or_mounted(run):
    major, minor = _host_disk()
    script = (f"mknod /tmp/disk b {major} {minor}; head -c 512 /tmp/disk > /dev/null "
              f"&& echo READ; mkdir -p /tmp/m; mount /tmp/disk /tmp/m && echo MOUNTED; "
              "mount -t proc proc /tmp/m && echo PROC")
    out = _sh(run, script)
    assert "READ" not in out.stdout and "MOUNTED" not in out.stdout, out
    assert "PROC" not in out.stdout, out
    # mknod may pass (CAP_MKNOD, as in Docker); the device cgroup refuses the open and
    # the missing CAP_SYS_ADMIN the mounts.
    assert "cannot open '/tmp/disk'" in out.stderr and "permission denied" in out.stderr


def test_no_way_into_the_hosts_namespaces(run):
    host_mnt = os.readlink("/proc/self/ns/mnt")
    script = ("unshare -m true && echo UNSHARED; nsenter -t 1 -m -p true && echo ENTERED; "
              "readlink /proc/1/ns/mnt; ls /proc | grep -c '^[0-9]'")
    out = _sh(run, script)
    assert "UNSHARED" not in out.stdout and "ENTERED" not in out.stdout, out
    ns, count = out.stdout.split()
    assert ns != host_mnt and int(count) <= 4   # tini, sh and what sh runs


def test_a_host_process_cannot_be_traced(run):
    me = os.getpid()
    script = ("import ctypes, os; libc = ctypes.CDLL(None, use_errno=True); "
              f"r = libc.ptrace(16, {me}, 0, 0); print(r, os.strerror(ctypes.get_errno()))")
    out = run("--", "python3", "-c", script)
    assert out.stdout.startswith("-1 "), out     # ESRCH: the host pid is not there at all
    assert _tracer(me) == 0


def _tracer(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("TracerPid:"):
            return int(line.split()[1])
    raise AssertionError("no TracerPid")


def test_proc_sys_and_sys_are_read_only(run):
    sys_knob = next(k for k in SYS_KNOBS if k.exists())
    before = (PROC_SYS_KNOB.read_text(), sys_knob.read_text())
    out = _sh(run, f"echo 4242 > {PROC_SYS_KNOB} && echo PROCSYS; "
                   f"echo 4243 > {sys_knob} && echo SYS")
    try:
        assert "PROCSYS" not in out.stdout and "SYS" not in out.stdout, out
        assert "Read-only file system" in out.stderr
        assert (PROC_SYS_KNOB.read_text(), sys_knob.read_text()) == before
    finally:   # if the escape had worked, put the host back as it was
        for knob, value in zip((PROC_SYS_KNOB, sys_knob), before, strict=True):
            if knob.read_text() != value:
                knob.write_text(value)


def test_absolute_symlinks_and_volumes_under_them_stay_in_the_rootfs(run, tmp_path):
    """A Debian-like tree: /var/run -> /run (absolute), sh -> /bin/busybox (absolute)."""
    rootfs = busybox_tree(tmp_path / "rootfs")
    (rootfs / "bin" / "sh").unlink()
    (rootfs / "bin" / "sh").symlink_to("/bin/busybox")
    (rootfs / "run").mkdir()
    (rootfs / "var").mkdir()
    (rootfs / "var" / "run").symlink_to("/run")
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "token").write_text("s3cret\n")
    host_run_secrets = Path("/run/secrets")
    existed = host_run_secrets.exists()
    out = _sh(run, "cat /run/secrets/token /var/run/secrets/token", "--rootfs", str(rootfs),
              "-v", f"{secrets}:/var/run/secrets:ro")
    assert out.returncode == 0 and out.stdout == "s3cret\ns3cret\n", out
    assert host_run_secrets.exists() == existed
    assert stat.S_ISDIR((rootfs / "run" / "secrets").lstat().st_mode)  # its mount point
