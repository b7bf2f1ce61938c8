"""Every error the service answers is JSON {"detail": "one line"}: 422 for a request that does not fit
the schema, 400 for the library's own refusals (UnifashionError), 500 without a traceback for the rest
(logged with it). HTTPExceptions raised by the checks keep their own status and line. No answer names a
file of the server: a path that exists here is replaced in a refusal's line (the whole line is logged)."""
from __future__ import annotations

import logging
import re
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from unifashion.errors import UnifashionError

logger = logging.getLogger(__name__)


def add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": one_line(exc)}, status_code=422)

    @app.exception_handler(UnifashionError)
    async def _refused(request: Request, exc: UnifashionError) -> JSONResponse:
        line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        shown = without_server_paths(line)
        if shown != line:
            logger.warning("%s %s refused: %s", request.method, request.url.path, line)
        return JSONResponse({"detail": shown}, status_code=400)

    @app.exception_handler(Exception)
    async def _failed(request: Request, exc: Exception) -> JSONResponse:
        logger.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return JSONResponse({"detail": "internal error (the server's log has the details)"}, status_code=500)


def one_line(exc: RequestValidationError) -> str:
    """The first validation error as `field: message` (FastAPI's default is a list of objects)."""
    errors = exc.errors()
    if not errors:
        return "invalid request"
    first = errors[0]
    where = ".".join(str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path", "form"))
    message = str(first.get("msg", "invalid value"))
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {message}{more}" if where else f"{message}{more}"


_ABSOLUTE = re.compile(r"(?<![\w./:~-])/[^\s'\"/:,;()]+(?:/[^\s'\"/:,;()]*)+")  # /a/b..., not inside a word or URL


def without_server_paths(line: str) -> str:
    """`line` with every absolute path that lies on this machine (its top folder, /tmp, /home, ..., exists
    here: the file itself may be gone) replaced by "(a file on the server)"."""
    def hide(match: re.Match) -> str:
        path = Path(match.group(0))
        try:
            here = len(path.parts) > 2 and Path(path.anchor, path.parts[1]).is_dir()
        except (OSError, ValueError):
            here = False
        return "(a file on the server)" if here else match.group(0)
    return _ABSOLUTE.sub(hide, line)
