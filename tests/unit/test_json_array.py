"""Finding whole elements in a streamed JSON array, byte chunk by byte chunk."""

from __future__ import annotations

import json

from llmproxy._json_array import ArrayCut, before_error

ITEMS = [{"text": 'braces } ] { [ and "quotes" \\ ünï'}, {"n": [1, {"deep": "}"}]}, {"error": {"code": 500}}]
RAW = ("[" + ",\r\n".join(json.dumps(i, ensure_ascii=False) for i in ITEMS) + "]").encode()


def test_elements_are_found_whatever_the_chunks() -> None:
    for size in (1, 3, 7, len(RAW)):
        cut, ends, seen = ArrayCut(), [], 0
        for i in range(0, len(RAW), size):
            chunk = RAW[i : i + size]
            ends += [(seen + s, seen + e) for s, e in cut.feed(chunk)]
            seen += len(chunk)
        assert [json.loads(RAW[s:e]) for s, e in ends] == ITEMS, size


def test_before_error_keeps_the_elements_ahead_of_the_first_error() -> None:
    data, count = before_error(RAW)
    assert count == 2 and json.loads(data + b"]") == ITEMS[:2]
    assert before_error(b'[{"error": {"code": 503}}]') == (b"", 0)
    assert before_error(b'[{"a": 1}, nonsense, {"b": 2}]') == (b'[{"a": 1}', 1)  # garbage between elements stops it
