"""What every codec shares: the traits the pipeline asks about, and the validation helpers
of the request decoders (every 400 names its field)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from ..errors import InvalidRequest, ProviderProtocolError
from ..model import ImagePart


@dataclass(frozen=True, slots=True)
class Traits:
    """How a dialect differs on the wire, for the code around the codecs.

    The gateway and the side endpoints ask these instead of comparing dialect names, so a
    new dialect says what it is in one place: its codec's ``TRAITS``.
    """

    #: The model name travels in the URL path, not the body (Gemini): ``decode_request``
    #: takes ``model=``, a passthrough body drops ``model``.
    model_in_path: bool = False
    #: The upstream fetches no image URLs: images are fetched and inlined before encoding.
    inline_images: bool = False
    #: Its streams always report usage, whatever the request asked (no ``include_usage``).
    stream_usage_always: bool = False
    #: A stream may be a JSON array instead of SSE (the client picks): the encoder takes ``sse=``.
    json_array_streams: bool = False
    #: Requests must carry ``max_tokens`` (Anthropic); a token count request gets a stand-in.
    requires_max_tokens: bool = False
    #: The upstream counts tokens itself: the count reply's field (``count_tokens_body`` builds the request).
    count_field: str = ""
    #: Embeddings: "passthrough" (OpenAI's body as is) or "translated" (``embeddings_body`` /
    #: ``embeddings_reply``); empty when the dialect has none.
    embeddings: str = ""


#: The traits of a dialect that declares none.
PLAIN = Traits()


def require_str(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise InvalidRequest(f"'{name}' is required and must be a non-empty string", param=name)
    return value


def require_list(body: dict[str, Any], name: str) -> list[Any]:
    value = body.get(name)
    if not isinstance(value, list):
        raise InvalidRequest(f"'{name}' is required and must be an array", param=name)
    return value


def optional_list(value: Any, name: str) -> list[Any]:
    """An array field that may be absent or null: ``[]`` then; anything else but an array is a 400."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidRequest(f"'{name}' must be an array", param=name)
    return value


def field_type(value: Any, kind: type | tuple[type, ...], name: str) -> Any:
    if isinstance(value, bool) or not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise InvalidRequest(f"'{name}' must be of type {names}", param=name)
    return value


def image_from_url(url: str, detail: str | None = None) -> ImagePart:
    """``data:`` URLs become inline images; anything else stays a URL."""
    if url.startswith("data:"):
        header, _, data = url.partition(",")
        media_type = header[5:].split(";")[0] or "image/png"
        return ImagePart(data=data, media_type=media_type, detail=detail)
    return ImagePart(url=url, detail=detail)


def effort_from_budget(budget: int | None) -> str | None:
    """A thinking budget in tokens -> the nearest OpenAI-style effort name."""
    if budget is None:
        return None
    if budget <= 0:
        return "none"
    if budget >= 4096:
        return "high"
    if budget >= 2048:
        return "medium"
    if budget >= 1024:
        return "low"
    return "minimal"


_F = TypeVar("_F", bound=Callable[..., Any])


def upstream_shape(fn: _F) -> _F:
    """For stream decoders' ``feed``/``close``: a chunk of a shape the decoder did not expect
    (a list where an object belongs, a null delta) is the upstream's protocol error, not ours."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (TypeError, AttributeError, KeyError, IndexError, ValueError, OverflowError) as exc:
            if isinstance(exc, ProviderProtocolError):
                raise
            raise ProviderProtocolError(
                f"upstream sent a stream chunk of an unexpected shape ({type(exc).__name__})"
            ) from None

    return wrapper  # type: ignore[return-value]
