"""The pictures of a report that a person believes at a glance: contact sheets of captions, generations,
try-ons and searches, and the targets table.

Pure drawing: every sheet takes plain data (PIL images, strings, numbers) and returns a new RGB image;
nothing here loads a model or reads a file except the font. All text is wrapped to its cell and cut
with "…" where it would not fit, so the size of a sheet depends only on the number of rows and the
cell size, never on how long a text is.
"""
from __future__ import annotations

import html
import math
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont

GREEN = (20, 150, 20)  # right: badge text, probe readings that match
FRAME_GREEN = (20, 170, 20)  # the frame around the right product / the target
RED = (200, 30, 30)  # wrong: badge text, mismatches, the frame around a wrong caption
GREY = (100, 100, 100)  # the truth under a caption, labels
BLACK = (0, 0, 0)
WHITE = (255, 255, 255)

FONT_SIZE = 10  # px, every text of the sheets but the headers
HEADER_SIZE = 11  # px, column headers and row labels
LINE = FONT_SIZE + 3  # px from one text line to the next; fixed so a sheet's size never depends on the font
PAD = 4  # px between an image and the border of its cell
FRAME = 3  # px, width of the green / red frames


# ---------------------------------------------------------------- generic helpers


@lru_cache(maxsize=None)
def font(size: int = FONT_SIZE) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """DejaVu Sans where the system has it: Pillow's bundled font draws 1-2 px spaces at these sizes,
    which runs the words of the sheets together."""
    try:
        return ImageFont.truetype("DejaVuSans.ttf", size)
    except OSError:
        return ImageFont.load_default(size=size)


@lru_cache(maxsize=None)
def has_glyphs(text: str, size: int = FONT_SIZE) -> bool:
    """Whether font(size) draws every character of text, rather than its box for a missing glyph."""
    f = font(size)
    try:
        missing = f.getmask("\U0010FFFD")  # a private-use code point: no font has it
        for ch in text:
            m = f.getmask(ch)
            if m.size == missing.size and bytes(m) == bytes(missing):
                return False
    except (UnicodeEncodeError, UnicodeError):  # the bitmap font without FreeType: Latin-1 only
        return False
    return True


def ellipsize(text: str, width: int, size: int = FONT_SIZE) -> str:
    """text cut with "…" to at most width px."""
    f = font(size)
    if f.getlength(text) <= width:
        return text
    while text and f.getlength(text + "…") > width:
        text = text[:-1]
    return text.rstrip() + "…" if text else ""


def wrap(text: str, width: int, lines: int, size: int = FONT_SIZE) -> list[str]:
    """text wrapped to at most `lines` lines of at most width px; the last one cut with "…" where the
    text goes on."""
    if lines <= 0 or not text:
        return []
    f = font(size)
    chars = max(1, int(width / max(1.0, f.getlength("n"))) + 2)
    while True:
        out = textwrap.wrap(text, chars) or [""]
        if chars == 1 or all(f.getlength(line) <= width for line in out):
            break
        chars -= 1
    if len(out) > lines:
        out = out[:lines]
        out[-1] = ellipsize(out[-1] + "…", width, size) if not out[-1].endswith("…") else out[-1]
    return [ellipsize(line, width, size) for line in out]


def draw_lines(draw: ImageDraw.ImageDraw, xy: tuple[int, int], lines: Sequence[str], fill=BLACK,
               size: int = FONT_SIZE) -> int:
    """Draws lines from the top-left xy, LINE px apart; returns the y below the last."""
    x, y = xy
    for line in lines:
        draw.text((x, y), line, fill=fill, font=font(size))
        y += LINE if size == FONT_SIZE else size + 3
    return y


def fit(image: Image.Image, width: int, height: int, resample=Image.Resampling.BICUBIC) -> Image.Image:
    """image scaled to the largest size within width x height that keeps its aspect, centred on white."""
    im = image.convert("RGB")
    scale = min(width / im.width, height / im.height)
    w, h = max(1, round(im.width * scale)), max(1, round(im.height * scale))
    box = Image.new("RGB", (width, height), WHITE)
    box.paste(im.resize((w, h), resample), ((width - w) // 2, (height - h) // 2))
    return box


def paste_cell(sheet: Image.Image, image: Image.Image | None, x: int, y: int, width: int, height: int,
               resample=Image.Resampling.BICUBIC) -> None:
    """image fitted into the cell at (x, y) of width x height, PAD px inside its border; a missing
    image leaves a grey cross."""
    if image is None:
        draw = ImageDraw.Draw(sheet)
        draw.line([x + PAD, y + PAD, x + width - PAD, y + height - PAD], fill=(210, 210, 210))
        draw.line([x + PAD, y + height - PAD, x + width - PAD, y + PAD], fill=(210, 210, 210))
        return
    sheet.paste(fit(image, width - 2 * PAD, height - 2 * PAD, resample), (x + PAD, y + PAD))


def frame(draw: ImageDraw.ImageDraw, x: int, y: int, width: int, height: int, colour) -> None:
    """A FRAME px frame just inside the border of the cell at (x, y)."""
    draw.rectangle([x + 1, y + 1, x + width - 2, y + height - 2], outline=colour, width=FRAME)


def paste_ranked(sheet: Image.Image, images: Sequence[Image.Image], hits: Sequence[bool], x0: int, y0: int,
                 cell: int) -> None:
    """A row of ranked images from (x0, y0), one cell x cell each; the right ones framed green."""
    draw = ImageDraw.Draw(sheet)
    for k, (im, hit) in enumerate(zip(images, hits)):
        x = x0 + k * cell
        paste_cell(sheet, im, x, y0, cell, cell)
        if hit:
            frame(draw, x, y0, cell, cell, FRAME_GREEN)


def rank_text(rank: int | None, gallery_size: int, cutoff: int) -> str:
    """"rank 3 of 412", or "rank > 100 of 412" when the rank was not found within cutoff."""
    return f"rank {rank} of {gallery_size}" if rank is not None else f"rank > {cutoff} of {gallery_size}"


def _header(draw: ImageDraw.ImageDraw, columns: Sequence[tuple[int, int, str]], y: int = 2) -> None:
    """Column labels, each (x, width, text), cut to its column."""
    for x, width, text in columns:
        draw.text((x + PAD, y), ellipsize(text, width - 2 * PAD, HEADER_SIZE), fill=GREY, font=font(HEADER_SIZE))


HEADER = HEADER_SIZE + 7  # px, height of a header line over the columns


# ---------------------------------------------------------------- captions


@dataclass(frozen=True)
class CaptionRow:
    image: Image.Image  # the image captioned
    prediction: str  # the model's caption
    reference: str  # the true description
    flags: dict[str, bool]  # attribute -> whether the caption names it right, e.g. {"colour": False}


CAPTION_COLUMNS = 4  # cells per line of the caption sheet
CAPTION_LINES = 4  # lines of the model's caption
BADGE_LINES = 2  # lines of attribute badges
TRUTH_LINES = 3  # lines of the true description


def _badges(flags: dict[str, bool]) -> list[tuple[str, bool]]:
    ok, wrong = ("✓", "✗") if has_glyphs("✓✗") else ("ok", "WRONG")
    return [(f"{name} {ok if right else wrong}", right) for name, right in flags.items()]


def caption_sheet(rows: Sequence[CaptionRow], cell: int = 160) -> Image.Image:
    """A grid of up to CAPTION_COLUMNS captioned images a line: the image, the model's caption, a line of
    attribute badges (right green, wrong red) and the truth in grey; a cell whose caption gets any
    attribute wrong is framed red.

    Size: (min(n, 4) * (cell + 2 * PAD), ceil(n / 4) * (cell + 2 * PAD + 9 * LINE + PAD))."""
    n = len(rows)
    cw = cell + 2 * PAD
    ch = cell + 2 * PAD + (CAPTION_LINES + BADGE_LINES + TRUTH_LINES) * LINE + PAD
    sheet = Image.new("RGB", (max(1, min(n, CAPTION_COLUMNS)) * cw, max(1, math.ceil(n / CAPTION_COLUMNS)) * ch),
                      WHITE)
    draw = ImageDraw.Draw(sheet)
    text_w = cw - 2 * PAD - FRAME
    for i, row in enumerate(rows):
        x, y = (i % CAPTION_COLUMNS) * cw, (i // CAPTION_COLUMNS) * ch
        paste_cell(sheet, row.image, x, y, cw, cw)
        ty = y + cw
        tx = x + PAD + 1
        draw_lines(draw, (tx, ty), wrap(row.prediction, text_w, CAPTION_LINES))
        # badges flow left to right, onto a second line when the first is full; the rest cut
        by, bx, line = ty + CAPTION_LINES * LINE, tx, 0
        space = font().getlength("  ")
        for text, right in _badges(row.flags):
            width = font().getlength(text)
            if bx > tx and bx + width > tx + text_w:
                line, bx = line + 1, tx
            if line >= BADGE_LINES:
                break
            text = ellipsize(text, text_w)
            draw.text((bx, by + line * LINE), text, fill=GREEN if right else RED, font=font())
            bx += font().getlength(text) + space
        draw_lines(draw, (tx, ty + (CAPTION_LINES + BADGE_LINES) * LINE),
                   wrap("truth: " + row.reference, text_w, TRUTH_LINES), fill=GREY)
        if not all(row.flags.values()):
            frame(draw, x, y, cw, ch, RED)
    return sheet


# ---------------------------------------------------------------- generation


@dataclass(frozen=True)
class GenerationRow:
    real: Image.Image  # a real image of the description
    generated: Image.Image  # the image generated from it (small: upscaled NEAREST to the cell)
    text: str  # the description it was generated from
    probe: dict[str, tuple[str, str]]  # attribute -> (read off the generated image, requested)


GENERATION_LABEL = 72  # px, the column of row labels on the left
GENERATION_TEXT_LINES = 6  # lines of the description


def generation_sheet(rows: Sequence[GenerationRow], cell: int = 128) -> Image.Image:
    """One column per description: the real image over the generated one, then the description and what
    the attribute probe reads off the generated image against what was asked ("colour: blue ≠ red",
    mismatches red).

    Size: (GENERATION_LABEL + n * (cell + 2 * PAD),
           2 * (cell + 2 * PAD) + (6 + max attributes) * LINE + 2 * PAD)."""
    n = len(rows)
    cw = cell + 2 * PAD
    attrs = max((len(r.probe) for r in rows), default=0)
    height = 2 * cw + (GENERATION_TEXT_LINES + attrs) * LINE + 2 * PAD
    sheet = Image.new("RGB", (GENERATION_LABEL + max(1, n) * cw, height), WHITE)
    draw = ImageDraw.Draw(sheet)
    for label, y in (("real", 0), ("generated", cw)):
        draw.text((PAD, y + cw // 2 - HEADER_SIZE // 2), ellipsize(label, GENERATION_LABEL - 2 * PAD, HEADER_SIZE),
                  fill=GREY, font=font(HEADER_SIZE))
    text_w = cw - 2 * PAD
    unequal = "≠" if has_glyphs("≠") else "!="  # read ≠ requested: short enough for a 128 px column
    for i, row in enumerate(rows):
        x = GENERATION_LABEL + i * cw
        paste_cell(sheet, row.real, x, 0, cw, cw)
        paste_cell(sheet, row.generated, x, cw, cw, cw, Image.Resampling.NEAREST)
        draw_lines(draw, (x + PAD, 2 * cw + PAD), wrap(row.text, text_w, GENERATION_TEXT_LINES))
        y = 2 * cw + PAD + GENERATION_TEXT_LINES * LINE
        for name, (read, asked) in row.probe.items():
            same = read == asked
            text = f"{name}: {read}" if same else f"{name}: {read} {unequal} {asked}"
            draw.text((x + PAD, y), ellipsize(text, text_w), fill=GREEN if same else RED, font=font())
            y += LINE
    return sheet


# ---------------------------------------------------------------- try-on


@dataclass(frozen=True)
class TryOnRow:
    masked_person: Image.Image  # the person with the garment's region masked out (portrait, w = 3/4 h)
    garment: Image.Image  # the garment to put on
    result: Image.Image  # the person the model made wearing it
    real: Image.Image | None  # the real person wearing that garment, where known
    caption: str | None  # a description of the garment, shown under it
    psnr_outside: float | None  # dB, PSNR of result against the person outside the mask
    colour: tuple[str, str] | None  # (colour the probe reads off the result's garment, colour requested)


TRYON_TEXT_LINES = 3  # lines under the images: garment caption; PSNR and colour under the result


def tryon_sheet(rows: Sequence[TryOnRow], cell: int = 128) -> Image.Image:
    """One line per sample: masked person | garment | result | real person wearing it (a column only when
    some sample has one), labelled over the columns; under the result the PSNR outside the mask and the
    probe's colour reading against the one requested (red when they differ). Person images keep their
    aspect, fitted into the cell height.

    Size: (3 * (round(3 / 4 * cell) + 2 * PAD) + (cell + 2 * PAD) [- a person column without real images],
           HEADER + n * (cell + 2 * PAD + 3 * LINE + PAD))."""
    n = len(rows)
    pw, gw = round(cell * 3 / 4) + 2 * PAD, cell + 2 * PAD
    with_real = any(r.real is not None for r in rows)
    columns = [("masked person", pw), ("garment", gw), ("result", pw)] + ([("real", pw)] if with_real else [])
    xs = [sum(w for _, w in columns[:k]) for k in range(len(columns))]
    rh = cell + 2 * PAD + TRYON_TEXT_LINES * LINE + PAD
    sheet = Image.new("RGB", (sum(w for _, w in columns), HEADER + max(1, n) * rh), WHITE)
    draw = ImageDraw.Draw(sheet)
    _header(draw, [(x, w, name) for x, (name, w) in zip(xs, columns)])
    for i, row in enumerate(rows):
        y = HEADER + i * rh
        images = [row.masked_person, row.garment, row.result] + ([row.real] if with_real else [])
        for x, (_, w), im in zip(xs, columns, images):
            paste_cell(sheet, im, x, y, w, cell + 2 * PAD)
        ty = y + cell + 2 * PAD
        if row.caption:
            draw_lines(draw, (xs[1] + PAD, ty), wrap(row.caption, gw - 2 * PAD, TRYON_TEXT_LINES))
        rx, rw = xs[2] + PAD, pw - 2 * PAD
        if row.psnr_outside is not None:
            draw.text((rx, ty), ellipsize(f"PSNR out {row.psnr_outside:.1f} dB", rw), fill=BLACK, font=font())
        if row.colour is not None:
            read, asked = row.colour
            lines = wrap(f"colour {read}" if read == asked else f"colour {read} (asked {asked})", rw,
                         TRYON_TEXT_LINES - 1)
            draw_lines(draw, (rx, ty + LINE), lines, fill=GREEN if read == asked else RED)
    return sheet


# ---------------------------------------------------------------- searches


@dataclass(frozen=True)
class ComposedRow:
    reference: Image.Image  # the reference image of the query
    text: str  # the modification asked of it
    ranked: Sequence[Image.Image]  # the gallery's best matches, best first (at least `top` shown)
    hits: Sequence[bool]  # per ranked image: whether it is the target
    target: Image.Image  # the target image
    target_rank: int | None  # 1-based rank of the target in the whole gallery; None: beyond rank_cutoff
    gallery_size: int  # images searched
    rank_cutoff: int = 100  # how deep the ranking was searched when target_rank is None


def composed_sheet(rows: Sequence[ComposedRow], top: int = 5, cell: int = 110) -> Image.Image:
    """Composed retrieval, one line per query: reference | modification text | the top results (the target
    framed green where it is among them) | the target itself with its rank in the gallery under it.

    Size: ((top + 4) * cell, HEADER + n * (cell + 2 * LINE))."""
    n = len(rows)
    text_w = 2 * cell
    rh = cell + 2 * LINE
    x_ranked, x_target = cell + text_w, cell + text_w + top * cell
    sheet = Image.new("RGB", (x_target + cell, HEADER + max(1, n) * rh), WHITE)
    draw = ImageDraw.Draw(sheet)
    _header(draw, [(0, cell, "reference"), (cell, text_w, "modification"), (x_ranked, top * cell, f"top {top}"),
                   (x_target, cell, "target")])
    for i, row in enumerate(rows):
        y = HEADER + i * rh
        paste_cell(sheet, row.reference, 0, y, cell, cell)
        draw_lines(draw, (cell + PAD, y + PAD), wrap(row.text, text_w - 2 * PAD, (rh - 2 * PAD) // LINE))
        paste_ranked(sheet, list(row.ranked)[:top], list(row.hits)[:top], x_ranked, y, cell)
        paste_cell(sheet, row.target, x_target, y, cell, cell)
        found = row.target_rank is not None and row.target_rank <= top
        draw_lines(draw, (x_target + PAD, y + cell),
                   [ellipsize(line, cell - 2 * PAD) for line in
                    ("target:", rank_text(row.target_rank, row.gallery_size, row.rank_cutoff))],
                   fill=GREEN if found else BLACK)
    return sheet


@dataclass(frozen=True)
class RetrievalRow:
    text: str  # the query
    ranked: Sequence[Image.Image]  # the gallery's best matches, best first
    hits: Sequence[bool]  # per ranked image: whether it shows the right product
    rank: int | None  # 1-based rank of the right product in the whole gallery; None: beyond rank_cutoff
    gallery_size: int  # images searched
    rank_cutoff: int = 100  # how deep the ranking was searched when rank is None


def retrieval_sheet(rows: Sequence[RetrievalRow], top: int = 5, cell: int = 110) -> Image.Image:
    """Text -> image search, one line per query: the query text with the right product's rank under it |
    the top results, the right product framed green.

    Size: (round(2.4 * cell) + top * cell, HEADER + n * cell)."""
    n = len(rows)
    text_w = round(2.4 * cell)
    sheet = Image.new("RGB", (text_w + top * cell, HEADER + max(1, n) * cell), WHITE)
    draw = ImageDraw.Draw(sheet)
    _header(draw, [(0, text_w, "query"), (text_w, top * cell, f"top {top}")])
    lines = max(1, (cell - 2 * PAD) // LINE - 1)
    for i, row in enumerate(rows):
        y = HEADER + i * cell
        draw_lines(draw, (PAD, y + PAD), wrap(row.text, text_w - 2 * PAD, lines))
        found = row.rank is not None and row.rank <= top
        draw.text((PAD, y + cell - PAD - LINE), ellipsize(rank_text(row.rank, row.gallery_size, row.rank_cutoff),
                                                          text_w - 2 * PAD),
                  fill=GREEN if found else BLACK, font=font())
        paste_ranked(sheet, list(row.ranked)[:top], list(row.hits)[:top], text_w, y, cell)
    return sheet


# ---------------------------------------------------------------- the targets table


TARGET_COLUMNS = ("metric", "untrained", "trained", "target", "met")


def format_value(value) -> str:
    """None -> "–"; a fraction (|v| <= 1) to 3 decimals, a larger number to 1; anything else as str."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) <= 1 else f"{value:.1f}"
    return str(value)


def _cells(row: dict) -> list[str]:
    met = row.get("met")
    return [format_value(row.get(k)) for k in TARGET_COLUMNS[:4]] + ["–" if met is None else "yes" if met else "no"]


def targets_table(rows: Sequence[dict]) -> str:
    """A Markdown table of rows {"metric", "untrained", "trained", "target", "met"}; an unmet target in bold."""
    def md(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    out = ["| " + " | ".join(TARGET_COLUMNS) + " |", "|" + "---|" * len(TARGET_COLUMNS)]
    for row in rows:
        cells = [md(c) for c in _cells(row)]
        cells[-1] = "**no**" if cells[-1] == "no" else cells[-1]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def targets_table_html(rows: Sequence[dict]) -> str:
    """The same table as HTML, every text escaped; an unmet target in bold."""
    head = "<tr>" + "".join(f"<th>{c}</th>" for c in TARGET_COLUMNS) + "</tr>"
    body = []
    for row in rows:
        cells = [html.escape(c) for c in _cells(row)]
        cells[-1] = "<b>no</b>" if cells[-1] == "no" else cells[-1]
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return "<table>" + head + "".join(body) + "</table>"
