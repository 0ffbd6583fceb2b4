"""A deadline for a request's head, which uvicorn does not have.

uvicorn closes a kept-alive connection that stays idle (timeout_keep_alive), but a client that
connects and sends nothing, or sends its headers a byte at a time, holds the connection for
ever; a few hundred of them exhaust the server's sockets. This protocol gives every request's
head (request line and headers) a deadline from its first byte, or from the connection's start,
and answers 408 and closes when it passes. The body has its own deadline in the app
(request_body.strict_json_bodies), where a 408 can be answered in Litestar's shape.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_TIMED_OUT = b"the request head did not arrive in time\n"
_REQUEST_TIMEOUT = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\nconnection: close\r\n"
    b"content-length: %d\r\n\r\n%s" % (len(_TIMED_OUT), _TIMED_OUT)
)


class RequestHeadDeadline(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline on each request head."""

    head_seconds = 15.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._head_deadline: asyncio.TimerHandle | None = None
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._head_deadline is None:  # the next request on a kept-alive connection
            self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._head_deadline = self.loop.call_later(self.head_seconds, self._head_timed_out)

    def _disarm(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_timed_out(self) -> None:
        self._head_deadline = None
        if self.transport.is_closing():
            return
        if self.cycle is None or self.cycle.response_complete:  # never inside another response
            self.transport.write(_REQUEST_TIMEOUT)
        self.transport.close()


def with_head_deadline(seconds: float) -> type[RequestHeadDeadline]:
    """The protocol class to give uvicorn (`http=`), with this deadline."""
    return type("RequestHeadDeadline", (RequestHeadDeadline,), {"head_seconds": seconds})
