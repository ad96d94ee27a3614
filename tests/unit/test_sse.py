from llmproxy.sse import SSEParser, frame


def test_sse_parser_handles_split_frames_and_crlf() -> None:
    p = SSEParser()
    data = b'event: a\r\ndata: {"x":1}\r\n\r\ndata: two\n\n: comment\n\ndata: tail'
    events = []
    for i in range(len(data)):
        events += p.feed(data[i : i + 1])
    events += p.close()
    assert [(e.event, e.data) for e in events] == [("a", '{"x":1}'), (None, "two"), (None, "tail")]


def test_sse_frame_writes_event_lines() -> None:
    assert frame(b"{}", "ping") == b"event: ping\ndata: {}\n\n"
    assert frame(b"{}") == b"data: {}\n\n"
