"""The guest image, in the spirit of Kata's osbuilder: a read-only initramfs with busybox,
this host's Python with only the agent's dependencies, runc, the kernel modules the VM
needs and an init that starts the agent on the virtio-serial port. Never the host's root.
"""

from .build import GuestImage, ImageError, Kernel, cache_dir, ensure, find_kernel

__all__ = ["GuestImage", "ImageError", "Kernel", "cache_dir", "ensure", "find_kernel"]
