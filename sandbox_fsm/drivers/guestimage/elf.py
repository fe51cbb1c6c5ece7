"""The shared libraries an ELF program needs, as the host's dynamic loader resolves them."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterable

from .errors import ImageError

# "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or "/lib64/ld-linux-x86-64.so.2 (0x...)"
_LDD_PATH = re.compile(r"(?:=>\s*)?(/\S+)\s+\(0x[0-9a-f]+\)")


class MissingLibrary(ImageError):
    """ldd could not resolve a library a guest program needs."""


def is_elf(path: str) -> bool:
    with open(path, "rb") as f:
        return f.read(4) == b"\x7fELF"


def libraries(path: str) -> list[str]:
    """The absolute paths ldd resolves for path (none for a static binary or a script)."""
    if not is_elf(path):
        return []
    proc = subprocess.run(["ldd", path], capture_output=True, text=True, check=False)
    out = proc.stdout + proc.stderr
    if "not a dynamic executable" in out or "statically linked" in out:
        return []
    if "not found" in out:
        missing = [line.split()[0] for line in out.splitlines() if "not found" in line]
        raise MissingLibrary(f"{path}: ldd cannot find {', '.join(missing)}")
    return [m.group(1) for m in _LDD_PATH.finditer(out)]


def closure(paths: Iterable[str]) -> list[str]:
    """Every library the given programs and extension modules load, each once, sorted."""
    found: set[str] = set()
    for path in paths:
        found.update(libraries(path))
    return sorted(found)


def real(path: str) -> str:
    """The file behind a chain of symlinks (the image holds files, not host links)."""
    return os.path.realpath(path)


def stripped(path: str, workdir: str) -> str:
    """A copy of an ELF file without debug sections (a third of the image otherwise)."""
    out = os.path.join(workdir, "stripped")
    subprocess.run(["strip", "--strip-debug", "-o", out, path], check=True,
                   capture_output=True)
    return out
