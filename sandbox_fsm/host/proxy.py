"""A kata-proxy-like process: forwards bytes between a host unix socket and the agent's.

It is a separate process on purpose: the runtime records its (pid, start time) and must
clean it up after a crash, exactly like Kata's proxy. gRPC needs nothing special here;
HTTP/2 is just bytes, with half-close passed through.

    python -m sandbox_fsm.host.proxy --listen /abs/proxy.sock --target /abs/agent.sock
"""

from __future__ import annotations

import argparse
import contextlib
import os
import select
import signal
import socket
import stat
import sys
import threading

from .layout import listen_private

_CHUNK = 256 * 1024


def _require_abs(what: str, path: str | os.PathLike[str]) -> str:
    if not os.path.isabs(path):
        raise ValueError(f"proxy {what} socket must be an absolute path, got {str(path)!r}")
    return os.fspath(path)


def proxy_argv(listen: str | os.PathLike[str], target: str | os.PathLike[str]) -> list[str]:
    """The command line that starts a proxy from listen to target (both absolute)."""
    return [sys.executable, "-m", "sandbox_fsm.host.proxy",
            "--listen", _require_abs("listen", listen), "--target", _require_abs("target", target)]


def _log(message: str) -> None:
    print(f"proxy[{os.getpid()}]: {message}", file=sys.stderr, flush=True)


def _bind(path: str) -> tuple[socket.socket, int]:
    """Listen on path (mode 0600), replacing only a stale socket nobody serves."""
    if os.path.lexists(path):
        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            raise SystemExit(f"proxy: {path!r} exists and is not a socket; refusing to replace it")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(path)
            except ConnectionRefusedError:
                os.unlink(path)
            else:
                raise SystemExit(f"proxy: {path!r} is already served by another process")
    sock = listen_private(path)
    return sock, os.lstat(path).st_ino


def _pump(src: socket.socket, dst: socket.socket) -> None:
    """Copy src to dst until EOF, then half-close dst; on error, tear down both."""
    try:
        while data := src.recv(_CHUNK):
            dst.sendall(data)
    except OSError:
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
        return
    with contextlib.suppress(OSError):
        dst.shutdown(socket.SHUT_WR)


def _forward(client: socket.socket, target: str) -> None:
    upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        upstream.connect(target)
    except OSError as exc:
        _log(f"cannot reach target {target!r}: {exc}")
        client.close()
        upstream.close()
        return
    back = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
    back.start()
    _pump(client, upstream)
    back.join()
    client.close()
    upstream.close()


def serve(listen: str, target: str) -> int:
    """Accept and forward until SIGTERM/SIGINT; then remove our socket and return 0."""
    listener, inode = _bind(listen)
    wake_r, wake_w = socket.socketpair()
    wake_w.setblocking(False)
    signal.set_wakeup_fd(wake_w.fileno())
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)  # the wakeup fd does the work
    _log(f"forwarding {listen} -> {target}")
    try:
        while True:
            ready, _, _ = select.select([listener, wake_r], [], [])
            if wake_r in ready:
                break
            client, _ = listener.accept()
            threading.Thread(target=_forward, args=(client, target), daemon=True).start()
    finally:
        listener.close()
        with contextlib.suppress(FileNotFoundError):
            if os.lstat(listen).st_ino == inode:  # never remove a successor's socket
                os.unlink(listen)
    _log("stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sandbox_fsm.host.proxy", description=__doc__)
    parser.add_argument("--listen", required=True, help="absolute path of the socket to serve")
    parser.add_argument("--target", required=True, help="absolute path of the agent socket")
    args = parser.parse_args(argv)
    try:
        listen, target = _require_abs("listen", args.listen), _require_abs("target", args.target)
    except ValueError as exc:
        parser.error(str(exc))
    return serve(listen, target)


if __name__ == "__main__":
    sys.exit(main())
