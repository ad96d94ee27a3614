"""Where a passthrough SSE chunk's last whole event ends (llmproxy._sse_cut)."""

from __future__ import annotations

import pytest

from llmproxy._sse_cut import event_end, whole_events


@pytest.mark.parametrize(
    ("start", "end"),
    [(b"data: {}\n\n", b"\n\n"), (b"event: x\ndata", b"\n\n"), (b"data: {}\r\n\r\n", b"\r\n\r\n"),
     (b"data: {}\r\r", b"\r\r"), (b"\ndata", b"\n\n"), (b"data: {}\r", None), (b"data: {\"a", None), (b"", None)],
)  # fmt: skip
def test_the_event_end_is_learnt_from_the_first_line_ending(start: bytes, end: bytes | None) -> None:
    """A lone trailing CR may be half of CRLF: no guess until the next byte."""
    assert event_end(start) == end


@pytest.mark.parametrize(
    ("data", "end", "whole"),
    [(b'data: {"a":1}\n\ndata: {"choi', b"\n\n", 15), (b'data: {"a":1}\n\n', b"\n\n", 15),
     (b'data: {"a":1}\n', b"\n\n", 0), (b"event: e\r\ndata: 1\r\n\r\ndata: 2\r\n\r", b"\r\n\r\n", 21),
     (b"data: 1\r\rdata: 2\r", b"\r\r", 9), (b"data: 1\n\ndata: 2\n\ndata", b"\n\n", 18)],
)  # fmt: skip
def test_whole_events_stop_at_the_last_blank_line(data: bytes, end: bytes, whole: int) -> None:
    assert whole_events(data, end) == whole
    assert data[:whole].endswith(end) or whole == 0
