"""The HTTP server of a web process: even a request too malformed to reach the application is
answered with a problem+json, and logged as one line, not a traceback."""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest
from aiohttp.web_server import Server

from .headers import HEADERS
from .problems import problem

log = logging.getLogger(__name__)


class ProblemRequestHandler(RequestHandler):
    def handle_error(self, request: BaseRequest, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        if request.writer.output_size > 0:
            # Part of an answer is out already: the connection cannot carry another one.
            raise ConnectionError("the answer had begun when the request failed")
        if status >= 500:
            log.error("request from %s failed", request.remote, exc_info=exc)
            response = problem(status, "internal_error", "Something went wrong on our side",
                               "The request could not be handled")
        else:
            log.warning("malformed request from %s: %s", request.remote,
                        str(exc or message).strip().splitlines()[0][:200])
            response = problem(status, "bad_request", "Malformed HTTP request",
                               "The request is not valid HTTP/1.1")
        response.headers.update(HEADERS)
        response.force_close()
        return response


class _ProblemServer(Server):
    def __call__(self) -> RequestHandler:
        return ProblemRequestHandler(self, loop=self._loop, **self._kwargs)


class ProblemAppRunner(web.AppRunner):
    """An AppRunner whose connections answer malformed requests with problems."""

    async def _make_server(self) -> Any:
        server = await super()._make_server()
        server.__class__ = _ProblemServer
        return server
