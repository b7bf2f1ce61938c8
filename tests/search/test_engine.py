"""The search facade (CatalogSearch) on the small world's 24-item index (`service_search`): every search
kind ranks by its own score, filters and k behave, the composed re-ranking is image score + caption
score, classification is a distribution, the catalog/model methods front ends use answer from the
index and the model, and bad input raises the library's DataError."""
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from unifashion.errors import DataError
from unifashion.search import engine
from unifashion.search.catalog_index import model_fingerprint
from unifashion.search.engine import MAX_K, CatalogSearch, TextQuery


@pytest.fixture(scope="module")
def items(service_search):
    return list(service_search.index.items())


@pytest.fixture(scope="module")
def first(service_search, items):
    """An item of the index and its picture."""
    return items[0], service_search.item_image(items[0].item_id)


def ids(hits) -> list[str]:
    return [h.item_id for h in hits]


def scores(hits) -> list[float]:
    return [h.score for h in hits]


def assert_ranked(hits, k: int, indexed: set[str]) -> None:
    """k distinct indexed items, best score first."""
    assert len(hits) == k and len(set(ids(hits))) == k and set(ids(hits)) <= indexed
    assert scores(hits) == sorted(scores(hits), reverse=True)


# ---- searches ------------------------------------------------------------------------------------

def test_text_search_ranks_by_score_and_its_top_k_is_the_full_rankings_head(service_search, items):
    indexed = {it.item_id for it in items}
    found = service_search.text(["red floral dress", "navy sneakers"], k=5)
    assert len(found) == 2
    for hits in found:
        assert_ranked(hits, 5, indexed)
        assert len(set(scores(hits))) > 1  # the pretrained backbone tells items apart
    assert ids(found[0]) != ids(found[1])
    everything = service_search.text(["red floral dress"], k=len(items))[0]
    assert_ranked(everything, len(items), indexed)
    assert ids(everything[:5]) == ids(found[0])
    np.testing.assert_allclose(scores(everything[:5]), scores(found[0]), atol=1e-6)
    hit = found[0][0]
    item = service_search.item(hit.item_id)
    assert (hit.title, hit.category, hit.subcategory, hit.caption, hit.product_id) == (
        item.title, item.category, item.subcategory, item.caption, item.product_id)


def test_a_category_filter_keeps_exactly_that_category(service_search, items):
    category = service_search.categories()[0]
    expected = {it.item_id for it in items if it.category == category}
    hits = service_search.text(["something to wear"], k=len(items), categories=[category])[0]
    assert set(ids(hits)) == expected and {h.category for h in hits} == {category}
    image_hits = service_search.image([service_search.item_image(items[0].item_id)], k=len(items),
                                      categories=[category])[0]
    assert set(ids(image_hits)) == expected


def test_text_queries_answer_each_query_with_its_own_k_and_filter(service_search, items):
    category = Counter(it.category for it in items).most_common(1)[0][0]  # at least 2 items
    together = service_search.text_queries([TextQuery("a red dress", 3), TextQuery("a coat", 2, (category,))])
    assert [len(hits) for hits in together] == [3, 2]
    assert ids(together[0]) == ids(service_search.text(["a red dress"], 3)[0])
    assert {h.category for h in together[1]} == {category}


def test_image_search_finds_the_item_itself_first(service_search, items, first):
    item, picture = first
    hits = service_search.image([picture], k=4)[0]
    assert_ranked(hits, 4, {it.item_id for it in items})
    assert hits[0].item_id == item.item_id
    by_path = service_search.image([item.image_path], k=4)[0]  # a path is loaded like the picture
    assert ids(by_path) == ids(hits)


def test_image_to_text_ranks_items_by_their_gallery_captions(service_search, items, first):
    hits = service_search.image_to_text([first[1]], k=6)[0]
    assert_ranked(hits, 6, {it.item_id for it in items})
    assert all(h.caption for h in hits)
    queries = service_search.model.encode_image([first[1]]).image_embeds.detach().float().numpy()[0]  # (Q, E)
    best_query = service_search.index.caption_scores(queries, ids(hits)).max(axis=0)  # (6,) each caption's best query
    np.testing.assert_allclose(scores(hits), best_query, atol=1e-4)


def test_composed_rerank_adds_the_caption_score_to_the_image_score(service_search, items, first):
    item, picture = first
    plain = service_search.composed([picture], ["in bright red"], k=len(items), rerank=False)[0]
    assert_ranked(plain, len(items), {it.item_id for it in items})
    reranked = service_search.composed([picture], ["in bright red"], k=5)[0]
    assert scores(reranked) == sorted(scores(reranked), reverse=True)
    model, index = service_search.model, service_search.index
    query = model.encode_composed([picture], ["in bright red"]).composed_embeds.detach().float().numpy()  # (1, E)
    image_score = dict(zip(ids(plain), scores(plain)))
    caption_score = dict(zip(ids(plain), index.caption_scores(query, ids(plain))[0]))
    combined = {i: image_score[i] + caption_score[i] for i in ids(plain)}
    best = sorted(combined, key=lambda i: -combined[i])[:5]  # the re-ranking depth covers every item here
    assert ids(reranked) == best
    np.testing.assert_allclose(scores(reranked), [combined[i] for i in best], atol=1e-5)
    from_item = service_search.composed_from_item(item.item_id, "in bright red", k=5)
    assert ids(from_item) == ids(reranked)


def test_classify_gives_a_sorted_distribution_over_the_stripped_labels(service_search, first):
    (labels,) = service_search.classify([first[1]], [" dress", "sneakers ", "", "bag"])
    assert {label for label, _ in labels} == {"dress", "sneakers", "bag"}
    probabilities = [p for _, p in labels]
    assert probabilities == sorted(probabilities, reverse=True) and all(0 <= p <= 1 for p in probabilities)
    assert sum(probabilities) == pytest.approx(1.0, abs=1e-5)


def test_classify_drops_repeated_labels_and_splits_a_string_of_them(service_search, first):
    (row,) = service_search.classify([first[1]], ["dress", "dress", " coat"])  # `--labels dress,dress,coat`
    assert sorted(label for label, _ in row) == ["coat", "dress"]
    assert sum(p for _, p in row) == pytest.approx(1.0, abs=1e-5)
    (split,) = service_search.classify(first[1], "dress,coat")  # one picture, a string of labels
    assert dict(split) == pytest.approx(dict(row))


def test_a_single_text_or_picture_is_one_query_not_a_sequence_of_characters(service_search, items, first, tmp_path):
    item, picture = first
    path = tmp_path / "photo.png"
    picture.save(path)
    assert ids(service_search.text("red floral dress", k=3)[0]) == ids(service_search.text(["red floral dress"], k=3)[0])
    assert len(service_search.text("red floral dress", k=3)) == 1
    category = item.category
    assert {h.category for h in service_search.text("a dress", k=3, categories=category)[0]} == {category}
    for one in (str(path), path, picture):
        assert ids(service_search.image(one, k=3)[0]) == ids(service_search.image([picture], k=3)[0])
    assert len(service_search.image_to_text(str(path), k=2)) == 1
    assert ids(service_search.composed(str(path), "in bright red", k=3, rerank=False)[0]) == ids(
        service_search.composed([picture], ["in bright red"], k=3, rerank=False)[0])
    assert len(service_search.caption(str(path), "short", max_new_tokens=3)) == 1
    assert len(service_search.generate("a red dress", steps=1, seed=0)) == 1


# ---- the catalog and the model, for front ends ---------------------------------------------------

def test_catalog_lookups_answer_from_the_index(service_search, items):
    assert len(service_search) == len(items) == 24
    assert items[0].item_id in service_search and "no-such-item" not in service_search
    assert service_search.item(items[3].item_id) == items[3]
    assert service_search.categories() == sorted({it.category for it in items})
    assert service_search.fingerprint == model_fingerprint(service_search.model)
    assert service_search.has_captions is True
    picture = service_search.item_image(items[0].item_id)
    assert isinstance(picture, Image.Image) and picture.size == (64, 64)


def test_caption_hands_its_caps_to_the_model(service_search, first, monkeypatch):
    assert service_search.max_caption_tokens == 6  # the fixture's captioner cap
    calls = []
    real = service_search.model.caption

    def spy(images, style, **kwargs):
        calls.append((len(images), style, kwargs))
        return real(images, style, **kwargs)

    monkeypatch.setattr(service_search.model, "caption", spy)
    texts = service_search.caption([first[1], first[1]], "short", max_new_tokens=2, max_seconds=30.0)
    assert len(texts) == 2 and all(isinstance(t, str) for t in texts) and texts[0] == texts[1]  # greedy
    assert calls == [(2, "short", {"max_new_tokens": 2, "max_seconds": 30.0})]
    service_search.caption([first[1]], "short")
    assert calls[-1][2] == {"max_new_tokens": None, "max_seconds": None}  # None: the model's own caps


def test_generate_draws_pictures_of_the_image_size_reproducibly(service_search):
    size = service_search.image_size
    assert size == service_search.model.generator.config.image_size
    steps = []
    one = service_search.generate(texts=["a navy striped shirt"], steps=2, seed=3,
                                  progress=lambda step, total: steps.append((step, total)))
    assert steps == [(1, 2), (2, 2)]
    assert len(one) == 1 and one[0].size == (size, size)
    again = service_search.generate(texts=["a navy striped shirt"], steps=2, seed=3)[0]
    assert np.array_equal(np.asarray(one[0]), np.asarray(again))  # the seed decides the noise

    class Stop(Exception):
        pass

    def stop(step: int, total: int) -> None:
        raise Stop(step)

    with pytest.raises(Stop):  # a progress callback's exception stops the generation (the service's deadline)
        service_search.generate(texts=["a coat"], steps=3, seed=0, progress=stop)


# ---- bad input -----------------------------------------------------------------------------------

def test_bad_searches_raise_data_errors(service_search, first, monkeypatch):
    picture = first[1]
    for k in (0, MAX_K + 1):
        with pytest.raises(DataError, match="k must be between"):
            service_search.text(["a dress"], k=k)
        with pytest.raises(DataError, match="k must be between"):
            service_search.image([picture], k=k)
    with pytest.raises(DataError, match="unknown category 'spacesuits'"):
        service_search.text(["a dress"], categories=["spacesuits"])
    with pytest.raises(DataError, match="unknown category"):
        service_search.image_to_text([picture], categories=["spacesuits"])
    for texts in (["  "], []):
        with pytest.raises(DataError, match="non-empty text"):
            service_search.text(texts)
    with pytest.raises(DataError, match="one text per image"):
        service_search.composed([picture, picture], ["in red"])
    with pytest.raises(DataError, match="non-empty modification"):
        service_search.composed([picture], [" "])
    with pytest.raises(DataError, match="at least one label"):
        service_search.classify([picture], [" ", ""])
    with pytest.raises(DataError, match="no item 'nope'"):
        service_search.item("nope")
    with pytest.raises(DataError, match="no item"):
        service_search.composed_from_item("nope", "in red")
    with pytest.raises(DataError, match="caption style"):
        service_search.caption([picture], "poetic")
    with pytest.raises(DataError, match="needs a text, an image or both"):
        service_search.generate(steps=1, seed=0)
    monkeypatch.setattr(type(service_search.index), "has_captions", property(lambda index: False))
    with pytest.raises(DataError, match="re-ranking needs gallery captions"):
        service_search.composed([picture], ["in red"])
    assert service_search.composed([picture], ["in red"], k=2, rerank=False)[0]  # without re-ranking it works


def test_a_model_and_an_index_that_do_not_belong_together_are_refused(service_search, monkeypatch):
    monkeypatch.setattr(engine, "model_fingerprint", lambda model: "0" * 64)
    with pytest.raises(DataError, match="built with another model"):
        CatalogSearch(service_search.model, service_search.index)
