"""Draws the synthetic world's product shots of a `GarmentSpec` (flat lays on a studio backdrop).

Why procedural and this way: the model trains on CPU, so every attribute of the taxonomy must be
visible at 64-128 px and cost a few milliseconds to draw. The view rotates, scales and shifts the
garment's frame onto the canvas (the parts, fabric and supersampling are `drawing`'s).

All randomness comes from `view.seed` through numpy's default_rng: the same inputs give
byte-identical pixels.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from unifashion.data.synthetic.drawing import (SS, RGB, Anchor, Painter, Part, Point, Texture, both, buttons,
                                               ellipse, fabric, flip, lerp, paint_parts, rect, rounded, scaled,
                                               seam_colour, stroke_or_fill, sym, upsample)
from unifashion.data.synthetic.taxonomy import GarmentSpec


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


# ----------------------------------------------------------------------------------------------
# Flat-lay (product shot) shapes, one builder per family. Each returns (parts, print anchor):
# the anchor (x, y, half size) is where a graphic print sits.

_FIT = {"slim": 0.86, "regular": 1.0, "loose": 1.16}


def _fit(spec: GarmentSpec) -> float:
    return _FIT[spec.get("fit") or "regular"]


def _flat_sleeve(shoulder: Point, armpit: Point, angle: float, length: float, end_w: float,
                 cuff: float) -> tuple[list[Part], list[Part]]:
    """A left sleeve leaving the body between shoulder and armpit, `angle` degrees below horizontal;
    returns (sleeve parts, cuff parts)."""
    a = math.radians(angle)
    d = (-math.cos(a), math.sin(a))
    up = (-math.sin(a), -math.cos(a))
    mid = lerp(shoulder, armpit, 0.5)
    end = (mid[0] + d[0] * length, mid[1] + d[1] * length)
    e_up = (end[0] + up[0] * end_w / 2, end[1] + up[1] * end_w / 2)
    e_dn = (end[0] - up[0] * end_w / 2, end[1] - up[1] * end_w / 2)
    sleeve = [Part("main", (shoulder, e_up, e_dn, armpit))]
    cuffs: list[Part] = []
    if cuff > 0:
        back = (-d[0] * cuff, -d[1] * cuff)
        cuffs.append(Part("trim", (e_up, e_dn, (e_dn[0] + back[0], e_dn[1] + back[1]),
                                    (e_up[0] + back[0], e_up[1] + back[1]))))
    return sleeve, cuffs


def _flat_neckline(neck: str, nw: float, y0: float, band: bool) -> list[Part]:
    """The neck opening (the garment's inside, shaded) and its band or collar."""
    parts: list[Part] = []
    if neck == "crew":
        curve = ellipse(0, y0, nw, 0.07, 0, 180, 10)[::-1]
        parts.append(Part("shade", curve))
        if band:
            parts.append(Part("trim", curve, 0.022))
    elif neck == "v-neck":
        v = ((-nw, y0), (0, y0 + 0.17), (nw, y0))
        parts += [Part("shade", v), Part("trim", v, 0.02 if band else 0.012)]
    elif neck == "square":
        sq = ((-nw, y0), (-nw, y0 + 0.09), (nw, y0 + 0.09), (nw, y0))
        parts += [Part("shade", sq), Part("trim", sq, 0.016)]
    elif neck == "turtleneck":
        parts += [Part("main", rect(-nw * 0.9, y0 - 0.1, nw * 0.9, y0 + 0.03)),
                  Part("seam", ((-nw * 0.9, y0 - 0.045), (nw * 0.9, y0 - 0.045)), 0.012)]
        parts += [Part("seam", ((x, y0 - 0.09), (x, y0 + 0.02)), 0.006) for x in np.linspace(-nw * 0.6, nw * 0.6, 4)]
    elif neck == "collared":
        parts += [Part("shade", ((-nw, y0), (0, y0 + 0.12), (nw, y0))),
                  Part("trim", rect(-nw - 0.02, y0 - 0.035, nw + 0.02, y0 + 0.01))]
        parts += both("trim", ((-nw - 0.02, y0 - 0.01), (-0.004, y0 + 0.125), (-0.075, y0 + 0.14),
                                (-nw - 0.05, y0 + 0.04)))
    return parts


def _flat_top(spec: GarmentSpec) -> tuple[list[Part], Anchor]:
    sub = spec.subcategory
    w = _fit(spec)
    sleeve = spec.get("sleeve") or "long"
    neck = spec.get("neckline") or "crew"
    nw, y0, ya = (0.09 if sub == "blouse" else 0.08), -0.40, -0.16
    bw = 0.2 * w
    hem = {"t-shirt": 0.27, "shirt": 0.38, "blouse": 0.32, "sweater": 0.36, "hoodie": 0.36}[sub]
    sh = bw + 0.015 if sleeve != "sleeveless" else nw + 0.07
    parts: list[Part] = []
    if sub == "hoodie":  # the hood lies flat above the neckline, behind the body
        parts.append(Part("main", ellipse(0, y0 - 0.02, 0.16, 0.13, n=20)))
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
    parts.append(Part("main", sym(left)))
    # sleeves: angle below horizontal, length, end width, cuff length
    if sleeve != "sleeveless":
        long = sleeve == "long"
        angle = 64.0 if long else 28.0
        length = 0.42 if long else 0.15
        end_w = (0.16 if sub == "blouse" else 0.1) if long else (0.19 if sub == "blouse" else 0.16)
        cuff = {"sweater": 0.05, "hoodie": 0.05, "shirt": 0.05 if long else 0.0, "t-shirt": 0.025}.get(sub, 0.0)
        sl, cf = _flat_sleeve((-sh, y0 + 0.04), (-bw, ya), angle, length, end_w, cuff)
        for p in sl + cf:
            parts += [p, Part(p.fill, flip(p.points))]
    if sub in ("sweater", "hoodie"):
        parts.append(Part("trim", rect(-bw, hem - 0.05, bw, hem)))
    if sub == "hoodie":
        parts.append(Part("shade", ellipse(0, y0 + 0.01, 0.095, 0.075, n=16)))
        parts += both("trim", ((-0.035, y0 + 0.06), (-0.04, y0 + 0.22)), 0.014)
        pocket = ((-0.14 * w, 0.1), (0.14 * w, 0.1), (0.18 * w, 0.29), (-0.18 * w, 0.29), (-0.14 * w, 0.1))
        parts.append(Part("seam", pocket, 0.012))
    else:
        parts += _flat_neckline(neck, nw, y0, band=sub in ("t-shirt", "sweater"))
    if sub == "shirt":
        top = y0 + (0.12 if neck == "collared" else 0.17)
        parts.append(Part("seam", ((0, top), (0, hem + 0.01)), 0.01))
        parts += buttons(0.0, top + 0.04, hem - 0.03, 0.09, 0.014)
        parts.append(Part("seam", ((0.06, -0.24), (0.06, -0.13), (0.15, -0.13), (0.15, -0.24)), 0.008))
    if sub == "blouse":  # a tie bow under the neckline
        by = y0 + (0.17 if neck == "v-neck" else 0.08)
        parts += both("trim", ((0, by), (-0.06, by - 0.035), (-0.06, by + 0.035)))
    parts += both("dstitch", ((-bw + 0.015, ya + 0.02), (-bw + 0.015, hem - 0.02)), 0.008)
    parts.append(Part("dstitch", ((-bw, hem - 0.025), (bw, hem - 0.025)), 0.008))
    return parts, (0.0, -0.06, 0.11 * w)


def _flat_dress(spec: GarmentSpec) -> tuple[list[Part], Anchor]:
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
    parts = [Part("main", sym(left))]
    if sleeve != "sleeveless":
        long = sleeve == "long"
        sl, _ = _flat_sleeve((-sh, y0 + 0.03), (-bw, ya), 68.0 if long else 30.0, 0.36 if long else 0.12,
                             0.08 if long else 0.12, 0.0)
        parts += sl + [Part("main", flip(sl[0].points))]
    parts += _flat_neckline(spec.get("neckline") or "crew", nw, y0, band=False)
    parts.append(Part("trim", rect(-ww - 0.004, waist - 0.02, ww + 0.004, waist + 0.018)))
    parts += both("seam", ((-hw * 0.35, waist + 0.12), (-hw * 0.55, hem - 0.03)), 0.006)
    parts.append(Part("dstitch", ((-hw + 0.02, hem - 0.025), (hw - 0.02, hem - 0.025)), 0.008))
    return parts, (0.0, -0.25, 0.075 * w)


def _flat_outerwear(spec: GarmentSpec) -> tuple[list[Part], Anchor]:
    coat = spec.subcategory == "coat"
    w = _fit(spec)
    nw, y0, ya = 0.075, -0.46, -0.24
    bw = 0.22 * w
    sh = bw + 0.02
    hem = (0.52 if spec.get("length") == "knee" else 0.28) if coat else 0.16
    flare = 1.08 if coat else 1.0
    parts = [Part("main", sym([(-nw, y0), (-sh, y0 + 0.04), (-bw, ya), (-bw * flare, hem), (0, hem)]))]
    sl, cf = _flat_sleeve((-sh, y0 + 0.04), (-bw, ya), 70.0, 0.44 if coat else 0.4, 0.11, 0.03 if coat else 0.05)
    for p in sl + cf:
        parts += [p, Part(p.fill, flip(p.points))]
    collared = (spec.get("neckline") or "collared") == "collared"
    yv = y0 + (0.3 if collared else 0.24)
    parts.append(Part("shade", ((-nw, y0), (0, yv), (nw, y0))))
    if collared:
        parts.append(Part("trim", rect(-nw - 0.02, y0 - 0.03, nw + 0.02, y0 + 0.01)))
        parts += both("trim", ((-nw - 0.005, y0 - 0.005), (-0.006, yv), (-0.05, yv - 0.07),
                                (-nw - 0.075, y0 + 0.13), (-nw - 0.03, y0 + 0.05)))
    else:
        parts += both("trim", ((-nw, y0), (0, yv)), 0.022)
    parts.append(Part("seam", ((0, yv), (0, hem)), 0.012))
    parts += buttons(0.035, yv + 0.04, hem - 0.05, 0.1, 0.016)
    py = hem - (0.2 if coat else 0.12)
    parts += both("seam", ((-bw * 0.75, py), (-bw * 0.3, py)), 0.014)
    if coat:  # belted
        parts.append(Part("trim", rect(-bw - 0.005, -0.08, bw + 0.005, -0.04)))
        parts.append(Part("metal", rect(-0.03, -0.09, 0.03, -0.03)))
    else:  # bomber-style hem band
        parts.append(Part("trim", rect(-bw, hem - 0.05, bw, hem)))
    parts += both("dstitch", ((-bw + 0.015, ya + 0.02), (-bw * flare + 0.015, hem - 0.02)), 0.008)
    return parts, (-0.1, -0.15, 0.06)


def _flat_bottoms(spec: GarmentSpec) -> tuple[list[Part], Anchor]:
    sub = spec.subcategory
    w = _fit(spec)
    parts: list[Part] = []
    if sub == "skirt":
        hem, hw = {"mini": (-0.02, 0.27), "midi": (0.24, 0.32), "maxi": (0.5, 0.37)}[spec.get("length") or "midi"]
        ww, hw = 0.18 * w, hw * w
        parts.append(Part("main", sym([(-ww, -0.41), (-hw, hem), (-hw * 0.5, hem + 0.012), (0, hem + 0.016)])))
        parts.append(Part("trim", rect(-ww - 0.005, -0.46, ww + 0.005, -0.4)))
        parts += [Part("seam", ((x * ww * 0.8, -0.38), (x * hw * 0.75, hem - 0.02)), 0.007) for x in (-0.6, 0.0, 0.6)]
        parts.append(Part("dstitch", ((-hw + 0.02, hem - 0.025), (hw - 0.02, hem - 0.025)), 0.008))
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
    parts.append(Part("main", sym([(-ww, yb), (-hipw, yb + 0.22), (-outer, hem), (-inner, hem), (0, crotch)])))
    parts.append(Part("trim", rect(-ww - 0.006, top, ww + 0.006, yb)))
    parts += [Part("shade", rect(x - 0.01, top - 0.005, x + 0.01, yb + 0.02)) for x in (-ww * 0.7, ww * 0.7)]
    parts.append(Part("seam", ((0.025, yb), (0.025, crotch - 0.06), (0.0, crotch - 0.03)), 0.01))
    leg_x = (outer + inner) / 2
    if sub == "jeans" or spec.get("material") == "denim":
        for s in (-1, 1):  # front pockets, coin pocket, rivets: jeans' pocket stitching in trim
            parts.append(Part("stitch", ((s * ww * 0.45, yb), (s * ww * 0.62, yb + 0.08), (s * ww * 0.98, yb + 0.12)), 0.012))
            parts.append(Part("metal", ellipse(s * ww * 0.95, yb + 0.12, 0.012, 0.012, n=8)))
        parts.append(Part("stitch", ((ww * 0.55, yb + 0.03), (ww * 0.8, yb + 0.03), (ww * 0.8, yb + 0.09)), 0.01))
        parts += both("stitch", ((-outer + 0.02, hem - 0.03), (-inner - 0.01, hem - 0.03)), 0.01)
    elif sub == "trousers":  # pressed creases
        parts += both("seam", ((-leg_x * 0.95, yb + 0.2), (-leg_x, hem - 0.01)), 0.008)
    parts += both("dstitch", ((-hipw + 0.02, yb + 0.22), (-outer + 0.02, hem - 0.02)), 0.008)
    return parts, (-leg_x, yb + 0.22, 0.065)


def _flat_footwear(spec: GarmentSpec) -> tuple[list[Part], Anchor]:
    """Side view, toe to the right."""
    sub = spec.subcategory
    parts: list[Part] = []
    if sub == "sneakers":
        upper = ((-0.44, 0.12), (-0.47, -0.08), (-0.4, -0.24), (-0.22, -0.19), (-0.05, -0.2), (0.12, -0.1),
                 (0.36, -0.03), (0.47, 0.06), (0.47, 0.12))
        parts.append(Part("main", upper))
        parts.append(Part("shade", ellipse(-0.3, -0.2, 0.11, 0.035, n=12)))
        parts.append(Part("trim", ((-0.48, 0.08), (0.48, 0.08), (0.46, 0.2), (-0.46, 0.2))))
        parts.append(Part("seam", ((0.2, -0.07), (0.3, 0.08)), 0.01))
        parts += [Part("trim", ((x, -0.19 + (x + 0.05) * 0.5), (x + 0.07, -0.12 + (x + 0.05) * 0.5)), 0.022)
                  for x in (-0.06, 0.03, 0.12)]
        parts.append(Part("seam", ((-0.38, 0.04), (-0.15, -0.1), (0.08, 0.04)), 0.014))
        return parts, (-0.2, 0.0, 0.07)
    if sub == "boots":
        shaft = ((-0.36, 0.3), (-0.37, -0.46), (-0.06, -0.46), (-0.04, -0.08), (0.25, 0.06), (0.42, 0.18),
                 (0.43, 0.3))
        parts.append(Part("main", shaft))
        parts.append(Part("shade", rect(-0.35, -0.47, -0.07, -0.43)))
        parts.append(Part("trim", ((-0.38, 0.28), (0.45, 0.28), (0.44, 0.35), (-0.38, 0.35))))
        parts.append(Part("trim", rect(-0.38, 0.34, -0.2, 0.45)))
        parts.append(Part("metal", ((-0.07, -0.4), (-0.06, 0.0)), 0.014))
        parts.append(Part("trim", rect(-0.42, -0.46, -0.36, -0.34)))
        return parts, (-0.2, -0.2, 0.08)
    # sandals: a visible sole (trim) and fabric straps
    parts.append(Part("trim", ((-0.46, 0.12), (0.45, 0.08), (0.48, 0.18), (-0.45, 0.22))))
    parts.append(Part("trim", rect(-0.44, 0.2, -0.28, 0.3)))
    parts.append(Part("main", ((0.14, 0.1), (0.2, -0.06), (0.3, -0.08), (0.4, 0.08), (0.32, 0.09), (0.26, 0.0),
                                (0.22, 0.1))))
    parts.append(Part("main", ((-0.1, 0.11), (-0.05, -0.1), (0.07, -0.12), (0.12, 0.1), (0.05, 0.1), (0.02, -0.04),
                                (-0.03, -0.04), (-0.04, 0.11))))
    parts.append(Part("main", ((-0.42, 0.13), (-0.44, -0.2), (-0.3, -0.22), (-0.3, -0.16), (-0.38, -0.14),
                                (-0.36, 0.13))))
    parts.append(Part("main", ((-0.38, -0.2), (-0.02, -0.1), (-0.02, -0.05), (-0.38, -0.14))))
    parts.append(Part("metal", rect(-0.25, -0.2, -0.19, -0.13)))
    return parts, (0.0, 0.0, 0.05)


def _flat_bag(spec: GarmentSpec) -> tuple[list[Part], Anchor]:
    sub = spec.subcategory
    parts: list[Part] = []
    if sub == "tote":
        handle = ellipse(0, -0.1, 0.19, 0.36, 180, 360, 14)
        parts.append(Part("shade", tuple((x + 0.03, y - 0.01) for x, y in handle), 0.04))
        parts.append(Part("main", ((-0.36, -0.12), (0.36, -0.12), (0.42, 0.45), (-0.42, 0.45))))
        parts.append(Part("trim", ((-0.36, -0.12), (0.36, -0.12), (0.365, -0.07), (-0.365, -0.07))))
        parts.append(Part("trim", handle, 0.04))
        parts.append(Part("dstitch", ((-0.38, 0.42), (0.38, 0.42)), 0.008))
        return parts, (0.0, 0.17, 0.13)
    if sub == "backpack":
        parts += both("trim", ((-0.22, -0.32), (-0.36, -0.1), (-0.38, 0.38), (-0.3, 0.4), (-0.3, -0.1)))
        parts.append(Part("trim", ellipse(0, -0.38, 0.08, 0.1, 180, 360, 10), 0.03))
        parts.append(Part("main", rounded(-0.3, -0.4, 0.3, 0.46, 0.14)))
        parts.append(Part("metal", ellipse(0, -0.15, 0.27, 0.2, 195, 345, 12), 0.012))
        parts.append(Part("main", rounded(-0.21, 0.06, 0.21, 0.4, 0.06)))
        parts.append(Part("seam", rounded(-0.21, 0.06, 0.21, 0.4, 0.06) + ((0.15, 0.06),), 0.01))
        parts.append(Part("metal", ((-0.16, 0.1), (0.16, 0.1)), 0.012))
        return parts, (0.0, 0.23, 0.1)
    # shoulder bag: trapezoid body, flap, a long strap
    parts.append(Part("trim", ellipse(0, 0.02, 0.28, 0.49, 180, 360, 16), 0.025))
    parts.append(Part("main", ((-0.3, 0.0), (0.3, 0.0), (0.37, 0.45), (-0.37, 0.45))))
    flap = ((-0.31, -0.01), (0.31, -0.01), (0.32, 0.22), (0.0, 0.28), (-0.32, 0.22))
    parts.append(Part("main", flap))
    parts.append(Part("seam", flap + (flap[0],), 0.01))
    parts.append(Part("metal", rect(-0.035, 0.23, 0.035, 0.3)))
    return parts, (0.0, 0.1, 0.09)


def _flat_parts(spec: GarmentSpec) -> tuple[list[Part], Anchor]:
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
# Product shots


def _jitter(parts: list[Part], rng: np.random.Generator) -> list[Part]:
    """A small affine wobble (scale, shear) so no two shots of a product are pixel-identical shapes."""
    sx, sy = 1 + rng.normal(0, 0.015, 2)
    sh = rng.normal(0, 0.015)
    return [Part(p.fill, tuple((x * sx + y * sh, y * sy) for x, y in p.points), p.width) for p in parts]


def render_flat(spec: GarmentSpec, colour: RGB, trim: RGB, view: ViewSpec, width: int,
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
            stroke_or_fill(cdraw, to_px(p.points), 255, p.width * s)
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
    fab = fabric(u, v, colour, trim, spec.get("pattern") or "solid", spec.get("material") or "cotton", anchor,
                  spec.category == "bottoms", s / SS, rng, 0.5 + 0.5 * light(X / W2, Y / H2))  # (h, w, 3)
    tex = Texture(upsample(Image.fromarray(fab, "RGB")), (x0 * SS, y0 * SS))
    # 5. parts in order, then downsample
    lk = 0.5 + 0.5 * view.lighting
    fills = {"main": tex, "trim": scaled(trim, lk), "shade": scaled(colour, 0.68 * lk),
             "seam": scaled(seam_colour(colour), lk), "stitch": scaled(trim, lk), "metal": scaled((190, 175, 130), lk)}
    if spec.get("material") == "denim":
        fills["dstitch"] = scaled((205, 150, 70), lk)
    painter = Painter(canvas)
    paint_parts(painter, parts, to_px, s, fills)
    painter.flush()
    return canvas.reduce(SS), mask


def render_product(spec: GarmentSpec, colour: RGB, trim: RGB, view: ViewSpec, size: int) -> Image.Image:
    """An RGB size x size product shot of `spec` in `colour` (trim details in `trim`) seen as `view`."""
    return render_flat(spec, colour, trim, view, size, size)[0]
