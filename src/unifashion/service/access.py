"""Who may use the service: the optional API key, CORS, and the warning for an exposed host.

By default the service listens on 127.0.0.1 only, asks for no key and sends no CORS headers (so
pages from other origins cannot read its answers). With an API key, /api/* and /items/* (and any
unknown path) need `X-API-Key: KEY` or `Authorization: Bearer KEY`, else 401; the web page, its static
files, /docs and /openapi.json stay open, and /health without the key answers only {"status": "ok"}
(the item count, model and limits need the key). With CORS origins, pages from exactly those origins
may call the API (preflight included; the key is still needed).
"""
from __future__ import annotations

import hmac
import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass

from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from unifashion.errors import ConfigError

OPEN_PATHS = frozenset({"/", "/health", "/docs", "/openapi.json"})  # answered without the API key
OPEN_PREFIXES = ("/static/", "/docs-assets/")  # the page's files and the docs page's
ORIGIN = re.compile(r"https?://[^\s/?#]+")  # scheme://host[:port], no path: what a browser sends as Origin


@dataclass(frozen=True)
class ServiceAccess:
    """Who may use the service. The default: no key, no CORS (meant for 127.0.0.1)."""
    api_key: str | None = None  # when set, /api/* and /items/* need `X-API-Key: KEY` or `Authorization: Bearer KEY`
    cors_origins: tuple[str, ...] = ()  # origins (https://shop.example:8443) whose pages may call the API; "*": any

    def __post_init__(self) -> None:
        key = self.api_key
        if key is not None and not (key and key.isascii() and key.isprintable() and " " not in key):
            raise ConfigError("the API key must be non-empty printable ASCII without spaces")
        for origin in self.cors_origins:
            if origin != "*" and not ORIGIN.fullmatch(origin):
                raise ConfigError(f"CORS origin {origin!r} is not scheme://host[:port] (e.g. https://shop.example)")

    def allows(self, headers: Sequence[tuple[bytes, bytes]]) -> bool:
        """True when no key is set, or the raw ASGI headers carry it (compared in constant time)."""
        if self.api_key is None:
            return True
        key = self.api_key.encode("ascii")
        for name, value in headers:
            if name == b"x-api-key" and hmac.compare_digest(value.strip(), key):
                return True
            if name == b"authorization":
                scheme, _, token = value.strip().partition(b" ")
                if scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), key):
                    return True
        return False


def exposure_warning(host: str, access: ServiceAccess) -> str | None:
    """One line when `host` is reachable from other machines and no API key is set, else None."""
    if access.api_key is not None or host == "localhost":
        return None
    try:
        if ipaddress.ip_address(host).is_loopback:
            return None
    except ValueError:
        pass  # a host name other than localhost: may be reachable from elsewhere
    return (f"warning: listening on {host} without an API key: anyone who can reach this port can use the "
            f"service (set UNIFASHION_API_KEY)")


class KeyCheck:
    """Answers 401 to requests without the API key, except for the open paths (the page, /health, docs)."""

    def __init__(self, app: ASGIApp, access: ServiceAccess):
        self.app = app
        self.access = access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _is_open(scope["path"]) or self.access.allows(scope["headers"]):
            await self.app(scope, receive, send)
            return
        await JSONResponse({"detail": "this needs the service's API key: send the header X-API-Key: KEY "
                                      "(or Authorization: Bearer KEY)"},
                           status_code=401, headers={"WWW-Authenticate": "Bearer"})(scope, receive, send)


def _is_open(path: str) -> bool:
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


class Cors(CORSMiddleware):
    """Starlette's CORS, with a refused preflight answered in our error format (JSON, one line)."""

    def preflight_response(self, request_headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code != 400:
            return response
        detail = bytes(response.body).decode("latin-1")  # "Disallowed CORS origin, headers"
        return JSONResponse({"detail": f"CORS preflight refused: {detail}"}, status_code=400,
                            headers={"Vary": "Origin"})


def add_access_control(app, access: ServiceAccess) -> None:
    """The key check and CORS around `app`'s routes, CORS outermost (so that preflights and 401s carry
    the CORS headers a browser needs to read them)."""
    if access.api_key is not None:
        app.add_middleware(KeyCheck, access=access)
    if access.cors_origins:
        app.add_middleware(Cors, allow_origins=list(access.cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=["Content-Type", "X-API-Key", "Authorization"], max_age=600)
