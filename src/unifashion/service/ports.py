"""Whether the service can listen on an address, checked before anything slow loads."""
from __future__ import annotations

import socket

from unifashion.errors import ConfigError


def check_can_listen(host: str, port: int) -> None:
    """ConfigError naming host:port when it cannot be bound now (a port in use, an address not this
    machine's): one clear line up front rather than uvicorn's log after the model has loaded."""
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError as e:
            raise ConfigError(f"cannot listen on {host}:{port} ({e.strerror})") from None
