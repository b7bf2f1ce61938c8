"""How often the approximate index's top-10 equals exact max-over-queries scoring, on a real catalog.

    python scripts/index_agreement.py MODEL DATA [--queries 500] [--k 10] [--out FILE.json]

Embeds DATA's catalog once with MODEL, builds the same items into an exact and a forced-approximate
(IVF-PQ candidates + exact re-scoring) index at the default AnnConfig, and runs the catalog's own
texts (text -> image) and images (image -> image, composed with a colour change) through both.
Prints, per search kind and search-time setting (the default first), the share of queries whose
top-k set is identical to exact scoring's and the mean overlap.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch

from unifashion.search.index_build import embed_items, items_from_data
from unifashion.search.catalog_index import CatalogIndex, model_fingerprint
from unifashion.search.vector_index import AnnConfig, Reduce
from unifashion.models.unified import UniFashion


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("data", type=Path)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    model = UniFashion.from_pretrained(args.model)
    items = items_from_data(args.data)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        items, vectors, captions = embed_items(model, items, Path(tmp) / "work", captions=False)
        embed_s = time.perf_counter() - start
        indexes = {}
        for name, approximate in (("exact", False), ("approximate", True)):
            index = CatalogIndex.create(Path(tmp) / name, fingerprint=model_fingerprint(model), model_source=str(args.model),
                                        num_queries=vectors.shape[1], embed_dim=vectors.shape[2])
            t0 = time.perf_counter()
            index.add(items, vectors, None, approximate=approximate)
            indexes[name] = (index, time.perf_counter() - t0)

        rng = np.random.default_rng(0)
        pick = rng.choice(len(items), size=min(args.queries, len(items)), replace=False)
        with torch.no_grad():
            texts = model.encode_text([items[i].text or items[i].title for i in pick]).text_embeds.float().numpy()
            photos = [items[i].image_ref().load() for i in pick[:100]]
            image_q = model.encode_image(photos).image_embeds.float().numpy()
            composed = model.encode_composed(photos, ["is red"] * len(photos)).composed_embeds.float().numpy()
        kinds = {"text": (texts[:, None, :], Reduce.MAX), "image": (image_q, Reduce.MEAN),
                 "composed": (composed[:, None, :], Reduce.MAX)}
        report = {"model": str(args.model), "data": str(args.data), "items": len(items), "k": args.k,
                  "ann": asdict(AnnConfig()),
                  "embed_seconds": round(embed_s, 1),
                  "build_seconds": {n: round(s, 2) for n, (_, s) in indexes.items()}, "kinds": {}}
        approximate_segment = indexes["approximate"][0].segments[0]
        default = approximate_segment.images.config
        settings = [("default", default)] + [(f"nprobe={n},candidates={c}", replace(default, nprobe=n, candidates=c))
                                             for n, c in ((16, 100), (64, 200), (32, 400), (64, 400))]
        for kind, (q, reduce) in kinds.items():
            t0 = time.perf_counter()
            exact = [[it.item_id for it, _ in hits] for hits in indexes["exact"][0].search(q, args.k, reduce=reduce)]
            rows = {"exact_ms_per_query": round(1000 * (time.perf_counter() - t0) / len(q), 2), "queries": len(q)}
            for label, config in settings:
                approximate_segment.images.config = config  # search-time settings: no rebuild needed
                t0 = time.perf_counter()
                top = [[it.item_id for it, _ in hits]
                       for hits in indexes["approximate"][0].search(q, args.k, reduce=reduce)]
                ms = round(1000 * (time.perf_counter() - t0) / len(q), 2)
                same = [set(a) == set(b) for a, b in zip(top, exact)]
                overlap = [len(set(a) & set(b)) / args.k for a, b in zip(top, exact)]
                rows[label] = {"identical_topk_share": round(float(np.mean(same)), 4),
                               "mean_overlap": round(float(np.mean(overlap)), 4), "ms_per_query": ms}
            approximate_segment.images.config = default
            report["kinds"][kind] = rows
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
