"""The VM channel without a VM: framing, resync, and the proxy as a real process.

A stand-in for qemu's chardev socket accepts one connection at a time and carries its
bytes to the guest end (agent_io.guest.vmport) over a socketpair, which, unlike a
virtio-serial port, never tells the guest that the host went away: a restarted proxy
must resynchronize by the HELLO padding alone.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest

from agent_io import vmchannel
from agent_io.guest.vmport import GuestChannel
from agent_io.vmchannel import ACK_MAGIC, HELLO_MAGIC, Decoder, Frame, Hello, Kind, encode
from sandbox_fsm import host
from sandbox_fsm.drivers import vmproxy

ECHO = "/test.Echo/Echo"
NONCE = bytes(range(16))


def test_decoder_finds_the_session_after_garbage_and_a_torn_frame() -> None:
    d = Decoder(HELLO_MAGIC)
    torn = encode(Kind.DATA, 7, b"x" * 1000)[:500]
    items = d.feed(b"junk" + vmchannel.hello(NONCE)[:-5])
    assert items == []
    items = d.feed(vmchannel.hello(NONCE)[-5:] + encode(Kind.OPEN, 1) + torn)
    assert items == [Hello(NONCE), Frame(Kind.OPEN, 1)]
    # a new session arrives while the decoder waits for the rest of the torn frame: the
    # padding completes the torn frame (for a stream the new session resets), then fails
    # to parse, and the decoder finds the new HELLO
    items = d.feed(vmchannel.hello(bytes(16)) + encode(Kind.DATA, 1, b"hi"))
    assert items[-2:] == [Hello(bytes(16)), Frame(Kind.DATA, 1, b"hi")]
    assert all(isinstance(i, Frame) and i.stream == 7 for i in items[:-2])


def test_decoder_resyncs_on_an_impossible_header() -> None:
    d = Decoder(ACK_MAGIC)
    assert d.feed(vmchannel.ack(NONCE)) == [Hello(NONCE)]
    assert d.feed(bytes([99]) + bytes(8)) == []
    assert not d.synced
    assert d.feed(vmchannel.ack(NONCE) + encode(Kind.CLOSE, 3)) == [Hello(NONCE),
                                                                    Frame(Kind.CLOSE, 3)]


def test_oversized_payload_is_refused() -> None:
    with pytest.raises(ValueError):
        encode(Kind.DATA, 1, bytes(vmchannel.MAX_PAYLOAD + 1))


class FakeChardev:
    """qemu's `-chardev socket,server=on` for one port: one host connection at a time."""

    def __init__(self, path: str, guest_end: socket.socket) -> None:
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        self.listener.listen(1)
        self.guest_end = guest_end
        self.conn: socket.socket | None = None
        threading.Thread(target=self._accept, daemon=True).start()
        threading.Thread(target=self._to_host, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.conn = conn
            with contextlib.suppress(OSError):
                while data := conn.recv(65536):
                    self.guest_end.sendall(data)
            self.conn = None
            conn.close()

    def _to_host(self) -> None:
        with contextlib.suppress(OSError):
            while data := self.guest_end.recv(65536):
                conn = self.conn
                if conn is not None:  # like qemu: nobody connected, bytes dropped
                    with contextlib.suppress(OSError):
                        conn.sendall(data)


def _echo(request: bytes, context: grpc.ServicerContext) -> bytes:
    return b"echo:" + request


@pytest.fixture
def channel(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """(socket dir, chardev path) with an echo gRPC 'agent' behind the guest end."""
    sock_dir = tmp_path / "sock"
    sock_dir.mkdir(mode=0o700)
    agent_path = str(sock_dir / "agent.sock")
    server = grpc.server(ThreadPoolExecutor(8))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
        "test.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(_echo)}),))
    server.add_insecure_port(f"unix:{agent_path}")
    server.start()
    host_end, guest_end = socket.socketpair()
    stop = threading.Event()
    guest = GuestChannel(guest_end.fileno(), agent_path, stop.set)
    threading.Thread(target=guest.serve, args=(stop,), daemon=True).start()
    chardev = FakeChardev(str(sock_dir / "channel.sock"), host_end)
    yield sock_dir, str(sock_dir / "channel.sock")
    stop.set()
    chardev.listener.close()
    server.stop(None)
    host_end.close()


def _proxy(sock_dir: Path, chardev: str) -> host.ProcessIdentity:
    sock = str(sock_dir / "proxy.sock")
    ident = host.spawn(vmproxy.proxy_argv(sock, chardev, 30.0),
                       log_path=sock_dir.parent / "proxy.log")
    host.wait_for_path(sock, timeout=30, ident=ident)
    return ident


def _call(sock_dir: Path, payload: bytes) -> bytes:
    with grpc.insecure_channel(f"unix:{sock_dir / 'proxy.sock'}") as ch:
        return ch.unary_unary(ECHO)(payload, timeout=10)


def test_many_clients_at_once_through_one_channel(channel: tuple[Path, str]) -> None:
    sock_dir, chardev = channel
    proxy = _proxy(sock_dir, chardev)
    try:
        assert os.stat(sock_dir / "proxy.sock").st_mode & 0o777 == 0o600
        big = os.urandom(300_000)  # several frames each way
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda i: _call(sock_dir, bytes([i]) + big), range(16)))
        assert results == [b"echo:" + bytes([i]) + big for i in range(16)]
        # one long-lived client, many calls on it while others come and go
        with grpc.insecure_channel(f"unix:{sock_dir / 'proxy.sock'}") as ch:
            echo = ch.unary_unary(ECHO)
            for i in range(20):
                assert echo(b"%d" % i, timeout=10) == b"echo:%d" % i
                assert _call(sock_dir, b"other") == b"echo:other"
    finally:
        host.terminate(proxy)
    assert not (sock_dir / "proxy.sock").exists()


def test_client_crash_and_proxy_restart_leave_the_guest_usable(
        channel: tuple[Path, str]) -> None:
    sock_dir, chardev = channel
    proxy = _proxy(sock_dir, chardev)
    # a client that dies mid-request: its stream ends, the proxy serves the next one
    raw = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    raw.connect(str(sock_dir / "proxy.sock"))
    raw.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x12")
    raw.close()
    assert _call(sock_dir, b"after-crash") == b"echo:after-crash"
    # the proxy killed while a frame is half-written: a new one resynchronizes the guest
    host.signal_process(proxy, signal.SIGKILL)
    host.wait_exit(proxy, 10)
    proxy = _proxy(sock_dir, chardev)
    try:
        assert _call(sock_dir, b"again") == b"echo:again"
    finally:
        host.terminate(proxy)


def test_proxy_exits_when_the_vm_end_closes(tmp_path: Path) -> None:
    sock_dir = tmp_path / "sock"
    sock_dir.mkdir(mode=0o700)
    chardev = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    chardev.bind(str(sock_dir / "channel.sock"))
    chardev.listen(1)

    def guest() -> None:
        conn, _ = chardev.accept()
        d = Decoder(HELLO_MAGIC)
        while not (hellos := [i for i in d.feed(conn.recv(65536)) if isinstance(i, Hello)]):
            pass
        conn.sendall(vmchannel.ack(hellos[0].nonce))
        conn.recv(1)  # until the test closes it: the "VM" goes away
        conn.close()

    t = threading.Thread(target=guest, daemon=True)
    t.start()
    proxy = _proxy(sock_dir, str(sock_dir / "channel.sock"))
    chardev.shutdown(socket.SHUT_RDWR)
    t.join(5)
    assert host.wait_exit(proxy, 10)
    assert not (sock_dir / "proxy.sock").exists()
