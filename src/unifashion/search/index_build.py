"""Embedding a catalog into an index, in batches, resumable after an interruption.

Stages: 1. the items (a dataset folder or a folder of images)  2. per chunk of items: image query
vectors, gallery captions (written by the model from the image alone) and their vectors, saved as
chunk files under OUT/.build/  3. the chunks assembled into the index's first segment (or added to
an existing index). A rerun with the same model and items skips the chunks already on disk.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch

from unifashion.data.samples import IMAGE_FORMATS, ImageRef
from unifashion.errors import DataError
from unifashion.models.captioner import said
from unifashion.search.catalog_index import CatalogIndex, CatalogItem, model_fingerprint
from unifashion.search.vector_index import AnnConfig
from unifashion.storage import MANIFEST, WriterLock, recover_dir, replace_dir, staging_dir, write_text_atomic

ProgressFn = Callable[[str, int, int], None]
BUILD_DIR = ".build"
SHOWN_IDS = 5  # item ids a message names before "and N more"


def image_suffixes() -> tuple[str, ...]:
    """File suffixes of the formats `ImageRef` decodes (`IMAGE_FORMATS`), as PIL registers them."""
    from PIL import Image

    return tuple(sorted(ext for ext, fmt in Image.registered_extensions().items() if fmt in IMAGE_FORMATS))


def some_ids(ids: Sequence[str]) -> str:
    """The first few ids quoted, then how many more: 'a', 'b', 'c' and 7 more."""
    shown = ", ".join(repr(i) for i in ids[:SHOWN_IDS])
    return shown + (f" and {len(ids) - SHOWN_IDS} more" if len(ids) > SHOWN_IDS else "")


def items_from_data(data: Path, split: str | Sequence[str] | None = None, *, skip_bad: bool = False,
                    skipped: list[dict] | None = None) -> list[CatalogItem]:
    """Items of a dataset folder with image-text pairs (a world's catalog, FashionGen, Fashion200K):
    one split, several, or (None) every split. A bad record raises DataError naming file and line;
    with `skip_bad` it is left out and listed in `skipped` ({"item": "file:line", "reason": ...})."""
    from unifashion.data.formats.common import LoadReport
    from unifashion.data.sources import PAIR_LOADERS, SPLITS, find_sources

    sources = find_sources([Path(data)])
    if sources.pairs is None:
        raise DataError(f"{data}: no image-text pairs (a catalog, FashionGen or Fashion200K) to index")
    fmt = sources.pairs_format
    splits = [split] if isinstance(split, str) else list(split or SPLITS[fmt])
    report = LoadReport()
    pairs = [p for s in splits for p in PAIR_LOADERS[fmt](sources.pairs, s, skip_bad=skip_bad, report=report)]
    if skipped is not None:
        skipped.extend(_skipped_entry(line) for line in report.skipped)
    if not pairs:
        raise DataError(f"{sources.pairs}: no items in split(s) {', '.join(splits)}")
    seen: set[str] = set()
    items = []
    for p in pairs:
        if p.item_id in seen:
            continue
        seen.add(p.item_id)
        items.append(CatalogItem(item_id=p.item_id, product_id=p.product_id, category=p.category,
                                 subcategory=p.subcategory, title=p.title, text=p.caption,
                                 image_path=str(Path(p.image.path).resolve()), image_key=p.image.key,
                                 image_row=p.image.index))
    return items


def _skipped_entry(line: str) -> dict:
    """A reader's "where: reason" line as {"item", "reason"} (where: file:line, file[i] or file row N)."""
    where, _, reason = line.partition(": ")
    return {"item": where, "reason": reason or line}


def items_from_images(folder: Path, *, skip_bad: bool = False, skipped: list[dict] | None = None
                      ) -> list[CatalogItem]:
    """One item per image file under `folder` (recursively); the id is the path without suffix.

    A file whose suffix is not one of `image_suffixes()` is listed in `skipped` (it is no item). Two
    image files that would share an id (a.png and a.jpg) raise DataError naming both; with `skip_bad`
    the first in path order is kept and the other listed in `skipped`."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder of images")
    suffixes = image_suffixes()
    files, other = [], []
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            (files if p.suffix.lower() in suffixes else other).append(p)
    if skipped is not None:
        skipped.extend({"item": str(p), "reason": f"not an image file (suffix {p.suffix or 'none'!r})"}
                       for p in other)
    if not files:
        raise DataError(f"{folder}: no image files ({', '.join(suffixes)})")
    items, first_of = [], {}
    for path in files:
        rel = path.relative_to(folder).with_suffix("").as_posix()
        if rel in first_of:
            reason = f"{first_of[rel]} and {path} would both be item {rel!r}"
            if not skip_bad:
                raise DataError(f"{reason}; rename one (or --skip-bad keeps the first)")
            if skipped is not None:
                skipped.append({"item": str(path), "reason": reason})
            continue
        first_of[rel] = path
        parent = path.relative_to(folder).parent.as_posix()
        items.append(CatalogItem(item_id=rel, product_id=rel, category="" if parent == "." else parent,
                                 title=path.stem, image_path=str(path.resolve())))
    return items


def check_unique_ids(items: Sequence[CatalogItem]) -> None:
    """DataError naming the ids that appear more than once in `items` (checked before any embedding)."""
    seen: set[str] = set()
    twice = []
    for it in items:
        if it.item_id in seen:
            twice.append(it.item_id)
        seen.add(it.item_id)
    if twice:
        raise DataError(f"{len(twice)} repeated item id(s) among the items to index: {some_ids(twice)}")


def check_new_items(index: CatalogIndex, items: Sequence[CatalogItem], *, replace: bool = False) -> None:
    """DataError naming the items already in `index` (first few and how many) unless `replace`, and
    the ids repeated in `items`: what `add_to_index` checks before embedding anything."""
    check_unique_ids(items)
    present = [it.item_id for it in items if it.item_id in index]
    if present and not replace:
        raise DataError(f"{len(present)} of the {len(items)} items are already in the index ({some_ids(present)}); "
                        "use --replace to replace them, or `index remove` them first")


def _plan(fingerprint: str, items: Sequence[CatalogItem], captions: bool) -> dict:
    ids = hashlib.sha256("\n".join(it.item_id for it in items).encode()).hexdigest()
    return {"fingerprint": fingerprint, "items_sha256": ids, "items": len(items), "captions": captions}


def _chunk_name(c: int) -> str:
    return f"chunk-{c:06d}"


@torch.no_grad()
def embed_items(model, items: Sequence[CatalogItem], work: Path, *, captions: bool = True, chunk: int = 256,
                batch_size: int = 32, max_new_tokens: int | None = None, progress: ProgressFn | None = None,
                skip_bad: bool = False, skipped: list[dict] | None = None,
                ) -> tuple[list[CatalogItem], np.ndarray, np.ndarray | None] | None:
    """Image vectors (N, Q, E), gallery captions and their vectors (N, E) of `items`, chunk by chunk
    under `work` (kept until the caller deletes it, so that an interrupted run resumes).

    Under `accelerate launch` every process runs this: the chunks still to embed are dealt out among
    the processes (each on its own device), and the main one assembles them and returns the result;
    the others return None. Chunks hold at most `chunk` items, fewer when that gives each process
    one; a resumed run keeps the first run's chunks, whatever its number of processes.

    An item whose image cannot be read raises DataError naming it; with `skip_bad` it is left out
    of what is returned and listed in `skipped` ({"item", "reason"}; a chunk records its skipped
    items, so a resumed run reports them too). DataError when no item is left."""
    from unifashion.processes import process_state

    state = process_state()
    if state.device.type != "cpu":  # a GPU (one per process under a launch) embeds faster
        model.to(state.device)
    if not state.is_main_process:
        progress = None  # the main process reports for all
    plan = _plan(model_fingerprint(model), items, captions)
    plan_file = work / "plan.json"
    if state.is_main_process:
        work.mkdir(parents=True, exist_ok=True)
        if not plan_file.exists():
            size = max(1, min(chunk, -(-len(items) // state.num_processes)))
            write_text_atomic(plan_file, json.dumps({**plan, "chunk": size}, indent=1) + "\n")
    state.wait_for_everyone()  # every process reads the one plan, and sees the same chunks done
    old = json.loads(plan_file.read_text())
    if {k: old.get(k) for k in plan} != plan:
        raise DataError(f"{work}: a partial build of another model or item list is here; "
                        "delete it or build with --restart")
    chunk = int(old["chunk"])
    chunks = range(len(range(0, len(items), chunk)))  # chunk numbers
    pending = [c for c in chunks if not (work / f"{_chunk_name(c)}.json").exists()]
    mine = pending[state.process_index::state.num_processes]
    state.wait_for_everyone()  # nobody writes a chunk before all have listed the pending ones

    def report(position: int) -> None:
        if progress:
            done = sum(1 for c in chunks if (work / f"{_chunk_name(c)}.json").exists())
            progress("embed catalog", min(len(items), done * chunk + position), len(items))

    report(0)
    for c in mine:
        part = items[c * chunk:(c + 1) * chunk]
        vectors, caption_texts, caption_vectors, bad = [], [], [], []
        for b in range(0, len(part), batch_size):
            batch, images = [], []
            for it in part[b:b + batch_size]:
                try:
                    images.append(_load(it))
                    batch.append(it)
                except DataError as e:
                    if not skip_bad:
                        raise
                    bad.append({"item": it.item_id, "reason": str(e)})
            if not images:
                continue
            features = model.encode_image(images)
            vectors.append(features.image_embeds.float().cpu().numpy())  # (b, Q, E)
            if captions:
                texts = model.caption(images, "detailed", max_new_tokens=max_new_tokens)
                caption_texts.extend(texts)
                caption_vectors.append(model.encode_text([said(t) for t in texts]).text_embeds.float().cpu().numpy())  # (b, E)
            report(min(b + batch_size, len(part)))
        q, e = model.qformer.config.num_query_tokens, model.qformer.config.embed_dim
        np.save(work / f"{_chunk_name(c)}-images.npy",
                np.concatenate(vectors).astype(np.float16) if vectors else np.zeros((0, q, e), np.float16))
        if captions:
            np.save(work / f"{_chunk_name(c)}-captions.npy", np.concatenate(caption_vectors).astype(np.float16)
                    if caption_vectors else np.zeros((0, e), np.float16))
        write_text_atomic(work / f"{_chunk_name(c)}.json",
                          json.dumps({"captions": caption_texts, "skipped": bad}) + "\n")  # last: the chunk is done
    state.wait_for_everyone()
    if not state.is_main_process:
        return None
    report(0)
    metas = [json.loads((work / f"{_chunk_name(c)}.json").read_text()) for c in chunks]
    left_out = [s for m in metas for s in m.get("skipped", [])]
    if skipped is not None:
        skipped.extend(left_out)
    gone = {s["item"] for s in left_out}
    kept = [it for it in items if it.item_id not in gone]
    if not kept:
        raise DataError(f"no usable items: all {len(items)} were bad (first: {left_out[0]['item']}: "
                        f"{left_out[0]['reason']})")
    images = _assemble(work, "images", chunks)  # (N, Q, E) float16 memmap
    caption_vectors = _assemble(work, "captions", chunks) if captions else None  # (N, E)
    texts = [t for m in metas for t in m["captions"]]
    out_items = [CatalogItem(**{**it.__dict__, "caption": texts[i] if captions else ""}) for i, it in enumerate(kept)]
    return out_items, images, caption_vectors


def _assemble(work: Path, what: str, chunks: range) -> np.ndarray:
    """The chunk files of `what` written one after another into work/{what}.npy, returned memory-mapped:
    a million items' vectors (16 GB at Q=32, E=256) never sit in memory at once."""
    parts = [work / f"{_chunk_name(c)}-{what}.npy" for c in chunks]
    heads = [np.load(p, mmap_mode="r", allow_pickle=False) for p in parts]
    out = np.lib.format.open_memmap(work / f"{what}.npy", mode="w+", dtype=np.float16,
                                    shape=(sum(h.shape[0] for h in heads), *heads[0].shape[1:]))
    start = 0
    for head in heads:
        out[start:start + head.shape[0]] = head
        start += head.shape[0]
    out.flush()
    return np.load(work / f"{what}.npy", mmap_mode="r", allow_pickle=False)


def _load(item: CatalogItem):
    return ImageRef(Path(item.image_path), item.image_key, item.image_row).load_rgb()


def build_index(model, items: Sequence[CatalogItem], out: Path, *, model_source: str, captions: bool = True,
                ann: AnnConfig = AnnConfig(), approximate: bool | None = None, overwrite: bool = False,
                restart: bool = False, batch_size: int = 32, max_new_tokens: int | None = None,
                progress: ProgressFn | None = None, skip_bad: bool = False,
                skipped: list[dict] | None = None) -> CatalogIndex | None:
    """A new index at `out` from `items` (stages in the module docstring). The index is written
    beside `out` and swapped in whole when complete (holding the old index's writer lock): a crash
    at any point leaves the previous index at `out` as it was (and the embedded chunks under
    `out/.build` for a resumed run). Under `accelerate launch` the processes share the embedding
    and the main one writes; the others return None."""
    from unifashion.processes import process_state

    out = Path(out)
    if not items:
        raise DataError("no items to index")
    state = process_state()
    if state.is_main_process:
        recover_dir(out)
    if (out / MANIFEST).exists() and not overwrite:
        raise DataError(f"{out}: an index already exists (use --overwrite to replace it, or `index add`)")
    check_unique_ids(items)  # before anything is embedded or written
    work = out / BUILD_DIR
    if restart and work.exists() and state.is_main_process:
        shutil.rmtree(work)
    state.wait_for_everyone()
    embedded = embed_items(model, items, work, captions=captions, batch_size=batch_size,
                           max_new_tokens=max_new_tokens, progress=progress, skip_bad=skip_bad, skipped=skipped)
    if embedded is None:
        return None
    items, vectors, caption_vectors = embedded
    staging = staging_dir(out)
    try:
        index = CatalogIndex.create(staging, fingerprint=model_fingerprint(model), model_source=model_source,
                                    num_queries=vectors.shape[1], embed_dim=vectors.shape[2], ann=ann)
        index.add(items, vectors, caption_vectors, approximate=approximate, progress=progress)
        with WriterLock(out, DataError) if (out / MANIFEST).exists() else nullcontext():
            replace_dir(staging, out)  # the switch; `work` leaves with the previous folder
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    index.root = out
    return index


def add_to_index(model, index, items: Sequence[CatalogItem], *, replace: bool = False,
                 approximate: bool | None = None, batch_size: int = 32, progress: ProgressFn | None = None,
                 skip_bad: bool = False, skipped: list[dict] | None = None) -> int | None:
    """Embed `items` and add them to `index` (a `CatalogIndex`, as a new segment, or a `QdrantIndex`);
    with `replace`, items already present are replaced. Returns the number added (with `skip_bad`,
    items whose image is unreadable are left out and listed in `skipped`). Under `accelerate launch`
    the processes share the embedding and the main one adds; the others return None."""
    if model_fingerprint(model) != index.fingerprint:
        raise DataError(f"{index.root}: built with another model (fingerprint {index.fingerprint[:12]}); "
                        "use that model, or build a new index")
    check_new_items(index, items, replace=replace)  # before anything is embedded
    work = index.root / BUILD_DIR
    first = isinstance(index, CatalogIndex) and not index.segments  # an empty built-in index takes either
    embedded = embed_items(model, items, work, captions=index.has_captions or first, batch_size=batch_size,
                           progress=progress, skip_bad=skip_bad, skipped=skipped)
    if embedded is None:
        return None
    items, vectors, caption_vectors = embedded
    index.add(items, vectors, caption_vectors, replace=replace, approximate=approximate, progress=progress)
    shutil.rmtree(work)
    return len(items)
