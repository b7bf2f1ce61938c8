"""All-task evaluation of a model on a synthetic world: the documented keys, in range, and caption variants."""
import pytest

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
