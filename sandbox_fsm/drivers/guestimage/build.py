"""Assemble the guest initramfs, content-addressed and cached under the state dir.

The image is named by a digest of everything it is made from (kernel release, modules,
busybox, runc, the interpreter, the stdlib and site files by size and mtime, our own
agent sources by content, the builder itself), so a changed input means a new image and
an unchanged one is never rebuilt. Builders in parallel serialize on a lock file.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from . import elf, init, kmods, pyruntime
from .cpio import CpioWriter
from .errors import ImageError
from .pyruntime import ImageFile

BUSYBOX = "/bin/busybox"
RUNC = "/usr/sbin/runc"
TINI = "/usr/bin/tini-static"  # the agent's container init, when the host has it
_LD_CACHE = "/etc/ld.so.cache"


@dataclass(frozen=True)
class Kernel:
    """A bootable kernel and the release whose modules the image carries."""

    path: str
    release: str

    @property
    def modules_dir(self) -> Path:
        return Path("/lib/modules") / self.release


@dataclass(frozen=True)
class GuestImage:
    """A built initramfs: where it is, its digest, its size, the kernel it goes with."""

    path: Path
    key: str
    size: int
    kernel: Kernel


def find_kernel(path: str = "") -> Kernel:
    """`path` (vmlinuz-<release>), or the newest /boot/vmlinuz-* when empty."""
    if not path:
        found = sorted(Path("/boot").glob("vmlinuz-*"), key=lambda p: p.stat().st_mtime)
        if not found:
            raise ImageError("no kernel: /boot/vmlinuz-* is missing "
                             "(install linux-image-amd64, or set [hypervisor] kernel)")
        path = str(found[-1])
    name = os.path.basename(path)
    if not name.startswith("vmlinuz-") or not os.path.isfile(path):
        raise ImageError(f"kernel {path!r}: expected an existing file named vmlinuz-<release>")
    kernel = Kernel(os.path.abspath(path), name[len("vmlinuz-"):])
    if not (kernel.modules_dir / "modules.dep").is_file():
        raise ImageError(f"kernel {path!r}: no {kernel.modules_dir}/modules.dep")
    return kernel


def _programs() -> list[str]:
    for tool in (BUSYBOX, RUNC):
        if not os.access(tool, os.X_OK):
            raise ImageError(f"{tool} is missing (install busybox-static and runc)")
    tini = [TINI] if os.access(TINI, os.X_OK) else []
    return [BUSYBOX, RUNC, *tini, pyruntime.interpreter()]


def _files(kernel: Kernel) -> Iterator[ImageFile]:
    """Every regular file of the image, the shared libraries excepted."""
    yield ImageFile("/init", data=init.INIT_SCRIPT.encode(), mode=0o755)
    yield ImageFile("/bin/busybox", source=BUSYBOX, mode=0o755)
    yield ImageFile("/usr/sbin/runc", source=RUNC, mode=0o755)
    if os.access(TINI, os.X_OK):
        yield ImageFile(TINI, source=TINI, mode=0o755)
    python = pyruntime.interpreter()
    yield ImageFile(python, source=python, mode=0o755)
    for path, text in init.ETC_FILES.items():
        yield ImageFile(path, data=text.encode())
    order = kmods.load_order(kernel.modules_dir)
    yield ImageFile(init.MODULE_LIST, data="".join(f"{m}\n" for m in order).encode())
    for rel in order:
        yield ImageFile(f"/lib/modules/{kernel.release}/{rel}",
                        source=str(kernel.modules_dir / rel))
    yield from pyruntime.stdlib_files()
    yield from pyruntime.site_files()


def _digest(kernel: Kernel) -> str:
    """The content address: cheap enough to compute at every VM start."""
    h = hashlib.sha256()
    for own in sorted(Path(__file__).parent.glob("*.py")):
        h.update(own.read_bytes())
    h.update(kernel.release.encode())
    stated = [*_programs(), _LD_CACHE, *(str(kernel.modules_dir / r)
                                         for r in kmods.load_order(kernel.modules_dir))]
    stated += [f.source for f in pyruntime.stdlib_files() if f.source]
    for dest, source in pyruntime.site_sources():
        st = source.stat()
        h.update(f"{dest}\0{st.st_size}\0".encode())
        if dest.startswith(tuple(f"{pyruntime.SITE_DIR}/{p}/" for p in pyruntime.GUEST_PACKAGES)):
            h.update(source.read_bytes())  # our sources: by content, mtimes churn in git
        else:
            h.update(str(st.st_mtime_ns).encode())
    for path in stated:
        st = os.stat(path)
        h.update(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
    return h.hexdigest()[:24]


def _parents(paths: Iterable[str]) -> list[str]:
    dirs: set[str] = set()
    for path in paths:
        parent = os.path.dirname(path)
        while parent not in ("/", ""):
            dirs.add(parent)
            parent = os.path.dirname(parent)
    return sorted(dirs)


def _write(out_path: Path, kernel: Kernel) -> None:
    files = list(_files(kernel))
    libs = elf.closure([*_programs(), *(f.source for f in files
                                        if f.source and f.source.endswith(".so"))])
    files += [ImageFile(lib, source=elf.real(lib), mode=0o755) for lib in libs]
    applets = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True,
                             check=True).stdout.split()
    links = {f"/bin/{a}": "busybox" for a in applets if a != "busybox"}
    links["/usr/bin/python3"] = pyruntime.interpreter()
    taken = {f.dest for f in files}
    with open(out_path, "wb") as out, tempfile.TemporaryDirectory(prefix="sbx-strip-") as work:
        cpio = CpioWriter(out)
        for d in ["/dev", "/proc", "/sys", "/root", "/run", "/tmp",
                  *_parents([*taken, *links])]:
            cpio.directory(d.lstrip("/"), 0o1777 if d == "/tmp" else 0o755)
        cpio.char_device("dev/console", 5, 1)
        for f in files:
            if f.data is not None:
                cpio.file(f.dest.lstrip("/"), f.data, f.mode)
            elif f.source is not None:
                source = elf.stripped(f.source, work) if elf.is_elf(f.source) else f.source
                cpio.copy(f.dest.lstrip("/"), source)
        for link, target in sorted(links.items()):
            if link not in taken:
                cpio.symlink(link.lstrip("/"), target)
        cpio.close()


def cache_dir(state_dir: str | os.PathLike[str]) -> Path:
    """Where a runtime keeps its guest images: <state dir>/guest-images."""
    return Path(state_dir) / "guest-images"


def ensure(directory: str | os.PathLike[str], kernel_path: str = "", *,
           force: bool = False) -> GuestImage:
    """The image for this kernel and these inputs, built now only when not cached."""
    kernel = find_kernel(kernel_path)
    cache = Path(directory)
    cache.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = _digest(kernel)
    image = cache / f"guest-{kernel.release}-{key}.cpio"
    with open(cache / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if force or not image.exists():
            fd, tmp = tempfile.mkstemp(dir=cache, prefix=".building-")
            os.close(fd)
            try:
                _write(Path(tmp), kernel)
                os.chmod(tmp, 0o644)
                os.replace(tmp, image)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
            _prune(cache, kernel, keep=image)
    return GuestImage(image, key, image.stat().st_size, kernel)


def _prune(cache: Path, kernel: Kernel, keep: Path) -> None:
    """Drop images of older inputs for the same kernel: they can never be chosen again
    (a running VM is unaffected: qemu read its initrd into guest memory at start)."""
    for old in cache.glob(f"guest-{kernel.release}-*.cpio"):
        if old != keep:
            old.unlink(missing_ok=True)


__all__ = ["GuestImage", "ImageError", "Kernel", "cache_dir", "ensure", "find_kernel"]
