"""Many byte streams over one VM channel (a virtio-serial port): the framing both ends use.

A virtio-serial port is one byte stream with no connection boundaries, while the host
has any number of gRPC clients, each on its own unix connection. Like kata-proxy's yamux,
every host connection becomes a stream of frames `(kind, stream id, payload)`:

- the host opens a stream (OPEN); the guest connects it to the agent's local socket;
- DATA carries bytes, CLOSE ends one direction (half-close), RESET ends both;
- SHUTDOWN asks the guest to stop its agent and power off.

A session starts with a HELLO that carries a random nonce, answered by an ACK with the
same nonce. The HELLO is preceded by zero padding longer than any frame: whatever a dead
proxy left half-written, the padding makes the guest's decoder fail and rescan for the
HELLO magic, so a restarted proxy always resynchronizes. Frames of an older session are
skipped the same way on the host (it waits for its own nonce).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum

log = logging.getLogger("agent_io.vmchannel")

HEADER = struct.Struct(">BII")  # kind, stream id, payload length
MAX_PAYLOAD = 64 * 1024
HELLO_MAGIC = b"\xa5SBX-MUX-HELLO1"
ACK_MAGIC = b"\xa5SBX-MUX-ACK001"
NONCE_SIZE = 16
_PADDING = bytes(MAX_PAYLOAD + HEADER.size + len(HELLO_MAGIC))


class Kind(IntEnum):
    OPEN = 1
    DATA = 2
    CLOSE = 3
    RESET = 4
    SHUTDOWN = 5


_KINDS = frozenset(int(k) for k in Kind)


@dataclass(frozen=True)
class Frame:
    kind: Kind
    stream: int
    payload: bytes = b""


@dataclass(frozen=True)
class Hello:
    """The start of a session (HELLO on the guest side, ACK on the host side)."""

    nonce: bytes


def encode(kind: Kind, stream: int, payload: bytes = b"") -> bytes:
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"frame payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
    return HEADER.pack(kind, stream, len(payload)) + payload


def hello(nonce: bytes) -> bytes:
    """What a new host session writes first: padding, then the HELLO magic and nonce."""
    return _PADDING + HELLO_MAGIC + nonce


def ack(nonce: bytes) -> bytes:
    return ACK_MAGIC + nonce


class Decoder:
    """Bytes in, frames and session starts out; unsynchronized until it finds `magic`."""

    def __init__(self, magic: bytes) -> None:
        self._magic = magic
        self._buf = bytearray()
        self.synced = False

    def desync(self) -> None:
        """Forget the current session: rescan for the next magic."""
        self.synced = False

    def feed(self, data: bytes) -> list[Frame | Hello]:
        self._buf += data
        out: list[Frame | Hello] = []
        while True:
            item = self._next_framed() if self.synced else self._next_hello()
            if item is None:
                return out
            out.append(item)

    def _next_hello(self) -> Hello | None:
        at = self._buf.find(self._magic)
        if at < 0:
            del self._buf[:max(0, len(self._buf) - len(self._magic) + 1)]
            return None
        end = at + len(self._magic) + NONCE_SIZE
        if len(self._buf) < end:
            del self._buf[:at]
            return None
        nonce = bytes(self._buf[end - NONCE_SIZE:end])
        del self._buf[:end]
        self.synced = True
        return Hello(nonce)

    def _next_framed(self) -> Frame | Hello | None:
        if len(self._buf) < HEADER.size:
            return None
        kind, stream, size = HEADER.unpack_from(self._buf)
        if kind not in _KINDS or size > MAX_PAYLOAD:
            self.synced = False  # padding or garbage: a new session is coming
            return self._next_hello()
        if len(self._buf) < HEADER.size + size:
            return None
        payload = bytes(self._buf[HEADER.size:HEADER.size + size])
        del self._buf[:HEADER.size + size]
        return Frame(Kind(kind), stream, payload)


@dataclass
class _Stream:
    sock: socket.socket
    peer_done: bool = False   # the other end sent CLOSE
    local_done: bool = False  # we sent CLOSE
    live: bool = True         # False once dropped or reset: it may send nothing more
    lock: threading.Lock = field(default_factory=threading.Lock)


class StreamTable:
    """The streams of one session, on either end: local sockets <-> frames on the channel.

    `write` puts bytes on the channel (callers serialize through our lock). A stream ends
    when both directions are closed, on RESET, or when the session is reset.
    """

    def __init__(self, write: Callable[[bytes], None]) -> None:
        self._write = write
        self._write_lock = threading.Lock()
        self._streams: dict[int, _Stream] = {}
        self._lock = threading.Lock()

    def send(self, kind: Kind, stream: int, payload: bytes = b"",
             entry: _Stream | None = None) -> bool:
        """Write one frame; False when the channel is gone (the session will reset) or
        `entry`, the stream it speaks for, has ended: a stream of an older session must
        never speak under its id, which the new session reuses."""
        try:
            with self._write_lock:
                if entry is not None and not entry.live:
                    return False
                self._write(encode(kind, stream, payload))
        except OSError as exc:
            log.debug("channel write failed: %s", exc)
            return False
        return True

    def send_raw(self, data: bytes) -> None:
        with self._write_lock:
            self._write(data)

    def add(self, stream: int, sock: socket.socket) -> None:
        """Adopt a connected socket as `stream` and pump what it sends onto the channel."""
        entry = _Stream(sock)
        with self._lock:
            old = self._streams.pop(stream, None)
            self._streams[stream] = entry
        if old is not None:
            with self._write_lock:
                old.live = False
            _close(old.sock)
        threading.Thread(target=self._pump, args=(stream, entry), daemon=True,
                         name=f"vmchannel-{stream}").start()

    def _pump(self, stream: int, entry: _Stream) -> None:
        try:
            while data := entry.sock.recv(MAX_PAYLOAD):
                if not self.send(Kind.DATA, stream, data, entry):
                    return
        except OSError:
            if self._drop(stream, entry):
                self.send(Kind.RESET, stream)
            return
        if not self.send(Kind.CLOSE, stream, b"", entry):
            return
        with entry.lock:
            entry.local_done = True
            finished = entry.peer_done
        if finished:
            self._drop(stream, entry)

    def _drop(self, stream: int, entry: _Stream) -> bool:
        """Close and forget `entry` if it is still `stream`'s; True when we did."""
        with self._lock:
            if self._streams.get(stream) is not entry:
                return False
            del self._streams[stream]
        with self._write_lock:
            entry.live = False
        _close(entry.sock)
        return True

    def deliver(self, frame: Frame) -> None:
        """Apply a DATA, CLOSE or RESET frame from the channel to its stream."""
        with self._lock:
            entry = self._streams.get(frame.stream)
        if entry is None:
            return
        if frame.kind is Kind.RESET:
            self._drop(frame.stream, entry)
        elif frame.kind is Kind.DATA:
            try:
                entry.sock.sendall(frame.payload)
            except OSError:
                if self._drop(frame.stream, entry):
                    self.send(Kind.RESET, frame.stream)
        elif frame.kind is Kind.CLOSE:
            with contextlib.suppress(OSError):
                entry.sock.shutdown(socket.SHUT_WR)
            with entry.lock:
                entry.peer_done = True
                finished = entry.local_done
            if finished:
                self._drop(frame.stream, entry)

    def reset_all(self) -> None:
        """End every stream: the session they belonged to is over."""
        with self._lock:
            entries = list(self._streams.values())
            self._streams.clear()
        with self._write_lock:  # after this, none of them can put a frame on the channel
            for entry in entries:
                entry.live = False
        for entry in entries:
            _close(entry.sock)

    def __len__(self) -> int:
        with self._lock:
            return len(self._streams)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


def write_all(fd: int, data: bytes) -> None:
    """os.write until every byte is out (a serial port takes partial writes)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
