"""All-task evaluation: on a synthetic world, the documented keys in range and the caption variants; on data
written for a stand-in model whose scores are known, the exact metric values (100, 0, 50)."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from unifashion.evaluation.evaluate import EvalConfig, evaluate_world
from unifashion.models.unified import UniFashion


@pytest.fixture(scope="module")
def tiny():
    return UniFashion.from_config("tiny")


def test_retrieval_keys_and_ranges(tiny, small_world):
    from unifashion.data.formats import fashioniq

    world = small_world[0]
    captions = fashioniq.load_image_captions(world / "fashioniq")  # ground truth stands in for model captions
    m = evaluate_world(tiny, world, EvalConfig(split="test", tasks=("cmr", "cir"), cmr_queries=20, cmr_seeds=(0, 1)),
                       gallery_captions=captions)
    for key in ("cmr.sample100.i2t.r1", "cmr.sample100.t2i.r10", "cmr.sample100.mean", "cmr.full.mean",
                "cir.avg.r10", "cir.avg.r50", "cir.avg.score", "cir.variants.img.avg.score",
                "cir.variants.cap.avg.score", "cir.variants.both.avg.score"):
        assert key in m and 0.0 <= m[key] <= 100.0, key


def test_caption_and_generation_keys(tiny, small_world):
    m = evaluate_world(tiny, small_world[0], EvalConfig(split="test", tasks=("cap", "gen"), caption_items=3,
                                                       max_new_tokens=4, generation_items=4, generation_steps=2))
    assert {"cap.bleu4", "cap.meteor", "cap.rouge_l", "cap.cider", "gen.fid", "gen.kid_mean", "gen.kid_std",
            "gen.colour_match", "gen.colour_match_real", "gen.model_itc_score", "gen.model_itc_score_real"} <= set(m)
    assert m["gen.fid"] >= 0 and 0 <= m["gen.colour_match"] <= 100 and 0 <= m["gen.colour_match_real"] <= 100


# Known scores: a stand-in model that recognises each picture by its pixels and each text by its words, on
# data written for it (N products of one subcategory, one solid-colour picture each; a Fashion-IQ gallery
# of the same pictures whose triplets go from product i to product i + 1). Where it "knows" a product its
# text and composed-query vectors point at that product's picture, elsewhere away from it, so every metric
# below is exact: 100 where it knows everything, 0 where it knows nothing, 50 where it knows half.
KNOWN_PRODUCTS = 120  # sample-100 has 100 negatives for every query; every gallery is longer than R@50


def _known_caption(i: int) -> str:
    return f"a midi dress of shade number {i}"


@pytest.fixture(scope="module")
def known_data(tmp_path_factory):
    from PIL import Image

    from unifashion.data.formats.catalog import CatalogWriter
    from unifashion.data.formats.fashioniq import FashionIQWriter
    from unifashion.data.sources import EvalSources

    root = tmp_path_factory.mktemp("known")
    names = [f"p{i:03d}" for i in range(KNOWN_PRODUCTS)]
    with CatalogWriter(root / "catalog") as cat, FashionIQWriter(root / "fashioniq") as fiq:
        for i, name in enumerate(names):
            picture = Image.new("RGB", (8, 8), (i, 255 - i, (37 * i) % 256))  # red channel: unique per product
            cat.add(item_id=f"{i}_0", product_id=str(i), category="dresses", subcategory="midi", split="val",
                    image=picture, title=f"dress {i}", description=_known_caption(i), detailed=_known_caption(i),
                    attributes={})
            fiq.add_image(name, picture)
            fiq.add_image_caption(name, _known_caption(i))
        for i in range(0, KNOWN_PRODUCTS, 2):
            fiq.add_triplet("dress", "val", names[i], names[(i + 1) % KNOWN_PRODUCTS],
                            [f"is shade {i + 1}", f"not shade {i}"])
        fiq.set_image_split("dress", "val", names)
    return EvalSources(pairs=root / "catalog", pairs_format="catalog", fashioniq=root / "fashioniq")


class LookupModel:
    """What evaluation calls of a model (encode_image / encode_text / encode_composed / caption), answered
    from what it recognises. Product i's picture is the one-hot e_i (twice: two query vectors); its caption
    and a composed query whose target is product i are +e_i when i is in `knows`, -e_i otherwise; a text it
    does not recognise is the zero vector. It captions a known product with that product's description and
    says nothing of an unknown one."""

    def __init__(self, knows):
        self.knows = set(knows)
        self.product_of_caption = {_known_caption(i): i for i in range(KNOWN_PRODUCTS)}
        # the triplets' target from (reference product, query text): "Is shade i+1 and not shade i"
        self.target_of_query = {(i, f"Is shade {i + 1} and not shade {i}"): (i + 1) % KNOWN_PRODUCTS
                                for i in range(KNOWN_PRODUCTS)}

    @staticmethod
    def _product(image) -> int:
        return int(np.asarray(image.convert("RGB"))[0, 0, 0])  # the red channel is the product index

    def _towards(self, i: int | None) -> np.ndarray:
        v = np.zeros(KNOWN_PRODUCTS, np.float32)
        if i is not None:
            v[i] = 1.0 if i in self.knows else -1.0
        return v

    def encode_image(self, images):
        one_hot = np.eye(KNOWN_PRODUCTS, dtype=np.float32)[[self._product(im) for im in images]]  # (B, E)
        return SimpleNamespace(image_embeds=torch.from_numpy(np.repeat(one_hot[:, None], 2, axis=1)))  # (B, 2, E)

    def encode_text(self, texts):
        return SimpleNamespace(text_embeds=torch.from_numpy(
            np.stack([self._towards(self.product_of_caption.get(t)) for t in texts])))  # (B, E)

    def encode_composed(self, images, texts):
        targets = [self.target_of_query.get((self._product(im), t)) for im, t in zip(images, texts)]
        return SimpleNamespace(composed_embeds=torch.from_numpy(np.stack([self._towards(t) for t in targets])))

    def caption(self, images, style, max_new_tokens=None):
        return [_known_caption(i) if i in self.knows else "" for i in map(self._product, images)]


RETRIEVAL = dict(split="val", tasks=("cmr", "cir"), cmr_seeds=(0, 1))  # every item is a sample-100 query
CMR_KEYS = [f"cmr.{protocol}.{d}.r{k}" for protocol in ("sample100", "full") for d in ("i2t", "t2i")
            for k in (1, 5, 10)]
CIR_KEYS = ["cir.dress.r10", "cir.dress.r50", "cir.avg.r10", "cir.avg.r50", "cir.avg.score"]


def _evaluate(model, sources, **kw):
    from unifashion.evaluation.evaluate import evaluate

    return evaluate(model, sources, EvalConfig(**{**RETRIEVAL, **kw.pop("config", {})}), **kw)


def test_a_model_that_retrieves_every_item_scores_100(known_data):
    from unifashion.data.formats import fashioniq

    m = _evaluate(LookupModel(range(KNOWN_PRODUCTS)), known_data,
                  gallery_captions=fashioniq.load_image_captions(known_data.fashioniq))
    assert {k: m[k] for k in CMR_KEYS + CIR_KEYS} == {k: 100.0 for k in CMR_KEYS + CIR_KEYS}
    assert m["cmr.sample100.mean"] == m["cmr.full.mean"] == 100.0
    assert m["cmr.sample100.short_draws"] == 0.0 and m["cmr.items"] == KNOWN_PRODUCTS
    assert m["cir.gallery_min"] == KNOWN_PRODUCTS and m["cir.queries"] == KNOWN_PRODUCTS // 2
    # the gallery captions point at their own pictures: caption alone and caption + image both rank right
    assert m["cir.variants.img.avg.score"] == m["cir.variants.cap.avg.score"] == 100.0
    assert m["cir.variants.both.avg.score"] == 100.0
    # one input alone cannot: the query text is a text it does not recognise (all scores 0, ties count
    # against the query) and the reference picture finds itself, never the target
    assert m["cir.baseline.text_only.avg.score"] == 0.0 and m["cir.baseline.image_only.avg.score"] == 0.0


def test_a_model_that_ranks_every_right_item_last_scores_0(known_data):
    m = _evaluate(LookupModel(()), known_data)
    assert {k: m[k] for k in CMR_KEYS + CIR_KEYS} == {k: 0.0 for k in CMR_KEYS + CIR_KEYS}
    assert m["cmr.sample100.mean"] == m["cmr.full.mean"] == 0.0
    assert m["cir.variants.img.avg.score"] == 0.0 and "cir.variants.both.avg.score" not in m  # no captions given


def test_a_model_right_on_half_the_items_scores_50(known_data):
    m = _evaluate(LookupModel(range(KNOWN_PRODUCTS // 2)), known_data)  # the triplets' targets 1, 3, .., 59
    assert {k: m[k] for k in CMR_KEYS + CIR_KEYS} == {k: 50.0 for k in CMR_KEYS + CIR_KEYS}
    assert m["cmr.sample100.mean"] == 50.0


def test_captions_word_for_word_on_half_the_items_and_nothing_on_the_rest_score_half(known_data):
    # ROUGE-L and CIDEr average per caption: a caption word for word scores 100 and 1000 (CIDEr-D's
    # 10 x 100), saying nothing 0; BLEU-4 and METEOR are corpus scores, between the two
    m = _evaluate(LookupModel(range(10)), known_data, config=dict(tasks=("cap",), caption_items=20))
    assert m["cap.rouge_l"] == pytest.approx(50.0) and m["cap.cider"] == pytest.approx(500.0)
    assert 0.0 < m["cap.bleu4"] < 100.0 and 0.0 < m["cap.meteor"] < 100.0
