"""From a model and a dataset to the score matrices the protocols rank (numpy out).

The protocols (protocols.py) and metrics (metrics.py) are pure functions over these matrices; this
module is the only place evaluation runs the model.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from unifashion.data.formats import fashioniq
from unifashion.data.samples import ImageRef, ImageTextPair
from unifashion.errors import DataError
from unifashion.models.qformer import QFormer

ProgressFn = Callable[[str, int, int], None]


def _batches(items: Sequence, size: int):
    for start in range(0, len(items), size):
        yield start, items[start:start + size]


@torch.no_grad()
def image_embeddings(model, refs: Sequence[ImageRef], batch_size: int = 32, progress: ProgressFn | None = None,
                     what: str = "images") -> np.ndarray:
    """(N, Q, E) normalised query embeddings of each image."""
    out = []
    for start, chunk in _batches(list(refs), batch_size):
        out.append(model.encode_image([r.load() for r in chunk]).image_embeds.float().cpu().numpy())
        if progress:
            progress(f"embed {what}", start + len(chunk), len(refs))
    return np.concatenate(out)  # (N, Q, E)


@torch.no_grad()
def pooled_image_features(model, images: Sequence, batch_size: int = 32) -> np.ndarray:
    """(N, D) the frozen image encoder's tokens of each PIL image, averaged: what attribute probes read."""
    out = []
    for _, chunk in _batches(list(images), batch_size):
        out.append(model.image_tokens(list(chunk)).mean(dim=1).float().cpu().numpy())  # (b, D)
    return np.concatenate(out)  # (N, D)


@torch.no_grad()
def text_embeddings(model, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
    """(N, E) normalised text embeddings."""
    return np.concatenate([model.encode_text(list(chunk)).text_embeds.float().cpu().numpy()
                           for _, chunk in _batches(list(texts), batch_size)])


def max_over_queries(image_embeds: np.ndarray, text_embeds: np.ndarray) -> np.ndarray:
    """(N, Q, E) x (T, E) -> (N, T): BLIP-2's image-text score, the best query's dot product
    (QFormer.similarity, in chunks of images)."""
    n, q, _ = image_embeds.shape
    dtype = np.result_type(image_embeds, text_embeds)
    out = np.empty((n, len(text_embeds)), dtype=dtype)
    texts = torch.from_numpy(np.ascontiguousarray(text_embeds, dtype=dtype))  # (T, E)
    step = max(1, (1 << 25) // max(1, q * len(text_embeds)))  # images per chunk: ~128 MB of (b, Q, T) scores
    for start in range(0, n, step):
        chunk = torch.from_numpy(np.ascontiguousarray(image_embeds[start:start + step], dtype=dtype))  # (b, Q, E)
        out[start:start + step] = QFormer.similarity(chunk, texts).numpy()
    return out  # (N, T)


def mean_best_match(queries: np.ndarray, gallery: np.ndarray) -> np.ndarray:
    """(Q, P, E) x (G, V, E) -> (Q, G): each query vector's best match among the gallery item's, averaged
    (catalog search's image -> image score)."""
    q, p, e = queries.shape
    out = np.empty((q, len(gallery)), dtype=np.result_type(queries, gallery))
    flat = gallery.reshape(-1, e).T  # (E, G*V)
    step = max(1, (1 << 25) // max(1, p * gallery.shape[0] * gallery.shape[1]))  # queries per ~128 MB chunk
    for start in range(0, q, step):
        chunk = queries[start:start + step]  # (b, P, E)
        sims = (chunk.reshape(-1, e) @ flat).reshape(len(chunk), p, len(gallery), -1)  # (b, P, G, V)
        out[start:start + step] = sims.max(axis=3).mean(axis=1)
    return out  # (Q, G)


@torch.no_grad()
def paired_scores(model, images: Sequence, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
    """(N,) the model's image-text score of image i with text i (PIL images): the best query's dot product
    with the text embedding, both normalised (ITC's similarity)."""
    if len(images) != len(texts) or not texts:
        raise DataError(f"paired scores need as many images as texts, got {len(images)} and {len(texts)}")
    out = []
    for start, chunk in _batches(list(images), batch_size):
        img = model.encode_image(list(chunk)).image_embeds.float().cpu().numpy()  # (b, Q, E)
        txt = model.encode_text(list(texts[start:start + batch_size])).text_embeds.float().cpu().numpy()  # (b, E)
        out.append(np.einsum("bqe,be->bq", img, txt).max(axis=1))
    return np.concatenate(out)  # (N,)


def cmr_scores(model, pairs: Sequence[ImageTextPair], batch_size: int = 32,
               progress: ProgressFn | None = None) -> np.ndarray:
    """(N, N) image-text scores where image i and text i belong to item i."""
    if not pairs:
        raise DataError("no image-text pairs to evaluate")
    images = image_embeddings(model, [p.image for p in pairs], batch_size, progress)
    unique = list(dict.fromkeys(p.caption for p in pairs))  # a product's views share its text: embed it once
    row = {t: i for i, t in enumerate(unique)}
    texts = text_embeddings(model, unique)[[row[p.caption] for p in pairs]]  # (N, E)
    return max_over_queries(images, texts)


def said_captions(captions: dict[str, str], names: Sequence[str]) -> list[str]:
    """The captions of `names` as text to embed (models.captioner.said: a model may say nothing)."""
    from unifashion.models.captioner import said

    return [said(captions[n]) for n in names]


def triplet_query_text(triplet) -> str:
    """The composed query's text of a Fashion-IQ triplet: "C1 and c2" (one caption alone when only one)."""
    from unifashion.evaluation.protocols import query_text

    mods = triplet.modifications
    return query_text(*mods[:2]) if len(mods) > 1 else mods[0]


@torch.no_grad()
def cir_scores(model, root: Path, split: str, category: str, gallery_captions: dict[str, str] | None = None,
               batch_size: int = 32, progress: ProgressFn | None = None, *, max_queries: int | None = None,
               seed: int = 0) -> dict:
    """Fashion-IQ scores for one category: composed query (reference + "C1 and c2") against the
    category's gallery, by image (max over the gallery's queries) and, when captions are given, by
    the gallery captions. Returns {"image": (Q, G), "caption": (Q, G) | None, "target_index": (Q,)}.
    The reference image stays in the gallery (the CLIP4Cir / SPRC protocol). `max_queries` keeps a
    seeded random subset of the triplets (in file order), against the whole gallery."""
    triplets = [t for t in fashioniq.load(root, split, category) if t.target_id is not None]
    if max_queries is not None and len(triplets) > max_queries:
        keep = np.sort(np.random.default_rng(seed).permutation(len(triplets))[:max_queries])
        triplets = [triplets[i] for i in keep]
    gallery = fashioniq.load_image_split(root, category, split)
    if not triplets or not gallery:
        raise DataError(f"{root}: no {split} triplets or gallery for category {category}")
    position = {name: i for i, name in enumerate(gallery)}
    missing = [t.target_id for t in triplets if t.target_id not in position]
    if missing:
        raise DataError(f"{root}: target {missing[0]} is not in the {category} {split} gallery")
    g_images = image_embeddings(model, [ImageRef(fashioniq.image_path(root, n)) for n in gallery], batch_size,
                                progress, what=f"{category} gallery")
    queries = []
    for _, chunk in _batches(triplets, batch_size):
        texts = [triplet_query_text(t) for t in chunk]
        queries.append(model.encode_composed([t.reference.load() for t in chunk], texts)
                       .composed_embeds.float().cpu().numpy())
    q = np.concatenate(queries)  # (Q, E)
    image_scores = np.einsum("qe,gke->qgk", q, g_images).max(axis=2)  # (Q, G): best gallery query
    text_only = max_over_queries(g_images, text_embeddings(model, [triplet_query_text(t) for t in triplets])).T
    if all(t.reference_id in position for t in triplets):  # the protocol keeps references in the gallery
        references = g_images[[position[t.reference_id] for t in triplets]]  # (Q, 32, E), already embedded
    else:
        references = image_embeddings(model, [t.reference for t in triplets], batch_size, progress,
                                      what=f"{category} references")
    image_only = mean_best_match(references, g_images)  # (Q, G)
    caption_scores = None
    if gallery_captions is not None:
        lacking = [n for n in gallery if n not in gallery_captions]
        if lacking:
            raise DataError(f"no gallery caption for {lacking[0]} ({len(lacking)} of {len(gallery)} lack one)")
        caption_scores = q @ text_embeddings(model, said_captions(gallery_captions, gallery)).T  # (Q, G)
    return {"image": image_scores, "caption": caption_scores, "text_only": text_only, "image_only": image_only,
            "target_index": np.array([position[t.target_id] for t in triplets])}
