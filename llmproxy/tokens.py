"""Offline token counting for upstreams without a count endpoint.

tiktoken downloads its vocabularies at run time (impossible offline), so this uses
``bpe-openai``, which ships the o200k/cl100k files and gives tiktoken's ids. For
non-OpenAI models the o200k count is an estimate; without the package, len(text)/4.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from ._json import dumps_str
from .model import ImagePart, Request, Response, TextPart, ThinkingPart, ToolCallPart, ToolResultPart

PER_MESSAGE = 3
REPLY_PRIMING = 3
PER_IMAGE = 765  # a high-detail 512px tile set, OpenAI's usual estimate


@lru_cache(maxsize=1)
def _encoding() -> Any:
    try:
        import bpe_openai

        return bpe_openai.get_encoding("o200k_base")
    except Exception:  # the package is optional at run time
        return None


def count_text(text: str) -> int:
    if not text:
        return 0
    enc = _encoding()
    if enc is None:
        return max(1, len(text) // 4)
    return len(enc.encode_ordinary(text))


def count_request(req: Request) -> int:
    """Input tokens of a canonical request, with OpenAI's chat overheads."""
    total = REPLY_PRIMING
    for m in req.messages:
        total += PER_MESSAGE + (1 if m.name else 0)
        for p in m.parts:
            if isinstance(p, (TextPart, ThinkingPart)):
                total += count_text(p.text)
            elif isinstance(p, ToolCallPart):
                total += count_text(p.name) + count_text(p.arguments)
            elif isinstance(p, ToolResultPart):
                for c in p.content:
                    total += count_text(c.text) if isinstance(c, TextPart) else PER_IMAGE
            elif isinstance(p, ImagePart):
                total += PER_IMAGE
    if req.tools:
        total += count_text(dumps_str([{"name": t.name, "description": t.description, "parameters": t.parameters}
                                       for t in req.tools]))  # fmt: skip
    return total


def count_reply(resp: Response) -> int:
    """Output tokens of a canonical reply (text, thinking, tool calls), for an upstream that gave no count."""
    total = 0
    for p in resp.parts:
        if isinstance(p, (TextPart, ThinkingPart)):
            total += count_text(p.text)
        elif isinstance(p, ToolCallPart):
            total += count_text(p.name) + count_text(p.arguments)
    return total
