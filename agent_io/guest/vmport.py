"""The guest end of the VM channel: the agent's streams over its virtio-serial port.

The agent keeps serving gRPC on its local unix socket; this loop opens the port named by
the host (`-device virtserialport,name=...`), answers each session's HELLO, connects every
stream the host opens to that socket, and turns SHUTDOWN into the agent's own stop.
When the host end closes (proxy gone), every stream ends and the port is polled until a
new proxy connects: the agent survives a proxy restart.
"""

from __future__ import annotations

import logging
import os
import select
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

from agent_io.vmchannel import HELLO_MAGIC, Decoder, Frame, Hello, Kind, StreamTable, ack, write_all

log = logging.getLogger("agent_io.guest")

PORTS_DIR = Path("/sys/class/virtio-ports")
_HOST_GONE_POLL_S = 0.2


class PortNotFound(LookupError):
    """No virtio-serial port carries the requested name."""


def find_port(name: str, *, timeout: float = 10.0) -> str:
    """/dev/vportNpM whose name (as qemu set it) is `name`; waits for the driver to bind."""
    deadline = time.monotonic() + timeout
    while True:
        for entry in sorted(PORTS_DIR.glob("vport*")) if PORTS_DIR.is_dir() else ():
            try:
                if (entry / "name").read_text().strip() == name:
                    return f"/dev/{entry.name}"
            except OSError:
                continue
        if time.monotonic() >= deadline:
            raise PortNotFound(f"no virtio-serial port named {name!r} under {PORTS_DIR}")
        time.sleep(0.05)


class GuestChannel:
    """Serve the host's streams on `fd` by connecting each to the agent at `agent_socket`."""

    def __init__(self, fd: int, agent_socket: str, on_shutdown: Callable[[], None]) -> None:
        self._fd = fd
        self._agent_socket = agent_socket
        self._on_shutdown = on_shutdown
        self._streams = StreamTable(lambda data: write_all(fd, data))
        self._decoder = Decoder(HELLO_MAGIC)

    def serve(self, stop: threading.Event) -> None:
        poller = select.poll()
        poller.register(self._fd, select.POLLIN)
        while not stop.is_set():
            events = poller.poll(500)
            if not events:
                continue
            data = os.read(self._fd, 256 * 1024) if events[0][1] & select.POLLIN else b""
            if not data:  # the host end is not connected (POLLHUP, or EOF on read)
                self._host_gone()
                continue
            for item in self._decoder.feed(data):
                self._handle(item)

    def _host_gone(self) -> None:
        if len(self._streams) or self._decoder.synced:
            log.info("host end of the channel closed: streams reset")
        self._streams.reset_all()
        self._decoder.desync()
        time.sleep(_HOST_GONE_POLL_S)

    def _handle(self, item: Frame | Hello) -> None:
        if isinstance(item, Hello):
            self._streams.reset_all()
            self._streams.send_raw(ack(item.nonce))
            log.info("host session started")
        elif item.kind is Kind.OPEN:
            self._open(item.stream)
        elif item.kind is Kind.SHUTDOWN:
            log.info("host asked for shutdown")
            self._on_shutdown()
        else:
            self._streams.deliver(item)

    def _open(self, stream: int) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(self._agent_socket)
        except OSError as exc:
            log.warning("stream %d: cannot reach the agent at %s: %s",
                        stream, self._agent_socket, exc)
            sock.close()
            self._streams.send(Kind.RESET, stream)
            return
        self._streams.add(stream, sock)


def start(port_name: str, agent_socket: str, stop: threading.Event) -> threading.Thread:
    """Open the port and serve it in a daemon thread until `stop` is set (SHUTDOWN sets it)."""
    fd = os.open(find_port(port_name), os.O_RDWR | os.O_CLOEXEC)
    channel = GuestChannel(fd, agent_socket, stop.set)
    thread = threading.Thread(target=channel.serve, args=(stop,), daemon=True,
                              name="vmport")
    thread.start()
    log.info("serving the host channel on virtio-serial port %s", port_name)
    return thread
