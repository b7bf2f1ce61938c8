"""`unifashion search`: one query against a catalog index."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from unifashion.cli.options import check_index_model, check_text, load_model
from unifashion.cli.output import err, print_json
from unifashion.errors import UnifashionError


def search(
    index: Annotated[Path, typer.Option(help="An index folder from `unifashion index build`.")],
    text: Annotated[str | None, typer.Option(help="Find items by words.")] = None,
    image: Annotated[Path | None, typer.Option(help="Find items like this photo (with --modify: composed search).")] = None,
    item: Annotated[str | None, typer.Option(help="Start a composed search from this catalog item (needs --modify).")] = None,
    modify: Annotated[str | None, typer.Option(help="\"this one, but ...\": the modification text of a composed search.")] = None,
    k: Annotated[int, typer.Option(min=1, max=1000, help="Results to return.")] = 10,
    category: Annotated[list[str] | None, typer.Option(help="Only these categories (repeatable; the category column, e.g. dresses, not the subcategory).")] = None,
    to_text: Annotated[bool, typer.Option("--to-text", help="With --image: rank items by how well their gallery caption describes the photo.")] = False,
    rerank: Annotated[bool, typer.Option("--rerank/--no-rerank", help="Composed search: re-rank with the gallery captions.")] = True,
    model: Annotated[Path | None, typer.Option(help="The model that built the index (default: the one its manifest names).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the hits as JSON.")] = False,
) -> None:
    """Search a catalog index by text, by image, or by an image (or item) plus a modification text."""
    from dataclasses import asdict

    from unifashion.data.samples import ImageRef
    from unifashion.search.index_folder import open_index
    from unifashion.search.engine import CatalogSearch

    given = [name for name, v in (("--text", text), ("--image", image), ("--item", item)) if v is not None]
    if len(given) != 1:
        raise UnifashionError("give exactly one query: --text, --image or --item")
    if item is not None and modify is None:
        raise UnifashionError("--item needs --modify (the change to make to that item)")
    if modify is not None and text is not None:
        raise UnifashionError("--modify goes with --image or --item, not --text")
    if to_text and (image is None or modify is not None):
        raise UnifashionError("--to-text goes with --image alone")
    text = check_text(text, "--text") if text is not None else None
    modify = check_text(modify, "--modify") if modify is not None else None
    photo = ImageRef(image).load_rgb() if image is not None else None  # a bad photo fails before the model loads
    idx = open_index(index)
    model_dir = check_index_model(model or Path(idx.manifest["model"]["source"]))
    engine = CatalogSearch(load_model(model_dir, json_on_stdout=as_json), idx)
    start = time.perf_counter()
    if text is not None:
        kind, hits = "text", engine.text([text], k, category)[0]
    elif item is not None:
        kind, hits = "composed", engine.composed_from_item(item, modify, k, rerank=rerank, categories=category)
    else:
        if modify is not None:
            kind, hits = "composed", engine.composed([photo], [modify], k, rerank=rerank, categories=category)[0]
        elif to_text:
            kind, hits = "image-to-text", engine.image_to_text([photo], k, category)[0]
        else:
            kind, hits = "image", engine.image([photo], k, category)[0]
    took = round(1000 * (time.perf_counter() - start), 1)
    if as_json:
        print_json({"kind": kind, "took_ms": took, "hits": [asdict(h) for h in hits]})
        return
    table = Table("#", "item", "score", "category", "subcategory", "title", "gallery caption")
    for rank, h in enumerate(hits, 1):  # --category filters by the first of the two
        table.add_row(*(escape(str(v)) for v in (rank, h.item_id, f"{h.score:.4f}", h.category, h.subcategory,
                                                 h.title, h.caption)))
    Console().print(table)
    err.print(f"{kind} search: {len(hits)} hits in {took} ms")
