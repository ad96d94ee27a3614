"""Where the top-level elements of a streamed JSON array (``[{...},{...}]``) begin and end.

A passthrough relay of Gemini's JSON-array stream sends whole elements only: an upstream
error element must be replaced by the gateway's own (INTERFACE.md section 11), which is
impossible once its first bytes went out. The scan is over bytes: every structural
character of JSON is ASCII, so UTF-8 multi-byte sequences never look like one.
"""

from __future__ import annotations

from ._json import loads
from .sse import SSEParser

_QUOTE, _BACKSLASH, _OPEN, _CLOSE = 0x22, 0x5C, b"{[", b"}]"
_BETWEEN = frozenset(b"[],\r\n\t ")


class ArrayCut:
    """An incremental scanner of one streamed JSON array of objects, chunk by chunk."""

    __slots__ = ("_depth", "_escaped", "_in_str", "_start", "broken")

    def __init__(self) -> None:
        self._depth = 0
        self._in_str = False
        self._escaped = False
        #: Where the element being read began, relative to the next chunk (negative: earlier).
        self._start = 0
        #: Something other than an object or a separator stood between elements: no more spans.
        self.broken = False

    def feed(self, data: bytes) -> list[tuple[int, int]]:
        """``(start, end)`` of each element that ends in ``data``, as offsets into ``data``
        (``start`` is negative for an element that began in an earlier chunk)."""
        spans: list[tuple[int, int]] = []
        if self.broken:
            return spans
        for i, ch in enumerate(data):
            if self._depth == 0:
                if ch == 0x7B:  # "{"
                    self._depth, self._start = 1, i
                elif ch not in _BETWEEN:
                    self.broken = True
                    return spans
                continue
            if self._in_str:
                if self._escaped:
                    self._escaped = False
                elif ch == _BACKSLASH:
                    self._escaped = True
                elif ch == _QUOTE:
                    self._in_str = False
            elif ch == _QUOTE:
                self._in_str = True
            elif ch in _OPEN:
                self._depth += 1
            elif ch in _CLOSE:
                self._depth -= 1
                if self._depth == 0:
                    spans.append((self._start, i + 1))
        self._start -= len(data)
        return spans


def before_error(data: bytes) -> tuple[bytes, int]:
    """The bytes of ``data`` (which starts between elements) up to the end of the last
    element before the first error element, and how many elements that is.

    An error element is an object with an ``error`` member, one that is not JSON, or
    anything that is not an object where an element belongs.
    """
    kept, count = 0, 0
    for start, end in ArrayCut().feed(data):
        if _is_error(data[start:end]):
            break
        kept, count = end, count + 1
    return data[:kept], count


def _is_error(element: bytes) -> bool:
    try:
        obj = loads(element)
    except ValueError:
        return True
    return not isinstance(obj, dict) or bool(obj.get("error"))


class ArrayRelay:
    """The client's JSON array (``:streamGenerateContent`` without ``alt=sse``) from a
    passthrough upstream stream, in whole elements, whichever form the upstream answers in.

    The gateway asks Google for ``alt=sse`` frames; each frame's data is one element, so the
    frames are put into an array as they come (the JSON untouched). An upstream that
    answers with the array itself is relayed as it is, element by element.
    """

    __slots__ = ("_cut", "_form", "_frames", "_held", "elements")

    def __init__(self) -> None:
        self._form: str | None = None  # "json" | "sse", from the first byte that is not blank
        self._cut = ArrayCut()
        self._frames = SSEParser()
        self._held = b""
        #: How many elements went out: the gateway's error element follows a comma after one.
        self.elements = 0

    def feed(self, chunk: bytes) -> bytes:
        """The array bytes of the elements ``chunk`` completes (an unfinished one is held)."""
        data = self._decide(chunk)
        if self._form == "sse":
            return self._join([ev.data for ev in self._frames.feed(data)])
        if self._form is None:
            return b""
        spans = self._cut.feed(data)
        if not spans:
            self._held += data
            return b""
        cut = spans[-1][1]
        out, self._held = self._held + data[:cut], data[cut:]
        self.elements += len(spans)
        return out

    def until_error(self, chunk: bytes) -> bytes:
        """The array bytes of the elements before the first error element in what is held
        and ``chunk``; nothing more goes out after it."""
        data, self._held = self._decide(chunk), b""
        if self._form == "sse":
            texts: list[str] = []
            for ev in self._frames.feed(data):
                if _is_error(ev.data.encode()) and ev.data.strip():
                    break
                texts.append(ev.data)
            return self._join(texts)
        out, count = before_error(data)
        self.elements += count
        return out

    def close(self) -> bytes:
        """The end of the array: what the upstream's array still held, or the frames' last and ``]``."""
        if self._form == "sse":
            out = self._join([ev.data for ev in self._frames.close()])
            return out + (b"]" if self.elements else b"[]")
        out, self._held = self._held, b""
        return out

    def _decide(self, chunk: bytes) -> bytes:
        """``chunk`` with what was held before the upstream's form showed; the form once it does."""
        if self._form is not None:
            return chunk
        data, self._held = self._held + chunk, b""
        start = data.lstrip()
        if not start:
            self._held = data
            return b""
        self._form = "json" if start[:1] in (b"[", b"{") else "sse"
        return data

    def _join(self, texts: list[str]) -> bytes:
        out: list[bytes] = []
        for text in texts:
            if not text.strip() or text.strip() == "[DONE]":
                continue
            out.append((b"," if self.elements else b"[") + text.encode())
            self.elements += 1
        return b"".join(out)
