"""Where the last whole event of a passthrough SSE chunk ends.

A passthrough relay forwards the upstream's bytes, but only whole events: when the
upstream cuts the connection mid-event, the part already sent would run into the
gateway's own error frame and the client would read a broken event (INTERFACE.md
section 11). An event ends with a blank line; which bytes make one ("\\n\\n", "\\r\\n\\r\\n"
or "\\r\\r", per the SSE spec) is learnt once from the stream's first line ending, so each
chunk costs a single ``rfind`` (this is the per-chunk hot path: no per-byte loop, no parse).
"""

from __future__ import annotations

_CR = 0x0D


def event_end(data: bytes) -> bytes | None:
    """The blank line that ends an event in the stream ``data`` begins, or None while no
    line ending is certain yet (a trailing ``\\r`` may be the first half of ``\\r\\n``)."""
    lf = data.find(b"\n")
    if lf >= 0:
        return b"\r\n\r\n" if lf and data[lf - 1] == _CR else b"\n\n"
    cr = data.find(b"\r")
    return b"\r\r" if 0 <= cr < len(data) - 1 else None


def whole_events(data: bytes, end: bytes) -> int:
    """How many leading bytes of ``data`` are whole events (0 when none has ended yet)."""
    at = data.rfind(end)
    return at + len(end) if at >= 0 else 0
