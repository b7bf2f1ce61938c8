"""The paper's Tables 1-5 in their shape, our measured numbers beside UniFashion's published ones.

The published numbers are the paper's (arXiv 2408.11305v2) for its BLIP-2 / Vicuna-7B / Stable
Diffusion model on FashionGen, Fashion-IQ and VITON-HD/MGD. Ours come from whatever model and data
were evaluated; each table says which data each row is on, and a row on other data than the paper's
is marked as such: the numbers are then not comparable, only shaped alike.
"""
from __future__ import annotations

from dataclasses import dataclass

# (column label, our metrics key, UniFashion's published value); None where the paper has no number
TABLE1 = ("Table 1: cross-modal retrieval, sample-100 protocol (paper: FashionGen validation)", "pairs", (
    ("I2T R@1", "cmr.sample100.i2t.r1", 71.44), ("I2T R@5", "cmr.sample100.i2t.r5", 93.79),
    ("I2T R@10", "cmr.sample100.i2t.r10", 97.51), ("T2I R@1", "cmr.sample100.t2i.r1", 71.41),
    ("T2I R@5", "cmr.sample100.t2i.r5", 93.69), ("T2I R@10", "cmr.sample100.t2i.r10", 97.47),
    ("Mean", "cmr.sample100.mean", 87.55)))
TABLE2 = ("Table 2: image captioning (paper: FashionGen validation)", "pairs", (
    ("BLEU-4", "cap.bleu4", 35.53), ("METEOR", "cap.meteor", 29.32), ("ROUGE-L", "cap.rouge_l", 54.59),
    ("CIDEr", "cap.cider", 169.5)))
TABLE3 = ("Table 3: try-on, unpaired (paper: VITON-HD at 512x384; its KID scale is not stated, ours is raw)",
          "vitonhd", (("FID", "tryon.unpaired.fid", 8.42), ("KID", "tryon.unpaired.kid_mean", 0.67)))
TABLE4 = ("Table 4: composed retrieval (paper: Fashion-IQ val; w/o cap = image only, w/o img = captions only)",
          "fashioniq", (
              ("Dress R@10", "cir.dress.r10", 53.72), ("Dress R@50", "cir.dress.r50", 73.66),
              ("Shirt R@10", "cir.shirt.r10", 61.25), ("Shirt R@50", "cir.shirt.r50", 76.67),
              ("Toptee R@10", "cir.toptee.r10", 61.84), ("Toptee R@50", "cir.toptee.r50", 80.46),
              ("Avg R@10", "cir.avg.r10", 58.93), ("Avg R@50", "cir.avg.r50", 76.93), ("Avg", "cir.avg.score", 67.93),
              ("w/o cap Avg", "cir.variants.img.avg.score", 65.04),
              ("w/o img Avg", "cir.variants.cap.avg.score", 48.22)))
TABLE5 = ("Table 5: the full model's row of the ablation (paper: Base+LLM+diff.; FIG = MGD design FID; "
          "`unifashion ablate` gives every row)", None, (
              ("CMR", "cmr.sample100.mean", 87.55), ("CIR", "cir.avg.score", 67.93), ("FIC BLEU-4", "cap.bleu4", 35.53),
              ("FIG FID", "gen.fid", 12.43)))
TABLES = (TABLE1, TABLE2, TABLE3, TABLE4, TABLE5)
# the paper's dataset for each kind of source
PAPER_DATA = {"pairs": "fashiongen", "fashioniq": "fashioniq", "vitonhd": "vitonhd"}


@dataclass(frozen=True)
class PaperTable:
    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, tuple[float | None, ...]], ...]  # (row label, values per column)


def paper_tables(metrics: dict, data: dict[str, str]) -> list[PaperTable]:
    """Each table with measured numbers, as (the paper's row, our row). `data` is the evaluation's
    `meta["data"]` ({format or "world": folder}); a table none of whose keys was measured is left out."""
    pair_format = next((f for f in ("fashiongen", "catalog", "fashion200k") if f in data), None)
    out = []
    for title, kind, columns in TABLES:
        ours = tuple(metrics.get(key) for _, key, _ in columns)
        if all(v is None for v in ours):
            continue
        fmt = pair_format if kind == "pairs" else kind
        if "world" in data:
            where, same = f"synthetic world {data['world']}", False
        elif kind is None:
            where, same = ", ".join(f for f in sorted(data)), False
        else:
            where, same = f"{fmt} {data.get(fmt, '')}".strip(), fmt == PAPER_DATA[kind]
        label = f"ours ({where}{'' if same else '; different data, not comparable'})"
        out.append(PaperTable(title, tuple(c for c, _, _ in columns),
                              (("UniFashion (paper)", tuple(v for _, _, v in columns)), (label, ours))))
    return out
