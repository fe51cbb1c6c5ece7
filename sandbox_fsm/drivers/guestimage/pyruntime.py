"""The guest's Python: this interpreter, its standard library, and only the agent's
distributions (grpcio, protobuf and what they require) plus our `agent_io` and `protos`.

The files are the host's own (same interpreter version, so the stdlib's .pyc files stay
valid); the agent's packages are compiled here with hash-based .pyc files, so a guest
under TCG never spends its boot compiling.
"""

from __future__ import annotations

import importlib.metadata as md
import importlib.util
import os
import py_compile
import re
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

GUEST_DISTRIBUTIONS = ("grpcio", "protobuf")
GUEST_PACKAGES = ("agent_io", "protos")
SITE_DIR = "/opt/sbx/site"  # PYTHONPATH in the guest

# Parts of the stdlib the agent never imports; dropped to keep the image small.
_STDLIB_SKIP = frozenset({
    "test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3", "pydoc_data",
    "distutils", "venv", "site-packages", "dist-packages", "__phello__", "sqlite3",
    "curses", "dbm", "xmlrpc", "wsgiref", "msilib", "unittest",
})
_TEST_DIRS = frozenset({"test", "tests", "idle_test"})
_DYNLOAD_SKIP = re.compile(r"^(_test|xxlimited|_ctypes_test|_xxtest|_curses|_dbm|_sqlite3|"
                           r"readline|nis|ossaudiodev|audioop|_tkinter)")
_REQ_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


@dataclass(frozen=True)
class ImageFile:
    """One regular file of the image: copied from `source`, or `data` made here."""

    dest: str
    source: str | None = None
    data: bytes | None = None
    mode: int = 0o644


def interpreter() -> str:
    return os.path.realpath(sys.executable)


def stdlib_dir() -> Path:
    return Path(sysconfig.get_path("stdlib"))


def _keep_stdlib(rel: Path) -> bool:
    parts = rel.parts
    if parts[0] in _STDLIB_SKIP or parts[0].startswith("config-"):
        return False
    if _TEST_DIRS.intersection(parts[:-1]):
        return False
    if parts[0] == "lib-dynload" and _DYNLOAD_SKIP.match(parts[-1]):
        return False
    return not (parts[-1].endswith(".pyc") and ".opt-" in parts[-1])


def stdlib_files() -> Iterator[ImageFile]:
    """The standard library (with Debian's compiled .pyc files), minus _STDLIB_SKIP."""
    root = stdlib_dir()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if _keep_stdlib(path.relative_to(root)):
                yield ImageFile(str(path), source=str(path))


def distributions(names: tuple[str, ...] = GUEST_DISTRIBUTIONS) -> list[md.Distribution]:
    """The named distributions and, transitively, what they require (extras excluded)."""
    seen: dict[str, md.Distribution] = {}
    todo = list(names)
    while todo:
        name = todo.pop().lower().replace("_", "-")
        if name in seen:
            continue
        dist = md.distribution(name)
        seen[name] = dist
        for req in dist.requires or ():
            match = _REQ_NAME.match(req)
            if match and "extra ==" not in req:
                todo.append(match.group(1))
    return [seen[k] for k in sorted(seen)]


def _python_sources(root: Path, prefix: str) -> Iterator[tuple[str, Path]]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for name in sorted(filenames):
            if not name.endswith((".pyc", ".pyi")):
                path = Path(dirpath) / name
                yield f"{prefix}/{path.relative_to(root)}", path


def site_sources() -> Iterator[tuple[str, Path]]:
    """(image path, host file) for every file of the guest's distributions and packages."""
    for dist in distributions():
        for entry in dist.files or ():
            if "__pycache__" in entry.parts or entry.parts[0] == "..":
                continue
            yield f"{SITE_DIR}/{entry}", Path(str(dist.locate_file(entry)))
    for package in GUEST_PACKAGES:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise ModuleNotFoundError(f"guest package {package!r} is not importable here")
        root = Path(list(spec.submodule_search_locations)[0])
        yield from _python_sources(root, f"{SITE_DIR}/{package}")


def _compiled(source: Path, workdir: str) -> bytes:
    target = os.path.join(workdir, "out.pyc")
    py_compile.compile(str(source), cfile=target, doraise=True,
                       invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
    with open(target, "rb") as f:
        return f.read()


def site_files() -> Iterator[ImageFile]:
    """The guest's site dir: the files, and a hash-based .pyc next to every .py."""
    tag = sys.implementation.cache_tag
    with tempfile.TemporaryDirectory(prefix="sbx-pyc-") as workdir:
        for dest, source in site_sources():
            yield ImageFile(dest, source=str(source))
            if dest.endswith(".py"):
                folder, _, name = dest.rpartition("/")
                pyc = f"{folder}/__pycache__/{name[:-3]}.{tag}.pyc"
                yield ImageFile(pyc, data=_compiled(source, workdir))
