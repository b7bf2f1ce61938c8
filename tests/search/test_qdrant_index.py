"""The Qdrant backend gives the built-in exact index's answers: same top-k ids, scores within 1e-4, for
every search kind with and without a category filter — on qdrant-client's local mode and on
qdrant-edge, through the first stage and without it — and its failures are one line each."""
import numpy as np
import pytest

from unifashion.errors import DataError
from unifashion.search.catalog_index import CatalogIndex, CatalogItem
from unifashion.search.engine import CatalogSearch
from unifashion.search.index_folder import open_index
from unifashion.search.qdrant_index import QdrantIndex, QdrantLocation, QdrantSettings
from unifashion.search.vector_index import AnnConfig, Reduce

N, Q, E = 240, 32, 64
CATEGORIES = ("dresses", "tops", "shoes", "bags")


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def catalog():
    """Items whose query vectors cluster around an item direction (like real ones, not isotropic noise)."""
    rng = np.random.default_rng(7)
    centre = rng.standard_normal((N, 1, E))
    images = unit(centre + 0.6 * rng.standard_normal((N, Q, E)))  # (N, Q, E)
    captions = unit(centre[:, 0] + 0.5 * rng.standard_normal((N, E)))  # (N, E)
    items = [CatalogItem(item_id=f"item-{i:03d}", product_id=f"p{i // 2}", category=CATEGORIES[i % 4],
                         subcategory="x", title=f"title {i}", caption=f"caption {i}", image_path=f"/img/{i}.png")
             for i in range(N)]
    return items, images, captions, rng


@pytest.fixture(scope="module")
def exact(catalog, tmp_path_factory):
    items, images, captions, _ = catalog
    index = CatalogIndex.create(tmp_path_factory.mktemp("builtin") / "index", fingerprint="f" * 64,
                                model_source="test", num_queries=Q, embed_dim=E, ann=AnnConfig())
    index.add(items, images, captions, approximate=False)
    return index


def qdrant_index(root, location, catalog, settings=QdrantSettings()) -> QdrantIndex:
    items, images, captions, _ = catalog
    index = QdrantIndex.start(root, location, fingerprint="f" * 64, model_source="test", num_queries=Q,
                              embed_dim=E, captions=True, settings=settings)
    index.upsert(items, images, captions)
    index.finish()
    return index


BACKENDS = {
    "local": lambda tmp: QdrantLocation(path=str(tmp / "qdrant"), collection="catalog"),
    "edge": lambda tmp: QdrantLocation(edge=str(tmp / "shard")),
}
FIRST_STAGE = {"exact": QdrantSettings(), "first stage": QdrantSettings(exact_below=1, candidates=N)}


@pytest.fixture(scope="module", params=[(b, s) for b in BACKENDS for s in FIRST_STAGE], ids=lambda p: f"{p[0]}-{p[1]}")
def backend(request, catalog, tmp_path_factory):
    name, stage = request.param
    tmp = tmp_path_factory.mktemp(f"{name}-{stage.replace(' ', '-')}")
    return qdrant_index(tmp / "index", BACKENDS[name](tmp), catalog, FIRST_STAGE[stage])


def assert_same(expected, found, k):
    for want, got in zip(expected, found, strict=True):
        assert len(got) == len(want) == k
        assert [it.item_id for it, _ in got] == [it.item_id for it, _ in want]
        np.testing.assert_allclose([s for _, s in got], [s for _, s in want], atol=1e-4)
        assert got[0][0] == want[0][0]  # the whole item comes back from the payload


@pytest.mark.parametrize("categories", [None, ("shoes",), ("dresses", "bags")])
def test_every_search_kind_equals_the_exact_index(exact, backend, catalog, categories):
    rng = catalog[3]
    k = 10
    text = unit(rng.standard_normal((3, 1, E)))  # text / composed queries: one vector
    photo = unit(catalog[1][[5, 77]] + 0.3 * rng.standard_normal((2, Q, E)))  # image queries: 32 vectors
    for queries, kind in ((text, dict(reduce=Reduce.MAX)), (photo, dict(reduce=Reduce.MEAN)),
                          (photo, dict(target="captions", reduce=Reduce.MAX))):
        want = exact.search(queries, k, categories=categories, **kind)
        got = backend.search(queries, k, categories=categories, **kind)
        assert_same(want, got, k)
        if categories:
            assert {it.category for hits in got for it, _ in hits} <= set(categories)
    ids = [it.item_id for it, _ in exact.search(text, 20)[0]]
    np.testing.assert_allclose(backend.caption_scores(text[:, 0], ids), exact.caption_scores(text[:, 0], ids),
                               atol=1e-5)


def test_the_catalog_facts_match(exact, backend):
    assert len(backend) == len(exact) == N
    assert backend.categories() == exact.categories()
    assert [it.item_id for it in backend.items()] and {it.item_id for it in backend.items()} == {
        it.item_id for it in exact.items()}
    assert backend.item("item-007") == exact.item("item-007") and "item-007" in backend and "nope" not in backend
    with pytest.raises(DataError, match="no item 'nope'"):
        backend.item("nope")


def test_a_reopened_folder_is_the_same_index_and_changes_show_at_once(catalog, tmp_path):
    index = qdrant_index(tmp_path / "index", BACKENDS["edge"](tmp_path), catalog)
    index.collection.close()
    again = open_index(tmp_path / "index")
    assert isinstance(again, QdrantIndex) and len(again) == N
    again.remove(["item-000", "item-001"])
    assert len(again) == N - 2 and "item-000" not in again
    with pytest.raises(DataError, match="no item 'item-000'"):
        again.remove(["item-000"])
    items, images, captions, _ = catalog
    with pytest.raises(DataError, match="already in the index"):
        again.add(items[2:3], images[2:3], captions[2:3])
    again.add(items[:1], images[:1], captions[:1])
    assert len(again) == N - 1 and again.search(images[:1], 1, reduce=Reduce.MEAN)[0][0][0].item_id == "item-000"
    assert open_index(tmp_path / "index").manifest["count"] == N - 1


def test_an_interrupted_build_resumes_without_duplicates(catalog, tmp_path, monkeypatch):
    items, images, captions, _ = catalog
    location = BACKENDS["local"](tmp_path)
    index = QdrantIndex.start(tmp_path / "index", location, fingerprint="f" * 64, model_source="test",
                              num_queries=Q, embed_dim=E, captions=True)
    index.upsert(items[:100], images[:100], captions[:100])  # then the process dies: no finish()
    with pytest.raises(DataError, match="did not finish; run `index build` again"):
        QdrantIndex.open(tmp_path / "index", index.manifest)
    again = QdrantIndex.start(tmp_path / "index", location, fingerprint="f" * 64, model_source="test",
                              num_queries=Q, embed_dim=E, captions=True)
    assert len(again) == 100  # the points already written are kept
    again.upsert(items, images, captions)
    again.finish()
    assert len(open_index(tmp_path / "index")) == N


def test_failures_are_one_line(catalog, tmp_path):
    with pytest.raises(DataError, match="exactly one of"):
        QdrantLocation(url="http://x", path="/y")
    with pytest.raises(DataError, match=r"Qdrant at http://127\.0\.0\.1:9: cannot connect"):
        QdrantLocation(url="http://127.0.0.1:9").connect()
    index = qdrant_index(tmp_path / "a", BACKENDS["local"](tmp_path), catalog)
    with pytest.raises(DataError, match="already holds a finished index; use --overwrite"):
        qdrant_index(tmp_path / "b", BACKENDS["local"](tmp_path), catalog)
    with pytest.raises(DataError, match="already holds an index of another model"):
        QdrantIndex.start(tmp_path / "c", BACKENDS["local"](tmp_path), fingerprint="0" * 64, model_source="x",
                          num_queries=Q, embed_dim=E, captions=True)
    index.collection.client.update_collection("catalog", metadata={"unifashion": {"fingerprint": "0" * 64,
                                                                                   "complete": True}})
    with pytest.raises(DataError, match="was built by another model"):
        open_index(tmp_path / "a")
    index.collection.client.delete_collection("catalog")
    with pytest.raises(DataError, match="does not exist"):
        open_index(tmp_path / "a")
    with pytest.raises(DataError, match=r"edge shard .*: missing"):
        QdrantLocation(edge=str(tmp_path / "none")).connect()


def test_the_search_engine_answers_the_same_on_qdrant(service_search, tmp_path):
    """Every CatalogSearch kind, with the model's own vectors: text, image, image -> text, composed with
    and without caption re-ranking, filtered."""
    builtin = service_search.index
    items = list(builtin.items())
    images = np.stack([builtin.image_vectors(it.item_id) for it in items])  # (n, Q, E)
    captions = np.stack([builtin.caption_scores(np.eye(builtin.embed_dim, dtype=np.float32), [it.item_id])[:, 0]
                         for it in items])  # (n, E): the caption vectors, read through their scores
    index = QdrantIndex.start(tmp_path / "index", QdrantLocation(path=str(tmp_path / "q")),
                              fingerprint=builtin.fingerprint, model_source="quickstart",
                              num_queries=builtin.num_queries, embed_dim=builtin.embed_dim, captions=True)
    index.upsert(items, images, captions)
    index.finish()
    on_qdrant = CatalogSearch(service_search.model, index, service_search.config)
    photo = service_search.item_image(items[3].item_id)
    category = items[3].category
    for run in (lambda s: s.text(["red floral dress", "navy sneakers"], k=8),
                lambda s: s.text(["a coat"], k=5, categories=category),
                lambda s: s.image([photo], k=8),
                lambda s: s.image([photo], k=4, categories=[category]),
                lambda s: s.image_to_text([photo], k=8),
                lambda s: s.composed([photo], ["in red"], k=8),
                lambda s: s.composed([photo], ["in red"], k=8, rerank=False),
                lambda s: s.composed([photo], ["longer"], k=3, categories=category)):
        for want, got in zip(run(service_search), run(on_qdrant), strict=True):
            assert [h.item_id for h in got] == [h.item_id for h in want]
            np.testing.assert_allclose([h.score for h in got], [h.score for h in want], atol=1e-4)
