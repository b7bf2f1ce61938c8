"""Catalog search: the model encodes the query, the index finds the items (the product's hot path).

Every search kind is the model's own score, the one it was trained and evaluated with:
  text -> image        the text embedding against each item's query vectors, best query (BLIP-2 ITC)
  image -> image       each of the photo's query vectors' best match among the item's, averaged
  image -> text        the photo's query vectors against each item's gallery caption, best query
  composed             reference image + modification text -> the composed query against the items'
                       query vectors; with `rerank`, the top `depth` are re-scored with the gallery
                       captions added (query·image + caption_weight * query·caption, paper Table 4)
  classify             zero-shot: the photo against prompts made from the labels
Beside the searches, the facade answers what a front end (the HTTP service) needs of the model and
the index — captions, generations, item look-ups, the model's limits — so that it holds only this.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from unifashion.errors import DataError
from unifashion.evaluation.protocols import combine_scores
from unifashion.models.unified import ImageInput, as_batch
from unifashion.search.catalog_index import CatalogIndex, CatalogItem, model_fingerprint
from unifashion.search.vector_index import Reduce

MAX_K = 1000


@dataclass(frozen=True)
class SearchHit:
    item_id: str
    score: float
    category: str
    subcategory: str
    title: str
    caption: str  # the model's gallery caption
    product_id: str

    @classmethod
    def of(cls, item: CatalogItem, score: float) -> "SearchHit":
        return cls(item.item_id, float(score), item.category, item.subcategory, item.title, item.caption,
                   item.product_id)


@dataclass(frozen=True)
class TextQuery:
    """One text search: its words, how many results, and an optional category filter."""
    text: str
    k: int = 10
    categories: tuple[str, ...] | None = None


@dataclass(frozen=True)
class SearchConfig:
    rerank_depth: int = 100  # composed search: candidates re-scored with their gallery captions
    caption_weight: float = 1.0  # weight of query·caption in the re-ranking (combine_scores)


def classify_images(model, images: ImageInput | Sequence[ImageInput],
                    labels: str | Sequence[str]) -> list[list[tuple[str, float]]]:
    """Zero-shot classification by the model alone (no index needed): per image, (label, probability)
    sorted by probability; the labels as `UniFashion.classify` takes them (models.unified.label_list)."""
    return model.classify(images, labels).ranked()


class CatalogSearch:
    """A model and the index it built, checked to belong together."""

    def __init__(self, model, index: CatalogIndex, config: SearchConfig = SearchConfig()):
        fingerprint = model_fingerprint(model)
        if fingerprint != index.fingerprint:
            raise DataError(f"{index.root}: built with another model (index fingerprint {index.fingerprint[:12]}, "
                            f"this model {fingerprint[:12]}); rebuild the index with this model")
        self.model = model
        self.index = index
        self.config = config

    def _check(self, k: int, categories: str | Sequence[str] | None) -> tuple[str, ...] | None:
        """The category filter as a tuple (one category may come as a plain string), checked with k."""
        if not 1 <= k <= MAX_K:
            raise DataError(f"k must be between 1 and {MAX_K}, got {k}")
        categories = tuple(as_batch(categories)) if categories is not None else None
        known = set(self.index.categories())
        unknown = [c for c in categories or () if c not in known]
        if unknown:
            raise DataError(f"unknown category {unknown[0]!r} (the index has: {', '.join(sorted(known)) or 'none'})")
        return categories

    def _hits(self, results) -> list[list[SearchHit]]:
        return [[SearchHit.of(item, score) for item, score in hits] for hits in results]

    def text(self, texts: str | Sequence[str], k: int = 10,
             categories: str | Sequence[str] | None = None) -> list[list[SearchHit]]:
        cats = tuple(as_batch(categories)) if categories is not None else None  # text_queries checks it
        return self.text_queries([TextQuery(t, k, cats) for t in as_batch(texts)])

    @torch.no_grad()
    def text_queries(self, queries: Sequence[TextQuery]) -> list[list[SearchHit]]:
        """Text searches, each with its own k and filter: one encoder pass for all of them (batching is
        where a CPU gains: 8 texts encode in ~2x the time of one), one index search per filter."""
        if not queries:
            raise DataError("a text search needs a non-empty text")
        for q in queries:
            self._check(q.k, q.categories)
            if not q.text.strip():
                raise DataError("a text search needs a non-empty text")
        embeds = self.model.encode_text([q.text for q in queries]).text_embeds.float().cpu().numpy()  # (B, E)
        groups: dict[tuple[str, ...] | None, list[int]] = {}
        for i, q in enumerate(queries):
            groups.setdefault(q.categories, []).append(i)
        out: list = [None] * len(queries)
        for categories, members in groups.items():
            k = max(queries[i].k for i in members)  # the best k of a deeper search are the top k
            found = self.index.search(embeds[members][:, None, :], k, categories=categories)  # per query
            for i, hits in zip(members, found):
                out[i] = hits[:queries[i].k]
        return self._hits(out)

    @torch.no_grad()
    def image(self, images: ImageInput | Sequence[ImageInput], k: int = 10,
              categories: str | Sequence[str] | None = None) -> list[list[SearchHit]]:
        categories = self._check(k, categories)
        q = self.model.encode_image(images).image_embeds.float().cpu().numpy()  # (B, Q, E)
        return self._hits(self.index.search(q, k, reduce=Reduce.MEAN, categories=categories))

    @torch.no_grad()
    def image_to_text(self, images: ImageInput | Sequence[ImageInput], k: int = 10,
                      categories: str | Sequence[str] | None = None) -> list[list[SearchHit]]:
        """Items whose gallery caption best describes the photo."""
        categories = self._check(k, categories)
        q = self.model.encode_image(images).image_embeds.float().cpu().numpy()  # (B, Q, E)
        return self._hits(self.index.search(q, k, target="captions", categories=categories))

    @torch.no_grad()
    def composed(self, images: ImageInput | Sequence[ImageInput], texts: str | Sequence[str], k: int = 10, *,
                 rerank: bool = True, categories: str | Sequence[str] | None = None) -> list[list[SearchHit]]:
        """Stages: 1. composed query  2. candidates by image score  3. caption re-ranking (optional)."""
        categories = self._check(k, categories)
        images, texts = as_batch(images), as_batch(texts)
        if len(images) != len(texts) or not texts:
            raise DataError(f"a composed search needs one text per image, got {len(images)} images, {len(texts)} texts")
        if any(not t.strip() for t in texts):
            raise DataError("a composed search needs a non-empty modification text")
        if rerank and not self.index.has_captions:
            raise DataError(f"{self.index.root}: caption re-ranking needs gallery captions (the index was built "
                            "without them); search without re-ranking")
        # 1. the reference image fused with the modification text
        q = self.model.encode_composed(images, texts).composed_embeds.float().cpu().numpy()  # (B, E)
        # 2. candidates by the image score alone
        depth = max(k, self.config.rerank_depth) if rerank else k
        candidates = self.index.search(q[:, None, :], depth, categories=categories)
        if not rerank:
            return self._hits(candidates)
        # 3. image score + weight * caption score over the candidates
        out = []
        for b, hits in enumerate(candidates):
            if not hits:
                out.append([])
                continue
            image_scores = np.array([s for _, s in hits])  # (R,)
            caption_scores = self.index.caption_scores(q[b:b + 1], [it.item_id for it, _ in hits])[0]  # (R,)
            combined = combine_scores(image_scores, caption_scores, self.config.caption_weight)  # (R,)
            order = np.argsort(-combined, kind="stable")[:k]
            out.append([SearchHit.of(hits[i][0], combined[i]) for i in order])
        return out

    def composed_from_item(self, item_id: str, text: str, k: int = 10, *, rerank: bool = True,
                           categories: str | Sequence[str] | None = None) -> list[SearchHit]:
        """"This one, but ...": a composed search whose reference is an item of the index."""
        return self.composed([self.item_image(item_id)], [text], k, rerank=rerank, categories=categories)[0]

    def classify(self, images: ImageInput | Sequence[ImageInput],
                 labels: str | Sequence[str]) -> list[list[tuple[str, float]]]:
        """Per image, (label, probability) sorted by probability (labels as in `classify_images`)."""
        return classify_images(self.model, images, labels)

    # ---- the catalog, the model's other uses and its limits, for front ends that hold only the facade

    def __len__(self) -> int:
        """Live items in the index."""
        return len(self.index)

    def __contains__(self, item_id: str) -> bool:
        return item_id in self.index

    def item(self, item_id: str) -> CatalogItem:
        """The index's record of an item (DataError when the index has no such item)."""
        return self.index.item(item_id)

    def item_image(self, item_id: str) -> Image.Image:
        return self.item(item_id).image_ref().load()

    def categories(self) -> list[str]:
        """The categories of the live items, sorted."""
        return self.index.categories()

    @property
    def fingerprint(self) -> str:
        """The model fingerprint the index was built with (this model's: checked on construction)."""
        return self.index.fingerprint

    @property
    def has_captions(self) -> bool:
        """The index has gallery captions (caption re-ranking, image -> text)."""
        return self.index.has_captions

    @property
    def max_caption_tokens(self) -> int:
        """The captioner's own cap on the new tokens of a caption."""
        return self.model.captioner.config.max_new_tokens

    @property
    def image_size(self) -> int:
        """Side in pixels of the generator's (square) pictures."""
        return int(self.model.generator.config.image_size)

    def caption(self, images: ImageInput | Sequence[ImageInput], style: str, *, max_new_tokens: int | None = None,
                max_seconds: float | None = None) -> list[str]:
        """Greedy captions in `style`; `max_new_tokens` None: the captioner's own cap; `max_seconds` cuts
        decoding short. DataError for an unknown style."""
        return self.model.caption(images, style, max_new_tokens=max_new_tokens, max_seconds=max_seconds)

    def generate(self, texts: str | Sequence[str] | None = None, images: ImageInput | Sequence[ImageInput] | None = None,
                 *, steps: int, seed: int, progress=None) -> list[Image.Image]:
        """Pictures of the generator's size from words, reference images or both, sampled with the
        model's default sampler and guidance; `progress(step, total)` is called at every step (an
        exception it raises stops the generation). DataError when neither texts nor images are given."""
        return self.model.generate(texts=texts, images=images, steps=steps, seed=seed, progress=progress)
