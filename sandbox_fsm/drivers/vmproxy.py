"""The VM proxy: owns a VM's agent channel and serves the host's agent socket.

qemu's chardev socket for the virtio-serial port takes one connection; this process is
that connection, and it serves any number of host gRPC clients on a 0600 unix socket,
each client a stream of the channel (agent_io.vmchannel). It is a separate process, as
kata-proxy was, recorded by (pid, start time) and stopped by compensations and recovery.

The listening socket appears only once the guest has answered the session's HELLO, so
"the proxy socket accepts" means "the agent in the VM is up". A client that dies ends
its own stream only; when the VM's end closes (qemu gone) the proxy exits 1.

    python -m sandbox_fsm.drivers.vmproxy --listen /abs/proxy.sock --channel /abs/serial.sock
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import select
import signal
import socket
import sys
import threading
import time

from agent_io.vmchannel import ACK_MAGIC, Decoder, Frame, Hello, Kind, StreamTable, hello

from ..host.layout import check_socket_dir, listen_private

_CONNECT_POLL_S = 0.05


def proxy_argv(listen: str, channel: str, ready_timeout: float) -> list[str]:
    """The command line that starts a VM proxy (both paths absolute)."""
    for what, path in (("listen", listen), ("channel", channel)):
        if not os.path.isabs(path):
            raise ValueError(f"vm proxy {what} socket must be an absolute path, got {path!r}")
    return [sys.executable, "-m", "sandbox_fsm.drivers.vmproxy", "--listen", listen,
            "--channel", channel, "--ready-timeout", str(ready_timeout)]


def _log(message: str) -> None:
    print(f"vmproxy[{os.getpid()}]: {message}", file=sys.stderr, flush=True)


def _connect(path: str, deadline: float) -> socket.socket:
    """Connect to qemu's chardev socket, waiting for qemu to create it."""
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(path)
            return sock
        except (FileNotFoundError, ConnectionRefusedError):
            sock.close()
            if time.monotonic() >= deadline:
                raise
            time.sleep(_CONNECT_POLL_S)


def _handshake(chan: socket.socket, decoder: Decoder, deadline: float) -> list[Frame | Hello]:
    """Send HELLO and wait for the ACK carrying our nonce; frames after it are returned."""
    nonce = secrets.token_bytes(16)
    chan.sendall(hello(nonce))
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([chan], [], [], remaining)[0]:
            raise TimeoutError("the guest agent did not answer on the VM channel")
        data = chan.recv(256 * 1024)
        if not data:
            raise ConnectionError("the VM channel closed before the guest answered")
        items = decoder.feed(data)
        for i, item in enumerate(items):
            if isinstance(item, Hello):
                if item.nonce == nonce:
                    return items[i + 1:]
                decoder.desync()  # an older session's ACK: keep looking


def _bind(path: str) -> socket.socket:
    """Listen on `path` (mode 0600) in a directory only we can write."""
    check_socket_dir(os.path.dirname(path))
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)  # our own socket dir: a leftover is a dead predecessor's
    return listen_private(path)


def _read_channel(chan: socket.socket, decoder: Decoder, streams: StreamTable,
                  wake: socket.socket) -> None:
    """Deliver the guest's frames to the host clients until the VM end closes."""
    try:
        while data := chan.recv(256 * 1024):
            for item in decoder.feed(data):
                if isinstance(item, Frame):
                    streams.deliver(item)
    except OSError as exc:
        _log(f"channel read failed: {exc}")
    _log("the VM end of the channel closed")
    streams.reset_all()
    with contextlib.suppress(OSError):
        wake.send(b"x")


def _accept_loop(listener: socket.socket, streams: StreamTable, wake: socket.socket) -> bool:
    """Accept clients until SIGTERM (True) or the channel's end (False)."""
    next_id = 1
    while True:
        ready, _, _ = select.select([listener, wake], [], [])
        if wake in ready:
            return wake.recv(1) != b"x"
        client, _ = listener.accept()
        stream, next_id = next_id, next_id + 1
        if streams.send(Kind.OPEN, stream):
            streams.add(stream, client)
        else:
            client.close()


def serve(listen: str, channel: str, ready_timeout: float) -> int:
    wake_r, wake_w = socket.socketpair()
    wake_w.setblocking(False)
    signal.set_wakeup_fd(wake_w.fileno())
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)  # the wakeup fd does the work
    deadline = time.monotonic() + ready_timeout
    chan = _connect(channel, deadline)
    decoder = Decoder(ACK_MAGIC)
    streams = StreamTable(chan.sendall)
    for item in _handshake(chan, decoder, deadline):
        if isinstance(item, Frame):
            streams.deliver(item)
    listener = _bind(listen)
    inode = os.lstat(listen).st_ino
    _log(f"serving {listen} over {channel}")
    threading.Thread(target=_read_channel, args=(chan, decoder, streams, wake_w),
                     daemon=True).start()
    try:
        stopped = _accept_loop(listener, streams, wake_r)
    finally:
        listener.close()
        with contextlib.suppress(FileNotFoundError):
            if os.lstat(listen).st_ino == inode:  # never remove a successor's socket
                os.unlink(listen)
        streams.reset_all()
        chan.close()
    _log("stopped" if stopped else "exiting: the VM is gone")
    return 0 if stopped else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sandbox_fsm.drivers.vmproxy", description=__doc__)
    parser.add_argument("--listen", required=True, help="absolute path of the socket to serve")
    parser.add_argument("--channel", required=True, help="qemu's chardev socket for the port")
    parser.add_argument("--ready-timeout", type=float, default=120.0,
                        help="seconds to wait for the guest agent to answer")
    args = parser.parse_args(argv)
    try:
        proxy_argv(args.listen, args.channel, args.ready_timeout)
        return serve(args.listen, args.channel, args.ready_timeout)
    except (ValueError, OSError, TimeoutError) as exc:
        _log(f"error: {exc}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
