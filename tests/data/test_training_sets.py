"""Training datasets over the loaders' samples: pairs, triplets in four caption orders, batches."""
import torch

from unifashion.data.formats import catalog, fashioniq
from unifashion.data.training_sets import (ComposedTriplets, ImageTextPairs, collate_items, modification_text)


def test_modification_text_follows_the_fashioniq_protocol_and_the_four_training_orders():
    caps = ["is red.", " has long sleeves?"]
    assert modification_text(caps, 0) == "Is red and has long sleeves"  # the evaluation form
    assert [modification_text(caps, o) for o in range(1, 4)] == ["Has long sleeves and is red", "Is red",
                                                                  "Has long sleeves"]


def test_pairs_and_triplets_from_a_synthetic_world(small_world):
    root = small_world[0]
    pairs = ImageTextPairs(catalog.load(root / "catalog", split="train"))
    batch = collate_items([pairs[i] for i in range(4)])
    assert len(batch["image"]) == 4 and batch["product_id"].dtype == torch.long
    # views of one product share its index
    same = [i for i in range(len(pairs)) if pairs.samples[i].product_id == pairs.samples[0].product_id]
    assert {pairs[i].product_id for i in same} == {pairs[0].product_id}

    triplets = fashioniq.load(root / "fashioniq", "train")
    data = ComposedTriplets(triplets, fashioniq.load_image_captions(root / "fashioniq"))
    assert len(data) == 4 * len(triplets)
    items = [data[i] for i in range(4)]
    assert len({it.modification for it in items}) >= 3  # the four orders of the first triplet
    assert items[0].modification == modification_text(triplets[0].modifications, 0)
    assert items[0].target_caption and items[0].reference.size == items[0].target.size
    batch = collate_items(items)
    assert batch["target_id"].tolist() == [items[0].target_id] * 4
