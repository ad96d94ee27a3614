"""Log line shapes: ``logging.format: json`` and the request id that ties lines to a request.

The gateway sets ``request_id`` (a context variable) when it opens a request, so every
line logged while serving it — by the engine or the shell — can name the request without
passing the id around. ``RequestIdFilter`` copies it onto the record (``record.request_id``,
empty outside a request); ``JsonFormatter`` writes one JSON object per line. Neither imports
Django: the site's ``LOGGING`` names them by dotted path.
"""

from __future__ import annotations

import logging
import time
from contextvars import ContextVar

import orjson

#: The id of the request being served in this task ("" outside one).
request_id: ContextVar[str] = ContextVar("llmproxy_request_id", default="")

#: ``LogRecord`` attributes that are not caller-supplied ``extra`` fields.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "request_id"}


class RequestIdFilter(logging.Filter):
    """Give each record the current request's id, unless the caller passed one in ``extra``."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", ""):
            record.request_id = request_id.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id, ``extra`` fields, traceback."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = getattr(record, "request_id", "") or request_id.get()
        if rid:
            out["request_id"] = rid
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value if isinstance(value, (str, int, float, bool, type(None))) else str(value)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            out["exc"] = record.exc_text
        if record.stack_info:
            out["stack"] = record.stack_info
        return orjson.dumps(out).decode()
