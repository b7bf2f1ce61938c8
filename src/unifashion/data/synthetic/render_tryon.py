"""Draws the synthetic world's VITON-HD-style try-on sets: a person wearing a `GarmentSpec`, with the
conditioning maps (agnostic image and mask, parse, sketch, pose) and the in-shop garment.

The person is a stylised figure whose limbs follow its OpenPose keypoints, so the pose map, the
parse map and the photo agree; the worn garment is built from the same keypoints.

All randomness comes from `person.seed` through numpy's default_rng: the same inputs give
byte-identical pixels.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFilter

from unifashion.data.synthetic.drawing import (SS, RGB, Painter, Part, Point, Texture, both, buttons, ellipse,
                                               fabric, lerp, paint_parts, rect, rounded, scaled, seam_colour, sym,
                                               tube, upsample)
from unifashion.data.synthetic.render_products import ViewSpec, render_flat
from unifashion.data.synthetic.taxonomy import WEARABLE_CATEGORIES, GarmentSpec


# ----------------------------------------------------------------------------------------------
# Public specs


@dataclass(frozen=True)
class PersonSpec:
    """A try-on model: looks and pose. Body proportions jitter a little with `seed`."""

    skin: tuple[int, int, int]
    hair: tuple[int, int, int]
    arm_angle: float  # degrees the arms are raised away from the body, about 5..35
    sway: float  # horizontal lean of the head over the feet, fraction of figure height, -0.05..0.05
    seed: int  # proportions, hair style, backdrop, the clothes the person wears besides the garment


_SKINS: tuple[RGB, ...] = ((250, 221, 196), (236, 196, 160), (214, 166, 122), (180, 128, 88),
                           (141, 94, 62), (98, 64, 44))
_HAIRS: tuple[RGB, ...] = ((25, 20, 18), (60, 40, 28), (110, 75, 45), (205, 170, 110), (150, 70, 35),
                           (150, 150, 150))


def random_person(rng: np.random.Generator) -> PersonSpec:
    """A person with a skin tone and hair colour from small palettes (jittered) and a relaxed pose."""
    def jit(c: RGB, s: float) -> RGB:
        return tuple(int(np.clip(v + rng.normal(0, s), 0, 255)) for v in c)  # type: ignore[return-value]

    return PersonSpec(
        skin=jit(_SKINS[int(rng.integers(len(_SKINS)))], 6),
        hair=jit(_HAIRS[int(rng.integers(len(_HAIRS)))], 8),
        arm_angle=float(rng.uniform(5, 35)),
        sway=float(rng.uniform(-0.05, 0.05)),
        seed=int(rng.integers(0, 2**31 - 1)),
    )


@dataclass(frozen=True)
class TryOnImages:
    """One VITON-HD (+ MGD sketch) sample: the person wearing the garment and its conditioning maps."""

    person: Image.Image  # RGB, H x W (W = round(3H/4)), front view on a plain backdrop
    garment: Image.Image  # RGB, H x W, the in-shop garment flat on white
    garment_mask: Image.Image  # L 0/255, the in-shop garment's pixels
    agnostic: Image.Image  # RGB, person with the try-on region painted (128, 128, 128)
    agnostic_mask: Image.Image  # L 0/255, the painted region
    parse: Image.Image  # P, LIP/CIHP labels (see PARSE_LABELS)
    sketch: Image.Image  # L, the worn garment's edges: dark lines on 255
    pose_keypoints: np.ndarray  # (18, 3) float32 COCO-18 x, y (pixels of `person`), confidence
    pose_image: Image.Image  # RGB, OpenPose-style skeleton on black


PARSE_LABELS = {"background": 0, "hair": 2, "upper-clothes": 5, "dress": 6, "coat": 7, "pants": 9,
                "torso-skin": 10, "skirt": 12, "face": 13, "left-arm": 14, "right-arm": 15,
                "left-leg": 16, "right-leg": 17, "left-shoe": 18, "right-shoe": 19}
KEYPOINT_NAMES = ("nose", "neck", "r_shoulder", "r_elbow", "r_wrist", "l_shoulder", "l_elbow", "l_wrist",
                  "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle", "r_eye", "l_eye", "r_ear",
                  "l_ear")


# ----------------------------------------------------------------------------------------------
# Try-on: the person


_FIG_TOP, _FIG_H = 0.035, 0.93  # figure's head top and height, as fractions of the image height


def _pose(person: PersonSpec, rng: np.random.Generator) -> dict[str, Point]:
    """Keypoints in body units: x from the centre line (person's right = image left = negative),
    y down from the head top, both as fractions of the figure's height."""
    sw = 0.105 * rng.uniform(0.94, 1.06)  # shoulder half width
    hw = 0.068 * rng.uniform(0.94, 1.06)  # hip half width
    a = math.radians(person.arm_angle)
    a2 = a + math.radians(rng.uniform(-4, 8))  # forearm
    kp: dict[str, Point] = {"nose": (0.0, 0.078), "neck": (0.0, 0.168)}
    for side, s in (("r", -1), ("l", 1)):
        sh = (s * sw, 0.168)
        el = (sh[0] + s * 0.16 * math.sin(a), sh[1] + 0.16 * math.cos(a))
        kp[f"{side}_shoulder"], kp[f"{side}_elbow"] = sh, el
        kp[f"{side}_wrist"] = (el[0] + s * 0.145 * math.sin(a2), el[1] + 0.145 * math.cos(a2))
        spread = rng.uniform(0.0, 0.012)
        kp[f"{side}_hip"] = (s * hw, 0.5)
        kp[f"{side}_knee"] = (s * (hw + 0.004 + spread), 0.715)
        kp[f"{side}_ankle"] = (s * (hw + 0.008 + 2 * spread), 0.925)
        kp[f"{side}_eye"] = (s * 0.017, 0.062)
        kp[f"{side}_ear"] = (s * 0.046, 0.07)
    return kp


_LIMBS = ((1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11), (11, 12), (12, 13),
          (1, 0), (0, 14), (14, 16), (0, 15), (15, 17))  # OpenPose COCO-18 limb pairs (0-based)
_POSE_COLOURS = ((255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0), (0, 255, 0),
                 (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255), (0, 0, 255), (85, 0, 255),
                 (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85))


def _parse_palette() -> list[int]:
    """The LIP/CIHP palette (label bits spread over R, G, B), as their tools write it."""
    pal = [0] * (256 * 3)
    for j in range(256):
        lab, i = j, 0
        while lab:
            pal[j * 3] |= ((lab >> 0) & 1) << (7 - i)
            pal[j * 3 + 1] |= ((lab >> 1) & 1) << (7 - i)
            pal[j * 3 + 2] |= ((lab >> 2) & 1) << (7 - i)
            lab >>= 3
            i += 1
    return pal


_PALETTE = _parse_palette()
_DEFAULT_TOPS: tuple[RGB, ...] = ((244, 244, 242), (200, 202, 206), (38, 38, 42), (170, 190, 212))
_DEFAULT_BOTTOMS: tuple[RGB, ...] = ((42, 50, 72), (32, 32, 35), (185, 170, 140), (95, 95, 100))


# ----------------------------------------------------------------------------------------------
# Try-on: garments as worn, in body units. Each builder returns (phase, part) pairs: phase 0 is
# drawn over the legs, 1 over the torso, 2 over the arms.

_WORN_FIT = {"slim": 0.92, "regular": 1.0, "loose": 1.14}


def _worn_sleeves(kp: dict[str, Point], sleeve: str, f: float, cuff: float, flare: float = 1.0) -> list[tuple[int, Part]]:
    out: list[tuple[int, Part]] = []
    if sleeve == "sleeveless":
        return out
    for side, s in (("r", -1), ("l", 1)):
        sh, el, wr = kp[f"{side}_shoulder"], kp[f"{side}_elbow"], kp[f"{side}_wrist"]
        start = (sh[0] - s * 0.012, sh[1] + 0.004)
        if sleeve == "short":
            path, radii = [start, lerp(sh, el, 0.5)], [0.04 * f, 0.034 * f * flare]
        else:
            path, radii = [start, el, lerp(el, wr, 0.93)], [0.04 * f, 0.032 * f, 0.027 * f * flare]
        out.append((2, Part("main", ellipse(sh[0], sh[1] + 0.008, 0.032 * f, 0.03))))  # over the shoulder's cap
        out.append((2, Part("main", tube(path, radii))))
        if cuff > 0:
            a, b = path[-2], path[-1]
            t = max(0.0, 1 - cuff / math.dist(a, b))
            out.append((2, Part("trim", tube([lerp(a, b, t), b], [radii[-1] * 1.02] * 2))))
    return out


def _worn_neckline(neck: str, band: bool) -> list[tuple[int, Part]]:
    """The neck opening (skin shows) or turtleneck / collar, over the torso."""
    parts: list[Part] = []
    if neck == "crew":
        curve = ellipse(0, 0.138, 0.036, 0.028, 0, 180, 10)[::-1]
        parts.append(Part("skin", curve))
        if band:
            parts.append(Part("trim", curve, 0.008))
    elif neck == "v-neck":
        v = ((-0.036, 0.138), (0, 0.235), (0.036, 0.138))
        parts += [Part("skin", v), Part("trim", v, 0.007 if band else 0.004)]
    elif neck == "square":
        sq = ((-0.042, 0.138), (-0.042, 0.2), (0.042, 0.2), (0.042, 0.138))
        parts += [Part("skin", sq), Part("trim", sq, 0.005)]
    elif neck == "turtleneck":
        parts += [Part("main", rect(-0.029, 0.112, 0.029, 0.165)),
                  Part("seam", ((-0.029, 0.135), (0.029, 0.135)), 0.004)]
    elif neck == "collared":
        parts.append(Part("skin", ((-0.03, 0.138), (0, 0.2), (0.03, 0.138))))
        parts += both("trim", ((-0.04, 0.128), (-0.003, 0.2), (-0.045, 0.205), (-0.058, 0.15)))
    return [(1, p) for p in parts]


def _worn_top(spec: GarmentSpec, kp: dict[str, Point], sub: str | None = None) -> list[tuple[int, Part]]:
    sub = sub or spec.subcategory
    f = _WORN_FIT[spec.get("fit") or "regular"]
    sleeve = spec.get("sleeve") or "short"
    neck = spec.get("neckline") or "crew"
    sw = kp["l_shoulder"][0]
    hem, hw = {"t-shirt": (0.5, 0.098), "shirt": (0.55, 0.1), "blouse": (0.49, 0.122), "sweater": (0.52, 0.097),
               "hoodie": (0.53, 0.1)}[sub]
    hw *= f
    out: list[tuple[int, Part]] = []
    if sleeve == "sleeveless":
        left: list[Point] = [(-0.036, 0.14), (-0.066, 0.158), (-0.082 * f, 0.2)]
    else:
        left = [(-0.036, 0.14), (-sw - 0.012, 0.162)]
    left += [(-0.098 * f, 0.235), (-0.082 * f, 0.37)]
    if sub == "shirt":
        left += [(-hw, hem - 0.025), (-hw * 0.5, hem - 0.005), (0, hem)]
    else:
        left += [(-hw, hem), (0, hem)]
    out.append((1, Part("main", sym(left))))
    if sub in ("sweater", "hoodie"):
        out.append((1, Part("trim", rect(-hw, hem - 0.028, hw, hem))))
    if sub == "hoodie":  # the hood, down, lies around the neck
        out.append((1, Part("main", ((-0.07, 0.155), (-0.045, 0.112), (0.045, 0.112), (0.07, 0.155), (0.04, 0.19),
                                      (-0.04, 0.19)))))
        out.append((1, Part("shade", ellipse(0, 0.15, 0.03, 0.022, n=12))))
        out += [(1, p) for p in both("trim", ((-0.015, 0.18), (-0.018, 0.27)), 0.005)]
        out.append((1, Part("seam", ((-0.06 * f, 0.39), (0.06 * f, 0.39), (0.075 * f, 0.47), (-0.075 * f, 0.47),
                                      (-0.06 * f, 0.39)), 0.005)))
    else:
        out += _worn_neckline(neck, band=sub in ("t-shirt", "sweater"))
    if sub == "shirt":
        top = 0.2 if neck == "collared" else 0.235
        out.append((1, Part("seam", ((0, top), (0, hem)), 0.004)))
        out += [(1, p) for p in buttons(0.0, top + 0.02, hem - 0.02, 0.055, 0.006)]
    if sub == "blouse":
        by = 0.235 if neck == "v-neck" else 0.17
        out += [(1, p) for p in both("trim", ((0, by), (-0.025, by - 0.014), (-0.025, by + 0.014)))]
    cuff = {"sweater": 0.03, "hoodie": 0.03, "shirt": 0.03 if sleeve == "long" else 0.0, "t-shirt": 0.012}.get(sub, 0.0)
    out += _worn_sleeves(kp, sleeve, f, cuff, 1.3 if sub == "blouse" else 1.0)
    return out


def _worn_dress(spec: GarmentSpec, kp: dict[str, Point]) -> list[tuple[int, Part]]:
    f = _WORN_FIT[spec.get("fit") or "regular"]
    sleeve = spec.get("sleeve") or "sleeveless"
    sw = kp["l_shoulder"][0]
    hem, hw = {"mini": (0.6, 0.13), "midi": (0.76, 0.16), "maxi": (0.9, 0.18)}[spec.get("length") or "midi"]
    hw *= f
    if sleeve == "sleeveless":
        left: list[Point] = [(-0.036, 0.14), (-0.062, 0.158), (-0.08 * f, 0.2)]
    else:
        left = [(-0.036, 0.14), (-sw - 0.01, 0.162)]
    left += [(-0.094 * f, 0.235), (-0.078 * f, 0.37), (-0.1 * f, 0.47), (-hw, hem), (0, hem + 0.008)]
    out: list[tuple[int, Part]] = [(1, Part("main", sym(left)))]
    out += _worn_neckline(spec.get("neckline") or "crew", band=False)
    out.append((1, Part("trim", rect(-0.08 * f, 0.36, 0.08 * f, 0.38))))
    out += [(1, p) for p in both("seam", ((-0.04 * f, 0.46), (-hw * 0.55, hem - 0.015)), 0.003)]
    out += _worn_sleeves(kp, sleeve, f, 0.0)
    return out


def _worn_outerwear(spec: GarmentSpec, kp: dict[str, Point]) -> list[tuple[int, Part]]:
    coat = spec.subcategory == "coat"
    f = _WORN_FIT[spec.get("fit") or "regular"]
    sw = kp["l_shoulder"][0]
    hem, hw = ((0.76, 0.135) if spec.get("length") == "knee" else (0.57, 0.115)) if coat else (0.53, 0.105)
    hw *= f
    left: list[Point] = [(-0.04, 0.138), (-sw - 0.02, 0.16), (-0.108 * f, 0.24), (-0.095 * f, 0.37), (-hw, hem),
                         (0, hem)]
    out: list[tuple[int, Part]] = [(1, Part("main", sym(left)))]
    collared = (spec.get("neckline") or "collared") == "collared"
    yv = 0.3 if collared else 0.27
    out.append((1, Part("inner", ((-0.04, 0.138), (0, yv), (0.04, 0.138)))))
    out.append((1, Part("skin", ellipse(0, 0.136, 0.03, 0.02, 0, 180, 8)[::-1])))
    if collared:
        out += [(1, p) for p in both("trim", ((-0.042, 0.132), (-0.003, yv), (-0.02, yv - 0.03), (-0.068, 0.18),
                                               (-0.055, 0.14)))]
    else:
        out += [(1, p) for p in both("trim", ((-0.04, 0.138), (0, yv)), 0.008)]
    out.append((1, Part("seam", ((0, yv), (0, hem)), 0.004)))
    out += [(1, p) for p in buttons(0.012, yv + 0.02, hem - 0.03, 0.06, 0.006)]
    if coat:
        out.append((1, Part("trim", rect(-0.095 * f, 0.36, 0.095 * f, 0.385))))
        out.append((1, Part("metal", rect(-0.012, 0.355, 0.012, 0.39))))
    else:
        out.append((1, Part("trim", rect(-hw, hem - 0.03, hw, hem))))
    out += _worn_sleeves(kp, "long", f * 1.08, 0.02 if coat else 0.03)
    return out


def _worn_bottoms(spec: GarmentSpec, kp: dict[str, Point], sub: str | None = None) -> list[tuple[int, Part]]:
    sub = sub or spec.subcategory
    f = _WORN_FIT[spec.get("fit") or "regular"]
    out: list[tuple[int, Part]] = []
    if sub == "skirt":
        hem, hw = {"mini": (0.6, 0.135), "midi": (0.76, 0.155), "maxi": (0.9, 0.175)}[spec.get("length") or "midi"]
        hw *= f
        out.append((0, Part("main", sym([(-0.086 * f, 0.44), (-hw, hem), (0, hem + 0.008)]))))
        out.append((0, Part("trim", rect(-0.088 * f, 0.42, 0.088 * f, 0.445))))
        out += [(0, Part("seam", ((x * 0.06, 0.46), (x * hw * 0.7, hem - 0.01)), 0.003)) for x in (-1, 0, 1)]
        return out
    hem_r = {"slim": 0.026, "regular": 0.032, "loose": 0.042}[spec.get("fit") or "regular"]
    out.append((0, Part("main", ((-0.085 * f, 0.44), (0.085 * f, 0.44), (0.112 * f, 0.52), (0, 0.575),
                                  (-0.112 * f, 0.52)))))
    for side in ("r", "l"):
        hip, knee, ankle = kp[f"{side}_hip"], kp[f"{side}_knee"], kp[f"{side}_ankle"]
        if sub == "shorts":
            path, radii = [hip, lerp(hip, knee, 0.5)], [0.05 * f, 0.047 * f]
        else:
            end = 0.93 if (spec.get("length") or "full") == "full" else 0.5
            path, radii = [hip, knee, lerp(knee, ankle, end)], [0.05 * f, 0.037 * f, hem_r]
        out.append((0, Part("main", tube(path, radii))))
    out.append((0, Part("trim", rect(-0.087 * f, 0.42, 0.087 * f, 0.445))))
    out.append((0, Part("seam", ((0.01, 0.445), (0.01, 0.52), (0, 0.54)), 0.004)))
    if sub == "jeans" or spec.get("material") == "denim":
        for s in (-1, 1):
            out.append((0, Part("stitch", ((s * 0.04, 0.445), (s * 0.06, 0.475), (s * 0.09 * f, 0.49)), 0.005)))
            out.append((0, Part("metal", ellipse(s * 0.088 * f, 0.49, 0.005, 0.005, n=6))))
    return out


def _worn_parts(spec: GarmentSpec, kp: dict[str, Point]) -> tuple[list[tuple[int, Part]], int]:
    """The garment as worn, and its parse label."""
    cat = spec.category
    if cat == "tops":
        return _worn_top(spec, kp), 5
    if cat == "dresses":
        return _worn_dress(spec, kp), 6
    if cat == "outerwear":
        return _worn_outerwear(spec, kp), 7
    return _worn_bottoms(spec, kp), (12 if spec.subcategory == "skirt" else 9)


_PLAIN_TEE = GarmentSpec("t-shirt", (("fit", "regular"), ("neckline", "crew"), ("sleeve", "short")))
_PLAIN_TROUSERS = GarmentSpec("trousers", (("fit", "regular"), ("length", "full")))
_NEUTRAL = ViewSpec(rotation=0.0, scale=0.9, offset=(0.0, 0.0), background=(255, 255, 255), lighting=1.0, seed=0)


def render_tryon(spec: GarmentSpec, colour: RGB, trim: RGB, person: PersonSpec, height: int) -> TryOnImages:
    """The person wearing the garment (front view) and VITON-HD's conditioning maps for it.

    Stages: 1. pose  2. person and garment drawn in layers at SS x, with parse labels and the
    garment's part ids in step  3. downsample, agnostic region, sketch  4. pose map, in-shop garment.
    """
    if spec.category not in WEARABLE_CATEGORIES:
        raise ValueError(f"render_tryon: '{spec.subcategory}' ({spec.category}) is not wearable; "
                         f"only {', '.join(WEARABLE_CATEGORIES)} are")
    H, W = height, round(height * 3 / 4)
    rng = np.random.default_rng(person.seed)
    # 1. pose: body units -> pixels (head leans by `sway`, feet stay)
    kp = _pose(person, rng)
    fig = _FIG_H * H  # figure height in px
    cx0 = W / 2 + rng.uniform(-0.02, 0.02) * W

    def to_px1(pts) -> list[Point]:
        return [(cx0 + (x + person.sway * (0.93 - y)) * fig, _FIG_TOP * H + y * fig) for x, y in pts]

    def to_px(pts) -> list[Point]:
        return [(px * SS, py * SS) for px, py in to_px1(pts)]

    keypoints = np.asarray(to_px1([kp[n] for n in KEYPOINT_NAMES]), np.float32)  # (18, 2)
    conf = rng.uniform(0.75, 1.0, (18, 1)).astype(np.float32)  # (18, 1)
    # 2. layers
    bgv = int(rng.integers(225, 250))
    backdrop = tuple(int(bgv + t) for t in rng.integers(-6, 6, 3))
    canvas = Image.new("RGB", (W * SS, H * SS), backdrop)  # type: ignore[arg-type]
    pt = Painter(canvas, maps=True)
    u2 = fig * SS  # canvas px per body unit
    skin, hair = person.skin, person.hair
    long_hair = rng.random() < 0.5

    def paint(pts_body, fill, label, width=0.0):
        pt.paint(to_px(pts_body), fill, width * u2, label)

    # the garment's fabric (frame unit = half a body unit), only inside its parts' box, at 1x
    parts, label = _worn_parts(spec, kp)
    xy = np.asarray([q for _, p in parts for q in to_px1(p.points)])  # (N, 2) image px
    x0, y0 = np.clip(np.floor(xy.min(0)).astype(int) - 1, 0, None).tolist()
    x1, y1 = np.minimum(np.ceil(xy.max(0)).astype(int) + 1, (W, H)).tolist()
    X = (np.arange(x0, x1, dtype=np.float32) + 0.5)[None, :]  # (1, w)
    Y = (np.arange(y0, y1, dtype=np.float32) + 0.5)[:, None]  # (h, 1)
    u = np.broadcast_to((X - cx0) / fig * 2, (y1 - y0, x1 - x0))  # (h, w)
    v = np.broadcast_to((Y - _FIG_TOP * H) / fig * 2 - 0.62, (y1 - y0, x1 - x0))  # (h, w)
    anchor = {"tops": (0.0, -0.06, 0.07), "dresses": (0.0, -0.1, 0.06), "outerwear": (-0.1, 0.0, 0.05)}.get(
        spec.category, (-0.13, 0.4, 0.045))
    fab = fabric(u, v, colour, trim, spec.get("pattern") or "solid", spec.get("material") or "cotton", anchor,
                  spec.category == "bottoms", fig / 2, rng, 1.0)  # (h, w, 3)
    tex = Texture(upsample(Image.fromarray(fab, "RGB")), (x0 * SS, y0 * SS))
    tee = _DEFAULT_TOPS[int(rng.integers(len(_DEFAULT_TOPS)))]
    pants = _DEFAULT_BOTTOMS[int(rng.integers(len(_DEFAULT_BOTTOMS)))]
    fills = {"main": tex, "trim": trim, "shade": scaled(colour, 0.68), "seam": seam_colour(colour), "stitch": trim,
             "metal": (190, 175, 130), "skin": skin, "inner": tee}
    if spec.get("material") == "denim":
        fills["dstitch"] = (205, 150, 70)
    extra: list[tuple[int, Part, RGB, int]] = []  # the other clothes: (phase, part, colour, label)
    cat = spec.category
    if cat in ("tops", "outerwear"):
        extra += [(ph, p, pants, 9) for ph, p in _worn_bottoms(_PLAIN_TROUSERS, kp) if p.fill == "main"]
    if cat == "outerwear":
        extra += [(1, p, tee, 5) for ph, p in _worn_top(_PLAIN_TEE, kp) if ph == 1 and p.fill == "main"]
    if cat == "bottoms":
        extra += [(ph, p, tee, 5) for ph, p in _worn_top(_PLAIN_TEE, kp) if p.fill in ("main", "skin")]

    def garment_phase(phase: int) -> None:
        for ph, p, c, lab in extra:
            if ph == phase:
                paint(p.points, skin if p.fill == "skin" else c, 10 if p.fill == "skin" else lab)
        paint_parts(pt, [p for ph, p in parts if ph == phase], to_px, u2, fills, label=label, ids=True,
                     first_id=phase * 11 + 1)

    if long_hair:
        paint(rounded(-0.062, 0.03, 0.062, 0.215, 0.05), hair, 2)
    for side, lab_leg, lab_shoe in (("r", 17, 19), ("l", 16, 18)):
        paint(tube([kp[f"{side}_hip"], kp[f"{side}_knee"], kp[f"{side}_ankle"]], [0.05, 0.032, 0.022]), skin, lab_leg)
        ax, ay = kp[f"{side}_ankle"]
        paint(ellipse(ax + (0.006 if side == "l" else -0.006), ay + 0.02, 0.03, 0.022), (48, 40, 38), lab_shoe)
    torso = sym([(-0.03, 0.15), (-kp["l_shoulder"][0] - 0.008, 0.165), (-0.095, 0.21), (-0.078, 0.33),
                  (-0.08, 0.42), (-0.1, 0.5), (-0.06, 0.53), (0, 0.535)])
    paint(torso, skin, 10)
    paint(rect(-0.022, 0.1, 0.022, 0.16), skin, 10)
    garment_phase(0)  # bottoms
    garment_phase(1)  # torso: tops, dresses, coats; the default tee goes over the bottoms' waistband
    for side, lab_arm in (("r", 15), ("l", 14)):
        sh, el, wr = kp[f"{side}_shoulder"], kp[f"{side}_elbow"], kp[f"{side}_wrist"]
        paint(ellipse(sh[0], sh[1] + 0.008, 0.028, 0.024), skin, lab_arm)  # round shoulder
        paint(tube([sh, el, wr], [0.026, 0.021, 0.016]), skin, lab_arm)
        hx, hy = lerp(el, wr, 1.13)
        paint(ellipse(hx, hy, 0.018, 0.024), skin, lab_arm)
    garment_phase(2)  # sleeves
    paint(ellipse(0, 0.068, 0.045, 0.058), skin, 13)  # face
    paint(ellipse(0, 0.05, 0.05, 0.045, 180, 360, 12) + ((0.05, 0.06), (-0.05, 0.06)), hair, 2)
    for side in ("r", "l"):
        ex, ey = kp[f"{side}_eye"]
        paint(ellipse(ex, ey, 0.006, 0.005, n=6), (40, 30, 30), 13)
    paint(((-0.012, 0.1), (0.012, 0.1)), (150, 70, 70), 13, 0.004)
    pt.flush()
    # 3. downsample; the agnostic region: the garment dilated, plus what the garment's pixels depend on
    person_img = canvas.reduce(SS)
    parse_arr = np.asarray(pt.parse.resize((W, H), Image.Resampling.NEAREST))  # (H, W) labels
    region = {"tops": (5, 10, 14, 15), "outerwear": (5, 7, 10, 14, 15), "dresses": (6, 10, 14, 15, 16, 17),
              "bottoms": (label, 16, 17)}[cat]
    m = np.isin(parse_arr, region)  # (H, W)
    mask_img = Image.fromarray((m * 255).astype(np.uint8), "L").filter(ImageFilter.MaxFilter(5))
    keep = np.isin(parse_arr, (2, 13, 18, 19))  # head and shoes stay
    m = (np.asarray(mask_img) > 0) & ~keep  # (H, W)
    agnostic_mask = Image.fromarray((m * 255).astype(np.uint8), "L")
    agnostic = person_img.copy()
    agnostic.paste((128, 128, 128), (0, 0, W, H), agnostic_mask)
    parse = Image.fromarray(parse_arr, "P")
    parse.putpalette(_PALETTE)
    edges = pt.ids.filter(ImageFilter.FIND_EDGES).point(lambda t: 0 if t > 0 else 255).filter(ImageFilter.MinFilter(3))
    sketch = ImageChops.darker(edges, pt.lines).reduce(SS)
    # 4. pose map and the in-shop garment
    pose_keypoints = np.concatenate([keypoints, conf], axis=1)  # (18, 3)
    pose_image = _draw_pose(keypoints, W, H)
    garment, garment_mask = render_flat(spec, colour, trim, _NEUTRAL, W, H)
    return TryOnImages(person=person_img, garment=garment, garment_mask=garment_mask, agnostic=agnostic,
                       agnostic_mask=agnostic_mask, parse=parse, sketch=sketch, pose_keypoints=pose_keypoints,
                       pose_image=pose_image)


def _draw_pose(keypoints: np.ndarray, W: int, H: int) -> Image.Image:
    """OpenPose's rendering: coloured limbs and joints on black."""
    img = Image.new("RGB", (W, H), (0, 0, 0))
    d = ImageDraw.Draw(img)
    lw = max(2, round(H / 48))
    for (a, b), col in zip(_LIMBS, _POSE_COLOURS):
        d.line([tuple(keypoints[a]), tuple(keypoints[b])], fill=tuple(int(c * 0.6) for c in col), width=lw)
    r = lw * 0.8
    for (x, y), col in zip(keypoints, _POSE_COLOURS):
        d.ellipse((x - r, y - r, x + r, y + r), fill=col)
    return img
