"""Hostile and odd inputs, made in code (no binary files in the repository), shared by the CLI,
format and service tests.

- `BAD_IMAGES`: bytes that must be refused (one clear line / a 4xx), whatever extension they are
  saved under: truncated or corrupt files, an empty file, decompression bombs, huge dimensions,
  non-image bytes, SVG (we do not rasterise vector formats).
- `ODD_IMAGES`: unusual but valid images that must be accepted and converted to RGB.
- `BAD_TEXTS` / `ODD_TEXTS`: query texts to refuse / to accept.
- `BAD_DATASETS`: functions that write a broken variant of each dataset format into a folder
  (used by the format tests; each returns the dataset root to read).

Every generator runs in milliseconds.
"""
from __future__ import annotations

import io
import json
import shutil
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

from PIL import Image

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"

# A limit comfortably above any real product photo (the loader's cap is 64 megapixels) but far
# below what a bomb declares.
BOMB_SIDE = 30000


# ---- image bytes ---------------------------------------------------------------------------------


def _encode(image: Image.Image, fmt: str, **params) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **params)
    return buf.getvalue()


def _photo(size: tuple[int, int] = (64, 48), mode: str = "RGB") -> Image.Image:
    """A small image with structure (a gradient), so that encoders produce many bytes of entropy data."""
    w, h = size
    im = Image.linear_gradient("L").resize((w, h))
    if mode == "L":
        return im
    return Image.merge("RGB", (im, im.transpose(Image.Transpose.FLIP_LEFT_RIGHT), im.rotate(90).resize((w, h))))


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _png_declaring(width: int, height: int, color_type: int = 0) -> bytes:
    """A tiny, well-formed PNG whose header declares `width` x `height` (8-bit grey by default):
    its IDAT holds a little compressed zero data, so it is about a hundred bytes however large it claims."""
    header = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    idat = zlib.compress(b"\0" * min(width + 1, 4096), 9)  # (part of) the first scanline; the rest is missing
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def _truncated_jpeg() -> bytes:
    data = _encode(_photo((96, 96)), "JPEG", quality=90)
    return data[: len(data) // 2]


def _truncated_png() -> bytes:
    data = _encode(_photo((96, 96)), "PNG")
    return data[: len(data) // 2]


def _corrupt_png() -> bytes:
    """A valid PNG signature and IHDR, then an IDAT whose compressed bytes are garbage (CRC fixed up
    so that only the decoder, not the chunk reader, notices)."""
    header = struct.pack(">IIBBBBB", 32, 32, 8, 2, 0, 0, 0)
    garbage = bytes((i * 37 + 11) % 256 for i in range(200))
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", garbage) + _png_chunk(b"IEND", b"")


def _corrupt_jpeg() -> bytes:
    """A JPEG whose SOI and frame header are intact but whose Huffman table segment is garbage
    (libjpeg: "Bogus Huffman table definition")."""
    data = bytearray(_encode(_photo((96, 96)), "JPEG", quality=90))
    dht = data.find(b"\xff\xc4")
    length = struct.unpack(">H", data[dht + 2:dht + 4])[0]
    for i in range(dht + 5, dht + 2 + length):
        data[i] = 0xFF  # code counts that add up to far more than 256 codes
    return bytes(data)


def _bomb_png() -> bytes:
    return _png_declaring(BOMB_SIDE, BOMB_SIDE)  # 900 megapixels declared, ~1 KB on disk


def _huge_dimensions() -> bytes:
    """Wider than any image format allows a real photo to be useful: 2^31-1 x 1 declared."""
    return _png_declaring(2**31 - 1, 1)


def _bomb_gif() -> bytes:
    """A GIF whose logical screen is 65535 x 65535 (the format's limit) with a 1x1 frame."""
    data = bytearray(_encode(Image.new("P", (1, 1)), "GIF"))
    data[6:10] = struct.pack("<HH", 65535, 65535)
    return bytes(data)


def _text_bytes() -> bytes:
    return b"this is not an image, just some text saved as .jpg\n" * 4


def _elf_bytes() -> bytes:
    return b"\x7fELF\x02\x01\x01\x00" + b"\0" * 8 + struct.pack("<HHI", 2, 62, 1) + b"\0" * 100


def _zip_bytes() -> bytes:
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("image.png", b"not really")
    return buf.getvalue()


def _html_bytes() -> bytes:
    return b"<!doctype html><html><script>alert(1)</script></html>"


def _svg_bytes() -> bytes:
    return (b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64">'
            b'<rect width="64" height="64" fill="red"/></svg>\n')


def _eps_bytes() -> bytes:
    return b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 16 16\nnewpath 0 0 moveto 16 16 lineto stroke\nshowpage\n"


BAD_IMAGES: dict[str, Callable[[], bytes]] = {
    "truncated_jpeg": _truncated_jpeg,
    "truncated_png": _truncated_png,
    "corrupt_png": _corrupt_png,
    "corrupt_jpeg": _corrupt_jpeg,
    "empty": lambda: b"",
    "bomb_png": _bomb_png,
    "bomb_gif": _bomb_gif,
    "huge_dimensions": _huge_dimensions,
    "text": _text_bytes,
    "elf": _elf_bytes,
    "zip": _zip_bytes,
    "html": _html_bytes,
    "svg": _svg_bytes,
    "eps": _eps_bytes,
}


def _gray16_png() -> bytes:
    import numpy as np

    grey = np.asarray(Image.linear_gradient("L").resize((40, 30)), dtype=np.uint16)  # (30, 40)
    return _encode(Image.fromarray(grey * 257), "PNG")  # a uint16 array is mode I;16: a 16-bit PNG


def _cmyk_jpeg() -> bytes:
    return _encode(_photo((40, 30)).convert("CMYK"), "JPEG", quality=90)


def _palette_alpha_png() -> bytes:
    im = _photo((40, 30)).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    return _encode(im, "PNG", transparency=0)  # palette entry 0 is transparent (a tRNS chunk)


def _animated_gif() -> bytes:
    frames = [Image.new("RGB", (24, 24), c).convert("P") for c in ("red", "green", "blue")]
    return _encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def _rgba_png() -> bytes:
    im = _photo((40, 30)).convert("RGBA")
    im.putalpha(Image.linear_gradient("L").resize((40, 30)))
    return _encode(im, "PNG")


def _exif_rotated_jpeg() -> bytes:
    """A 40x20 JPEG with EXIF orientation 6 (rotate 90° clockwise to display): shown as 20x40."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return _encode(_photo((40, 20)), "JPEG", quality=90, exif=exif.tobytes())


ODD_IMAGES: dict[str, Callable[[], bytes]] = {
    "gray16_png": _gray16_png,
    "cmyk_jpeg": _cmyk_jpeg,
    "palette_alpha_png": _palette_alpha_png,
    "animated_gif": _animated_gif,
    "rgba_png": _rgba_png,
    "one_pixel_png": lambda: _encode(Image.new("RGB", (1, 1), (200, 10, 10)), "PNG"),
    "wide_thin_png": lambda: _encode(_photo((4000, 2)), "PNG"),
    "grey_jpeg": lambda: _encode(_photo((32, 32), "L"), "JPEG"),
    "webp": lambda: _encode(_photo((32, 32)), "WEBP"),
    "bmp": lambda: _encode(_photo((32, 32)), "BMP"),
    "exif_rotated_jpeg": _exif_rotated_jpeg,
}

# File-name extension each odd image is saved under by the tests (the bad ones are saved as .jpg
# and .png: the content, not the name, decides).
ODD_SUFFIX = {"gray16_png": ".png", "cmyk_jpeg": ".jpg", "palette_alpha_png": ".png", "animated_gif": ".png",
              "rgba_png": ".png", "one_pixel_png": ".png", "wide_thin_png": ".png", "grey_jpeg": ".jpg",
              "webp": ".webp", "bmp": ".bmp", "exif_rotated_jpeg": ".jpg"}
# animated_gif is deliberately saved as .png: a wrong extension alone does not make a file bad.


# ---- texts ---------------------------------------------------------------------------------------

BAD_TEXTS: dict[str, str] = {
    "empty": "",
    "whitespace": " \t\n  \u3000\u00a0 ",
    "huge": "red dress " * 5000,  # 50,000 characters
}

ODD_TEXTS: dict[str, str] = {
    "mixed_scripts": "red dress 红色连衣裙 فستان أحمر 👗🔥",
    "control_chars": "blue\x00 shirt\x07 with\x1b[31m long\u200b sleeves\x7f",
    "combining": "cafe\u0301 colou\u0308r dre\u0300ss Z\u0351\u0352\u0353alg\u0354o",
    "rtl_override": "\u202eesrever\u202c dress",
    "surrogate_free_astral": "𝔯𝔢𝔡 𝔡𝔯𝔢𝔰𝔰",
}


def write_image(folder: Path, name: str, data: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(data)
    return path


# ---- broken datasets -----------------------------------------------------------------------------
# Each writer copies the valid fixture of its format into `dest` and breaks one thing; it returns
# (format name, dataset root, a substring the DataError message must contain).


def _copy(fmt: str, dest: Path) -> Path:
    root = dest / fmt
    shutil.copytree(FIXTURES / fmt, root)
    return root


def _catalog_bad_json_line(dest: Path):
    root = _copy("catalog", dest)
    f = root / "catalog.jsonl"
    lines = f.read_text().splitlines()
    lines[1] = lines[1][: len(lines[1]) // 2]  # a line cut in half
    f.write_text("\n".join(lines) + "\n")
    return "catalog", root, "catalog.jsonl:2"


def _catalog_missing_key(dest: Path):
    root = _copy("catalog", dest)
    f = root / "catalog.jsonl"
    lines = f.read_text().splitlines()
    rec = json.loads(lines[0])
    rec.pop("caption", None)
    rec.pop("image", None)
    lines[0] = json.dumps(rec)
    f.write_text("\n".join(lines) + "\n")
    return "catalog", root, "catalog.jsonl:1"


def _catalog_wrong_type(dest: Path):
    root = _copy("catalog", dest)
    f = root / "catalog.jsonl"
    lines = f.read_text().splitlines()
    rec = json.loads(lines[2])
    for k in rec:
        if isinstance(rec[k], str):
            rec[k] = [1, 2]
    lines[2] = json.dumps(rec)
    f.write_text("\n".join(lines) + "\n")
    return "catalog", root, "catalog.jsonl:3"


def _catalog_not_object(dest: Path):
    root = _copy("catalog", dest)
    f = root / "catalog.jsonl"
    lines = f.read_text().splitlines()
    lines[0] = "[1, 2, 3]"
    f.write_text("\n".join(lines) + "\n")
    return "catalog", root, "catalog.jsonl:1"


def _catalog_binary(dest: Path):
    root = _copy("catalog", dest)
    (root / "catalog.jsonl").write_bytes(b"\xff\xfe\x00garbage\x80\x81\n")
    return "catalog", root, "catalog.jsonl"


def _fashioniq_bad_json(dest: Path):
    root = _copy("fashioniq", dest)
    f = sorted((root / "captions").glob("*.json"))[0]
    f.write_text(f.read_text()[:-20])
    return "fashioniq", root, f.name


def _fashioniq_wrong_shape(dest: Path):
    root = _copy("fashioniq", dest)
    f = sorted((root / "captions").glob("*.json"))[0]
    data = json.loads(f.read_text())
    data[0]["captions"] = "one string, not a list"
    f.write_text(json.dumps(data))
    return "fashioniq", root, f.name


def _fashioniq_not_list(dest: Path):
    root = _copy("fashioniq", dest)
    f = sorted((root / "captions").glob("*.json"))[0]
    f.write_text(json.dumps({"candidate": "x"}))
    return "fashioniq", root, f.name


def _fashioniq_split_wrong_type(dest: Path):
    root = _copy("fashioniq", dest)
    f = sorted((root / "image_splits").glob("*.json"))[0]
    f.write_text(json.dumps([1, 2, {"a": 3}]))
    return "fashioniq", root, f.name


def _fashion200k_bad_line(dest: Path):
    root = _copy("fashion200k", dest)
    f = sorted((root / "labels").glob("*.txt"))[0]
    lines = f.read_text().splitlines()
    lines[0] = "only-one-field"
    f.write_text("\n".join(lines) + "\n")
    return "fashion200k", root, f"{f.name}:1"


def _fashiongen_missing_key(dest: Path):
    import h5py

    root = _copy("fashiongen", dest)
    f = sorted(root.glob("*.h5"))[0]
    with h5py.File(f, "a") as h:
        del h["input_description"]
    return "fashiongen", root, "input_description"


def _fashiongen_wrong_shape(dest: Path):
    import h5py
    import numpy as np

    root = _copy("fashiongen", dest)
    f = sorted(root.glob("*.h5"))[0]
    with h5py.File(f, "a") as h:
        n = h["input_image"].shape[0]
        del h["input_image"]
        h["input_image"] = np.zeros((n, 8), dtype=np.float32)
    return "fashiongen", root, "input_image"


def _fashiongen_not_hdf5(dest: Path):
    root = _copy("fashiongen", dest)
    f = sorted(root.glob("*.h5"))[0]
    f.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 40)  # the signature, then nothing usable
    return "fashiongen", root, f.name


def _fashiongen_short_column(dest: Path):
    import h5py

    root = _copy("fashiongen", dest)
    f = sorted(root.glob("*.h5"))[0]
    with h5py.File(f, "a") as h:
        col = h["input_description"][:1]
        del h["input_description"]
        h["input_description"] = col
    return "fashiongen", root, "input_description"


def _vitonhd_bad_pairs(dest: Path):
    root = _copy("vitonhd", dest)
    f = sorted(root.glob("*_pairs.txt"))[0]
    f.write_text("a b c\n")
    return "vitonhd", root, f"{f.name}:1"


def _vitonhd_bad_keypoints(dest: Path):
    root = _copy("vitonhd", dest)
    f = sorted(root.rglob("openpose_json/*.json"))[0]
    f.write_text(json.dumps({"people": [{"pose_keypoints_2d": "nope"}]}))
    return "vitonhd", root, f.name


BAD_DATASETS: dict[str, Callable[[Path], tuple[str, Path, str]]] = {
    "catalog_bad_json_line": _catalog_bad_json_line,
    "catalog_missing_key": _catalog_missing_key,
    "catalog_wrong_type": _catalog_wrong_type,
    "catalog_not_object": _catalog_not_object,
    "catalog_binary": _catalog_binary,
    "fashioniq_bad_json": _fashioniq_bad_json,
    "fashioniq_wrong_shape": _fashioniq_wrong_shape,
    "fashioniq_not_list": _fashioniq_not_list,
    "fashioniq_split_wrong_type": _fashioniq_split_wrong_type,
    "fashion200k_bad_line": _fashion200k_bad_line,
    "fashiongen_missing_key": _fashiongen_missing_key,
    "fashiongen_wrong_shape": _fashiongen_wrong_shape,
    "fashiongen_not_hdf5": _fashiongen_not_hdf5,
    "fashiongen_short_column": _fashiongen_short_column,
    "vitonhd_bad_pairs": _vitonhd_bad_pairs,
    "vitonhd_bad_keypoints": _vitonhd_bad_keypoints,
}
