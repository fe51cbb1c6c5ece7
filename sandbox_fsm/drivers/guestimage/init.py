"""The guest's /init: mount the kernel filesystems, load modules, mount the share, run
the agent on the virtio-serial port, and power off when the agent ends.

Settings come from the kernel command line (`sbx.*=`), so one image serves every VM.
Each phase prints `sbx-init: <phase> uptime=<s>` on the console: the boot split that
bench/vm_bench.py reads (kernel boot ends at `start`, init at `agent`).
"""

from __future__ import annotations

from .pyruntime import SITE_DIR

GUEST_SHARED_DIR = "/run/kata-containers/shared/containers"
AGENT_SOCKET = "/run/sbx/agent.sock"
GUEST_AGENT_DIR = "/run/sbx/guest"
MODULE_LIST = "/etc/sbx/modules"

# runc's pivot_root cannot leave the initramfs (rootfs): the init first makes / a bind
# mount of it (moved over /, then chroot), a root runc can pivot away from. No copy.
INIT_SCRIPT = f"""#!/bin/busybox sh
export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
if [ -z "$SBX_ROOT_MOVED" ]; then
  mkdir -p /.root
  mount --rbind / /.root && cd /.root && mount --move . / && \
    SBX_ROOT_MOVED=1 exec chroot . /init
  echo "sbx-init: could not move the root; containers cannot pivot_root"
fi
say() {{ echo "sbx-init: $* uptime=$(cut -d' ' -f1 /proc/uptime)"; }}
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
say start
mkdir -p /dev/pts /dev/shm /run /tmp /sys/fs/cgroup
mount -t devpts -o newinstance,ptmxmode=0666 devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t tmpfs -o mode=0755 tmpfs /run
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t cgroup2 cgroup2 /sys/fs/cgroup
share=""; fs=none; msize=8192; port=agent.channel.0
for arg in $(cat /proc/cmdline); do
  case "$arg" in
    sbx.share=*) share="${{arg#*=}}" ;;
    sbx.fs=*) fs="${{arg#*=}}" ;;
    sbx.msize=*) msize="${{arg#*=}}" ;;
    sbx.port=*) port="${{arg#*=}}" ;;
  esac
done
release=$(uname -r)
while read -r module; do
  insmod "/lib/modules/$release/$module" || say "insmod $module failed"
done < {MODULE_LIST}
say modules
ip link set lo up
mkdir -p {GUEST_SHARED_DIR} {GUEST_AGENT_DIR} /run/sbx
chmod 0700 /run/sbx
case "$fs" in
  9p) mount -t 9p -o trans=virtio,version=9p2000.L,cache=mmap,msize="$msize" \\
        "$share" {GUEST_SHARED_DIR} || say "9p mount failed" ;;
  virtio-fs) mount -t virtiofs "$share" {GUEST_SHARED_DIR} || say "virtio-fs mount failed" ;;
esac
say agent
PYTHONPATH={SITE_DIR} PYTHONDONTWRITEBYTECODE=1 \\
  LD_LIBRARY_PATH=/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu \\
  /usr/bin/python3 -s -m agent_io.guest --listen unix:{AGENT_SOCKET} \\
  --guest-dir {GUEST_AGENT_DIR} --shared-dir {GUEST_SHARED_DIR} --vm-port "$port" \\
  --kernel-params "$(cat /proc/cmdline)"
say "agent exited status=$?"
umount {GUEST_SHARED_DIR} 2>/dev/null
sync
poweroff -f
"""

ETC_FILES = {
    "/etc/passwd": "root:x:0:0:root:/root:/bin/sh\n",
    "/etc/group": "root:x:0:\n",
    "/etc/hosts": "127.0.0.1 localhost\n",
}
