"""A contact sheet: one image per product with its short title, for a person to check the data."""
from __future__ import annotations

import os
import textwrap
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from unifashion.data.formats import catalog
from unifashion.errors import DataError

# File suffix -> the format a sheet is written in (the suffix names the format, never PNG bytes in a .jpg)
SHEET_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}


def contact_sheet(catalog_dir: Path, out: Path, *, n: int = 24, columns: int = 6, cell: int = 160) -> list[dict]:
    """Write a grid of `n` products (categories taken in turn) and return what it shows. The format is
    the suffix's (`SHEET_FORMATS`); another suffix raises DataError before anything is read."""
    out = Path(out)
    fmt = SHEET_FORMATS.get(out.suffix.lower())
    if fmt is None:
        raise DataError(f"{out}: a contact sheet is written as {', '.join(SHEET_FORMATS)}; "
                        f"{out.suffix or 'no suffix'} names no format of those")
    items = catalog.load(Path(catalog_dir))
    by_category: dict[str, list] = {}
    seen_products = set()
    for it in items:
        if it.product_id not in seen_products:
            seen_products.add(it.product_id)
            by_category.setdefault(it.category, []).append(it)
    chosen = []
    per_category = -(-n // max(1, len(by_category)))
    # evenly spaced through each category, so that one design family does not fill a row
    queues = [v[:: max(1, len(v) // per_category)] for _, v in sorted(by_category.items())]
    while len(chosen) < n and any(queues):
        for q in queues:  # round robin, so every category shows
            if q and len(chosen) < n:
                chosen.append(q.pop(0))
    rows = (len(chosen) + columns - 1) // columns
    text_h = 34
    sheet = Image.new("RGB", (columns * cell, rows * (cell + text_h)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=11)
    for i, it in enumerate(chosen):
        x, y = (i % columns) * cell, (i // columns) * (cell + text_h)
        img = it.image.load().convert("RGB").resize((cell - 8, cell - 8), Image.Resampling.LANCZOS)
        sheet.paste(img, (x + 4, y + 4))
        lines = textwrap.wrap(it.title or it.caption, width=26)[:2]
        draw.multiline_text((x + 4, y + cell - 2), "\n".join(lines), fill=(20, 20, 20), font=font, spacing=1)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    try:
        sheet.save(tmp, format=fmt, **({"quality": 90} if fmt in ("JPEG", "WEBP") else {}))
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return [{"product_id": it.product_id, "category": it.category, "title": it.title} for it in chosen]
