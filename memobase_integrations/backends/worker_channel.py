"""Framing for the pipe between an app process and its flush-worker process.

Each frame is a 4-byte big-endian length followed by a pickle. Pickle is safe here because
both ends are this package in a parent and the child it started itself: the pipe is private
to them (the child's stdin/stdout), nothing else can write to it. Length prefixes keep a
reader from ever consuming half a message.

Messages are plain tuples whose first item names them:

parent -> child
    ``("config", dict)`` first, then ``("wake",)``, ``("request", user_id, blob_type)``,
    ``("stop", drain, timeout_seconds)``.
child -> parent
    ``("ready", pid)``, ``("processed", user_id, [response_json, ...])``,
    ``("log", logger_name, levelno, text)``, ``("stopped", finished)``.
"""

from __future__ import annotations

import pickle
import struct
from typing import IO, Any

__all__ = ["read_frame", "write_frame"]

_HEADER = struct.Struct(">I")


def write_frame(stream: IO[bytes], message: tuple[Any, ...]) -> None:
    """Write one message and flush; the caller serializes writers (one lock per stream)."""
    payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(payload)) + payload)
    stream.flush()


def read_frame(stream: IO[bytes]) -> tuple[Any, ...]:
    """Read one message; ``EOFError`` when the other end has closed the pipe."""
    header = _read_exactly(stream, _HEADER.size)
    (size,) = _HEADER.unpack(header)
    message = pickle.loads(_read_exactly(stream, size))
    if not isinstance(message, tuple) or not message:
        raise EOFError(f"unexpected frame on the worker pipe: {type(message).__name__}")
    return message


def _read_exactly(stream: IO[bytes], size: int) -> bytes:
    chunks: list[bytes] = []
    remaining = size
    while remaining:
        chunk = stream.read(remaining)
        if not chunk:
            raise EOFError("the worker pipe was closed")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)
