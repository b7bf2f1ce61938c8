"""The report's contact sheets: sizes fixed by rows and cell alone, frames where a reader looks for them."""
import math

import numpy as np
import pytest
from PIL import Image

from unifashion.evaluation import sheets
from unifashion.evaluation.sheets import (HEADER, LINE, PAD, CaptionRow, ComposedRow, GenerationRow, RetrievalRow,
                                          TryOnRow, caption_sheet, composed_sheet, generation_sheet, retrieval_sheet,
                                          targets_table, targets_table_html, tryon_sheet)

LONG = "an extraordinarily " + "long " * 200 + "Supercalifragilisticexpialidocious" * 20
GREY_IM = Image.new("RGB", (64, 64), (128, 128, 128))
PERSON = Image.new("RGB", (48, 64), (90, 120, 160))
SMALL = Image.new("RGB", (16, 16), (60, 160, 60))


def caption_rows(n, text="a blue striped shirt", flags=None):
    flags = flags if flags is not None else {"category": True, "colour": True, "pattern": True}
    return [CaptionRow(GREY_IM, text, "truth " + text, flags) for _ in range(n)]


def generation_rows(n, text="a red dress"):
    return [GenerationRow(GREY_IM, SMALL, text, {"colour": ("red", "red"), "category": ("skirt", "dress")})
            for _ in range(n)]


def tryon_rows(n, real=True, text="a green cotton t-shirt"):
    return [TryOnRow(PERSON, GREY_IM, PERSON, PERSON if real else None, text, 27.34, ("green", "blue"))
            for _ in range(n)]


def composed_rows(n, hit_at=None, text="is darker and has long sleeves"):
    hits = [k == hit_at for k in range(5)]
    return [ComposedRow(GREY_IM, text, [GREY_IM] * 5, hits, GREY_IM, None if hit_at is None else hit_at + 1, 412)
            for _ in range(n)]


def retrieval_rows(n, hit_at=None, text="a red dress with a floral print"):
    hits = [k == hit_at for k in range(5)]
    return [RetrievalRow(text, [GREY_IM] * 5, hits, None if hit_at is None else hit_at + 1, 412) for _ in range(n)]


def caption_size(n, cell=160):
    return min(n, 4) * (cell + 2 * PAD), math.ceil(n / 4) * (cell + 2 * PAD + 9 * LINE + PAD)


def generation_size(n, cell=128, attrs=2):
    return sheets.GENERATION_LABEL + n * (cell + 2 * PAD), 2 * (cell + 2 * PAD) + (6 + attrs) * LINE + 2 * PAD


def tryon_size(n, cell=128, real=True):
    pw = round(cell * 3 / 4) + 2 * PAD
    return (3 if real else 2) * pw + cell + 2 * PAD, HEADER + n * (cell + 2 * PAD + 3 * LINE + PAD)


def composed_size(n, cell=110, top=5):
    return (top + 4) * cell, HEADER + n * (cell + 2 * LINE)


def retrieval_size(n, cell=110, top=5):
    return round(2.4 * cell) + top * cell, HEADER + n * cell


CASES = {
    "caption": (lambda n, text: caption_sheet(caption_rows(n, text)), caption_size),
    "generation": (lambda n, text: generation_sheet(generation_rows(n, text)), generation_size),
    "tryon": (lambda n, text: tryon_sheet(tryon_rows(n, text=text)), tryon_size),
    "composed": (lambda n, text: composed_sheet(composed_rows(n, 2, text)), composed_size),
    "retrieval": (lambda n, text: retrieval_sheet(retrieval_rows(n, 2, text)), retrieval_size),
}


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("n", [1, 3, 9])
def test_sheet_is_rgb_of_the_expected_size(name, n):
    draw, size = CASES[name]
    sheet = draw(n, "short text")
    assert sheet.mode == "RGB" and sheet.size == size(n)


@pytest.mark.parametrize("name", sorted(CASES))
def test_long_texts_do_not_grow_the_sheet(name):
    draw, size = CASES[name]
    assert draw(3, LONG).size == draw(3, "x").size == size(3)


def test_long_text_is_cut_within_its_cell():
    lines = sheets.wrap(LONG, 100, 3)
    assert len(lines) == 3 and lines[-1].endswith("…")
    assert all(sheets.font().getlength(line) <= 100 for line in lines)
    cut = sheets.ellipsize("x" * 500, 40)
    assert cut.endswith("…") and sheets.font().getlength(cut) <= 40
    assert sheets.wrap("fits", 100, 3) == ["fits"]


def _frame_band(sheet, x0, y0, w, h):
    """The FRAME px band just inside the cell at (x0, y0), as an (N, 3) array of pixels."""
    a = np.asarray(sheet).astype(int)[y0:y0 + h, x0:x0 + w]
    inner = np.ones(a.shape[:2], bool)
    inner[1:1 + sheets.FRAME, :] = inner[h - 1 - sheets.FRAME:h - 1, :] = False
    inner[:, 1:1 + sheets.FRAME] = inner[:, w - 1 - sheets.FRAME:w - 1] = False
    return a[~inner]


def _is_red(px):
    return (px[:, 0] > 150) & (px[:, 1] < 80) & (px[:, 2] < 80)


def _is_green(px):
    return (px[:, 1] > 130) & (px[:, 0] < 80) & (px[:, 2] < 80)


def test_a_wrong_caption_is_framed_red_and_a_right_one_is_not():
    wrong = caption_rows(1, flags={"category": True, "colour": False, "pattern": True})
    right = caption_rows(1)
    sheet = caption_sheet(wrong + right)
    (w, h), cw = caption_size(1), caption_size(1)[0]
    assert _is_red(_frame_band(sheet, 0, 0, w, h)).mean() > 0.9
    assert not _is_red(_frame_band(sheet, cw, 0, w, h)).any()
    # the wrong badge is drawn red, the right ones green, inside the cell
    cell = np.asarray(sheet).astype(int)[:, : cw].reshape(-1, 3)
    assert _is_red(cell).sum() > _frame_band(sheet, 0, 0, w, h).shape[0] and _is_green(cell).any()
    assert not _is_red(np.asarray(sheet).astype(int)[:, cw:].reshape(-1, 3)).any()


def test_badges_name_right_and_wrong():
    texts = [t for t, _ in sheets._badges({"category": True, "colour": False})]
    assert texts in (["category ✓", "colour ✗"], ["category ok", "colour WRONG"])


def test_composed_sheet_frames_the_hit_green():
    cell = 110
    sheet = composed_sheet(composed_rows(1, hit_at=2))
    x_hit = cell + 2 * cell + 2 * cell  # reference, text, two ranked cells before it
    px = np.asarray(sheet)[HEADER + cell // 2, x_hit + 2]
    assert _is_green(px[None].astype(int)).all()
    assert _is_green(_frame_band(sheet, x_hit, HEADER, cell, cell)).mean() > 0.9
    # no other ranked cell is framed
    for k in (0, 1, 3, 4):
        assert not _is_green(_frame_band(sheet, cell + 2 * cell + k * cell, HEADER, cell, cell)).any()
    # and without a hit, no frame at all: the only difference is the frame (and the rank text)
    plain = np.asarray(composed_sheet(composed_rows(1))).astype(int)
    diff = (np.asarray(sheet).astype(int) != plain).any(axis=2)
    ys, xs = np.nonzero(diff[:, : 8 * cell])
    assert xs.min() >= x_hit and xs.max() < x_hit + cell


def test_retrieval_sheet_frames_the_hit_green():
    cell = 110
    sheet = retrieval_sheet(retrieval_rows(1, hit_at=0))
    x_hit = round(2.4 * cell)
    assert _is_green(_frame_band(sheet, x_hit, HEADER, cell, cell)).mean() > 0.9
    assert not _is_green(_frame_band(sheet, x_hit + cell, HEADER, cell, cell)).any()


def test_probe_mismatch_is_red():
    match = GenerationRow(GREY_IM, SMALL, "a red dress", {"colour": ("red", "red")})
    miss = GenerationRow(GREY_IM, SMALL, "a red dress", {"colour": ("blue", "red")})
    a = np.asarray(generation_sheet([match, miss])).astype(int)
    cw, x0 = 128 + 2 * PAD, sheets.GENERATION_LABEL
    assert not _is_red(a[:, x0:x0 + cw].reshape(-1, 3)).any() and _is_green(a[:, x0:x0 + cw].reshape(-1, 3)).any()
    assert _is_red(a[:, x0 + cw:].reshape(-1, 3)).any()


def test_generated_image_is_upscaled_nearest():
    checker = Image.fromarray((np.indices((8, 8)).sum(axis=0) % 2 * 255).astype(np.uint8)).convert("RGB")
    a = np.asarray(generation_sheet([GenerationRow(GREY_IM, checker, "t", {})], cell=128)).astype(int)
    x0, y0 = sheets.GENERATION_LABEL + PAD, 128 + 2 * PAD + PAD
    block = a[y0:y0 + 128, x0:x0 + 128]
    assert set(np.unique(block)) <= {0, 255}  # no blended greys


def test_tryon_keeps_the_person_aspect_and_drops_an_empty_real_column():
    assert tryon_sheet(tryon_rows(2, real=False)).size == tryon_size(2, real=False)
    mixed = tryon_rows(1) + tryon_rows(1, real=False)
    assert tryon_sheet(mixed).size == tryon_size(2)
    a = np.asarray(tryon_sheet(tryon_rows(1), cell=128)).astype(int)
    pw = round(128 * 3 / 4) + 2 * PAD
    person = (np.abs(a[HEADER:HEADER + 128 + 2 * PAD, :pw] - (90, 120, 160)).sum(axis=2) < 10)
    ys, xs = np.nonzero(person)
    h, w = ys.max() - ys.min() + 1, xs.max() - xs.min() + 1
    assert h == 128 and abs(w / h - 0.75) < 0.02
    # colour read green but asked blue: drawn red
    assert _is_red(a.reshape(-1, 3)).any()


def test_targets_table_markdown():
    rows = [{"metric": "cmr.sample100.r1", "untrained": None, "trained": 52.345, "target": ">= 50", "met": True},
            {"metric": "gen.colour_match", "untrained": 0.12345, "trained": 0.5, "target": "a|b", "met": False}]
    lines = targets_table(rows).splitlines()
    assert lines[0] == "| metric | untrained | trained | target | met |"
    assert lines[1] == "|---|---|---|---|---|"
    assert lines[2] == "| cmr.sample100.r1 | – | 52.3 | >= 50 | yes |"
    assert lines[3] == "| gen.colour_match | 0.123 | 0.500 | a\\|b | **no** |"


def test_targets_table_html_is_escaped():
    out = targets_table_html([{"metric": "<script>", "untrained": 1.5, "trained": None, "target": "<= 3 & x",
                               "met": False}])
    assert "<script>" not in out and "&lt;script&gt;" in out and "&lt;= 3 &amp; x" in out
    assert "<td>1.5</td><td>–</td>" in out and "<b>no</b>" in out
