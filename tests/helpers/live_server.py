"""A uvicorn server on a free 127.0.0.1 port in a background thread, for tests that need real sockets."""
from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import uvicorn


def running(config: uvicorn.Config) -> Iterator[int]:
    """Serve `config` until the generator is closed; yields the port once the server has started."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
