"""Words that name what a garment looks like, shared by the data and the metrics that read it.

The synthetic world draws and describes its products in these colours, and evaluation reads them
back (generated images' dominant colour, colour words in captions); here, so that evaluating
real data does not depend on the synthetic generator.
"""
from __future__ import annotations

# Named colours (sRGB). Rendered with per-product jitter, so a name covers a small region.
COLOURS: dict[str, tuple[int, int, int]] = {
    "black": (25, 25, 28),
    "white": (240, 240, 236),
    "grey": (135, 135, 140),
    "navy": (28, 40, 95),
    "blue": (40, 95, 200),
    "light blue": (150, 195, 235),
    "red": (200, 30, 35),
    "burgundy": (110, 20, 40),
    "pink": (240, 150, 180),
    "orange": (240, 130, 30),
    "yellow": (245, 215, 50),
    "green": (40, 150, 60),
    "olive": (110, 115, 45),
    "beige": (215, 195, 160),
    "brown": (115, 70, 40),
    "purple": (120, 60, 160),
}
