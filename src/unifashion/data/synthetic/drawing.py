"""Drawing primitives shared by the product shots (`render_products`) and the try-on sets (`render_tryon`).

- A garment is a list of `Part`s (polygons and strokes) in a frame of its own (x right, y down,
  about -0.5..0.5); the caller maps that frame onto the canvas.
- Fabric (pattern, then material, then light) is a numpy texture computed in the same frame, so
  stripes turn with the garment, and pasted through the fabric parts' mask; trim, insides and seams
  are solid fills drawn in list order.
- Everything is drawn at `SS` x the size and box-downsampled: anti-aliasing for one cheap reduce.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

SS = 2  # supersampling factor: draw at SS x, then box-reduce
Point = tuple[float, float]
RGB = tuple[int, int, int]
Anchor = tuple[float, float, float]  # where a graphic print sits: x, y, half size (frame units)


# ----------------------------------------------------------------------------------------------
# Geometry helpers (frame units; y down)


@dataclass(frozen=True)
class Part:
    """One piece of a drawing: a filled polygon, or a stroke when `width` > 0."""

    fill: str  # main (fabric) | trim | shade (inside) | seam | stitch (dashed trim) | dstitch (denim only)
    #            | metal | skin | inner (the garment worn under an open coat)
    points: tuple[Point, ...]
    width: float = 0.0  # stroke width in frame units; 0 = filled polygon


def sym(left: list[Point]) -> tuple[Point, ...]:
    """A left-right symmetric outline from its left half (listed top to bottom-centre)."""
    return tuple(left) + tuple((-x, y) for x, y in reversed(left))


def flip(pts) -> tuple[Point, ...]:
    return tuple((-x, y) for x, y in pts)


def both(fill: str, pts, width: float = 0.0) -> list[Part]:
    """A part and its mirror image."""
    return [Part(fill, tuple(pts), width), Part(fill, flip(pts), width)]


def ellipse(cx: float, cy: float, rx: float, ry: float, a0: float = 0.0, a1: float = 360.0,
             n: int = 16) -> tuple[Point, ...]:
    return tuple((cx + rx * math.cos(math.radians(a)), cy + ry * math.sin(math.radians(a)))
                 for a in np.linspace(a0, a1, n, endpoint=a1 - a0 < 360))


def rect(x0: float, y0: float, x1: float, y1: float) -> tuple[Point, ...]:
    return ((x0, y0), (x1, y0), (x1, y1), (x0, y1))


def rounded(x0: float, y0: float, x1: float, y1: float, r: float) -> tuple[Point, ...]:
    pts: list[Point] = []
    for cx, cy, a in ((x1 - r, y0 + r, 270), (x1 - r, y1 - r, 0), (x0 + r, y1 - r, 90), (x0 + r, y0 + r, 180)):
        pts += ellipse(cx, cy, r, r, a, a + 90, 5)
    return tuple(pts)


def tube(path: list[Point], radii: list[float]) -> tuple[Point, ...]:
    """A polygon around a polyline, `radii[i]` wide at `path[i]`, with flat ends (sleeves, legs)."""
    p = np.asarray(path, np.float64)  # (N, 2)
    d = np.diff(p, axis=0)
    d /= np.linalg.norm(d, axis=1, keepdims=True) + 1e-9  # (N-1, 2)
    t = np.vstack([d[:1], d[:-1] + d[1:], d[-1:]])  # (N, 2) tangents at the points
    t /= np.linalg.norm(t, axis=1, keepdims=True) + 1e-9
    n = np.stack([-t[:, 1], t[:, 0]], axis=1) * np.asarray(radii)[:, None]  # (N, 2)
    side_a, side_b = p + n, p - n
    return tuple(map(tuple, np.vstack([side_a, side_b[::-1]])))  # type: ignore[arg-type]


def lerp(a: Point, b: Point, t: float) -> Point:
    return (a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t)


def buttons(x: float, y0: float, y1: float, step: float, r: float) -> list[Part]:
    return [Part("trim", ellipse(x, y, r, r, n=8)) for y in np.arange(y0, y1, step)]


# ----------------------------------------------------------------------------------------------
# Colour and fabric


def _luma(c) -> float:
    return 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]


def _accent(colour: RGB, trim: RGB) -> RGB:
    """The pattern's second colour: the trim colour, or a contrasting shade when trim is too close."""
    if sum(abs(a - b) for a, b in zip(colour, trim)) > 120:
        return trim
    return (245, 244, 238) if _luma(colour) < 140 else (30, 30, 34)


def scaled(c, k: float) -> RGB:
    return tuple(int(min(255, max(0, round(v * k)))) for v in c)  # type: ignore[return-value]


def seam_colour(c: RGB) -> RGB:
    """Seams and outlines: darker on light fabric, lighter on dark fabric, so they always show."""
    return scaled(c, 0.62) if _luma(c) > 60 else tuple(min(255, v + 55) for v in c)  # type: ignore[return-value]


def fabric(u: np.ndarray, v: np.ndarray, colour: RGB, trim: RGB, pattern: str, material: str,
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


def upsample(img: Image.Image) -> Image.Image:
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
            q = lerp(a, b, pos / seg)
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
class Texture:
    """A fabric texture covering the canvas box that starts at `origin` (textures are computed only
    where the garment is)."""

    image: Image.Image
    origin: tuple[int, int]


class Painter:
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
        self._tex: Texture | None = None
        self._mask: Image.Image | None = None
        self._mdraw: ImageDraw.ImageDraw | None = None

    def flush(self) -> None:
        if self._tex is not None:
            (x0, y0), (w, h) = self._tex.origin, self._tex.image.size
            self.img.paste(self._tex.image, (x0, y0), self._mask.crop((x0, y0, x0 + w, y0 + h)))
            self._tex = None

    def paint(self, pts: list[Point], fill, width: float = 0.0, label: int = 0, part_id: int = 0,
              sketch_line: bool = False) -> None:
        if isinstance(fill, Texture):
            if self._tex is not fill:
                self.flush()
                self._tex, self._mask = fill, Image.new("L", self.size, 0)
                self._mdraw = ImageDraw.Draw(self._mask)
            stroke_or_fill(self._mdraw, pts, 255, width)
        else:
            self.flush()
            stroke_or_fill(self.draw, pts, fill, width)
        if self.maps:
            stroke_or_fill(self.pdraw, pts, label, width)
            stroke_or_fill(self.idraw, pts, part_id, width)
            if sketch_line:
                stroke_or_fill(self.ldraw, pts, 0, max(width, SS))


def stroke_or_fill(draw: ImageDraw.ImageDraw, pts: list[Point], fill, width: float) -> None:
    if width > 0:
        draw.line(pts, fill=fill, width=max(1, round(width)), joint="curve")
    elif len(pts) >= 3:
        draw.polygon(pts, fill=fill)


def paint_parts(painter: Painter, parts: list[Part], to_px, unit_px: float, fills: dict, *,
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
