"""Draws the synthetic world's pixels: product shots and VITON-HD-style try-on sets of a `GarmentSpec`.

Why procedural and this way: the model trains on CPU, so every attribute of the taxonomy must be
visible at 64-128 px and cost a few milliseconds to draw.
- A garment is a list of `_Part`s (polygons and strokes) in a frame of its own (x right, y down,
  about -0.5..0.5); the view rotates, scales and shifts that frame onto the canvas.
- Fabric (pattern, then material, then light) is a numpy texture computed in the same frame, so
  stripes turn with the garment, and pasted through the fabric parts' mask; trim, insides and seams
  are solid fills drawn in list order.
- Everything is drawn at `SS` x the size and box-downsampled: anti-aliasing for one cheap reduce.
- The try-on person is a stylised figure whose limbs follow its OpenPose keypoints, so the pose map,
  the parse map and the photo agree; the worn garment is built from the same keypoints.

All randomness comes from `view.seed` / `person.seed` through numpy's default_rng: the same inputs
give byte-identical pixels.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFilter

from unifashion.data.synthetic.taxonomy import WEARABLE_CATEGORIES, GarmentSpec

SS = 2  # supersampling factor: draw at SS x, then box-reduce
Point = tuple[float, float]
RGB = tuple[int, int, int]


# ----------------------------------------------------------------------------------------------
# Public specs


@dataclass(frozen=True)
class ViewSpec:
    """One photo of a product: where the garment lies on the canvas and how it is lit."""

    rotation: float  # degrees, about -15..15
    scale: float  # garment size (its frame's unit) as a fraction of the canvas's shorter side, ~0.65..0.95
    offset: tuple[float, float]  # centre shift as a fraction of canvas width/height, about -0.08..0.08
    background: tuple[int, int, int]  # RGB backdrop (light studio colours mostly)
    lighting: float  # brightness multiplier, about 0.8..1.2 (a soft gradient is added)
    seed: int  # drives pattern phase, small shape jitter, noise, the gradient's direction


def random_view(rng: np.random.Generator) -> ViewSpec:
    """A plausible studio shot: mostly white or near-white backdrops, some pastel, a few grey."""
    r = rng.random()
    if r < 0.6:
        g = int(rng.integers(236, 256))
        tint = rng.integers(-3, 4, 3)
        bg = tuple(int(np.clip(g + t, 0, 255)) for t in tint)
    elif r < 0.9:
        bg = tuple(int(c) for c in rng.integers(205, 251, 3))
    else:
        g = int(rng.integers(160, 215))
        bg = tuple(int(np.clip(g + t, 0, 255)) for t in rng.integers(-8, 9, 3))
    return ViewSpec(
        rotation=float(rng.uniform(-15, 15)),
        scale=float(rng.uniform(0.65, 0.95)),
        offset=(float(rng.uniform(-0.08, 0.08)), float(rng.uniform(-0.08, 0.08))),
        background=bg,  # type: ignore[arg-type]
        lighting=float(rng.uniform(0.8, 1.2)),
        seed=int(rng.integers(0, 2**31 - 1)),
    )


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
# Geometry helpers (frame units; y down)


@dataclass(frozen=True)
class _Part:
    """One piece of a drawing: a filled polygon, or a stroke when `width` > 0."""

    fill: str  # main (fabric) | trim | shade (inside) | seam | stitch (dashed trim) | dstitch (denim only)
    #            | metal | skin | inner (the garment worn under an open coat)
    points: tuple[Point, ...]
    width: float = 0.0  # stroke width in frame units; 0 = filled polygon


def _sym(left: list[Point]) -> tuple[Point, ...]:
    """A left-right symmetric outline from its left half (listed top to bottom-centre)."""
    return tuple(left) + tuple((-x, y) for x, y in reversed(left))


def _flip(pts) -> tuple[Point, ...]:
    return tuple((-x, y) for x, y in pts)


def _both(fill: str, pts, width: float = 0.0) -> list[_Part]:
    """A part and its mirror image."""
    return [_Part(fill, tuple(pts), width), _Part(fill, _flip(pts), width)]


def _ellipse(cx: float, cy: float, rx: float, ry: float, a0: float = 0.0, a1: float = 360.0,
             n: int = 16) -> tuple[Point, ...]:
    return tuple((cx + rx * math.cos(math.radians(a)), cy + ry * math.sin(math.radians(a)))
                 for a in np.linspace(a0, a1, n, endpoint=a1 - a0 < 360))


def _rect(x0: float, y0: float, x1: float, y1: float) -> tuple[Point, ...]:
    return ((x0, y0), (x1, y0), (x1, y1), (x0, y1))


def _rounded(x0: float, y0: float, x1: float, y1: float, r: float) -> tuple[Point, ...]:
    pts: list[Point] = []
    for cx, cy, a in ((x1 - r, y0 + r, 270), (x1 - r, y1 - r, 0), (x0 + r, y1 - r, 90), (x0 + r, y0 + r, 180)):
        pts += _ellipse(cx, cy, r, r, a, a + 90, 5)
    return tuple(pts)


def _tube(path: list[Point], radii: list[float]) -> tuple[Point, ...]:
    """A polygon around a polyline, `radii[i]` wide at `path[i]`, with flat ends (sleeves, legs)."""
    p = np.asarray(path, np.float64)  # (N, 2)
    d = np.diff(p, axis=0)
    d /= np.linalg.norm(d, axis=1, keepdims=True) + 1e-9  # (N-1, 2)
    t = np.vstack([d[:1], d[:-1] + d[1:], d[-1:]])  # (N, 2) tangents at the points
    t /= np.linalg.norm(t, axis=1, keepdims=True) + 1e-9
    n = np.stack([-t[:, 1], t[:, 0]], axis=1) * np.asarray(radii)[:, None]  # (N, 2)
    side_a, side_b = p + n, p - n
    return tuple(map(tuple, np.vstack([side_a, side_b[::-1]])))  # type: ignore[arg-type]


def _lerp(a: Point, b: Point, t: float) -> Point:
    return (a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t)


def _buttons(x: float, y0: float, y1: float, step: float, r: float) -> list[_Part]:
    return [_Part("trim", _ellipse(x, y, r, r, n=8)) for y in np.arange(y0, y1, step)]


# ----------------------------------------------------------------------------------------------
# Flat-lay (product shot) shapes, one builder per family. Each returns (parts, print anchor):
# the anchor (x, y, half size) is where a graphic print sits.

_FIT = {"slim": 0.86, "regular": 1.0, "loose": 1.16}
Anchor = tuple[float, float, float]


def _fit(spec: GarmentSpec) -> float:
    return _FIT[spec.get("fit") or "regular"]


def _flat_sleeve(shoulder: Point, armpit: Point, angle: float, length: float, end_w: float,
                 cuff: float) -> tuple[list[_Part], list[_Part]]:
    """A left sleeve leaving the body between shoulder and armpit, `angle` degrees below horizontal;
    returns (sleeve parts, cuff parts)."""
    a = math.radians(angle)
    d = (-math.cos(a), math.sin(a))
    up = (-math.sin(a), -math.cos(a))
    mid = _lerp(shoulder, armpit, 0.5)
    end = (mid[0] + d[0] * length, mid[1] + d[1] * length)
    e_up = (end[0] + up[0] * end_w / 2, end[1] + up[1] * end_w / 2)
    e_dn = (end[0] - up[0] * end_w / 2, end[1] - up[1] * end_w / 2)
    sleeve = [_Part("main", (shoulder, e_up, e_dn, armpit))]
    cuffs: list[_Part] = []
    if cuff > 0:
        back = (-d[0] * cuff, -d[1] * cuff)
        cuffs.append(_Part("trim", (e_up, e_dn, (e_dn[0] + back[0], e_dn[1] + back[1]),
                                    (e_up[0] + back[0], e_up[1] + back[1]))))
    return sleeve, cuffs


def _flat_neckline(neck: str, nw: float, y0: float, band: bool) -> list[_Part]:
    """The neck opening (the garment's inside, shaded) and its band or collar."""
    parts: list[_Part] = []
    if neck == "crew":
        curve = _ellipse(0, y0, nw, 0.07, 0, 180, 10)[::-1]
        parts.append(_Part("shade", curve))
        if band:
            parts.append(_Part("trim", curve, 0.022))
    elif neck == "v-neck":
        v = ((-nw, y0), (0, y0 + 0.17), (nw, y0))
        parts += [_Part("shade", v), _Part("trim", v, 0.02 if band else 0.012)]
    elif neck == "square":
        sq = ((-nw, y0), (-nw, y0 + 0.09), (nw, y0 + 0.09), (nw, y0))
        parts += [_Part("shade", sq), _Part("trim", sq, 0.016)]
    elif neck == "turtleneck":
        parts += [_Part("main", _rect(-nw * 0.9, y0 - 0.1, nw * 0.9, y0 + 0.03)),
                  _Part("seam", ((-nw * 0.9, y0 - 0.045), (nw * 0.9, y0 - 0.045)), 0.012)]
        parts += [_Part("seam", ((x, y0 - 0.09), (x, y0 + 0.02)), 0.006) for x in np.linspace(-nw * 0.6, nw * 0.6, 4)]
    elif neck == "collared":
        parts += [_Part("shade", ((-nw, y0), (0, y0 + 0.12), (nw, y0))),
                  _Part("trim", _rect(-nw - 0.02, y0 - 0.035, nw + 0.02, y0 + 0.01))]
        parts += _both("trim", ((-nw - 0.02, y0 - 0.01), (-0.004, y0 + 0.125), (-0.075, y0 + 0.14),
                                (-nw - 0.05, y0 + 0.04)))
    return parts


def _flat_top(spec: GarmentSpec) -> tuple[list[_Part], Anchor]:
    sub = spec.subcategory
    w = _fit(spec)
    sleeve = spec.get("sleeve") or "long"
    neck = spec.get("neckline") or "crew"
    nw, y0, ya = (0.09 if sub == "blouse" else 0.08), -0.40, -0.16
    bw = 0.2 * w
    hem = {"t-shirt": 0.27, "shirt": 0.38, "blouse": 0.32, "sweater": 0.36, "hoodie": 0.36}[sub]
    sh = bw + 0.015 if sleeve != "sleeveless" else nw + 0.07
    parts: list[_Part] = []
    if sub == "hoodie":  # the hood lies flat above the neckline, behind the body
        parts.append(_Part("main", _ellipse(0, y0 - 0.02, 0.16, 0.13, n=20)))
    left: list[Point] = [(-nw, y0), (-sh, y0 + 0.04)]
    if sleeve == "sleeveless":
        left.append((-bw * 0.8, ya - 0.09))
    left.append((-bw, ya))
    if sub == "blouse":
        left += [(-bw * 0.96, 0.04), (-bw * 1.3, hem), (-bw * 0.6, hem + 0.02), (0, hem + 0.025)]
    elif sub == "shirt":
        left += [(-bw, hem - 0.07), (-bw * 0.62, hem - 0.015), (0, hem + 0.02)]
    else:
        left += [(-bw, hem), (0, hem)]
    parts.append(_Part("main", _sym(left)))
    # sleeves: angle below horizontal, length, end width, cuff length
    if sleeve != "sleeveless":
        long = sleeve == "long"
        angle = 64.0 if long else 28.0
        length = 0.42 if long else 0.15
        end_w = (0.16 if sub == "blouse" else 0.1) if long else (0.19 if sub == "blouse" else 0.16)
        cuff = {"sweater": 0.05, "hoodie": 0.05, "shirt": 0.05 if long else 0.0, "t-shirt": 0.025}.get(sub, 0.0)
        sl, cf = _flat_sleeve((-sh, y0 + 0.04), (-bw, ya), angle, length, end_w, cuff)
        for p in sl + cf:
            parts += [p, _Part(p.fill, _flip(p.points))]
    if sub in ("sweater", "hoodie"):
        parts.append(_Part("trim", _rect(-bw, hem - 0.05, bw, hem)))
    if sub == "hoodie":
        parts.append(_Part("shade", _ellipse(0, y0 + 0.01, 0.095, 0.075, n=16)))
        parts += _both("trim", ((-0.035, y0 + 0.06), (-0.04, y0 + 0.22)), 0.014)
        pocket = ((-0.14 * w, 0.1), (0.14 * w, 0.1), (0.18 * w, 0.29), (-0.18 * w, 0.29), (-0.14 * w, 0.1))
        parts.append(_Part("seam", pocket, 0.012))
    else:
        parts += _flat_neckline(neck, nw, y0, band=sub in ("t-shirt", "sweater"))
    if sub == "shirt":
        top = y0 + (0.12 if neck == "collared" else 0.17)
        parts.append(_Part("seam", ((0, top), (0, hem + 0.01)), 0.01))
        parts += _buttons(0.0, top + 0.04, hem - 0.03, 0.09, 0.014)
        parts.append(_Part("seam", ((0.06, -0.24), (0.06, -0.13), (0.15, -0.13), (0.15, -0.24)), 0.008))
    if sub == "blouse":  # a tie bow under the neckline
        by = y0 + (0.17 if neck == "v-neck" else 0.08)
        parts += _both("trim", ((0, by), (-0.06, by - 0.035), (-0.06, by + 0.035)))
    parts += _both("dstitch", ((-bw + 0.015, ya + 0.02), (-bw + 0.015, hem - 0.02)), 0.008)
    parts.append(_Part("dstitch", ((-bw, hem - 0.025), (bw, hem - 0.025)), 0.008))
    return parts, (0.0, -0.06, 0.11 * w)


def _flat_dress(spec: GarmentSpec) -> tuple[list[_Part], Anchor]:
    w = _fit(spec)
    sleeve = spec.get("sleeve") or "sleeveless"
    nw, y0, ya, waist = 0.075, -0.48, -0.33, -0.12
    bw, ww = 0.14 * w, 0.12 * w
    hem, hw = {"mini": (0.1, 0.24), "midi": (0.3, 0.28), "maxi": (0.5, 0.32)}[spec.get("length") or "midi"]
    hw *= w
    sh = bw + 0.015 if sleeve != "sleeveless" else nw + 0.045
    left: list[Point] = [(-nw, y0), (-sh, y0 + 0.03)]
    if sleeve == "sleeveless":
        left.append((-bw * 0.85, ya - 0.07))
    left += [(-bw, ya), (-ww, waist), (-hw, hem), (-hw * 0.5, hem + 0.012), (0, hem + 0.016)]
    parts = [_Part("main", _sym(left))]
    if sleeve != "sleeveless":
        long = sleeve == "long"
        sl, _ = _flat_sleeve((-sh, y0 + 0.03), (-bw, ya), 68.0 if long else 30.0, 0.36 if long else 0.12,
                             0.08 if long else 0.12, 0.0)
        parts += sl + [_Part("main", _flip(sl[0].points))]
    parts += _flat_neckline(spec.get("neckline") or "crew", nw, y0, band=False)
    parts.append(_Part("trim", _rect(-ww - 0.004, waist - 0.02, ww + 0.004, waist + 0.018)))
    parts += _both("seam", ((-hw * 0.35, waist + 0.12), (-hw * 0.55, hem - 0.03)), 0.006)
    parts.append(_Part("dstitch", ((-hw + 0.02, hem - 0.025), (hw - 0.02, hem - 0.025)), 0.008))
    return parts, (0.0, -0.25, 0.075 * w)


def _flat_outerwear(spec: GarmentSpec) -> tuple[list[_Part], Anchor]:
    coat = spec.subcategory == "coat"
    w = _fit(spec)
    nw, y0, ya = 0.075, -0.46, -0.24
    bw = 0.22 * w
    sh = bw + 0.02
    hem = (0.52 if spec.get("length") == "knee" else 0.28) if coat else 0.16
    flare = 1.08 if coat else 1.0
    parts = [_Part("main", _sym([(-nw, y0), (-sh, y0 + 0.04), (-bw, ya), (-bw * flare, hem), (0, hem)]))]
    sl, cf = _flat_sleeve((-sh, y0 + 0.04), (-bw, ya), 70.0, 0.44 if coat else 0.4, 0.11, 0.03 if coat else 0.05)
    for p in sl + cf:
        parts += [p, _Part(p.fill, _flip(p.points))]
    collared = (spec.get("neckline") or "collared") == "collared"
    yv = y0 + (0.3 if collared else 0.24)
    parts.append(_Part("shade", ((-nw, y0), (0, yv), (nw, y0))))
    if collared:
        parts.append(_Part("trim", _rect(-nw - 0.02, y0 - 0.03, nw + 0.02, y0 + 0.01)))
        parts += _both("trim", ((-nw - 0.005, y0 - 0.005), (-0.006, yv), (-0.05, yv - 0.07),
                                (-nw - 0.075, y0 + 0.13), (-nw - 0.03, y0 + 0.05)))
    else:
        parts += _both("trim", ((-nw, y0), (0, yv)), 0.022)
    parts.append(_Part("seam", ((0, yv), (0, hem)), 0.012))
    parts += _buttons(0.035, yv + 0.04, hem - 0.05, 0.1, 0.016)
    py = hem - (0.2 if coat else 0.12)
    parts += _both("seam", ((-bw * 0.75, py), (-bw * 0.3, py)), 0.014)
    if coat:  # belted
        parts.append(_Part("trim", _rect(-bw - 0.005, -0.08, bw + 0.005, -0.04)))
        parts.append(_Part("metal", _rect(-0.03, -0.09, 0.03, -0.03)))
    else:  # bomber-style hem band
        parts.append(_Part("trim", _rect(-bw, hem - 0.05, bw, hem)))
    parts += _both("dstitch", ((-bw + 0.015, ya + 0.02), (-bw * flare + 0.015, hem - 0.02)), 0.008)
    return parts, (-0.1, -0.15, 0.06)


def _flat_bottoms(spec: GarmentSpec) -> tuple[list[_Part], Anchor]:
    sub = spec.subcategory
    w = _fit(spec)
    parts: list[_Part] = []
    if sub == "skirt":
        hem, hw = {"mini": (-0.02, 0.27), "midi": (0.24, 0.32), "maxi": (0.5, 0.37)}[spec.get("length") or "midi"]
        ww, hw = 0.18 * w, hw * w
        parts.append(_Part("main", _sym([(-ww, -0.41), (-hw, hem), (-hw * 0.5, hem + 0.012), (0, hem + 0.016)])))
        parts.append(_Part("trim", _rect(-ww - 0.005, -0.46, ww + 0.005, -0.4)))
        parts += [_Part("seam", ((x * ww * 0.8, -0.38), (x * hw * 0.75, hem - 0.02)), 0.007) for x in (-0.6, 0.0, 0.6)]
        parts.append(_Part("dstitch", ((-hw + 0.02, hem - 0.025), (hw - 0.02, hem - 0.025)), 0.008))
        return parts, (0.0, -0.28, 0.07)
    shorts = sub == "shorts"
    ww = (0.21 if shorts else 0.19) * w
    hipw = ww * 1.12
    top, band = (-0.32, 0.055) if shorts else (-0.5, 0.05)
    crotch = top + (0.38 if shorts else 0.36)
    if shorts:
        hem = 0.26
    else:
        hem = 0.5 if (spec.get("length") or "full") == "full" else 0.2
    outer = {"slim": 0.18, "regular": 0.21, "loose": 0.25}[spec.get("fit") or "regular"] * (1.22 if shorts else 1.0)
    inner = (0.03 if shorts else 0.06) - (w - 1) * 0.05
    yb = top + band
    parts.append(_Part("main", _sym([(-ww, yb), (-hipw, yb + 0.22), (-outer, hem), (-inner, hem), (0, crotch)])))
    parts.append(_Part("trim", _rect(-ww - 0.006, top, ww + 0.006, yb)))
    parts += [_Part("shade", _rect(x - 0.01, top - 0.005, x + 0.01, yb + 0.02)) for x in (-ww * 0.7, ww * 0.7)]
    parts.append(_Part("seam", ((0.025, yb), (0.025, crotch - 0.06), (0.0, crotch - 0.03)), 0.01))
    leg_x = (outer + inner) / 2
    if sub == "jeans" or spec.get("material") == "denim":
        for s in (-1, 1):  # front pockets, coin pocket, rivets: jeans' pocket stitching in trim
            parts.append(_Part("stitch", ((s * ww * 0.45, yb), (s * ww * 0.62, yb + 0.08), (s * ww * 0.98, yb + 0.12)), 0.012))
            parts.append(_Part("metal", _ellipse(s * ww * 0.95, yb + 0.12, 0.012, 0.012, n=8)))
        parts.append(_Part("stitch", ((ww * 0.55, yb + 0.03), (ww * 0.8, yb + 0.03), (ww * 0.8, yb + 0.09)), 0.01))
        parts += _both("stitch", ((-outer + 0.02, hem - 0.03), (-inner - 0.01, hem - 0.03)), 0.01)
    elif sub == "trousers":  # pressed creases
        parts += _both("seam", ((-leg_x * 0.95, yb + 0.2), (-leg_x, hem - 0.01)), 0.008)
    parts += _both("dstitch", ((-hipw + 0.02, yb + 0.22), (-outer + 0.02, hem - 0.02)), 0.008)
    return parts, (-leg_x, yb + 0.22, 0.065)


def _flat_footwear(spec: GarmentSpec) -> tuple[list[_Part], Anchor]:
    """Side view, toe to the right."""
    sub = spec.subcategory
    parts: list[_Part] = []
    if sub == "sneakers":
        upper = ((-0.44, 0.12), (-0.47, -0.08), (-0.4, -0.24), (-0.22, -0.19), (-0.05, -0.2), (0.12, -0.1),
                 (0.36, -0.03), (0.47, 0.06), (0.47, 0.12))
        parts.append(_Part("main", upper))
        parts.append(_Part("shade", _ellipse(-0.3, -0.2, 0.11, 0.035, n=12)))
        parts.append(_Part("trim", ((-0.48, 0.08), (0.48, 0.08), (0.46, 0.2), (-0.46, 0.2))))
        parts.append(_Part("seam", ((0.2, -0.07), (0.3, 0.08)), 0.01))
        parts += [_Part("trim", ((x, -0.19 + (x + 0.05) * 0.5), (x + 0.07, -0.12 + (x + 0.05) * 0.5)), 0.022)
                  for x in (-0.06, 0.03, 0.12)]
        parts.append(_Part("seam", ((-0.38, 0.04), (-0.15, -0.1), (0.08, 0.04)), 0.014))
        return parts, (-0.2, 0.0, 0.07)
    if sub == "boots":
        shaft = ((-0.36, 0.3), (-0.37, -0.46), (-0.06, -0.46), (-0.04, -0.08), (0.25, 0.06), (0.42, 0.18),
                 (0.43, 0.3))
        parts.append(_Part("main", shaft))
        parts.append(_Part("shade", _rect(-0.35, -0.47, -0.07, -0.43)))
        parts.append(_Part("trim", ((-0.38, 0.28), (0.45, 0.28), (0.44, 0.35), (-0.38, 0.35))))
        parts.append(_Part("trim", _rect(-0.38, 0.34, -0.2, 0.45)))
        parts.append(_Part("metal", ((-0.07, -0.4), (-0.06, 0.0)), 0.014))
        parts.append(_Part("trim", _rect(-0.42, -0.46, -0.36, -0.34)))
        return parts, (-0.2, -0.2, 0.08)
    # sandals: a visible sole (trim) and fabric straps
    parts.append(_Part("trim", ((-0.46, 0.12), (0.45, 0.08), (0.48, 0.18), (-0.45, 0.22))))
    parts.append(_Part("trim", _rect(-0.44, 0.2, -0.28, 0.3)))
    parts.append(_Part("main", ((0.14, 0.1), (0.2, -0.06), (0.3, -0.08), (0.4, 0.08), (0.32, 0.09), (0.26, 0.0),
                                (0.22, 0.1))))
    parts.append(_Part("main", ((-0.1, 0.11), (-0.05, -0.1), (0.07, -0.12), (0.12, 0.1), (0.05, 0.1), (0.02, -0.04),
                                (-0.03, -0.04), (-0.04, 0.11))))
    parts.append(_Part("main", ((-0.42, 0.13), (-0.44, -0.2), (-0.3, -0.22), (-0.3, -0.16), (-0.38, -0.14),
                                (-0.36, 0.13))))
    parts.append(_Part("main", ((-0.38, -0.2), (-0.02, -0.1), (-0.02, -0.05), (-0.38, -0.14))))
    parts.append(_Part("metal", _rect(-0.25, -0.2, -0.19, -0.13)))
    return parts, (0.0, 0.0, 0.05)


def _flat_bag(spec: GarmentSpec) -> tuple[list[_Part], Anchor]:
    sub = spec.subcategory
    parts: list[_Part] = []
    if sub == "tote":
        handle = _ellipse(0, -0.1, 0.19, 0.36, 180, 360, 14)
        parts.append(_Part("shade", tuple((x + 0.03, y - 0.01) for x, y in handle), 0.04))
        parts.append(_Part("main", ((-0.36, -0.12), (0.36, -0.12), (0.42, 0.45), (-0.42, 0.45))))
        parts.append(_Part("trim", ((-0.36, -0.12), (0.36, -0.12), (0.365, -0.07), (-0.365, -0.07))))
        parts.append(_Part("trim", handle, 0.04))
        parts.append(_Part("dstitch", ((-0.38, 0.42), (0.38, 0.42)), 0.008))
        return parts, (0.0, 0.17, 0.13)
    if sub == "backpack":
        parts += _both("trim", ((-0.22, -0.32), (-0.36, -0.1), (-0.38, 0.38), (-0.3, 0.4), (-0.3, -0.1)))
        parts.append(_Part("trim", _ellipse(0, -0.38, 0.08, 0.1, 180, 360, 10), 0.03))
        parts.append(_Part("main", _rounded(-0.3, -0.4, 0.3, 0.46, 0.14)))
        parts.append(_Part("metal", _ellipse(0, -0.15, 0.27, 0.2, 195, 345, 12), 0.012))
        parts.append(_Part("main", _rounded(-0.21, 0.06, 0.21, 0.4, 0.06)))
        parts.append(_Part("seam", _rounded(-0.21, 0.06, 0.21, 0.4, 0.06) + ((0.15, 0.06),), 0.01))
        parts.append(_Part("metal", ((-0.16, 0.1), (0.16, 0.1)), 0.012))
        return parts, (0.0, 0.23, 0.1)
    # shoulder bag: trapezoid body, flap, a long strap
    parts.append(_Part("trim", _ellipse(0, 0.02, 0.28, 0.49, 180, 360, 16), 0.025))
    parts.append(_Part("main", ((-0.3, 0.0), (0.3, 0.0), (0.37, 0.45), (-0.37, 0.45))))
    flap = ((-0.31, -0.01), (0.31, -0.01), (0.32, 0.22), (0.0, 0.28), (-0.32, 0.22))
    parts.append(_Part("main", flap))
    parts.append(_Part("seam", flap + (flap[0],), 0.01))
    parts.append(_Part("metal", _rect(-0.035, 0.23, 0.035, 0.3)))
    return parts, (0.0, 0.1, 0.09)


def _flat_parts(spec: GarmentSpec) -> tuple[list[_Part], Anchor]:
    cat = spec.category
    if cat == "tops":
        return _flat_top(spec)
    if cat == "dresses":
        return _flat_dress(spec)
    if cat == "outerwear":
        return _flat_outerwear(spec)
    if cat == "bottoms":
        return _flat_bottoms(spec)
    if cat == "footwear":
        return _flat_footwear(spec)
    if cat == "bags":
        return _flat_bag(spec)
    raise ValueError(f"no drawing for category '{cat}' (subcategory '{spec.subcategory}')")


# ----------------------------------------------------------------------------------------------
# Colour and fabric


def _luma(c) -> float:
    return 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]


def _accent(colour: RGB, trim: RGB) -> RGB:
    """The pattern's second colour: the trim colour, or a contrasting shade when trim is too close."""
    if sum(abs(a - b) for a, b in zip(colour, trim)) > 120:
        return trim
    return (245, 244, 238) if _luma(colour) < 140 else (30, 30, 34)


def _scaled(c, k: float) -> RGB:
    return tuple(int(min(255, max(0, round(v * k)))) for v in c)  # type: ignore[return-value]


def _seam_colour(c: RGB) -> RGB:
    """Seams and outlines: darker on light fabric, lighter on dark fabric, so they always show."""
    return _scaled(c, 0.62) if _luma(c) > 60 else tuple(min(255, v + 55) for v in c)  # type: ignore[return-value]


def _fabric(u: np.ndarray, v: np.ndarray, colour: RGB, trim: RGB, pattern: str, material: str,
            anchor: Anchor, vertical: bool, ppu: float, rng: np.random.Generator, light) -> np.ndarray:
    """Fabric pixels (uint8 RGB) at frame coordinates (u, v): the pattern in colour/accent, then the
    material's texture, then `light` (a scalar or a map like u). `ppu` (final pixels per frame unit)
    keeps periods a few pixels wide.

    Cheap by construction: the pattern is an index into a 4-colour palette and the material an
    affine map per pixel (colour * A + B), so only the last step touches three channels."""
    acc = _accent(colour, trim)
    eye = (250, 205, 40) if abs(_luma(acc) - 190) > 40 else (200, 60, 40)
    pal = np.asarray([colour, acc, [(a + b) / 2 for a, b in zip(colour, acc)], eye], np.float32)  # (4, 3)
    idx = np.zeros(u.shape, np.uint8)  # (h, w) palette index
    ph = [float(x) for x in rng.random(2)]  # python floats keep the arrays float32

    def period(p: float) -> float:
        return max(p, 5.0 / ppu)

    if pattern == "stripes":
        t = (u if vertical else v) / period(0.085) + ph[0]
        idx[t - np.floor(t) < 0.42] = 1
    elif pattern in ("dots", "floral"):
        p = period(0.09 if pattern == "dots" else 0.15)
        gy = v / p + ph[1]
        row = np.floor(gy)
        gx = u / p + ph[0] + 0.5 * (row % 2)
        col = np.floor(gx)
        dx, dy = gx - col - 0.5, gy - row - 0.5  # (h, w) position inside the cell
        r2 = dx * dx + dy * dy
        if pattern == "dots":
            idx[r2 < 0.07] = 1
        else:  # five-petal flowers: r < R(0.5 + 0.5 cos 5theta), cos 5theta as Chebyshev T5(cos theta)
            dx = dx * (((row + col) % 2) * 2 - 1)  # every other flower turned
            r = np.sqrt(r2) + 1e-6
            c = dx / r
            cos5 = c * (5 + c * c * (-20 + 16 * c * c))
            idx[r < 0.36 * (0.5 + 0.5 * cos5) + 0.13] = 1
            idx[r < 0.1] = 3
    elif pattern == "checks":  # gingham: half-tone where one band crosses, accent where both do
        p = period(0.12)
        a = (u / p + ph[0]) % 1.0 < 0.5
        b = (v / p + ph[1]) % 1.0 < 0.5
        idx[a ^ b] = 2
        idx[a & b] = 1
    elif pattern == "graphic print":  # a bold logo: accent square with a ring and a bar in the base colour
        cx, cy, h = anchor
        du, dv = (u - cx) / h, (v - cy) / h
        box = (np.abs(du) < 1) & (np.abs(dv) < 1)
        r2 = du * du + dv * dv
        idx[box] = 1
        idx[box & (((r2 > 0.2) & (r2 < 0.5)) | ((np.abs(du) < 0.14) & (np.abs(dv) < 0.8)))] = 0

    # material as colour * A + B; an amplitude m gives colour * (1 + 0.45 m) + 40 m: visible on
    # black, not blown out on white
    A: np.ndarray | float = 1.0
    B: np.ndarray | float = 0.0
    tint = None
    if material == "cotton":  # faint noise
        m = rng.random(u.shape, dtype=np.float32) * 0.08 - 0.04
        A, B = 1 + 0.45 * m, 40 * m
    elif material == "denim":  # diagonal twill with light blue-grey weft
        sn = np.sin((u + v) * (2 * np.pi / max(0.03, 3.0 / ppu)))
        t = 0.14 * np.maximum(sn, 0)
        A, B = (1 + 0.072 * sn) * (1 - t), 6.4 * sn * (1 - t)
        tint = t
    elif material == "leather":  # a sharp specular band and a soft second one
        d = 0.55 * u + 0.83 * v - rng.uniform(-0.25, 0.1)
        h = 0.5 * np.exp(-(d / 0.045) ** 2) + 0.2 * np.exp(-((d - 0.22) / 0.09) ** 2)
        A, B = 1 - h, 255 * h
    elif material == "knit":  # vertical ribs
        m = 0.16 * np.sin(u * (2 * np.pi / max(0.035, 3.2 / ppu)))
        A, B = 1 + 0.45 * m, 40 * m
    elif material == "silk":  # broad smooth sheen
        sn = np.sin((0.8 * u + 0.35 * v) * (2 * np.pi / 0.42) + rng.uniform(0, 2 * np.pi))
        q = 0.3 * np.maximum(sn, 0) ** 2
        dim = 1 - 0.07 * np.maximum(-sn, 0)
        A, B = (1 - q) * dim, 255 * q * dim
    A, B = A * light, B * light
    rgb = np.take(pal, idx, axis=0) if pattern != "solid" else pal[0]  # (h, w, 3) or (3,)
    out = rgb * np.asarray(A, np.float32)[..., None] + np.asarray(B, np.float32)[..., None]  # (h, w, 3)
    if tint is not None:
        out += (tint * light)[..., None] * np.asarray((185, 200, 228), np.float32)
    return np.clip(out, 0, 255).astype(np.uint8)


def _upsample(img: Image.Image) -> Image.Image:
    """1x -> SS x by pixel repetition: downsampling gives back exactly `img`."""
    return img.resize((img.width * SS, img.height * SS), Image.Resampling.NEAREST)


def _dashes(pts: list[Point], dash: float) -> list[list[Point]]:
    """A polyline cut into dashes `dash` long with equal gaps (stitching)."""
    out: list[list[Point]] = []
    on, left = True, dash
    cur: list[Point] = [pts[0]]
    for a, b in zip(pts[:-1], pts[1:]):
        seg = math.dist(a, b)
        pos = 0.0
        while seg - pos > left:
            pos += left
            q = _lerp(a, b, pos / seg)
            if on:
                out.append(cur + [q])
            cur = [q]
            on, left = not on, dash
        left -= seg - pos
        cur.append(b)
    if on and len(cur) > 1:
        out.append(cur)
    return out


@dataclass(frozen=True)
class _Texture:
    """A fabric texture covering the canvas box that starts at `origin` (textures are computed only
    where the garment is)."""

    image: Image.Image
    origin: tuple[int, int]


class _Painter:
    """Paints parts in order on a supersampled canvas, keeping optional label maps in step.

    Consecutive parts with the same texture share one mask and one paste (the costly step); a solid
    fill pastes the pending texture first, so what shows is exactly list order.
    """

    def __init__(self, canvas: Image.Image, maps: bool = False):
        self.img = canvas
        self.draw = ImageDraw.Draw(canvas)
        self.size = canvas.size
        self.maps = maps
        if maps:
            self.parse = Image.new("L", self.size, 0)  # labels
            self.ids = Image.new("L", self.size, 0)  # garment part ids, for the sketch's edges
            self.lines = Image.new("L", self.size, 255)  # garment detail lines, for the sketch
            self.pdraw, self.idraw, self.ldraw = (ImageDraw.Draw(im) for im in (self.parse, self.ids, self.lines))
        self._tex: _Texture | None = None
        self._mask: Image.Image | None = None
        self._mdraw: ImageDraw.ImageDraw | None = None

    def flush(self) -> None:
        if self._tex is not None:
            (x0, y0), (w, h) = self._tex.origin, self._tex.image.size
            self.img.paste(self._tex.image, (x0, y0), self._mask.crop((x0, y0, x0 + w, y0 + h)))
            self._tex = None

    def paint(self, pts: list[Point], fill, width: float = 0.0, label: int = 0, part_id: int = 0,
              sketch_line: bool = False) -> None:
        if isinstance(fill, _Texture):
            if self._tex is not fill:
                self.flush()
                self._tex, self._mask = fill, Image.new("L", self.size, 0)
                self._mdraw = ImageDraw.Draw(self._mask)
            _stroke_or_fill(self._mdraw, pts, 255, width)
        else:
            self.flush()
            _stroke_or_fill(self.draw, pts, fill, width)
        if self.maps:
            _stroke_or_fill(self.pdraw, pts, label, width)
            _stroke_or_fill(self.idraw, pts, part_id, width)
            if sketch_line:
                _stroke_or_fill(self.ldraw, pts, 0, max(width, SS))


def _stroke_or_fill(draw: ImageDraw.ImageDraw, pts: list[Point], fill, width: float) -> None:
    if width > 0:
        draw.line(pts, fill=fill, width=max(1, round(width)), joint="curve")
    elif len(pts) >= 3:
        draw.polygon(pts, fill=fill)


def _paint_parts(painter: _Painter, parts: list[_Part], to_px, unit_px: float, fills: dict, *,
                 label: int = 0, skin_label: int = 10, ids: bool = False, first_id: int = 1) -> None:
    """Paint `parts` through `to_px` (frame -> canvas pixels); `fills` maps a part's fill to a
    colour or texture. `ids`: give each part its own id in the sketch-id map."""
    for i, part in enumerate(parts):
        fill = fills.get(part.fill)
        if fill is None:
            continue
        pts = to_px(part.points)
        width = part.width * unit_px
        lab = skin_label if part.fill == "skin" else (5 if part.fill == "inner" else label)
        pid = (first_id + 37 * i) % 230 + 20 if ids and part.fill not in ("skin", "inner") else 0
        line = ids and width > 0
        if part.fill in ("stitch", "dstitch"):
            for dash in _dashes(pts, max(2.0, 1.6 * width)):
                painter.paint(dash, fill, width, lab, pid, line)
        else:
            painter.paint(pts, fill, width, lab, pid, line)


# ----------------------------------------------------------------------------------------------
# Product shots


def _jitter(parts: list[_Part], rng: np.random.Generator) -> list[_Part]:
    """A small affine wobble (scale, shear) so no two shots of a product are pixel-identical shapes."""
    sx, sy = 1 + rng.normal(0, 0.015, 2)
    sh = rng.normal(0, 0.015)
    return [_Part(p.fill, tuple((x * sx + y * sh, y * sy) for x, y in p.points), p.width) for p in parts]


def _render_flat(spec: GarmentSpec, colour: RGB, trim: RGB, view: ViewSpec, width: int,
                 height: int) -> tuple[Image.Image, Image.Image]:
    """The product shot at width x height and its garment mask (L, 0/255)."""
    rng = np.random.default_rng(view.seed)
    parts, anchor = _flat_parts(spec)
    parts = _jitter(parts, rng)
    # 1. frame -> canvas: centre the drawing's bounding box, rotate, scale, shift
    xy = np.concatenate([np.asarray(p.points) for p in parts])  # (N, 2)
    bx, by = ((xy.min(0) + xy.max(0)) / 2).tolist()
    W2, H2 = width * SS, height * SS
    s = view.scale * min(width, height) * SS  # canvas px per frame unit
    th = math.radians(view.rotation)
    c, sn = math.cos(th), math.sin(th)
    cx, cy = W2 / 2 + view.offset[0] * W2, H2 / 2 + view.offset[1] * H2

    def to_px(pts) -> list[Point]:
        return [(cx + s * (c * (x - bx) - sn * (y - by)), cy + s * (sn * (x - bx) + c * (y - by))) for x, y in pts]

    # 2. coverage (for the mask, the drop shadow and where to compute fabric)
    cover = Image.new("L", (W2, H2), 0)
    cdraw = ImageDraw.Draw(cover)
    for p in parts:
        if p.fill != "dstitch":
            _stroke_or_fill(cdraw, to_px(p.points), 255, p.width * s)
    mask = cover.reduce(SS).point(lambda t: 255 if t >= 128 else 0)
    # 3. backdrop at 1x (it is smooth), upsampled: brightness x a soft linear gradient, drop shadow
    g, phi = rng.uniform(0.03, 0.09), rng.uniform(0, 2 * np.pi)
    gx, gy = g * math.cos(phi), g * math.sin(phi)

    def light(X: np.ndarray, Y: np.ndarray) -> np.ndarray:  # X, Y as fractions of the canvas
        return view.lighting * (1 + gx * (X - 0.5) + gy * (Y - 0.5))

    shadow = Image.new("L", (width, height), 0)
    shadow.paste(mask, (round(0.012 * s / SS), round(0.022 * s / SS)))
    shadow = shadow.filter(ImageFilter.BoxBlur(max(1, round(0.025 * s / SS))))
    X1 = ((np.arange(width, dtype=np.float32) + 0.5) / width)[None, :]  # (1, W)
    Y1 = ((np.arange(height, dtype=np.float32) + 0.5) / height)[:, None]  # (H, 1)
    shade = light(X1, Y1) * (1 - np.asarray(shadow, np.float32) * (0.16 / 255))  # (H, W)
    bg = np.asarray(view.background, np.float32) * shade[..., None]  # (H, W, 3)
    canvas = Image.fromarray(np.clip(bg, 0, 255).astype(np.uint8), "RGB").resize((W2, H2), Image.Resampling.NEAREST)
    # 4. fabric texture in frame coordinates, only inside the garment's box, at 1x (the costly step;
    #    the 2x mask still anti-aliases the garment's edges); it gets half the light
    x0, y0, x1, y1 = cover.getbbox() or (0, 0, SS, SS)
    x0, y0, x1, y1 = x0 // SS, y0 // SS, -(-x1 // SS), -(-y1 // SS)
    X = ((np.arange(x0, x1, dtype=np.float32) + 0.5) * SS)[None, :]  # (1, w) canvas px
    Y = ((np.arange(y0, y1, dtype=np.float32) + 0.5) * SS)[:, None]  # (h, 1)
    u = (c * (X - cx) + sn * (Y - cy)) / s + bx  # (h, w)
    v = (-sn * (X - cx) + c * (Y - cy)) / s + by  # (h, w)
    fab = _fabric(u, v, colour, trim, spec.get("pattern") or "solid", spec.get("material") or "cotton", anchor,
                  spec.category == "bottoms", s / SS, rng, 0.5 + 0.5 * light(X / W2, Y / H2))  # (h, w, 3)
    tex = _Texture(_upsample(Image.fromarray(fab, "RGB")), (x0 * SS, y0 * SS))
    # 5. parts in order, then downsample
    lk = 0.5 + 0.5 * view.lighting
    fills = {"main": tex, "trim": _scaled(trim, lk), "shade": _scaled(colour, 0.68 * lk),
             "seam": _scaled(_seam_colour(colour), lk), "stitch": _scaled(trim, lk), "metal": _scaled((190, 175, 130), lk)}
    if spec.get("material") == "denim":
        fills["dstitch"] = _scaled((205, 150, 70), lk)
    painter = _Painter(canvas)
    _paint_parts(painter, parts, to_px, s, fills)
    painter.flush()
    return canvas.reduce(SS), mask


def render_product(spec: GarmentSpec, colour: RGB, trim: RGB, view: ViewSpec, size: int) -> Image.Image:
    """An RGB size x size product shot of `spec` in `colour` (trim details in `trim`) seen as `view`."""
    return _render_flat(spec, colour, trim, view, size, size)[0]


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


def _worn_sleeves(kp: dict[str, Point], sleeve: str, f: float, cuff: float, flare: float = 1.0) -> list[tuple[int, _Part]]:
    out: list[tuple[int, _Part]] = []
    if sleeve == "sleeveless":
        return out
    for side, s in (("r", -1), ("l", 1)):
        sh, el, wr = kp[f"{side}_shoulder"], kp[f"{side}_elbow"], kp[f"{side}_wrist"]
        start = (sh[0] - s * 0.012, sh[1] + 0.004)
        if sleeve == "short":
            path, radii = [start, _lerp(sh, el, 0.5)], [0.04 * f, 0.034 * f * flare]
        else:
            path, radii = [start, el, _lerp(el, wr, 0.93)], [0.04 * f, 0.032 * f, 0.027 * f * flare]
        out.append((2, _Part("main", _ellipse(sh[0], sh[1] + 0.008, 0.032 * f, 0.03))))  # over the shoulder's cap
        out.append((2, _Part("main", _tube(path, radii))))
        if cuff > 0:
            a, b = path[-2], path[-1]
            t = max(0.0, 1 - cuff / math.dist(a, b))
            out.append((2, _Part("trim", _tube([_lerp(a, b, t), b], [radii[-1] * 1.02] * 2))))
    return out


def _worn_neckline(neck: str, band: bool) -> list[tuple[int, _Part]]:
    """The neck opening (skin shows) or turtleneck / collar, over the torso."""
    parts: list[_Part] = []
    if neck == "crew":
        curve = _ellipse(0, 0.138, 0.036, 0.028, 0, 180, 10)[::-1]
        parts.append(_Part("skin", curve))
        if band:
            parts.append(_Part("trim", curve, 0.008))
    elif neck == "v-neck":
        v = ((-0.036, 0.138), (0, 0.235), (0.036, 0.138))
        parts += [_Part("skin", v), _Part("trim", v, 0.007 if band else 0.004)]
    elif neck == "square":
        sq = ((-0.042, 0.138), (-0.042, 0.2), (0.042, 0.2), (0.042, 0.138))
        parts += [_Part("skin", sq), _Part("trim", sq, 0.005)]
    elif neck == "turtleneck":
        parts += [_Part("main", _rect(-0.029, 0.112, 0.029, 0.165)),
                  _Part("seam", ((-0.029, 0.135), (0.029, 0.135)), 0.004)]
    elif neck == "collared":
        parts.append(_Part("skin", ((-0.03, 0.138), (0, 0.2), (0.03, 0.138))))
        parts += _both("trim", ((-0.04, 0.128), (-0.003, 0.2), (-0.045, 0.205), (-0.058, 0.15)))
    return [(1, p) for p in parts]


def _worn_top(spec: GarmentSpec, kp: dict[str, Point], sub: str | None = None) -> list[tuple[int, _Part]]:
    sub = sub or spec.subcategory
    f = _WORN_FIT[spec.get("fit") or "regular"]
    sleeve = spec.get("sleeve") or "short"
    neck = spec.get("neckline") or "crew"
    sw = kp["l_shoulder"][0]
    hem, hw = {"t-shirt": (0.5, 0.098), "shirt": (0.55, 0.1), "blouse": (0.49, 0.122), "sweater": (0.52, 0.097),
               "hoodie": (0.53, 0.1)}[sub]
    hw *= f
    out: list[tuple[int, _Part]] = []
    if sleeve == "sleeveless":
        left: list[Point] = [(-0.036, 0.14), (-0.066, 0.158), (-0.082 * f, 0.2)]
    else:
        left = [(-0.036, 0.14), (-sw - 0.012, 0.162)]
    left += [(-0.098 * f, 0.235), (-0.082 * f, 0.37)]
    if sub == "shirt":
        left += [(-hw, hem - 0.025), (-hw * 0.5, hem - 0.005), (0, hem)]
    else:
        left += [(-hw, hem), (0, hem)]
    out.append((1, _Part("main", _sym(left))))
    if sub in ("sweater", "hoodie"):
        out.append((1, _Part("trim", _rect(-hw, hem - 0.028, hw, hem))))
    if sub == "hoodie":  # the hood, down, lies around the neck
        out.append((1, _Part("main", ((-0.07, 0.155), (-0.045, 0.112), (0.045, 0.112), (0.07, 0.155), (0.04, 0.19),
                                      (-0.04, 0.19)))))
        out.append((1, _Part("shade", _ellipse(0, 0.15, 0.03, 0.022, n=12))))
        out += [(1, p) for p in _both("trim", ((-0.015, 0.18), (-0.018, 0.27)), 0.005)]
        out.append((1, _Part("seam", ((-0.06 * f, 0.39), (0.06 * f, 0.39), (0.075 * f, 0.47), (-0.075 * f, 0.47),
                                      (-0.06 * f, 0.39)), 0.005)))
    else:
        out += _worn_neckline(neck, band=sub in ("t-shirt", "sweater"))
    if sub == "shirt":
        top = 0.2 if neck == "collared" else 0.235
        out.append((1, _Part("seam", ((0, top), (0, hem)), 0.004)))
        out += [(1, p) for p in _buttons(0.0, top + 0.02, hem - 0.02, 0.055, 0.006)]
    if sub == "blouse":
        by = 0.235 if neck == "v-neck" else 0.17
        out += [(1, p) for p in _both("trim", ((0, by), (-0.025, by - 0.014), (-0.025, by + 0.014)))]
    cuff = {"sweater": 0.03, "hoodie": 0.03, "shirt": 0.03 if sleeve == "long" else 0.0, "t-shirt": 0.012}.get(sub, 0.0)
    out += _worn_sleeves(kp, sleeve, f, cuff, 1.3 if sub == "blouse" else 1.0)
    return out


def _worn_dress(spec: GarmentSpec, kp: dict[str, Point]) -> list[tuple[int, _Part]]:
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
    out: list[tuple[int, _Part]] = [(1, _Part("main", _sym(left)))]
    out += _worn_neckline(spec.get("neckline") or "crew", band=False)
    out.append((1, _Part("trim", _rect(-0.08 * f, 0.36, 0.08 * f, 0.38))))
    out += [(1, p) for p in _both("seam", ((-0.04 * f, 0.46), (-hw * 0.55, hem - 0.015)), 0.003)]
    out += _worn_sleeves(kp, sleeve, f, 0.0)
    return out


def _worn_outerwear(spec: GarmentSpec, kp: dict[str, Point]) -> list[tuple[int, _Part]]:
    coat = spec.subcategory == "coat"
    f = _WORN_FIT[spec.get("fit") or "regular"]
    sw = kp["l_shoulder"][0]
    hem, hw = ((0.76, 0.135) if spec.get("length") == "knee" else (0.57, 0.115)) if coat else (0.53, 0.105)
    hw *= f
    left: list[Point] = [(-0.04, 0.138), (-sw - 0.02, 0.16), (-0.108 * f, 0.24), (-0.095 * f, 0.37), (-hw, hem),
                         (0, hem)]
    out: list[tuple[int, _Part]] = [(1, _Part("main", _sym(left)))]
    collared = (spec.get("neckline") or "collared") == "collared"
    yv = 0.3 if collared else 0.27
    out.append((1, _Part("inner", ((-0.04, 0.138), (0, yv), (0.04, 0.138)))))
    out.append((1, _Part("skin", _ellipse(0, 0.136, 0.03, 0.02, 0, 180, 8)[::-1])))
    if collared:
        out += [(1, p) for p in _both("trim", ((-0.042, 0.132), (-0.003, yv), (-0.02, yv - 0.03), (-0.068, 0.18),
                                               (-0.055, 0.14)))]
    else:
        out += [(1, p) for p in _both("trim", ((-0.04, 0.138), (0, yv)), 0.008)]
    out.append((1, _Part("seam", ((0, yv), (0, hem)), 0.004)))
    out += [(1, p) for p in _buttons(0.012, yv + 0.02, hem - 0.03, 0.06, 0.006)]
    if coat:
        out.append((1, _Part("trim", _rect(-0.095 * f, 0.36, 0.095 * f, 0.385))))
        out.append((1, _Part("metal", _rect(-0.012, 0.355, 0.012, 0.39))))
    else:
        out.append((1, _Part("trim", _rect(-hw, hem - 0.03, hw, hem))))
    out += _worn_sleeves(kp, "long", f * 1.08, 0.02 if coat else 0.03)
    return out


def _worn_bottoms(spec: GarmentSpec, kp: dict[str, Point], sub: str | None = None) -> list[tuple[int, _Part]]:
    sub = sub or spec.subcategory
    f = _WORN_FIT[spec.get("fit") or "regular"]
    out: list[tuple[int, _Part]] = []
    if sub == "skirt":
        hem, hw = {"mini": (0.6, 0.135), "midi": (0.76, 0.155), "maxi": (0.9, 0.175)}[spec.get("length") or "midi"]
        hw *= f
        out.append((0, _Part("main", _sym([(-0.086 * f, 0.44), (-hw, hem), (0, hem + 0.008)]))))
        out.append((0, _Part("trim", _rect(-0.088 * f, 0.42, 0.088 * f, 0.445))))
        out += [(0, _Part("seam", ((x * 0.06, 0.46), (x * hw * 0.7, hem - 0.01)), 0.003)) for x in (-1, 0, 1)]
        return out
    hem_r = {"slim": 0.026, "regular": 0.032, "loose": 0.042}[spec.get("fit") or "regular"]
    out.append((0, _Part("main", ((-0.085 * f, 0.44), (0.085 * f, 0.44), (0.112 * f, 0.52), (0, 0.575),
                                  (-0.112 * f, 0.52)))))
    for side in ("r", "l"):
        hip, knee, ankle = kp[f"{side}_hip"], kp[f"{side}_knee"], kp[f"{side}_ankle"]
        if sub == "shorts":
            path, radii = [hip, _lerp(hip, knee, 0.5)], [0.05 * f, 0.047 * f]
        else:
            end = 0.93 if (spec.get("length") or "full") == "full" else 0.5
            path, radii = [hip, knee, _lerp(knee, ankle, end)], [0.05 * f, 0.037 * f, hem_r]
        out.append((0, _Part("main", _tube(path, radii))))
    out.append((0, _Part("trim", _rect(-0.087 * f, 0.42, 0.087 * f, 0.445))))
    out.append((0, _Part("seam", ((0.01, 0.445), (0.01, 0.52), (0, 0.54)), 0.004)))
    if sub == "jeans" or spec.get("material") == "denim":
        for s in (-1, 1):
            out.append((0, _Part("stitch", ((s * 0.04, 0.445), (s * 0.06, 0.475), (s * 0.09 * f, 0.49)), 0.005)))
            out.append((0, _Part("metal", _ellipse(s * 0.088 * f, 0.49, 0.005, 0.005, n=6))))
    return out


def _worn_parts(spec: GarmentSpec, kp: dict[str, Point]) -> tuple[list[tuple[int, _Part]], int]:
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
    pt = _Painter(canvas, maps=True)
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
    fab = _fabric(u, v, colour, trim, spec.get("pattern") or "solid", spec.get("material") or "cotton", anchor,
                  spec.category == "bottoms", fig / 2, rng, 1.0)  # (h, w, 3)
    tex = _Texture(_upsample(Image.fromarray(fab, "RGB")), (x0 * SS, y0 * SS))
    tee = _DEFAULT_TOPS[int(rng.integers(len(_DEFAULT_TOPS)))]
    pants = _DEFAULT_BOTTOMS[int(rng.integers(len(_DEFAULT_BOTTOMS)))]
    fills = {"main": tex, "trim": trim, "shade": _scaled(colour, 0.68), "seam": _seam_colour(colour), "stitch": trim,
             "metal": (190, 175, 130), "skin": skin, "inner": tee}
    if spec.get("material") == "denim":
        fills["dstitch"] = (205, 150, 70)
    extra: list[tuple[int, _Part, RGB, int]] = []  # the other clothes: (phase, part, colour, label)
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
        _paint_parts(pt, [p for ph, p in parts if ph == phase], to_px, u2, fills, label=label, ids=True,
                     first_id=phase * 11 + 1)

    if long_hair:
        paint(_rounded(-0.062, 0.03, 0.062, 0.215, 0.05), hair, 2)
    for side, lab_leg, lab_shoe in (("r", 17, 19), ("l", 16, 18)):
        paint(_tube([kp[f"{side}_hip"], kp[f"{side}_knee"], kp[f"{side}_ankle"]], [0.05, 0.032, 0.022]), skin, lab_leg)
        ax, ay = kp[f"{side}_ankle"]
        paint(_ellipse(ax + (0.006 if side == "l" else -0.006), ay + 0.02, 0.03, 0.022), (48, 40, 38), lab_shoe)
    torso = _sym([(-0.03, 0.15), (-kp["l_shoulder"][0] - 0.008, 0.165), (-0.095, 0.21), (-0.078, 0.33),
                  (-0.08, 0.42), (-0.1, 0.5), (-0.06, 0.53), (0, 0.535)])
    paint(torso, skin, 10)
    paint(_rect(-0.022, 0.1, 0.022, 0.16), skin, 10)
    garment_phase(0)  # bottoms
    garment_phase(1)  # torso: tops, dresses, coats; the default tee goes over the bottoms' waistband
    for side, lab_arm in (("r", 15), ("l", 14)):
        sh, el, wr = kp[f"{side}_shoulder"], kp[f"{side}_elbow"], kp[f"{side}_wrist"]
        paint(_ellipse(sh[0], sh[1] + 0.008, 0.028, 0.024), skin, lab_arm)  # round shoulder
        paint(_tube([sh, el, wr], [0.026, 0.021, 0.016]), skin, lab_arm)
        hx, hy = _lerp(el, wr, 1.13)
        paint(_ellipse(hx, hy, 0.018, 0.024), skin, lab_arm)
    garment_phase(2)  # sleeves
    paint(_ellipse(0, 0.068, 0.045, 0.058), skin, 13)  # face
    paint(_ellipse(0, 0.05, 0.05, 0.045, 180, 360, 12) + ((0.05, 0.06), (-0.05, 0.06)), hair, 2)
    for side in ("r", "l"):
        ex, ey = kp[f"{side}_eye"]
        paint(_ellipse(ex, ey, 0.006, 0.005, n=6), (40, 30, 30), 13)
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
    garment, garment_mask = _render_flat(spec, colour, trim, _NEUTRAL, W, H)
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
