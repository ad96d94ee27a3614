from llmproxy.model import StreamEnd, TextDelta, ThinkingDelta, ThinkingPart
from llmproxy.stream import collect


def test_collect_keeps_consecutive_signed_thinking_blocks_apart() -> None:
    resp = collect([
        ThinkingDelta("first"), ThinkingDelta(signature="sig1", source="anthropic"),
        ThinkingDelta("second"), ThinkingDelta(signature="sig2", source="anthropic"),
        TextDelta("answer"), StreamEnd(),
    ])  # fmt: skip
    blocks = [p for p in resp.parts if isinstance(p, ThinkingPart)]
    assert [(b.text, b.signature) for b in blocks] == [("first", "sig1"), ("second", "sig2")]
    assert resp.text() == "answer"
