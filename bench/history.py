"""Per-request translation cost of a 50-message history with tools (issue #3's aim: <= 1 ms).

Run: .venv/bin/python -m bench.history. In-process, no sockets: decode the OpenAI Chat
body, encode it for each other dialect, best of several repeats.
"""

from __future__ import annotations

import json
import time
from typing import Any

from llmproxy.formats import anthropic, gemini, openai_chat, openai_responses


def history(turns: int = 50) -> dict[str, Any]:
    messages: list[dict[str, Any]] = [{"role": "system", "content": "You are a careful assistant. " * 10}]
    i = 0
    while len(messages) < turns:
        i += 1
        messages.append({"role": "user", "content": f"Question {i}: what is the weather in city {i}? " * 3})
        messages.append({"role": "assistant", "content": None, "tool_calls": [
            {"id": f"call_{i}", "type": "function",
             "function": {"name": "get_weather", "arguments": json.dumps({"city": f"c{i}", "unit": "C"})}}]})  # fmt: skip
        messages.append({"role": "tool", "tool_call_id": f"call_{i}", "content": json.dumps({"temp": 20 + i})})
        messages.append({"role": "assistant", "content": f"It is {20 + i} degrees in city {i}. " * 4})
    tool = {"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"},
                           "unit": {"type": "string", "enum": ["C", "F"]}}, "required": ["city"]}}}  # fmt: skip
    return {"model": "m", "messages": messages[:turns], "tools": [tool] * 5, "max_completion_tokens": 1024}


def best(fn: Any, repeat: int = 7, number: int = 100) -> float:
    out = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        for _ in range(number):
            fn()
        out = min(out, (time.perf_counter() - t) / number)
    return out


def main() -> None:
    body = history()
    print(f"history: {len(body['messages'])} messages, {len(json.dumps(body))} bytes")
    decode = best(lambda: openai_chat.decode_request(body))
    print(f"openai_chat decode: {decode * 1e6:8.1f} µs")
    req = openai_chat.decode_request(body)
    for name, codec in (("anthropic", anthropic), ("gemini", gemini), ("openai_responses", openai_responses)):
        enc = best(lambda c=codec: c.encode_request(req))  # type: ignore[misc]
        print(f"-> {name:17s} encode: {enc * 1e6:8.1f} µs   decode+encode: {(decode + enc) * 1e6:8.1f} µs")


if __name__ == "__main__":
    main()
