"""Property tests (hypothesis): format readers give back what the writers wrote and raise nothing but
DataError on arbitrary input; recall@K behaves as its definition says; the vector index's exact search
equals brute force and its approximate results are well formed. Small example counts keep the module
to seconds."""
from __future__ import annotations

import json
import shutil
import string
import tempfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from unifashion.data.formats import catalog, fashion200k, fashiongen, fashioniq, vitonhd
from unifashion.data.formats.detect import summarize
from unifashion.errors import DataError
from unifashion.evaluation.metrics import recall_at_k
from unifashion.search.vector_index import AnnConfig, MultiVectorIndex, Reduce

FIX = Path(__file__).resolve().parents[1] / "fixtures"
# derandomize: the same examples on every run (a suite that passes keeps passing); raise max_examples
# locally to explore further.
FAST = settings(max_examples=15, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow])

# Text without lone surrogates (which no UTF-8 file can hold); any other code point, controls included.
any_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)
line_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r\t"), min_size=1,
                    max_size=30).filter(lambda s: s.strip() == s and s.strip())
name = st.text(string.ascii_letters + string.digits + "-", min_size=1, max_size=10)
word = st.text(string.ascii_lowercase, min_size=1, max_size=8)


def _tiny_image(seed: int) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (4, 4, 3), dtype=np.uint8))


def _fresh(tag: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"prop-{tag}-"))


# ---- (a) readers give back what writers wrote ----------------------------------------------------


@FAST
@given(st.lists(st.tuples(name, name, word, line_text, any_text, any_text, st.sampled_from(catalog.SPLITS),
                          st.dictionaries(word, any_text, max_size=3)), min_size=1, max_size=4,
                unique_by=lambda r: r[0]))
def test_catalog_round_trip(records):
    root = _fresh("catalog")
    try:
        with catalog.CatalogWriter(root) as w:
            for i, (item, product, category, title, description, detailed, split, attrs) in enumerate(records):
                w.add(item, product, category, category + " sub", split, _tiny_image(i), title, description,
                      detailed, attrs, view={"pose": "front"} if i % 2 else None)
        back = catalog.load(root, check_images=True)
        assert [(p.item_id, p.product_id, p.category, p.title, p.caption, p.extra["detailed"], p.split,
                 p.extra["attributes"]) for p in back] == [
            (r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7]) for r in records]
    finally:
        shutil.rmtree(root)


@FAST
@given(st.lists(st.tuples(st.sampled_from(["dress", "shirt", "toptee"]), st.sampled_from(fashioniq.SPLITS),
                          name, st.one_of(st.none(), name), st.lists(any_text, min_size=1, max_size=3)),
                min_size=1, max_size=5))
def test_fashioniq_round_trip(triplets):
    root = _fresh("fiq")
    try:
        with fashioniq.FashionIQWriter(root) as w:
            names = sorted({n for t in triplets for n in (t[2], t[3]) if n is not None})
            for i, n in enumerate(names):
                w.add_image(n, _tiny_image(i))
            for category, split, candidate, target, captions in triplets:
                w.add_triplet(category, split, candidate, target, captions)
        for split in fashioniq.SPLITS:
            want = [t for t in triplets if t[1] == split]
            if not want:
                continue
            got = fashioniq.load(root, split, check_images=True)
            key = lambda t: (t[0], t[2], t[3] or "", t[4])  # noqa: E731 - files are per category
            assert sorted(((g.category, g.reference_id, g.target_id or "", list(g.modifications)) for g in got),
                          key=str) == sorted((key(t) for t in want), key=str)
    finally:
        shutil.rmtree(root)


@FAST
@given(st.lists(st.tuples(st.sampled_from(["dress", "top", "pants"]), st.sampled_from(fashion200k.SPLITS),
                          st.lists(word, min_size=1, max_size=3).map(" ".join), st.integers(1, 10**9),
                          line_text, st.floats(0, 1)),
                min_size=1, max_size=5, unique_by=lambda r: r[3]))
def test_fashion200k_round_trip(rows):
    root = _fresh("f200k")
    try:
        with fashion200k.Fashion200kWriter(root) as w:
            for i, (category, split, sub, pid, description, score) in enumerate(rows):
                w.add(split, category, sub, pid, 0, _tiny_image(i), description, score)
        for split in fashion200k.SPLITS:
            want = [r for r in rows if r[1] == split]
            if not want:
                continue
            got = fashion200k.load(root, split)
            assert sorted((g.category, g.subcategory, g.product_id, g.caption, g.extra["detection_score"])
                          for g in got) == sorted((r[0], r[2], str(r[3]), r[4], r[5]) for r in want)
    finally:
        shutil.rmtree(root)


latin1 = st.text(st.characters(min_codepoint=1, max_codepoint=255), max_size=20)


@FAST
@given(st.lists(st.tuples(latin1, latin1, latin1, st.integers(0, 2**31 - 1), st.floats(0, 1e6, width=32)),
                min_size=1, max_size=4))
def test_fashiongen_round_trip_or_refusal(rows):
    """Each row is written and read back equal, or the writer refuses it with DataError (text its
    Latin-1 encoding cannot give back, an empty description); nothing else happens."""
    root = _fresh("fg")
    try:
        written = []
        with fashiongen.FashionGenWriter(root, "train", 4) as w:
            for i, (description, name_, category, pid, msrp) in enumerate(rows):
                try:
                    w.add(image=np.asarray(_tiny_image(i)), description=description, name=name_,
                          category=category, subcategory="sub", product_id=pid, pose="front", gender="f",
                          brand="b", composition="c", season="s", department="d", msrp_usd=msrp)
                except DataError:
                    continue
                written.append((description.strip(), name_, category, str(pid), float(np.float32(msrp))))
        got = fashiongen.load(root, "train")
        assert [(g.caption, g.title, g.category, g.product_id, g.extra["msrp_usd"]) for g in got] == written
    finally:
        shutil.rmtree(root)


# ---- (a) arbitrary input raises DataError only ---------------------------------------------------

# (format, file to overwrite, relative to the fixture root)
TARGETS = [
    ("catalog", "catalog.jsonl"),
    ("fashioniq", "captions/cap.dress.val.json"),
    ("fashioniq", "image_splits/split.dress.val.json"),
    ("fashion200k", "labels/dress_train_detect_all.txt"),
    ("fashion200k", "test_queries.txt"),
    ("vitonhd", "test_pairs.txt"),
    ("vitonhd", "captions.json"),
    ("vitonhd", "test/openpose_json/03191_00_keypoints.json"),
    ("fashiongen", "fashiongen_16_16_train.h5"),
]


@pytest.fixture(scope="module")
def copies(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile-formats")
    for fmt in {f for f, _ in TARGETS}:
        shutil.copytree(FIX / fmt, root / fmt)
    return root


def _read_all(root: Path, fmt: str) -> None:
    """Every reader of the format over the whole folder, as `data inspect` and the loaders do."""
    summarize(root)
    summarize(root, skip_bad=True)
    if fmt == "fashioniq":
        fashioniq.load_image_split(root, "dress", "val")
    if fmt == "vitonhd":
        vitonhd.load(root, "test", paired=True, skip_bad=True)


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | any_text,
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(any_text, inner, max_size=3),
                           max_leaves=8)
json_like = st.one_of(
    json_values.map(json.dumps),
    st.lists(json_values.map(json.dumps), max_size=3).map("\n".join),
    # shaped like the real files, with wrong values inside
    st.lists(st.dictionaries(st.sampled_from(["candidate", "target", "captions", "people", "item_id", "image"]),
                             json_values, max_size=3), max_size=3).map(json.dumps),
    st.dictionaries(st.sampled_from(["people", "03191"]), json_values, max_size=2).map(json.dumps),
)


@pytest.mark.parametrize("fmt, rel", TARGETS, ids=[f"{f}:{r}" for f, r in TARGETS])
@settings(max_examples=10, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.one_of(st.binary(max_size=200), json_like.map(lambda s: s.encode("utf-8", "surrogatepass")),
                      st.text(max_size=100).map(lambda s: s.encode("utf-8", "surrogatepass"))))
def test_arbitrary_file_content_raises_only_data_error(copies, fmt, rel, data):
    root = copies / fmt
    target = root / rel
    original = (FIX / fmt / rel).read_bytes()
    try:
        target.write_bytes(data)
        try:
            _read_all(root, fmt)
        except DataError as e:
            assert str(e) and "\n" not in str(e).strip()
    finally:
        target.write_bytes(original)


_DTYPES = [np.uint8, np.int32, np.float32, "S4", h5py.string_dtype()]


@st.composite
def hdf5_layouts(draw):
    """{key: None (absent) | "group" | (shape, dtype)} for the keys FashionGen's reader looks at."""
    n = draw(st.integers(0, 3))
    layout = {}
    for key in ("input_image", "input_description", "input_productID", "input_category", "input_subcategory",
                "input_name", "input_msrpUSD"):
        kind = draw(st.sampled_from(["good", "good", "good", "absent", "group", "shape"]))
        if kind == "absent":
            layout[key] = None
        elif kind == "group":
            layout[key] = "group"
        elif kind == "good":
            layout[key] = ((n, 4, 4, 3), np.uint8) if key == "input_image" else ((n, 1), draw(st.sampled_from(_DTYPES)))
        else:
            shape = tuple(draw(st.lists(st.integers(0, 3), max_size=4)))
            layout[key] = (shape, draw(st.sampled_from(_DTYPES)))
    return layout


@settings(max_examples=25, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(layout=hdf5_layouts(), seed=st.integers(0, 2**16))
def test_fashiongen_reader_on_arbitrary_hdf5_raises_only_data_error(layout, seed):
    root = _fresh("fgh5")
    rng = np.random.default_rng(seed)
    try:
        with h5py.File(root / "fashiongen_4_4_train.h5", "w") as f:
            for key, spec in layout.items():
                if spec == "group":
                    f.create_group(key)
                elif spec is not None:
                    shape, dtype = spec
                    if dtype is np.uint8 or dtype is np.int32:
                        f[key] = rng.integers(0, 100, shape).astype(dtype)
                    elif dtype is np.float32:
                        f[key] = rng.normal(size=shape).astype(np.float32)
                    elif dtype == "S4":
                        f[key] = np.full(shape, b"ab\xff", dtype="S4")
                    else:
                        f.create_dataset(key, shape=shape, dtype=dtype)
        try:
            for skip in (False, True):
                for pair in fashiongen.load(root, "train", skip_bad=skip, check_images=True):
                    pair.image.load()
        except DataError as e:
            assert "\n" not in str(e)
    finally:
        shutil.rmtree(root)


# ---- (b) recall@K --------------------------------------------------------------------------------


@st.composite
def retrieval_problems(draw):
    """(scores (Q, G) with ties likely, positives mask with >= 1 positive per query)."""
    q, g = draw(st.integers(1, 5)), draw(st.integers(1, 8))
    scores = np.array(draw(st.lists(st.integers(-3, 3), min_size=q * g, max_size=q * g)), dtype=np.float64)
    mask = np.array(draw(st.lists(st.booleans(), min_size=q * g, max_size=q * g))).reshape(q, g)
    for i in range(q):
        if not mask[i].any():
            mask[i, draw(st.integers(0, g - 1))] = True
    return scores.reshape(q, g) / 2, mask


def _brute_recall(scores: np.ndarray, mask: np.ndarray, k: int) -> float:
    """Sort each row best first with ties put against the query (negatives before positives of equal
    score); a hit when a positive is among the first k."""
    hits = 0
    for row, pos in zip(scores, mask):
        order = sorted(range(len(row)), key=lambda j: (-row[j], bool(pos[j])))
        hits += any(pos[j] for j in order[:k])
    return 100.0 * hits / len(scores)


@FAST
@given(retrieval_problems(), st.randoms(use_true_random=False))
def test_recall_at_k_properties(problem, random):
    scores, mask = problem
    g = scores.shape[1]
    ks = list(range(1, g + 2))
    r = recall_at_k(scores, mask, ks)
    values = [r[k] for k in ks]
    assert all(0.0 <= v <= 100.0 for v in values)
    assert values == sorted(values)  # monotone in K
    assert r[g] == 100.0  # every positive is somewhere in the gallery
    for k in ks:
        assert r[k] == pytest.approx(_brute_recall(scores, mask, k))
    perm = list(range(g))
    random.shuffle(perm)
    permuted = recall_at_k(scores[:, perm], mask[:, perm], ks)
    assert permuted == r  # the gallery's order does not matter
    sets = [set(np.flatnonzero(row).tolist()) for row in mask]
    assert recall_at_k(scores, sets, ks) == r


# ---- (c) vector index ----------------------------------------------------------------------------


@st.composite
def index_problems(draw):
    n, v, e, p, b = (draw(st.integers(1, 12)), draw(st.integers(1, 3)), draw(st.integers(1, 6)),
                     draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    return rng.normal(size=(n, v, e)).astype(np.float32), rng.normal(size=(b, p, e)).astype(np.float32)


def _brute_scores(vectors, queries, reduce):
    sims = np.einsum("nve,bpe->bnvp", vectors.astype(np.float64), queries.astype(np.float64))  # (B, N, V, P)
    best = sims.max(axis=2)  # (B, N, P): each query vector's best item vector
    return best.max(axis=2) if reduce is Reduce.MAX else best.mean(axis=2)  # (B, N)


@FAST
@given(index_problems(), st.integers(1, 15), st.sampled_from(list(Reduce)))
def test_exact_search_equals_brute_force(problem, k, reduce):
    vectors, queries = problem
    scores, rows = MultiVectorIndex(vectors).search(queries, k, reduce=reduce)
    brute = _brute_scores(vectors, queries, reduce)
    n = vectors.shape[0]
    for i in range(len(queries)):
        found = rows[i][rows[i] >= 0]
        assert len(found) == min(k, n) and len(set(found.tolist())) == len(found)
        assert (rows[i][len(found):] == -1).all() and np.isneginf(scores[i][len(found):]).all()
        np.testing.assert_allclose(scores[i][:len(found)], brute[i][found], rtol=1e-4, atol=1e-4)
        want = np.sort(brute[i])[::-1][:len(found)]  # the best scores there are
        np.testing.assert_allclose(scores[i][:len(found)], want, rtol=1e-4, atol=1e-4)


@pytest.fixture(scope="module")
def ann_index():
    """An IVF-PQ index over 96 items of 3 vectors (288 vectors: enough to train 256 PQ centroids),
    built once: the examples vary the queries, k and the filter."""
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(96, 3, 8)).astype(np.float32)
    config = AnnConfig(exact_below=1, nlist=4, pq_bytes=4, nprobe=2, candidates=16)
    return MultiVectorIndex(vectors, config, MultiVectorIndex.build_ann(vectors, config, seed=0))


@FAST
@given(seed=st.integers(0, 2**16), k=st.integers(1, 20), filtered=st.booleans())
def test_approximate_results_are_valid_unique_and_sorted(ann_index, seed, k, filtered):
    rng = np.random.default_rng(seed)
    vectors = ann_index.vectors
    n, _, e = vectors.shape
    assert ann_index.approximate
    queries = rng.normal(size=(2, 2, e)).astype(np.float32)
    allowed = rng.random(n) < 0.5 if filtered else None
    scores, rows = ann_index.search(queries, k, allowed=allowed)
    for i in range(len(queries)):
        found = rows[i][rows[i] >= 0]
        assert len(found) == len(set(found.tolist())) and ((0 <= found) & (found < n)).all()
        assert len(found) >= 1 and (rows[i][len(found):] == -1).all()  # padding only at the end
        if allowed is not None:
            assert allowed[found].all()
        top = scores[i][:len(found)]
        assert (np.diff(top) <= 0).all()  # best first
        np.testing.assert_allclose(top, _brute_scores(vectors, queries[i:i + 1], Reduce.MAX)[0][found],
                                   rtol=1e-4, atol=1e-4)  # re-scored exactly
