"""A worker's connection as both of its ends use it: one read takes in what
has arrived, one write sends a message.

``multiprocessing.connection.Connection`` reads a message with two reads (its
length, then its body, through a BytesIO) and writes one by concatenating
the length and the body. On a task's path there are four messages per task
(payload and outcome, each written once and read once), so the pool's
manager and the worker read with one ``read()`` of up to READ_SIZE bytes,
which may bring in several messages (a task's state updates and its outcome
often arrive together), and write with one ``writev()`` of the length and
the body (no concatenation)::

    the wire (Connection's own framing, so either end may still be one):
        length: 4 bytes, signed, big-endian   body: that many bytes
        (2 GiB or more: length -1, then 8 bytes of length)

A message whose first read brings in only its start is read to its end at
once, as ``recv_bytes`` does: its writer sends it whole, so the rest is on
its way (or the writer died and the read ends with EOF). A body bigger than
READ_SIZE is read straight into a buffer of its size (one copy, by the
kernel) and returned as that ``bytearray``.

Where a connection is not a socket or pipe with a file descriptor (Windows'
named pipes), the Connection's own calls are used.
"""

from __future__ import annotations

import os
import struct
from multiprocessing.connection import Connection
from typing import Union

# What a read returns: bytes, or the bytearray a big message was read into.
Message = Union[bytes, bytearray]

# Bytes asked for by one read. A task's messages are a few hundred bytes;
# a read that asks for more than arrived returns what did.
READ_SIZE = 65536

_LENGTH = struct.Struct("!i")
_LONG_LENGTH = struct.Struct("!Q")
_LONG = _LENGTH.pack(-1)

_WRITEV = getattr(os, "writev", None)


class Channel:
    """Framed messages over one end of a worker's connection.

    Reading is not thread-safe: one thread reads at a time (the worker's
    main loop hands its channel to its control thread and takes it back).
    Neither is writing: writers hold a lock (in a worker process, its send
    lock; in the pool, the worker's ``sending`` lock).

    Args:
        conn: the connection; it still owns the descriptor (closing it
            closes the channel).
    """

    __slots__ = ("conn", "_fd", "_buffer", "_start")

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        # -1: not a descriptor that os.read and os.writev take.
        self._fd = conn.fileno() if os.name == "posix" and _WRITEV else -1
        # Bytes read and not yet returned: _buffer[_start:].
        self._buffer = b""
        self._start = 0

    def send(self, message: bytes) -> None:
        """Write ``message`` (one ``writev`` unless the kernel takes part
        of it).

        Raises:
            OSError: the other end is gone (or the connection is closed).
        """
        fd = self._fd
        if fd < 0:
            self.conn.send_bytes(message)
            return
        size = len(message)
        if size > 0x7FFFFFFF:
            header = _LONG + _LONG_LENGTH.pack(size)
        else:
            header = _LENGTH.pack(size)
        assert _WRITEV is not None
        written = _WRITEV(fd, (header, message))
        if written == len(header) + size:
            return
        # The kernel took part of it (a big message, or a signal came): the
        # rest, without copying the body.
        parts = [memoryview(header), memoryview(message)]
        while True:
            while parts and written >= len(parts[0]):
                written -= len(parts.pop(0))
            if not parts:
                return
            parts[0] = parts[0][written:]
            written = _WRITEV(fd, parts)

    def buffered(self) -> bool:
        """True if bytes were read that no call has returned yet."""
        return self._start < len(self._buffer)

    def recv(self) -> Message:
        """The next message; reads (blocking) if none is buffered.

        Raises:
            EOFError: the other end closed, between two messages.
            OSError: it closed in the middle of one, or the read failed.
        """
        if self._fd < 0:
            return self.conn.recv_bytes()
        if not self.buffered():
            message = self._read()
            if message is not None:
                return message
        message = self._next()
        while message is None:  # a message begun: the rest is on its way
            self._read()
            message = self._next()
        return message

    def recv_ready(self) -> list[Message]:
        """The messages one read brings in (call it when the descriptor is
        ready: the read does not wait). A message it brings in only in part
        is read to its end if it is the only one; else it stays buffered
        for the next call (the descriptor is ready again when the rest comes,
        or at EOF): the messages read are returned even if the writer dies
        before the rest. Empty only if the read found none.

        Raises:
            EOFError: the other end closed, between two messages.
            OSError: see :meth:`recv` (only if no message was read).
        """
        if self._fd < 0:
            return [self.conn.recv_bytes()]
        message = self._read()
        if message is not None:
            return [message]
        messages: list[Message] = []
        try:
            while (message := self._next()) is not None:
                messages.append(message)
            if not messages and self.buffered():  # its writer sends the rest now
                messages.append(self.recv())
        except OSError:  # the writer died in a big message's body
            if not messages:
                raise
        return messages

    def _read(self) -> Message | None:
        """One read (blocking if nothing came). If nothing was buffered and
        it read exactly one message (most reads do), that message; else
        None, and the bytes are buffered."""
        data = os.read(self._fd, READ_SIZE)
        buffered = self._start < len(self._buffer)
        if (
            not buffered
            and len(data) >= 4
            and _LENGTH.unpack_from(data)[0] == len(data) - 4
        ):
            return data[4:]
        if not data:
            if buffered:
                raise OSError("got end of file during message")
            raise EOFError
        if buffered:
            self._buffer = self._buffer[self._start :] + data
        else:
            self._buffer = data
        self._start = 0
        return None

    def _next(self) -> Message | None:
        """The next complete message from the buffer, or None."""
        buffer, start = self._buffer, self._start
        available = len(buffer) - start
        if available < 4:
            return None
        (size,) = _LENGTH.unpack_from(buffer, start)
        head = 4
        if size == -1:
            if available < 12:
                return None
            (size,) = _LONG_LENGTH.unpack_from(buffer, start + 4)
            head = 12
        end = start + head + size
        if end <= len(buffer):
            self._start = end
            return buffer[start + head : end]
        if size <= READ_SIZE:
            return None  # the next read brings the rest
        # Big: read the rest straight into a buffer of its size.
        body = bytearray(size)
        view = memoryview(body)
        filled = len(buffer) - start - head
        view[:filled] = memoryview(buffer)[start + head :]
        self._buffer, self._start = b"", 0
        while filled < size:
            count = os.readv(self._fd, (view[filled:],))
            if not count:
                raise OSError("got end of file during message")
            filled += count
        return body
