"""`unifashion serve`: the HTTP service over one index and its model."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from unifashion.cli.options import check_index_model, check_tryon_model
from unifashion.cli.output import err
from unifashion.errors import ConfigError, UnifashionError


def serve(
    index: Annotated[Path, typer.Option(help="An index folder from `unifashion index build` (the quickstart writes OUT/index).")],
    model: Annotated[Path | None, typer.Option(help="The model that built the index (default: the one its manifest names).")] = None,
    host: Annotated[str, typer.Option(help="Address to listen on (127.0.0.1: this machine only).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
    max_steps: Annotated[int, typer.Option("--max-steps", min=1, help="Most denoising steps a generation request may ask for.")] = 50,
    generation_seconds: Annotated[float, typer.Option("--generation-seconds", min=1.0, help="A generation running longer is aborted (504).")] = 60.0,
    max_upload_mb: Annotated[float, typer.Option("--max-upload-mb", min=0.01, help="Largest accepted image upload.")] = 10.0,
    api_key: Annotated[str | None, typer.Option("--api-key", envvar="UNIFASHION_API_KEY", help="Require this key (header X-API-Key or Authorization: Bearer) for /api/* and /items/*. Prefer the environment variable: a flag shows in `ps`.")] = None,
    cors_origin: Annotated[list[str] | None, typer.Option("--cors-origin", help="Let pages from this origin (https://shop.example) call the API from a browser; repeatable. Default: none.")] = None,
    tryon_model: Annotated[Path | None, typer.Option("--tryon-model", help="An inpainting try-on model (`unifashion train --phase tryon`; the quickstart's OUT/tryon_model) for POST /api/tryon and the page's try-on panel. Default: none (try-on answers 503).")] = None,
    request_seconds: Annotated[float, typer.Option("--request-seconds", min=0.1, help="A connection whose request (headers and body) has not arrived this long after it began is closed (408 when the headers are missing).")] = 60.0,
) -> None:
    """Serve catalog search (text, image, composed), captions, generation, classification and (with
    --tryon-model) try-on over HTTP, with a web page at / and the API's docs at /docs. Changes to the
    index (`unifashion index add/remove/compact`) are picked up by the running service."""
    from dataclasses import replace

    from unifashion.search.index_folder import index_manifest
    from unifashion.service import ServiceAccess, ServiceLimits, serve as run_server
    from unifashion.service.ports import check_can_listen

    access = ServiceAccess(api_key=api_key, cors_origins=tuple(cors_origin or ()))  # checked before loading anything

    model_dir = check_index_model(model or Path(index_manifest(index)["model"]["source"]))
    if tryon_model is not None:
        check_tryon_model(tryon_model, "--tryon-model")
    try:
        check_can_listen(host, port)
    except ConfigError as e:
        raise UnifashionError(f"{e}; choose another --port") from None
    limits = replace(ServiceLimits(), max_steps=max_steps, generation_seconds=generation_seconds,
                     max_upload_bytes=int(max_upload_mb * 2**20), request_seconds=request_seconds)
    err.print(f"loading {model_dir}{f', {tryon_model}' if tryon_model else ''} and {index} ...")
    run_server(model_dir, index, host=host, port=port, limits=limits, access=access, tryon_dir=tryon_model)

