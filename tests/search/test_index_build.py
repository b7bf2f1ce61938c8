"""Building an index: the items of a folder of images or of a dataset, and an index that holds what the
model embedded and said (a stand-in model whose outputs are known, so the checks are exact)."""
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from unifashion.errors import DataError
from unifashion.search.catalog_index import CatalogIndex
from unifashion.search.index_build import build_index, items_from_data, items_from_images

COLOURS = {"red": (1.0, 0.0, 0.0), "green": (0.0, 1.0, 0.0), "blue": (0.0, 0.0, 1.0)}


@dataclass(frozen=True)
class _Settings:
    width: int = 3


class ColourModel:
    """Stands in for UniFashion where a build calls it: an image's query vectors are the one-hot of its
    strongest channel (2 copies), its caption names that colour, a text's vector is the colour it names."""

    def __init__(self):
        self.config = SimpleNamespace(image_encoder=_Settings(), qformer=_Settings())
        self.image_encoder = torch.nn.Identity()  # no weights: the fingerprint is the configs'
        self.qformer = torch.nn.Identity()
        self.qformer.config = SimpleNamespace(num_query_tokens=2, embed_dim=3)

    @staticmethod
    def _colour(image) -> str:
        return list(COLOURS)[int(np.asarray(image.convert("RGB")).reshape(-1, 3).mean(axis=0).argmax())]

    def encode_image(self, images):
        one_hot = torch.tensor([COLOURS[self._colour(im)] for im in images])  # (B, 3)
        return SimpleNamespace(image_embeds=one_hot[:, None, :].repeat(1, 2, 1))  # (B, 2, 3)

    def caption(self, images, style, max_new_tokens=None):
        return [f"a {self._colour(im)} shirt" for im in images]

    def encode_text(self, texts):
        return SimpleNamespace(text_embeds=torch.tensor(
            [next((COLOURS[w] for w in t.split() if w in COLOURS), (0.0, 0.0, 0.0)) for t in texts]))


def _picture(path, rgb):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), rgb).save(path)


def test_items_from_images_one_per_file_named_by_its_path(tmp_path):
    _picture(tmp_path / "shirts" / "x.png", (200, 0, 0))
    _picture(tmp_path / "shoes" / "kids" / "y.jpg", (0, 200, 0))
    _picture(tmp_path / "top.png", (0, 0, 200))
    (tmp_path / "notes.txt").write_text("not an image")
    items = items_from_images(tmp_path)
    assert [it.item_id for it in items] == ["shirts/x", "shoes/kids/y", "top"]
    assert [it.category for it in items] == ["shirts", "shoes/kids", ""]
    assert [it.title for it in items] == ["x", "y", "top"]
    assert items[0].image_path == str((tmp_path / "shirts" / "x.png").resolve())
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no image files"):
        items_from_images(tmp_path / "empty")
    with pytest.raises(DataError, match="not a folder of images"):
        items_from_images(tmp_path / "top.png")


def test_an_index_holds_what_the_model_embedded_and_said(tmp_path):
    for name, rgb in (("r", (200, 10, 10)), ("g", (10, 200, 10)), ("b", (10, 10, 200))):
        _picture(tmp_path / "images" / f"{name}.png", rgb)
    items = items_from_images(tmp_path / "images")
    index = build_index(ColourModel(), items, tmp_path / "idx", model_source="colours")
    assert not (tmp_path / "idx" / ".build").exists()  # the work folder leaves with the finished build
    reopened = CatalogIndex.open(tmp_path / "idx")
    assert len(reopened) == 3 and index.manifest["model"]["source"] == "colours"
    assert {it.item_id: it.caption for it in reopened.items()} == {"b": "a blue shirt", "g": "a green shirt",
                                                                  "r": "a red shirt"}
    green = np.array([[[0.0, 1.0, 0.0]]], dtype=np.float32)  # (1, 1, E)
    hits = reopened.search(green, 3)[0]
    assert hits[0][0].item_id == "g" and hits[0][1] == 1.0 and [s for _, s in hits[1:]] == [0.0, 0.0]
    by_caption = reopened.search(green, 1, target="captions")[0]
    assert by_caption[0][0].item_id == "g" and by_caption[0][1] == 1.0
    np.testing.assert_array_equal(reopened.caption_scores(green[:, 0], ["r", "g", "b"]), [[0.0, 1.0, 0.0]])
    with pytest.raises(DataError, match="an index already exists"):
        build_index(ColourModel(), items, tmp_path / "idx", model_source="colours")
    with pytest.raises(DataError, match="no items to index"):
        build_index(ColourModel(), [], tmp_path / "other", model_source="colours")


def test_items_from_data_one_item_per_image_of_the_chosen_splits(small_world):
    from unifashion.data.formats import catalog

    world = small_world[0]
    test_ids = list(dict.fromkeys(p.item_id for p in catalog.load(world / "catalog", split="test")))
    assert [it.item_id for it in items_from_data(world, "test")] == test_ids
    every = items_from_data(world)
    assert len(every) == len({it.item_id for it in every}) > len(test_ids)
    assert set(test_ids) < {it.item_id for it in every}
    assert all(it.caption == "" and it.text for it in every)  # the data's own text; no gallery caption yet


def test_every_decodable_format_is_an_image_file_and_other_files_are_listed_as_skipped(tmp_path):
    from unifashion.data.samples import IMAGE_FORMATS
    from unifashion.search.index_build import image_suffixes

    registered = Image.registered_extensions()
    assert {registered[s] for s in image_suffixes()} == set(IMAGE_FORMATS)  # one suffix list, from the formats
    for name, fmt in (("a.tiff", "TIFF"), ("b.gif", "GIF"), ("c.webp", "WEBP"), ("d.bmp", "BMP"), ("e.TIF", "TIFF")):
        Image.new("RGB", (8, 8), (200, 0, 0)).save(tmp_path / name, format=fmt)
    (tmp_path / "notes.txt").write_text("not an image")
    skipped = []
    items = items_from_images(tmp_path, skipped=skipped)
    assert [it.item_id for it in items] == ["a", "b", "c", "d", "e"]
    assert skipped == [{"item": str(tmp_path / "notes.txt"), "reason": "not an image file (suffix '.txt')"}]


def test_two_files_of_one_stem_are_refused_naming_both_before_anything_is_embedded(tmp_path):
    _picture(tmp_path / "images" / "a.png", (200, 10, 10))
    _picture(tmp_path / "images" / "a.jpg", (10, 200, 10))
    _picture(tmp_path / "images" / "b.png", (10, 10, 200))
    with pytest.raises(DataError, match=r"a\.jpg and .*a\.png would both be item 'a'"):
        items_from_images(tmp_path / "images")
    skipped = []
    items = items_from_images(tmp_path / "images", skip_bad=True, skipped=skipped)
    assert [it.image_path for it in items] == [str((tmp_path / "images" / n).resolve()) for n in ("a.jpg", "b.png")]
    assert skipped[0]["item"] == str(tmp_path / "images" / "a.png")
    with pytest.raises(DataError, match="1 repeated item id.*'a'"):  # items from elsewhere: checked in the build
        build_index(ColourModel(), [items[0], items[0], items[1]], tmp_path / "idx", model_source="colours")
    assert not (tmp_path / "idx").exists()  # nothing embedded, nothing left behind


def test_adding_items_already_in_the_index_is_refused_naming_them_before_embedding(tmp_path, monkeypatch):
    from unifashion.search import index_build

    for i in range(8):
        _picture(tmp_path / "images" / f"p{i}.png", (200, 10 * i, 10))
    items = items_from_images(tmp_path / "images")
    index = build_index(ColourModel(), items, tmp_path / "idx", model_source="colours")
    monkeypatch.setattr(index_build, "embed_items", lambda *a, **k: pytest.fail("embedded before refusing"))
    with pytest.raises(DataError, match=r"8 of the 8 items are already in the index \('p0', 'p1', 'p2', 'p3', "
                                        r"'p4' and 3 more\); use --replace"):
        index_build.add_to_index(ColourModel(), index, items)
    assert not (tmp_path / "idx" / ".build").exists()
