"""Hypervisor drivers that make a sandbox's VM: the qemu driver, its guest image and proxy.

`qemu` launches and stops a real virtual machine; `guestimage` builds the read-only
initramfs it boots; `vmproxy` owns the VM's agent channel on the host. Nothing here
knows about events or sagas: the operations journal what these modules do.
"""
