"""Connections that do not send their request in time are closed.

uvicorn has no timeout for receiving a request: `timeout_keep_alive` covers only the idle time between
two requests of a kept-alive connection, and is cleared by every byte received, so a client that sends
part of its headers (or of its body) and stalls holds its socket for ever, and a few hundred such
clients hold the server's sockets and memory. `RequestDeadline` is uvicorn's h11 protocol with one more
timer: armed when a connection opens and when the first byte of each further request arrives,
disarmed when h11 has the whole request (headers and body). When it fires the connection is closed,
with a 408 answer when the headers had not arrived yet (nothing else has been said on it then), and
one log line. Responses, however long they take, are not timed by it.
"""
from __future__ import annotations

import asyncio
import logging

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol
from starlette.types import ASGIApp

logger = logging.getLogger(__name__)

_MESSAGE = b'{"detail": "request not received in time"}'
REQUEST_TIMEOUT = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
                   b"content-length: " + str(len(_MESSAGE)).encode() + b"\r\n\r\n" + _MESSAGE)
_RECEIVING = (h11.IDLE, h11.SEND_BODY)  # h11's states of a client whose request is not complete


class RequestDeadline(H11Protocol):
    """uvicorn's h11 protocol; a request not wholly received `request_seconds` after it began closes
    its connection (subclass with another value: `with_deadline`)."""

    request_seconds: float = 60.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._deadline: asyncio.TimerHandle | None = None
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self._deadline is None and self.conn.their_state is h11.IDLE:
            self._arm()  # the first bytes of another request on a kept-alive connection
        super().data_received(data)
        if self.conn.their_state not in _RECEIVING:
            self._disarm()  # the whole request is in (or the connection is done with)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.request_seconds, self._expired)

    def _disarm(self) -> None:
        if getattr(self, "_deadline", None) is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        headers_missing = self.conn.their_state is h11.IDLE and self.conn.our_state is h11.IDLE
        client = "%s:%d" % tuple(self.client[:2]) if self.client else "a client"
        logger.warning("%s: request not received within %g s (%s); connection closed", client, self.request_seconds,
                       "headers incomplete" if headers_missing else "body incomplete")
        if headers_missing:
            self.transport.write(REQUEST_TIMEOUT)
        self.transport.close()


def with_deadline(request_seconds: float) -> type[RequestDeadline]:
    """The protocol class closing connections whose request takes longer than `request_seconds`."""
    if not request_seconds > 0:
        raise ValueError(f"request_seconds must be positive, got {request_seconds}")
    return type("RequestDeadline", (RequestDeadline,), {"request_seconds": float(request_seconds)})


def server_config(app: ASGIApp, host: str, port: int, request_seconds: float, *,
                  log_level: str = "info") -> uvicorn.Config:
    """uvicorn's configuration for the service: the h11 protocol with the request deadline. The
    service's own log lines (unifashion.service.*: index reloads, unreadable item pictures, dropped
    connections) go to stderr beside uvicorn's, at the same level."""
    service_log = logging.getLogger("unifashion.service")
    if not service_log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s:     %(message)s"))
        service_log.addHandler(handler)
        service_log.setLevel(log_level.upper())
    return uvicorn.Config(app, host=host, port=port, log_level=log_level, http=with_deadline(request_seconds))
