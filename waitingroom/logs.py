"""Logging: plain text for people (the default), or one JSON object per line for machines
(LOG_FORMAT=json); every line written while a request is handled carries its request id."""

from __future__ import annotations

import contextvars
import logging

from pythonjsonlogger.json import JsonFormatter

# The id of the request being handled, for every log line of it and its problem answer.
request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s%(request)s: %(message)s"


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        rid = request_id.get()
        record.request_id = rid
        record.request = f" [{rid}]" if rid else ""
        return True


def configure(level: str, fmt: str) -> None:
    """Set up the root logger: fmt is "text" or "json"."""
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
            rename_fields={"levelname": "level", "asctime": "time", "name": "logger"}))
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def describe(e: BaseException) -> str:
    """A failure in one line for a log: its class, its message and what caused it (redis-py's
    repr of an error is its category alone, such as `network:ConnectionError`)."""
    text = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
    cause = e.__cause__ or e.__context__
    if cause is not None and cause is not e:
        text += f" (from {type(cause).__name__}: {cause})" if str(cause) else \
            f" (from {type(cause).__name__})"
    return text
