"""AWS ``application/vnd.amazon.eventstream`` frames: an incremental decoder and an encoder.

A frame is ``total_length u32 | headers_length u32 | prelude_crc u32 | headers | payload |
message_crc u32`` (big-endian). ``prelude_crc`` is CRC32 (IEEE, zlib's) of the first 8
bytes, ``message_crc`` CRC32 of everything before it. A header is ``name_len u8 | name |
type u8 | value``, the value's encoding by type (0/1 booleans, 2-5 integers, 6 bytes,
7 string, 8 timestamp in ms, 9 uuid). Kiro (CodeWhisperer) streams its replies this way.

``FrameDecoder.feed`` takes bytes cut anywhere and returns the whole frames so far;
a bad CRC, an impossible length or an unknown header type raises ``EventStreamError``
naming the cause, and so does ``close()`` when a frame was left half-read.
"""

from __future__ import annotations

import struct
import uuid
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from .errors import ProviderProtocolError

__all__ = ["EventStreamError", "FrameDecoder", "HeaderValue", "Message", "Timestamp", "decode_frame", "encode"]

PRELUDE = 12
MIN_FRAME = 16
MAX_HEADERS = 128 * 1024
MAX_PAYLOAD = 16 * 1024 * 1024

HeaderValue = bool | int | bytes | str | uuid.UUID


class EventStreamError(ProviderProtocolError):
    """An event-stream frame that cannot be read (the message names why)."""

    code = "bad_upstream_response"


@dataclass(frozen=True, slots=True)
class Timestamp:
    """A header of type 8 (milliseconds since the epoch), kept apart from type 5 (long)."""

    millis: int


@dataclass(slots=True)
class Message:
    """One decoded frame: its headers (name -> value) and its payload bytes."""

    headers: dict[str, HeaderValue | Timestamp] = field(default_factory=dict)
    payload: bytes = b""

    def header(self, name: str) -> str:
        """A string header's value, or "" when absent or not a string."""
        value = self.headers.get(name)
        return value if isinstance(value, str) else ""


_INTS = {2: ">b", 3: ">h", 4: ">i", 5: ">q"}


def _headers(raw: bytes) -> dict[str, HeaderValue | Timestamp]:
    out: dict[str, HeaderValue | Timestamp] = {}
    pos, end = 0, len(raw)

    def take(n: int) -> bytes:
        nonlocal pos
        if pos + n > end:
            raise EventStreamError("event-stream header runs past the headers section")
        piece = raw[pos : pos + n]
        pos += n
        return piece

    while pos < end:
        name_len = take(1)[0]
        if name_len == 0:
            raise EventStreamError("event-stream header has an empty name")
        try:
            name = take(name_len).decode("ascii")
        except UnicodeDecodeError:
            raise EventStreamError("event-stream header name is not ASCII") from None
        kind = take(1)[0]
        value: HeaderValue | Timestamp
        if kind in (0, 1):
            value = kind == 0
        elif kind in _INTS:
            fmt = _INTS[kind]
            value = struct.unpack(fmt, take(struct.calcsize(fmt)))[0]
        elif kind in (6, 7):
            (size,) = struct.unpack(">H", take(2))
            data = take(size)
            if kind == 6:
                value = data
            else:
                try:
                    value = data.decode("utf-8")
                except UnicodeDecodeError:
                    raise EventStreamError(f"event-stream header {name!r} is not UTF-8") from None
        elif kind == 8:
            value = Timestamp(struct.unpack(">q", take(8))[0])
        elif kind == 9:
            value = uuid.UUID(bytes=take(16))
        else:
            raise EventStreamError(f"event-stream header {name!r} has unknown value type {kind}")
        out[name] = value
    return out


def decode_frame(frame: bytes) -> Message:
    """One whole frame (exactly ``total_length`` bytes) -> its message; CRCs checked."""
    total, headers_len, prelude_crc = struct.unpack(">III", frame[:PRELUDE])
    if zlib.crc32(frame[:8]) != prelude_crc:
        raise EventStreamError("event-stream frame failed its prelude CRC32 check")
    if zlib.crc32(frame[:-4]) != struct.unpack(">I", frame[-4:])[0]:
        raise EventStreamError("event-stream frame failed its message CRC32 check")
    headers = _headers(frame[PRELUDE : PRELUDE + headers_len])
    return Message(headers, bytes(frame[PRELUDE + headers_len : total - 4]))


class FrameDecoder:
    """Bytes cut at any boundary -> whole messages, each checked before it is returned."""

    def __init__(self) -> None:
        self._buf = bytearray()

    @property
    def pending(self) -> bool:
        """Whether part of a frame is waiting for more bytes."""
        return bool(self._buf)

    def feed(self, chunk: bytes) -> list[Message]:
        self._buf += chunk
        out: list[Message] = []
        while len(self._buf) >= PRELUDE:
            total, headers_len, prelude_crc = struct.unpack(">III", self._buf[:PRELUDE])
            if zlib.crc32(bytes(self._buf[:8])) != prelude_crc:
                raise EventStreamError("event-stream frame failed its prelude CRC32 check")
            if total < MIN_FRAME or headers_len > total - MIN_FRAME:
                raise EventStreamError(
                    f"event-stream frame has impossible lengths (total {total}, headers {headers_len})"
                )
            if headers_len > MAX_HEADERS or total - MIN_FRAME - headers_len > MAX_PAYLOAD:
                raise EventStreamError(f"event-stream frame is too large ({total} bytes)")
            if len(self._buf) < total:
                break
            frame = bytes(self._buf[:total])
            del self._buf[:total]
            out.append(decode_frame(frame))
        return out

    def close(self) -> None:
        """At EOF: a frame left half-read is a truncated stream."""
        if self._buf:
            size = len(self._buf)
            self._buf.clear()
            raise EventStreamError(f"event-stream ended inside a frame ({size} bytes of it received)")


def _encode_header(name: str, value: HeaderValue | Timestamp) -> bytes:
    raw = name.encode("ascii")
    if not 0 < len(raw) < 256:
        raise ValueError(f"header name {name!r} must be 1-255 ASCII bytes")
    head = bytes([len(raw)]) + raw
    if isinstance(value, bool):
        return head + bytes([0 if value else 1])
    if isinstance(value, Timestamp):
        return head + b"\x08" + struct.pack(">q", value.millis)
    if isinstance(value, int):
        return head + b"\x05" + struct.pack(">q", value)  # integers go out as longs
    if isinstance(value, uuid.UUID):
        return head + b"\x09" + value.bytes
    data, kind = (value, 6) if isinstance(value, bytes) else (value.encode("utf-8"), 7)
    if len(data) > 0xFFFF:
        raise ValueError(f"header {name!r} is longer than 65535 bytes")
    return head + bytes([kind]) + struct.pack(">H", len(data)) + data


def encode(headers: Mapping[str, HeaderValue | Timestamp], payload: bytes = b"") -> bytes:
    """One frame carrying ``headers`` (in order) and ``payload``, with both CRCs."""
    hdr = b"".join(_encode_header(k, v) for k, v in headers.items())
    total = PRELUDE + len(hdr) + len(payload) + 4
    prelude = struct.pack(">II", total, len(hdr))
    head = prelude + struct.pack(">I", zlib.crc32(prelude))
    body = head + hdr + payload
    return body + struct.pack(">I", zlib.crc32(body))


def encode_typed(headers: list[tuple[str, int, bytes]], payload: bytes = b"") -> bytes:
    """A frame from raw ``(name, type, encoded value)`` headers: for tests of every type."""
    hdr = b"".join(bytes([len(n)]) + n.encode("ascii") + bytes([t]) + v for n, t, v in headers)
    total = PRELUDE + len(hdr) + len(payload) + 4
    prelude = struct.pack(">II", total, len(hdr))
    body = prelude + struct.pack(">I", zlib.crc32(prelude)) + hdr + payload
    return body + struct.pack(">I", zlib.crc32(body))
