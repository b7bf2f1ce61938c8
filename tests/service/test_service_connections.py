"""Clients that open a connection, send part of a request and stall: the server (uvicorn with the
service's protocol, on real sockets) closes them after the request timeout, and answers a normal
client meanwhile."""
import socket
import time
from dataclasses import replace

import pytest

from live_server import running
from unifashion.service.app import create_app
from unifashion.service.connections import server_config, with_deadline
from unifashion.service.limits import ServiceLimits

TIMEOUT = 1.0


@pytest.fixture(scope="module")
def port(service_search):
    app = create_app(service_search, replace(ServiceLimits(), request_seconds=TIMEOUT))
    yield from running(server_config(app, "127.0.0.1", 0, TIMEOUT, log_level="warning"))


def get_health(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
        c.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        return b"".join(iter(lambda: c.recv(65536), b""))


def read_response(sock: socket.socket) -> bytes:
    """One whole response of a kept-alive connection (headers, then Content-Length bytes of body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
    while len(body) < length:
        body += sock.recv(65536)
    return head


def closed_after(sock: socket.socket) -> tuple[float, bytes]:
    """Seconds until the server closed `sock`, and what it said before."""
    start, said = time.monotonic(), b""
    sock.settimeout(10)
    while chunk := sock.recv(65536):
        said += chunk
    return time.monotonic() - start, said


def test_stalled_clients_are_closed_and_others_answered(port):
    stalled = []
    for i in range(100):  # half stall in their headers, half in their body
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        if i % 2:
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        else:
            s.sendall(b"POST /api/search/text HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: 100\r\n\r\n{\"text\": ")
        stalled.append(s)
    opened = time.monotonic()
    for _ in range(3):  # meanwhile a normal client is answered at once
        assert get_health(port).startswith(b"HTTP/1.1 200 ")
    assert time.monotonic() - opened < TIMEOUT
    for i, s in enumerate(stalled):
        _, said = closed_after(s)
        if i % 2:
            assert said.startswith(b"HTTP/1.1 408 ") and b"request not received in time" in said
        else:
            assert said == b""  # the route was waiting for the body: just closed
        s.close()
    waited = time.monotonic() - opened
    assert TIMEOUT * 0.9 < waited < TIMEOUT + 4, waited
    assert get_health(port).startswith(b"HTTP/1.1 200 ")


def test_a_kept_alive_connection_has_a_deadline_per_request(port):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
        for _ in range(2):  # two whole requests, well apart: both answered
            c.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_response(c).startswith(b"HTTP/1.1 200 ")
            time.sleep(TIMEOUT * 0.6)
        c.sendall(b"GET /health HTTP/1.1\r\n")  # then a third that stalls
        waited, said = closed_after(c)
        assert said.startswith(b"HTTP/1.1 408 ") and waited < TIMEOUT + 2


def test_the_deadline_must_be_positive():
    with pytest.raises(ValueError, match="positive"):
        with_deadline(0)
    assert with_deadline(2.5).request_seconds == 2.5
