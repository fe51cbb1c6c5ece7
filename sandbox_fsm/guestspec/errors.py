"""Errors raised by the guest-spec rules."""


class GuestSpecError(ValueError):
    """A sandbox or container description the seed's rules cannot turn into a guest request."""


class UnsupportedOnHost(GuestSpecError):
    """A configured feature this host cannot provide (e.g. vsock without a vsock-capable VM)."""
