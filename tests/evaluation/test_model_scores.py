"""Score matrices from a model: shapes, the max-over-queries rule, and the Fashion-IQ gallery layout."""
import numpy as np
import pytest

from unifashion.data.formats import catalog, fashioniq
from unifashion.errors import DataError
from unifashion.evaluation.model_scores import cir_scores, cmr_scores, max_over_queries, mean_best_match
from unifashion.models.unified import UniFashion


@pytest.fixture(scope="module")
def tiny():
    return UniFashion.from_config("tiny")


def test_max_over_queries_by_hand():
    images = np.array([[[1.0, 0.0], [0.0, 1.0]]])  # one image, two queries
    texts = np.array([[0.6, 0.8], [-1.0, 0.0]])
    np.testing.assert_allclose(max_over_queries(images, texts), [[0.8, 0.0]])


def test_mean_best_match_by_hand():
    refs = np.array([[[1.0, 0.0], [0.0, 1.0]]])  # one reference, two query vectors
    gallery = np.array([[[0.6, 0.8], [1.0, 0.0]], [[0.0, -1.0], [-1.0, 0.0]]])  # two items, two vectors each
    # item 0: best matches 1.0 (for [1, 0]) and 0.8 (for [0, 1]) -> 0.9; item 1: 0.0 and 0.0 -> 0.0
    np.testing.assert_allclose(mean_best_match(refs, gallery), [[0.9, 0.0]])


def test_cmr_scores_match_the_model_api(tiny, small_world):
    pairs = catalog.load(small_world[0] / "catalog", split="train")[:5]
    scores = cmr_scores(tiny, pairs, batch_size=2)
    assert scores.shape == (5, 5)
    direct = tiny.similarity(tiny.encode_image([p.image.load() for p in pairs]).image_embeds,
                             tiny.encode_text([p.caption for p in pairs]).text_embeds).detach().numpy()
    np.testing.assert_allclose(scores, direct, atol=1e-5)


def test_cir_scores_keep_the_reference_in_the_gallery(tiny, small_world):
    root = small_world[0] / "fashioniq"
    category = next(c for c in fashioniq.categories(root) if fashioniq.load(root, "train", c))
    captions = fashioniq.load_image_captions(root)
    out = cir_scores(tiny, root, "train", category, captions, batch_size=4)
    gallery = fashioniq.load_image_split(root, category, "train")
    triplets = fashioniq.load(root, "train", category)
    assert out["image"].shape == out["caption"].shape == (len(triplets), len(gallery))
    assert out["text_only"].shape == out["image_only"].shape == (len(triplets), len(gallery))
    position = {n: i for i, n in enumerate(gallery)}
    for row, t in zip(out["image_only"], triplets):  # the reference itself is its own best match
        assert row.argmax() == position[t.reference_id] or np.isclose(row.max(), row[position[t.reference_id]])
    assert [gallery[i] for i in out["target_index"]] == [t.target_id for t in triplets]
    assert all(t.reference_id in gallery for t in triplets)
    with pytest.raises(DataError, match="no gallery caption"):
        cir_scores(tiny, root, "train", category, {}, batch_size=4)
