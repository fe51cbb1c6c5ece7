"""The proxy as a real process: gRPC through it, half-close, SIGTERM and SIGKILL."""

from __future__ import annotations

import os
import signal
import socket
import stat
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest

from sandbox_fsm.host.procs import (
    ProcessIdentity,
    reap_children,
    signal_process,
    spawn,
    wait_for_path,
)
from sandbox_fsm.host.proxy import proxy_argv

ECHO = "/test.Echo/Echo"


def _echo(request: bytes, context: grpc.ServicerContext) -> bytes:
    return b"echo:" + request


@pytest.fixture
def sock_dir(tmp_path: Path) -> Path:
    d = tmp_path / "sock"
    d.mkdir(mode=0o700)
    return d


@pytest.fixture
def echo_server(sock_dir: Path) -> Iterator[Path]:
    """A real in-process gRPC server on a unix socket, with a bytes echo method."""
    path = sock_dir / "agent.sock"
    server = grpc.server(ThreadPoolExecutor(4))
    handler = grpc.method_handlers_generic_handler(
        "test.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(_echo)})
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"unix:{path}")
    server.start()
    yield path
    server.stop(None)


def _start_proxy(janitor, listen: Path, target: Path, log: Path) -> ProcessIdentity:
    ident = spawn(proxy_argv(listen, target), log_path=log)
    janitor.track(ident.pid)
    wait_for_path(listen, timeout=30, ident=ident)
    return ident


def _call(listen: Path, payload: bytes) -> bytes:
    with grpc.insecure_channel(f"unix:{listen}") as channel:
        return channel.unary_unary(ECHO)(payload, timeout=10)


def test_grpc_through_proxy_then_sigkill_breaks_it(janitor, sock_dir: Path, echo_server: Path,
                                                   tmp_path: Path) -> None:
    listen = sock_dir / "proxy.sock"
    ident = _start_proxy(janitor, listen, echo_server, tmp_path / "proxy.log")
    assert stat.S_IMODE(os.lstat(listen).st_mode) == 0o600
    assert _call(listen, b"hi") == b"echo:hi"
    big = os.urandom(3 * 1024 * 1024)
    assert _call(listen, big) == b"echo:" + big

    assert signal_process(ident, signal.SIGKILL)
    os.waitpid(ident.pid, 0)
    reap_children()
    with pytest.raises(grpc.RpcError) as info:
        _call(listen, b"after")
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE


def test_sigterm_removes_socket_and_exits_zero(janitor, sock_dir: Path, echo_server: Path,
                                               tmp_path: Path) -> None:
    listen = sock_dir / "proxy.sock"
    log = tmp_path / "proxy.log"
    ident = _start_proxy(janitor, listen, echo_server, log)
    assert _call(listen, b"x") == b"echo:x"
    assert signal_process(ident, signal.SIGTERM)
    _, status = os.waitpid(ident.pid, 0)
    reap_children()
    assert os.waitstatus_to_exitcode(status) == 0
    assert not listen.exists()
    assert "stopped" in log.read_text()


def test_stale_socket_is_replaced(janitor, sock_dir: Path, echo_server: Path,
                                  tmp_path: Path) -> None:
    listen = sock_dir / "proxy.sock"
    first = _start_proxy(janitor, listen, echo_server, tmp_path / "first.log")
    signal_process(first, signal.SIGKILL)
    os.waitpid(first.pid, 0)
    reap_children()
    assert listen.exists()  # left behind by the SIGKILLed proxy
    _start_proxy(janitor, listen, echo_server, tmp_path / "second.log")
    assert _call(listen, b"again") == b"echo:again"


def test_half_close_passes_through(janitor, sock_dir: Path, tmp_path: Path) -> None:
    """The target answers only after reading EOF; the reply must still come back."""
    target = sock_dir / "rev.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(target))
    server.listen(1)

    def reverse_each() -> None:  # wait_for_path's readiness probe is one connection too
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                data = b""
                while chunk := conn.recv(4096):
                    data += chunk
                conn.sendall(data[::-1])

    worker = threading.Thread(target=reverse_each, daemon=True)
    worker.start()
    try:
        listen = sock_dir / "proxy.sock"
        _start_proxy(janitor, listen, target, tmp_path / "proxy.log")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.settimeout(10)
            client.connect(str(listen))
            client.sendall(b"abcdef")
            client.shutdown(socket.SHUT_WR)
            reply = b""
            while chunk := client.recv(4096):
                reply += chunk
        assert reply == b"fedcba"
    finally:
        server.shutdown(socket.SHUT_RDWR)
        server.close()
        worker.join(timeout=10)


def test_unreachable_target_is_logged(janitor, sock_dir: Path, tmp_path: Path) -> None:
    listen = sock_dir / "proxy.sock"
    log = tmp_path / "proxy.log"
    _start_proxy(janitor, listen, sock_dir / "nobody.sock", log)
    with pytest.raises(grpc.RpcError):
        _call(listen, b"x")
    assert "nobody.sock" in log.read_text()


def test_proxy_argv_requires_absolute_paths() -> None:
    with pytest.raises(ValueError, match="listen socket must be an absolute path"):
        proxy_argv("rel.sock", "/abs/agent.sock")
