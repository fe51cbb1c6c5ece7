"""Kernel modules for the guest, in the order `modules.dep` requires them to be loaded.

The Debian kernel builds virtio, virtio-serial and 9p as modules, and insmod of a module
before its dependencies fails with "unknown symbol": the init loads this list in order.
"""

from __future__ import annotations

from pathlib import Path

from .errors import ImageError

# What the guest needs: the PCI transport, the agent's virtio-serial port, the 9p share,
# virtio-fs, the virtio RNG (ReseedRandomDev), overlayfs for container rootfs layers.
GUEST_MODULES = ("virtio_pci", "virtio_console", "9pnet_virtio", "9p", "virtio_rng",
                 "virtiofs", "overlay")


class ModuleNotFound(ImageError):
    """A module the guest needs is not built for this kernel."""


def _name(rel: str) -> str:
    base = rel.rsplit("/", 1)[-1]
    return base.split(".ko", 1)[0].replace("-", "_")


def read_dep(modules_dir: Path) -> dict[str, tuple[str, list[str]]]:
    """modules.dep as {module name: (relative path, [relative paths it depends on])}."""
    table: dict[str, tuple[str, list[str]]] = {}
    for line in (modules_dir / "modules.dep").read_text().splitlines():
        rel, _, deps = line.partition(":")
        if rel:
            table[_name(rel)] = (rel, deps.split())
    return table


def load_order(modules_dir: Path, wanted: tuple[str, ...] = GUEST_MODULES) -> list[str]:
    """Relative paths of `wanted` and their dependencies, every dependency first."""
    table = read_dep(modules_dir)
    by_path = {rel: name for name, (rel, _) in table.items()}
    order: list[str] = []

    def visit(name: str) -> None:
        if name not in table:
            raise ModuleNotFound(f"kernel module {name!r} is not in {modules_dir}/modules.dep")
        rel, deps = table[name]
        if rel in order:
            return
        for dep in deps:
            visit(by_path[dep])
        order.append(rel)

    for name in wanted:
        visit(name.replace("-", "_"))
    for rel in order:
        if not rel.endswith(".ko"):
            raise ModuleNotFound(f"{rel}: compressed modules are not supported by the guest "
                                 f"init (busybox insmod); use a kernel with plain .ko files")
    return order
