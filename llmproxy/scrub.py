"""Take configured secrets out of text before it reaches a client or a log.

Upstreams quote the key they were sent ("Incorrect API key provided: sk-...abcd"), and
exceptions carry URLs and headers; a secret, or a fragment of one long enough to help
guess it, must not travel on from there. A ``Scrubber`` knows every secret of one
snapshot (provider keys, tokens, secret-looking headers and options) and replaces any
run of text that is a fragment of 8 or more characters of one of them, plus anything
shaped like llmproxy's own client keys (which exist only as hashes once issued).

It is built once per snapshot: all 8-character windows of all secrets go into one set,
all 4-character ones into another. A fragment of 8 characters always contains the
4-character window that starts at some multiple of 5 of the text, so the quick check
looks up only every fifth 4-character window of a text (a fifth of the work of a
rolling scan); only a text that hits is scanned window by window to find the runs to
replace. Secrets shorter than 8 characters are not scrubbed: they cannot be told apart
from ordinary words, and no real key is that short.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

#: What a scrubbed run becomes.
REDACTED = "[redacted]"
WINDOW = 8
_GRAM, _STRIDE = 4, 5  # WINDOW >= _GRAM + _STRIDE - 1: every 8-fragment holds a sampled 4-gram
#: llmproxy's client keys (``sk-llmp-`` + 43 URL-safe characters): scrubbed by shape.
CLIENT_KEY = re.compile(r"sk-llmp-[A-Za-z0-9_\-]{4,}")
_SENSITIVE_WORDS = ("authorization", "key", "token", "secret", "password", "cookie", "credential")
_SCHEMES = ("bearer ", "basic ", "token ")


def is_sensitive(name: str) -> bool:
    """A header, option or extra field whose value is a secret, judged by its name."""
    lowered = name.lower()
    return any(word in lowered for word in _SENSITIVE_WORDS)


def sensitive_values(data: Mapping[str, Any]) -> Iterator[str]:
    """The string values under secret-looking names, at any depth (``Authorization: Bearer x`` gives x too)."""
    for name, value in data.items():
        if isinstance(value, Mapping):
            yield from sensitive_values(value)
        elif isinstance(value, str) and is_sensitive(str(name)):
            yield value
            lowered = value.lower()
            for scheme in _SCHEMES:
                if lowered.startswith(scheme):
                    yield value[len(scheme) :].strip()


class Scrubber:
    """Replaces secrets and their 8+ character fragments; immutable once built."""

    __slots__ = ("_grams", "_windows")

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        windows: set[str] = set()
        grams: set[str] = set()
        for secret in secrets:
            s = (secret or "").strip()
            if len(s) >= WINDOW:
                windows.update(s[i : i + WINDOW] for i in range(len(s) - WINDOW + 1))
                grams.update(s[i : i + _GRAM] for i in range(len(s) - _GRAM + 1))
        self._windows = frozenset(windows)
        self._grams = frozenset(grams)

    def __bool__(self) -> bool:
        return bool(self._windows)

    def scrub(self, text: str) -> str:
        if "sk-llmp-" in text:
            text = CLIENT_KEY.sub("sk-llmp-" + REDACTED, text)
        n = len(text) - WINDOW + 1
        if n <= 0 or not self._windows:
            return text
        if self._grams.isdisjoint([text[i : i + _GRAM] for i in range(0, len(text) - _GRAM + 1, _STRIDE)]):
            return text
        return self._replace(text, n)

    def _replace(self, text: str, n: int) -> str:
        runs: list[list[int]] = []  # [start, end) of each run of hit windows, merged when they touch
        for i in range(n):
            if text[i : i + WINDOW] in self._windows:
                if runs and i <= runs[-1][1]:
                    runs[-1][1] = i + WINDOW
                else:
                    runs.append([i, i + WINDOW])
        out: list[str] = []
        kept = 0
        for start, end in runs:
            out += (text[kept:start], REDACTED)
            kept = end
        out.append(text[kept:])
        return "".join(out)

    def scrub_value(self, value: Any) -> Any:
        """Every string inside a JSON-like value scrubbed (keys included); the rest as is."""
        if isinstance(value, str):
            return self.scrub(value)
        if isinstance(value, Mapping):
            return {self.scrub(str(k)): self.scrub_value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.scrub_value(v) for v in value]
        return value


EMPTY = Scrubber()
_active: list[Scrubber] = [EMPTY]


def set_active(scrubber: Scrubber) -> None:
    """The scrubber that ``SecretFilter`` applies (one per process, like logging itself)."""
    _active[0] = scrubber


def active() -> Scrubber:
    return _active[0]


class SecretFilter(logging.Filter):
    """A logging filter (for handlers) that scrubs each record's message, exception and stack."""

    def filter(self, record: logging.LogRecord) -> bool:
        scrubber = _active[0]
        message = scrubber.scrub(record.getMessage())
        record.msg, record.args = message, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrubber.scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = scrubber.scrub(record.stack_info)
        return True


def guard_handlers() -> int:
    """Give every handler of every logger (root included) a ``SecretFilter`` it lacks.

    For handlers the site's ``LOGGING`` did not create: a server's, a worker's, a library's.
    Returns how many were added.
    """
    loggers: list[logging.Logger] = [logging.getLogger()]
    loggers += [lg for lg in list(logging.Logger.manager.loggerDict.values()) if isinstance(lg, logging.Logger)]
    added = 0
    for lg in loggers:
        for handler in list(lg.handlers):
            if not any(isinstance(f, SecretFilter) for f in handler.filters):
                handler.addFilter(SecretFilter())
                added += 1
    return added
