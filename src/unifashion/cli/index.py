"""`unifashion index ...`: build, change and describe a catalog search index."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from unifashion.cli.options import check_out_dir, load_model, with_given
from unifashion.cli.output import StageProgress, err, print_json, report_skipped
from unifashion.errors import UnifashionError

index_app = typer.Typer(help="Build and change a catalog search index (query vectors, gallery captions, items).",
                        no_args_is_help=True)

WAIT_HELP = "Wait this long for another writer of the index to finish (default: refuse at once)."
SKIP_BAD_HELP = ("Skip bad items (unreadable images, malformed records), list them on stderr and in --json, "
                 "and go on if any item is left.")


def _catalog_items(data: Path | None, images: Path | None, split: str | None, skip_bad: bool = False,
                   skipped: list[dict] | None = None):
    from unifashion.search.index_build import items_from_data, items_from_images

    if (data is None) == (images is None):
        raise UnifashionError("give exactly one of --data (a dataset folder or world) and --images (a folder of images)")
    if data is not None:
        return items_from_data(data, split, skip_bad=skip_bad, skipped=skipped)
    return items_from_images(images, skip_bad=skip_bad, skipped=skipped)


@index_app.command("build")
def index_build(
    model: Annotated[Path, typer.Option(help="A trained model directory (it encodes the catalog and writes the gallery captions).")],
    out: Annotated[Path, typer.Option(help="Index folder to write.")],
    data: Annotated[Path | None, typer.Option(help="A synthetic world or a folder with image-text pairs (our catalog, FashionGen, Fashion200K).")] = None,
    images: Annotated[Path | None, typer.Option(help="A folder of images (one item per file; subfolders become categories).")] = None,
    split: Annotated[str | None, typer.Option(help="Only this split of --data (default: every split).")] = None,
    captions: Annotated[bool, typer.Option("--captions/--no-captions", help="Write a gallery caption per item (caption re-ranking and image-to-text search need them).")] = True,
    approximate: Annotated[bool | None, typer.Option("--approximate/--exact", help="Force IVF-PQ candidates or exact scoring (default: by size).", show_default="by size")] = None,
    exact_below: Annotated[int | None, typer.Option("--exact-below", min=1, help="Exact scoring below this many items.", show_default="20000")] = None,
    nprobe: Annotated[int | None, typer.Option(min=1, help="IVF lists visited per query vector.", show_default="64")] = None,
    candidates: Annotated[int | None, typer.Option(min=1, help="Items re-scored exactly per approximate query.", show_default="max(200, items / 1250)")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 32,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing index at --out.")] = False,
    restart: Annotated[bool, typer.Option(help="Discard a partial build at --out instead of resuming it.")] = False,
    skip_bad: Annotated[bool, typer.Option("--skip-bad", help=SKIP_BAD_HELP)] = False,
    qdrant_url: Annotated[str | None, typer.Option("--qdrant-url", help="Put the vectors in a Qdrant server or cluster at this URL (API key from QDRANT_API_KEY).")] = None,
    qdrant_path: Annotated[Path | None, typer.Option("--qdrant-path", help="Put the vectors in qdrant-client local storage in this folder (one process at a time; tests and small catalogs).")] = None,
    qdrant_edge: Annotated[Path | None, typer.Option("--qdrant-edge", help="Put the vectors in a Qdrant edge shard in this folder (the engine in-process; one process at a time).")] = None,
    qdrant_collection: Annotated[str, typer.Option("--qdrant-collection", help="The Qdrant collection's name.")] = "unifashion",
    as_json: Annotated[bool, typer.Option("--json", help="Print the index summary as JSON.")] = False,
) -> None:
    """Embed a catalog into a search index (resumes an interrupted build of the same model and items);
    with --qdrant-url/--qdrant-path/--qdrant-edge the vectors go to Qdrant and --out holds its manifest."""
    from unifashion.search.index_build import build_index
    from unifashion.search.vector_index import AnnConfig

    check_out_dir(out)
    location = None
    if qdrant_url or qdrant_path or qdrant_edge:
        from unifashion.search.qdrant_index import QdrantLocation, QdrantSettings, build_qdrant_index

        location = QdrantLocation(url=qdrant_url, path=str(qdrant_path) if qdrant_path else None,
                                  edge=str(qdrant_edge) if qdrant_edge else None, collection=qdrant_collection)
        settings = with_given(QdrantSettings(), {"exact_below": exact_below, "candidates": candidates})
    skipped: list[dict] = []
    items = _catalog_items(data, images, split, skip_bad, skipped)
    net = load_model(model, json_on_stdout=as_json)
    ann = with_given(AnnConfig(), {"exact_below": exact_below, "nprobe": nprobe, "candidates": candidates})
    start = time.perf_counter()
    with StageProgress(json_on_stdout=as_json) as progress:
        if location is not None:
            index = build_qdrant_index(net, items, out, location, model_source=str(model.resolve()),
                                       captions=captions, settings=settings, overwrite=overwrite, restart=restart,
                                       batch_size=batch_size, progress=progress, skip_bad=skip_bad, skipped=skipped)
        else:
            index = build_index(net, items, out, model_source=str(model.resolve()), captions=captions, ann=ann,
                                approximate=approximate, overwrite=overwrite, restart=restart,
                                batch_size=batch_size, progress=progress, skip_bad=skip_bad, skipped=skipped)
    if index is None:  # another process of a multi-process launch: the main one reports
        return
    from unifashion.processes import process_state

    report_skipped(skipped)
    processes = process_state().num_processes  # the processes that embedded the catalog
    summary = {**index.describe(), "seconds": round(time.perf_counter() - start, 2), "skipped": skipped,
               "processes": processes}
    if as_json:
        print_json(summary)
    else:
        kind = (f"Qdrant, {location.describe()}" if location is not None else
                "approximate search" if any(s["approximate"] for s in summary["segments"]) else "exact search")
        by = f" by {processes} processes" if processes > 1 else ""
        err.print(f"indexed {len(index)} items into {out}{by} in {summary['seconds']} s ({kind})")


@index_app.command("add")
def index_add(
    index: Annotated[Path, typer.Option(help="The index folder.")],
    data: Annotated[Path | None, typer.Option(help="A dataset folder or world whose items to add.")] = None,
    images: Annotated[Path | None, typer.Option(help="A folder of images to add.")] = None,
    split: Annotated[str | None, typer.Option(help="Only this split of --data.")] = None,
    model: Annotated[Path | None, typer.Option(help="The model that built the index (default: the one its manifest names).")] = None,
    replace: Annotated[bool, typer.Option(help="Replace items already in the index (otherwise they are an error).")] = False,
    approximate: Annotated[bool | None, typer.Option("--approximate/--exact", show_default="by size")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 32,
    skip_bad: Annotated[bool, typer.Option("--skip-bad", help=SKIP_BAD_HELP)] = False,
    wait_seconds: Annotated[float, typer.Option("--wait-seconds", min=0, help=WAIT_HELP)] = 0.0,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Add items to an index without rebuilding it (a new segment); under `accelerate launch` the
    processes share the embedding."""
    from unifashion.search.index_build import add_to_index, check_new_items
    from unifashion.search.index_folder import index_writer, open_index

    skipped: list[dict] = []
    items = _catalog_items(data, images, split, skip_bad, skipped)
    with index_writer(index, wait_seconds):
        idx = open_index(index)
        check_new_items(idx, items, replace=replace)  # before the model loads
        net = load_model(model or Path(idx.manifest["model"]["source"]), json_on_stdout=as_json)
        with StageProgress(json_on_stdout=as_json) as progress:
            added = add_to_index(net, idx, items, replace=replace, approximate=approximate, batch_size=batch_size,
                                 progress=progress, skip_bad=skip_bad, skipped=skipped)
    if added is None:  # another process of a multi-process launch: the main one reports
        return
    report_skipped(skipped)
    if as_json:
        print_json({"added": added, **idx.describe(), "skipped": skipped})
    else:
        err.print(f"added {added} items; the index now holds {len(idx)}")


@index_app.command("remove")
def index_remove(
    index: Annotated[Path, typer.Option(help="The index folder.")],
    item_ids: Annotated[list[str], typer.Argument(help="Item ids to remove.")],
    wait_seconds: Annotated[float, typer.Option("--wait-seconds", min=0, help=WAIT_HELP)] = 0.0,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Remove items from an index (recorded in its manifest; `index compact` drops their vectors)."""
    from unifashion.search.index_folder import index_writer, open_index

    with index_writer(index, wait_seconds):
        idx = open_index(index)
        idx.remove(item_ids)
    if as_json:
        print_json({"removed": len(item_ids), **idx.describe()})
    else:
        err.print(f"removed {len(item_ids)} items; the index now holds {len(idx)}")


@index_app.command("compact")
def index_compact(
    index: Annotated[Path, typer.Option(help="The index folder.")],
    wait_seconds: Annotated[float, typer.Option("--wait-seconds", min=0, help=WAIT_HELP)] = 0.0,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Rewrite an index as one segment without its removed items (the ANN index is rebuilt by size)."""
    from unifashion.search.index_folder import index_writer, open_index

    with index_writer(index, wait_seconds), StageProgress(json_on_stdout=as_json) as progress:
        idx = open_index(index)
        idx.compact(progress=progress)
    if as_json:
        print_json(idx.describe())
    else:
        err.print(f"compacted {index}: {len(idx)} items in one segment")


@index_app.command("info")
def index_info(
    index: Annotated[Path, typer.Argument(help="The index folder.")],
    verify: Annotated[bool, typer.Option("--verify/--no-verify", help="Check every file's sha256.")] = True,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Describe an index (items, segments, model, search settings) after checking its files."""
    from unifashion.search.index_folder import open_index

    summary = open_index(index, verify=verify).describe()
    if as_json:
        print_json(summary)
        return
    if summary.get("backend") == "qdrant":
        where = summary["qdrant"]
        err.print(f"{summary['items']} items in Qdrant ({', '.join(f'{k} {v}' for k, v in where.items())}), "
                  f"{summary['num_queries']} query vectors of {summary['embed_dim']} each, gallery captions: "
                  f"{'yes' if summary['captions'] else 'no'}; model {summary['model']['source']} "
                  f"({summary['model']['fingerprint'][:12]})")
        return
    table = Table("segment", "items", "search")
    for seg in summary["segments"]:
        table.add_row(seg["name"], str(seg["items"]), "IVF-PQ + exact re-scoring" if seg["approximate"] else "exact")
    Console().print(table)
    err.print(f"{summary['items']} live items ({summary['removed']} removed), {summary['num_queries']} query vectors "
              f"of {summary['embed_dim']} each, gallery captions: {'yes' if summary['captions'] else 'no'}; "
              f"model {summary['model']['source']} ({summary['model']['fingerprint'][:12]})")
