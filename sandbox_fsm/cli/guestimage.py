"""`sbx guest-image build`: build (or find cached) the qemu driver's guest initramfs."""

from __future__ import annotations

import argparse
import os

from . import context


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("guest-image", help="the qemu driver's guest image")
    verbs = p.add_subparsers(dest="image_cmd", metavar="build", required=True)
    b = verbs.add_parser("build", parents=[common],
                         help="build the guest initramfs unless an identical one is cached",
                         description="Assemble busybox, this Python with only the agent's "
                         "dependencies, runc, the kernel modules and the init into an "
                         "initramfs named by the digest of its inputs, under "
                         "<state-dir>/guest-images (or --cache-dir).")
    b.add_argument("--kernel", default="", metavar="VMLINUZ",
                   help="kernel whose modules the image carries (default: newest "
                        "/boot/vmlinuz-*, or [hypervisor] kernel)")
    b.add_argument("--cache-dir", metavar="DIR", help="where images are kept")
    b.add_argument("--force", action="store_true", help="rebuild even when cached")
    b.set_defaults(func=cmd_build)


def cmd_build(args: argparse.Namespace) -> int:
    from ..drivers import guestimage
    conf = context.runtime_config(args)
    cache = args.cache_dir or guestimage.cache_dir(args.state_dir)
    image = guestimage.ensure(cache, args.kernel or conf.hypervisor.kernel, force=args.force)
    info = {"path": str(image.path), "key": image.key, "size": image.size,
            "kernel": image.kernel.path, "release": image.kernel.release}
    if args.json:
        context.emit_json(info)
    else:
        print(f"{image.path}\n  {image.size / 1e6:.1f} MB, kernel {image.kernel.release} "
              f"({os.path.basename(image.kernel.path)}), key {image.key}")
    return 0
