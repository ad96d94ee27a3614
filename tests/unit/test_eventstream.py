"""AWS event-stream frames: the reference's worked example, every header type, any chunking, corruption."""

from __future__ import annotations

import struct
import uuid
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmproxy import eventstream as es

# provider-accounts.md 2.6, checked there against botocore's parser.
EXAMPLE = bytes.fromhex(
    "0000007c0000005c3bddcf78"
    "0b3a6576656e742d74797065070016617373697374616e74526573706f6e73654576656e74"
    "0d3a636f6e74656e742d747970650700106170706c69636174696f6e2f6a736f6e"
    "0d3a6d6573736167652d74797065070005" + "6576656e74"
    "7b22636f6e74656e74223a224869227d"
    "b02babdc"
)
HEADERS = {":event-type": "assistantResponseEvent", ":content-type": "application/json", ":message-type": "event"}


def test_crc32_is_zlibs_ieee_polynomial_not_crc32c() -> None:
    assert zlib.crc32(b"123456789") == 0xCBF43926


def test_the_encoder_reproduces_the_reference_frame_byte_for_byte() -> None:
    assert es.encode(HEADERS, b'{"content":"Hi"}') == EXAMPLE


def test_the_decoder_reads_the_reference_frame() -> None:
    (msg,) = es.FrameDecoder().feed(EXAMPLE)
    assert msg.headers == HEADERS and msg.payload == b'{"content":"Hi"}'
    assert msg.header(":event-type") == "assistantResponseEvent" and msg.header(":nope") == ""


def test_every_header_value_type_decodes() -> None:
    ident = uuid.UUID("0123456789abcdef0123456789abcdef")
    frame = es.encode_typed([
        ("t", 0, b""), ("f", 1, b""), ("b", 2, struct.pack(">b", -5)), ("s", 3, struct.pack(">h", -300)),
        ("i", 4, struct.pack(">i", 70000)), ("l", 5, struct.pack(">q", -(2**40))),
        ("by", 6, struct.pack(">H", 3) + b"\x00\x01\x02"), ("str", 7, struct.pack(">H", 2) + "é".encode()),
        ("ts", 8, struct.pack(">q", 1700000000123)), ("u", 9, ident.bytes),
    ], b"x")  # fmt: skip
    (msg,) = es.FrameDecoder().feed(frame)
    assert msg.headers == {"t": True, "f": False, "b": -5, "s": -300, "i": 70000, "l": -(2**40),
                           "by": b"\x00\x01\x02", "str": "é", "ts": es.Timestamp(1700000000123), "u": ident}  # fmt: skip
    again = es.FrameDecoder().feed(es.encode(msg.headers, msg.payload))[0]
    assert again.headers == msg.headers  # integers come back as longs, with the same values


def test_an_unknown_header_type_is_refused_by_name() -> None:
    frame = es.encode_typed([("weird", 10, b"")])
    with pytest.raises(es.EventStreamError, match="'weird' has unknown value type 10"):
        es.FrameDecoder().feed(frame)


def test_a_header_running_past_its_section_is_refused() -> None:
    frame = es.encode_typed([("s", 7, struct.pack(">H", 200) + b"short")])
    with pytest.raises(es.EventStreamError, match="runs past the headers section"):
        es.FrameDecoder().feed(frame)


def test_a_bad_prelude_crc_is_named() -> None:
    bad = EXAMPLE[:8] + b"\x00\x00\x00\x00" + EXAMPLE[12:]
    with pytest.raises(es.EventStreamError, match="prelude CRC32"):
        es.FrameDecoder().feed(bad)


def test_a_bad_message_crc_is_named() -> None:
    bad = EXAMPLE[:-5] + bytes([EXAMPLE[-5] ^ 0xFF]) + EXAMPLE[-4:]
    with pytest.raises(es.EventStreamError, match="message CRC32"):
        es.FrameDecoder().feed(bad)


def test_impossible_lengths_with_a_valid_prelude_crc_are_refused() -> None:
    prelude = struct.pack(">II", 8, 0)
    with pytest.raises(es.EventStreamError, match="impossible lengths"):
        es.FrameDecoder().feed(prelude + struct.pack(">I", zlib.crc32(prelude)) + b"\x00" * 8)


def test_a_frame_cut_short_raises_at_close_naming_truncation() -> None:
    d = es.FrameDecoder()
    assert d.feed(EXAMPLE[:50]) == [] and d.pending
    with pytest.raises(es.EventStreamError, match="ended inside a frame"):
        d.close()


def test_an_empty_stream_closes_cleanly() -> None:
    d = es.FrameDecoder()
    assert d.feed(b"") == []
    d.close()


messages = st.lists(
    st.tuples(
        st.dictionaries(st.text("abcdefghij:-", min_size=1, max_size=12), st.text(max_size=40), max_size=4),
        st.binary(max_size=300),
    ),
    min_size=1,
    max_size=6,
)


@settings(max_examples=150, deadline=None)
@given(messages, st.lists(st.integers(min_value=1, max_value=97), min_size=1, max_size=50))
def test_any_chunking_yields_the_same_messages(msgs: list[tuple[dict[str, str], bytes]], cuts: list[int]) -> None:
    data = b"".join(es.encode(h, p) for h, p in msgs)
    d, got, pos, i = es.FrameDecoder(), [], 0, 0
    while pos < len(data):
        step = cuts[i % len(cuts)]
        got += d.feed(data[pos : pos + step])
        pos, i = pos + step, i + 1
    d.close()
    assert [(m.headers, m.payload) for m in got] == msgs


@settings(max_examples=150, deadline=None)
@given(messages, st.data())
def test_any_flipped_bit_is_caught_never_passed_on(
    msgs: list[tuple[dict[str, str], bytes]], data: st.DataObject
) -> None:
    raw = bytearray(b"".join(es.encode(h, p) for h, p in msgs))
    at = data.draw(st.integers(min_value=0, max_value=len(raw) - 1))
    raw[at] ^= 1 << data.draw(st.integers(min_value=0, max_value=7))
    d = es.FrameDecoder()
    with pytest.raises(es.EventStreamError):  # CRC32 catches every single-bit error
        d.feed(bytes(raw))
        d.close()


@settings(max_examples=100, deadline=None)
@given(messages, st.data())
def test_any_truncation_raises_a_codec_error(msgs: list[tuple[dict[str, str], bytes]], data: st.DataObject) -> None:
    frames = [es.encode(h, p) for h, p in msgs]
    raw = b"".join(frames)
    ends = {sum(len(f) for f in frames[: i + 1]) for i in range(len(frames))}
    cut = data.draw(st.integers(min_value=1, max_value=len(raw) - 1).filter(lambda c: c not in ends))
    d = es.FrameDecoder()
    with pytest.raises(es.EventStreamError):
        d.feed(raw[:cut])
        d.close()
