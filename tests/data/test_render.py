"""The renderer: sizes and modes, determinism, visible colour and silhouettes, try-on maps."""
import numpy as np
import pytest
from PIL import Image

from unifashion.data.synthetic import render_products, render_tryon
from unifashion.data.synthetic.render_products import ViewSpec
from unifashion.data.synthetic.render_tryon import PersonSpec
from unifashion.data.synthetic.taxonomy import ATTRIBUTES_BY_SUBCATEGORY, CATEGORIES, WEARABLE_CATEGORIES, GarmentSpec
from unifashion.data.vocabulary import COLOURS

SUBCATEGORIES = [s for subs in CATEGORIES.values() for s in subs]
WEARABLE = [s for c in WEARABLE_CATEGORIES for s in CATEGORIES[c]]
WHITE = (255, 255, 255)


def spec(sub: str, **attrs: str) -> GarmentSpec:
    """A spec with each attribute at its first allowed value unless given."""
    values = {k: v[0] for k, v in ATTRIBUTES_BY_SUBCATEGORY[sub].items()}
    values.update({k.replace("_", " "): v for k, v in attrs.items()})
    for k, v in values.items():
        assert v in ATTRIBUTES_BY_SUBCATEGORY[sub][k], (sub, k, v)
    return GarmentSpec(sub, tuple(sorted(values.items())))


def view(seed: int = 1, **kw) -> ViewSpec:
    base = dict(rotation=0.0, scale=0.85, offset=(0.0, 0.0), background=WHITE, lighting=1.0, seed=seed)
    base.update(kw)
    return ViewSpec(**base)


def person(seed: int = 3, **kw) -> PersonSpec:
    base = dict(skin=(214, 166, 122), hair=(40, 30, 25), arm_angle=20.0, sway=0.02, seed=seed)
    base.update(kw)
    return PersonSpec(**base)


def garment_mask(img: Image.Image, background=WHITE, threshold: float = 60) -> np.ndarray:
    """Pixels that differ clearly from the backdrop (shadow and light gradient stay below threshold)."""
    a = np.asarray(img, np.float32)  # (H, W, 3)
    return np.abs(a - np.asarray(background, np.float32)).max(axis=2) > threshold  # (H, W)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


def product(sub: str, colour="navy", seed: int = 1, size: int = 96, **attrs) -> Image.Image:
    rgb = COLOURS[colour]
    return render_products.render_product(spec(sub, **attrs), rgb, rgb, view(seed), size)


@pytest.mark.parametrize("sub", SUBCATEGORIES)
def test_product_size_mode_and_determinism(sub):
    rng = np.random.default_rng(0)
    s = spec(sub, pattern="stripes")
    v = render_products.random_view(rng)
    a = render_products.render_product(s, COLOURS["red"], COLOURS["white"], v, 64)
    assert a.mode == "RGB" and a.size == (64, 64)
    b = render_products.render_product(s, COLOURS["red"], COLOURS["white"], v, 64)
    assert a.tobytes() == b.tobytes()
    c = render_products.render_product(s, COLOURS["red"], COLOURS["white"],
                                       ViewSpec(**{**v.__dict__, "seed": v.seed + 1}), 64)
    assert a.tobytes() != c.tobytes()
    assert garment_mask(a, v.background, 40).mean() > 0.05  # something was drawn


def test_random_view_and_person_are_in_range():
    rng = np.random.default_rng(1)
    for _ in range(50):
        v = render_products.random_view(rng)
        assert -15 <= v.rotation <= 15 and 0.65 <= v.scale <= 0.95 and 0.8 <= v.lighting <= 1.2
        assert all(-0.08 <= o <= 0.08 for o in v.offset) and all(0 <= c <= 255 for c in v.background)
        p = render_tryon.random_person(rng)
        assert 5 <= p.arm_angle <= 35 and -0.05 <= p.sway <= 0.05
    same_seed = [render_products.random_view(np.random.default_rng(7)) for _ in range(2)]
    assert same_seed[0] == same_seed[1]


@pytest.mark.parametrize("colour", ["red", "navy", "green", "yellow", "blue", "brown", "black"])
@pytest.mark.parametrize("sub", ["t-shirt", "trousers", "tote", "dress"])
def test_solid_cotton_shows_its_colour(sub, colour):
    img = product(sub, colour, material="cotton", pattern="solid")
    m = garment_mask(img)
    assert m.mean() > 0.1
    mean = np.asarray(img, np.float32)[m].mean(axis=0)  # (3,)
    assert np.abs(mean - np.asarray(COLOURS[colour])).max() < 25, (mean, COLOURS[colour])


def test_lighting_keeps_black_and_white_named():
    black, white = COLOURS["black"], COLOURS["white"]
    s = spec("sweater", pattern="solid", material="cotton")
    bright = render_products.render_product(s, black, black, view(lighting=1.2, background=(200, 200, 200)), 96)
    dark = render_products.render_product(s, white, white, view(lighting=0.8, background=(90, 90, 90)), 96)
    mb = np.asarray(bright, np.float32)[garment_mask(bright, (200, 200, 200))].mean(axis=0)
    mw = np.asarray(dark, np.float32)[garment_mask(dark, (90, 90, 90))].mean(axis=0)
    assert mb.max() < 50 and mw.min() > 200, (mb, mw)


def test_silhouettes_differ_by_subcategory_and_attribute():
    tee = garment_mask(product("t-shirt", seed=1))
    tee2 = garment_mask(product("t-shirt", seed=2))  # same view but the seed: shape jitter only
    same = iou(tee, tee2)
    assert same > 0.85
    for other in ("trousers", "skirt", "dress", "coat", "sneakers", "boots", "tote", "backpack", "shoulder bag"):
        assert iou(tee, garment_mask(product(other))) < same - 0.15, other
    assert iou(garment_mask(product("tote")), garment_mask(product("backpack"))) < same - 0.15
    # attributes change the shape: sleeve, length, fit
    long_ = garment_mask(product("sweater", sleeve="long"))
    short = garment_mask(product("sweater", sleeve="short"))
    assert iou(long_, short) < same
    full, cropped = (garment_mask(product("trousers", length=x)).sum() for x in ("full", "cropped"))
    assert cropped < 0.8 * full
    mini, maxi = (garment_mask(product("skirt", length=x)).sum() for x in ("mini", "maxi"))
    assert mini < 0.7 * maxi
    slim, loose = (garment_mask(product("trousers", fit=x)).sum() for x in ("slim", "loose"))
    assert slim < 0.9 * loose


def test_patterns_and_materials_change_pixels():
    base_img = product("t-shirt", "blue", pattern="solid", material="cotton")
    base, m = np.asarray(base_img, np.float32), garment_mask(base_img)
    for kw in ({"pattern": "stripes"}, {"pattern": "dots"}, {"pattern": "checks"}, {"pattern": "floral"},
               {"pattern": "graphic print"}, {"material": "denim"}, {"material": "knit"}, {"material": "silk"}):
        kw = {"pattern": "solid", "material": "cotton", **kw}
        other = np.asarray(render_products.render_product(spec("t-shirt", **kw), COLOURS["blue"], COLOURS["white"],
                                                          view(), 96), np.float32)
        assert np.abs(other - base)[m].mean() > 4, kw  # on the garment


@pytest.mark.parametrize("sub", WEARABLE)
def test_tryon_maps(sub):
    s = spec(sub)
    out = render_tryon.render_tryon(s, COLOURS["red"], COLOURS["white"], person(), 96)
    H, W = 96, 72
    for name in ("person", "garment", "agnostic", "pose_image"):
        im = getattr(out, name)
        assert im.mode == "RGB" and im.size == (W, H), name
    for name in ("garment_mask", "agnostic_mask"):
        im = getattr(out, name)
        assert im.mode == "L" and im.size == (W, H), name
        assert set(np.unique(np.asarray(im)).tolist()) == {0, 255}, name
    assert out.sketch.mode == "L" and out.sketch.size == (W, H)
    sk = np.asarray(out.sketch)
    assert (sk == 255).mean() > 0.5 and sk.min() < 80  # white page, dark lines
    assert out.parse.mode == "P" and out.parse.size == (W, H)
    labels = set(np.unique(np.asarray(out.parse)).tolist())
    assert labels <= set(render_tryon.PARSE_LABELS.values())
    assert {0, 2, 13, 14, 15, 18, 19} <= labels
    expected = {"tops": 5, "dresses": 6, "outerwear": 7}.get(s.category, 12 if sub == "skirt" else 9)
    assert expected in labels
    # agnostic: grey exactly where the mask is, the person elsewhere
    agn, per = np.asarray(out.agnostic), np.asarray(out.person)
    m = np.asarray(out.agnostic_mask) == 255
    assert (agn[m] == 128).all() and (agn[~m] == per[~m]).all()
    assert m[np.asarray(out.parse) == expected].mean() == 1.0  # the garment is inside the region
    assert not m[np.isin(np.asarray(out.parse), (2, 13))].any()  # the head is kept
    # keypoints: COCO-18 inside the image, aligned with the body
    kp = out.pose_keypoints
    assert kp.shape == (18, 3) and kp.dtype == np.float32
    assert (kp[:, 0] >= 0).all() and (kp[:, 0] < W).all() and (kp[:, 1] >= 0).all() and (kp[:, 1] < H).all()
    assert ((kp[:, 2] >= 0) & (kp[:, 2] <= 1)).all()
    assert kp[0, 1] < kp[1, 1] < kp[8, 1] < kp[9, 1] < kp[10, 1]  # nose, neck, hip, knee, ankle: downwards
    assert kp[2, 0] < kp[5, 0]  # the person's right shoulder is on the image's left
    parse = np.asarray(out.parse)
    assert parse[int(kp[0, 1]), int(kp[0, 0])] == 13  # nose on the face
    assert np.asarray(out.pose_image).max() > 0


def test_tryon_is_deterministic_and_follows_the_person():
    s = spec("shirt", pattern="checks")
    a = render_tryon.render_tryon(s, COLOURS["blue"], COLOURS["white"], person(5), 64)
    b = render_tryon.render_tryon(s, COLOURS["blue"], COLOURS["white"], person(5), 64)
    for name in ("person", "garment", "garment_mask", "agnostic", "agnostic_mask", "parse", "sketch", "pose_image"):
        assert getattr(a, name).tobytes() == getattr(b, name).tobytes(), name
    assert np.array_equal(a.pose_keypoints, b.pose_keypoints)
    c = render_tryon.render_tryon(s, COLOURS["blue"], COLOURS["white"], person(5, arm_angle=34.0), 64)
    assert c.pose_keypoints[4, 0] < a.pose_keypoints[4, 0]  # the right wrist moves out (left in the image)
    assert a.person.tobytes() != c.person.tobytes()
    assert a.garment.tobytes() == c.garment.tobytes()  # the in-shop garment does not depend on the person


def test_tryon_garment_mask_matches_the_garment_image():
    out = render_tryon.render_tryon(spec("dress"), COLOURS["navy"], COLOURS["navy"], person(), 96)
    drawn = garment_mask(out.garment)
    assert iou(drawn, np.asarray(out.garment_mask) == 255) > 0.85


@pytest.mark.parametrize("sub", ["sneakers", "boots", "sandals", "tote", "backpack", "shoulder bag"])
def test_tryon_rejects_what_cannot_be_worn(sub):
    with pytest.raises(ValueError, match=sub):
        render_tryon.render_tryon(spec(sub), COLOURS["red"], COLOURS["white"], person(), 64)
