"""FashionGen: the released HDF5 files, read and written.

Layout (verified against public loaders, see below):
- one file per split in the dataset folder: `fashiongen_256_256_train.h5`,
  `fashiongen_256_256_validation.h5` (the name carries the image size; the reader accepts any
  `fashiongen_{H}_{W}_{split}.h5`, our writer names the file after its image size).
- `input_image`: (N, H, W, 3) uint8, one product image per row (several rows per product: poses).
- per-row datasets of shape (N, 1): fixed-length byte strings `input_description`, `input_name`,
  `input_category`, `input_subcategory`, `input_gender`, `input_pose`, `input_brand`,
  `input_composition`, `input_season`, `input_concat_description`, `input_department`;
  numbers `input_msrpUSD` (float), `input_productID` (int), `index`, `index_2` (int).
- strings: public loaders disagree on the codec — some decode UTF-8 (a FashionGen torch Dataset
  indexed as `f[key][idx][0].decode("utf-8")`), others Latin-1 (KaleidoBERT-style feature
  extraction: `des[i][0].decode("latin-1")`; an MCP catalogue server with `_CODEC = "latin-1"`), and
  one dataset note advises `.decode('utf-8', errors='ignore')`, i.e. the release is not clean
  UTF-8. This reader decodes UTF-8 and falls back to Latin-1 for a value that is not valid UTF-8;
  the writer encodes Latin-1 (what the Latin-1 readers expect; ASCII text reads the same either
  way) and refuses text outside Latin-1.

Sources checked: a FashionGen h5py Dataset with all 16 keys and `[idx][0]` indexing (public GitHub
file found by `input_concat_description`), `get_h5_images` in a VSE-style repo
(`fashiongen_256_256_{train,validation}.h5`, `f["input_image"]`), BrandonHanx/FAME-ViL
`mmf/datasets/builders/fashiongen/database.py` (FAME-ViL itself reads preprocessed JSON, not the
HDF5), xiangyu-mm/UniFashion `src/data_utils.py` (also preprocessed JSONL + jpg).

Reader semantics: required keys are `input_image`, `input_description`, `input_productID`,
`input_category`, `input_subcategory`; the others go into `extra` when present. Every dataset must
have as many rows as `input_image`: rows missing from a shorter dataset are bad items. A row with
an empty description or a non-integer product id is a bad item. `check_images=True` reads every
image row (a truncated file fails there); without it the image dataset's shape is checked once.
`item_id` is "{split}-{row}", `product_id` the decimal product id, `split` "train" or "val".
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from unifashion.data.formats.common import BadItems, LoadReport, StagedWriter, check_split, require_dir
from unifashion.data.samples import ImageRef, ImageTextPair
from unifashion.errors import DataError

SPLITS = ("train", "validation")
SAMPLE_SPLIT = {"train": "train", "validation": "val"}
IMAGE_KEY = "input_image"
REQUIRED_KEYS = ("input_image", "input_description", "input_productID", "input_category", "input_subcategory")
# h5 key -> extra field name (string datasets)
STRING_EXTRA = {
    "input_name": "name", "input_gender": "gender", "input_pose": "pose", "input_brand": "brand",
    "input_composition": "composition", "input_season": "season", "input_department": "department",
    "input_concat_description": "concat_description",
}
NUMBER_EXTRA = {"input_msrpUSD": "msrp_usd", "index": "index", "index_2": "index_2"}
FILE_RE = re.compile(r"^fashiongen_(\d+)_(\d+)_(train|validation)\.h5$")
_CHUNK = 2048


def split_file(root: Path, split: str) -> Path:
    """The HDF5 file of `split` in `root` (exactly one `fashiongen_{H}_{W}_{split}.h5`)."""
    root = require_dir(root, "FashionGen", "fashiongen_{H}_{W}_{split}.h5 files")
    if split == "val":
        split = "validation"
    check_split(split, SPLITS, "FashionGen")
    found = sorted(p for p in root.iterdir() if (m := FILE_RE.match(p.name)) and m.group(3) == split)
    if not found:
        raise DataError(f"{root}: no FashionGen file for split '{split}' (looked for fashiongen_H_W_{split}.h5)")
    if len(found) > 1:
        raise DataError(f"{root}: several FashionGen files for split '{split}': {', '.join(p.name for p in found)}")
    return found[0]


def _decode(value) -> str:
    if isinstance(value, np.ndarray):
        value = value.reshape(-1)[0] if value.size else b""
    if isinstance(value, (bytes, np.bytes_)):
        b = bytes(value)
        try:
            return b.decode("utf-8")
        except UnicodeDecodeError:
            return b.decode("latin-1")
    return str(value)


def _scalar(value):
    arr = np.asarray(value).reshape(-1)
    return arr[0] if arr.size else None


def load(root: Path, split: str, *, skip_bad: bool = False, report: LoadReport | None = None,
         check_images: bool = False) -> list[ImageTextPair]:
    """Image-text pairs of one FashionGen split ("train" | "validation"), in row order."""
    import h5py

    path = split_file(root, split)
    split = "validation" if split == "val" else split
    bad = BadItems(skip_bad, report)
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise DataError(f"{path}: cannot open HDF5 file ({e})") from None
    with f:
        try:
            return _load_rows(f, path, split, bad, check_images)
        except (OSError, ValueError, TypeError, KeyError, IndexError, RuntimeError) as e:
            # h5py on a damaged file (a valid header, unreadable chunks) or datasets of exotic types
            raise DataError(f"{path}: cannot read HDF5 ({type(e).__name__}: {e})") from None


def _load_rows(f, path: Path, split: str, bad: BadItems, check_images: bool) -> list[ImageTextPair]:
    import h5py

    missing = [k for k in REQUIRED_KEYS if k not in f]
    if missing:
        raise DataError(f"{path}: HDF5 key '{missing[0]}' missing (keys: {', '.join(sorted(f.keys()))})")
    keys = list(REQUIRED_KEYS[1:]) + [k for k in (*STRING_EXTRA, *NUMBER_EXTRA) if k in f]
    for k in (IMAGE_KEY, *keys):
        if not isinstance(f[k], h5py.Dataset):
            raise DataError(f"{path}: HDF5 '{k}' is a {type(f[k]).__name__}, not a dataset")
        if k != IMAGE_KEY and (f[k].dtype.kind not in "SUOiuf" or f[k].ndim not in (1, 2)):
            raise DataError(f"{path}: HDF5 '{k}' is not one value per row (got {f[k].shape} {f[k].dtype})")
    images = f[IMAGE_KEY]
    if images.ndim != 4 or images.shape[3] != 3 or images.dtype != np.uint8:
        raise DataError(f"{path}: '{IMAGE_KEY}' is not an (N, H, W, 3) uint8 array "
                        f"(got {images.shape} {images.dtype})")
    n_rows = images.shape[0]
    lengths = {k: f[k].shape[0] for k in keys}
    n = min([n_rows, *lengths.values()])
    out: list[ImageTextPair] = []
    for start in range(0, n, _CHUNK):
        stop = min(n, start + _CHUNK)
        cols = {k: f[k][start:stop] for k in keys}
        for i in range(stop - start):
            row = start + i
            where = f"{path} row {row}"
            try:
                pid = int(_scalar(cols["input_productID"][i]))
            except (TypeError, ValueError, OverflowError):
                bad.bad(where, f"input_productID is not an integer ({cols['input_productID'][i]!r})")
                continue
            description = _decode(cols["input_description"][i]).strip()
            if not description:
                bad.bad(where, "empty input_description")
                continue
            if check_images:
                try:
                    images[row]  # reads the row: a truncated file fails here
                except (OSError, ValueError) as e:
                    bad.bad(where, f"cannot read '{IMAGE_KEY}' ({e})")
                    continue
            extra: dict = {}
            for key, name in STRING_EXTRA.items():
                if key in cols:
                    extra[name] = _decode(cols[key][i])
            try:
                for key, name in NUMBER_EXTRA.items():
                    if key in cols:
                        v = _scalar(cols[key][i])
                        extra[name] = float(v) if key == "input_msrpUSD" else int(v)
            except (TypeError, ValueError, OverflowError):
                bad.bad(where, f"{key} is not a number ({cols[key][i]!r})")
                continue
            out.append(ImageTextPair(
                item_id=f"{split}-{row}",
                product_id=str(pid),
                category=_decode(cols["input_category"][i]),
                subcategory=_decode(cols["input_subcategory"][i]),
                caption=description,
                image=ImageRef(path, key=IMAGE_KEY, index=row),
                split=SAMPLE_SPLIT[split],
                title=extra.get("name", ""),
                extra=extra,
            ))
    longest = max([n_rows, *lengths.values()])
    if longest != n:
        counts = {IMAGE_KEY: n_rows, **lengths}
        short = min(counts, key=counts.get)
        for row in range(n, longest):
            lacking = [k for k, c in counts.items() if c <= row]
            bad.bad(f"{path} row {row}", f"row missing from {', '.join(repr(k) for k in lacking)} "
                    f"(rows per dataset differ: '{short}' has {counts[short]}, the longest has {longest})")
    return out


class FashionGenWriter(StagedWriter):
    """Writes one split as `fashiongen_{S}_{S}_{split}.h5` in the release's field layout.

    Images stream into a chunked, growing `input_image` dataset (nothing accumulates in memory but
    the text fields); all datasets are created with `track_times=False`, so that two writes of the
    same rows are byte-identical. The file is written under a temporary name and renamed on close;
    leaving the context with an exception removes it.
    """

    def __init__(self, root: Path, split: str, image_size: int):
        import h5py

        if split == "val":
            split = "validation"
        check_split(split, SPLITS, "FashionGen")
        super().__init__(root)
        self.split = split
        self.size = int(image_size)
        self.path = self.root / f"fashiongen_{self.size}_{self.size}_{split}.h5"
        self._f = h5py.File(self.stage(self.path), "w", libver="earliest", track_order=False)
        self._images = self._f.create_dataset(
            IMAGE_KEY, shape=(0, self.size, self.size, 3), maxshape=(None, self.size, self.size, 3),
            dtype=np.uint8, chunks=(1, self.size, self.size, 3), track_times=False)
        self._n = 0
        self._text: dict[str, list[bytes]] = {k: [] for k in (
            "input_description", "input_name", "input_category", "input_subcategory", "input_gender",
            "input_pose", "input_brand", "input_composition", "input_season", "input_department",
            "input_concat_description")}
        self._msrp: list[float] = []
        self._pid: list[int] = []

    def _enc(self, value: str, key: str) -> bytes:
        if not isinstance(value, str):
            raise DataError(f"FashionGen row {self._n}: {key} must be a string, got {type(value).__name__}")
        try:
            encoded = value.encode("latin-1")
        except UnicodeEncodeError as e:
            raise DataError(f"FashionGen row {self._n}: {key} has a character outside Latin-1 ({e})") from None
        # What the reader could not give back: fixed-length HDF5 strings drop trailing NULs, and
        # Latin-1 bytes that also form valid UTF-8 ("Ã©") would read back as the UTF-8 text ("é").
        if "\0" in value:
            raise DataError(f"FashionGen row {self._n}: {key} contains a NUL character")
        if _decode(encoded) != value:
            raise DataError(f"FashionGen row {self._n}: {key} {value!r} would read back as {_decode(encoded)!r} "
                            "(its Latin-1 bytes are also UTF-8)")
        return encoded

    def add(self, *, image: np.ndarray, description: str, name: str, category: str, subcategory: str,
            product_id: int, pose: str, gender: str, brand: str, composition: str, season: str,
            department: str, msrp_usd: float) -> None:
        image = np.asarray(image)
        if image.shape != (self.size, self.size, 3) or image.dtype != np.uint8:
            raise DataError(f"FashionGen row {self._n}: image must be ({self.size}, {self.size}, 3) uint8, "
                            f"got {image.shape} {image.dtype}")
        fields = {
            "input_description": description, "input_name": name, "input_category": category,
            "input_subcategory": subcategory, "input_gender": gender, "input_pose": pose,
            "input_brand": brand, "input_composition": composition, "input_season": season,
            "input_department": department,
            "input_concat_description": f"{name}. {description}" if name else description,
        }
        encoded = {k: self._enc(v, k) for k, v in fields.items()}
        if not description.strip():
            raise DataError(f"FashionGen row {self._n}: empty description (the reader would skip the row)")
        self._images.resize(self._n + 1, axis=0)
        self._images[self._n] = image
        for k, v in encoded.items():
            self._text[k].append(v)
        self._msrp.append(float(msrp_usd))
        self._pid.append(int(product_id))
        self._n += 1

    def _finish(self) -> None:
        f = self._f
        n = self._n
        for key, values in self._text.items():
            width = max([1, *map(len, values)])
            arr = np.array(values, dtype=f"S{width}").reshape(n, 1)
            f.create_dataset(key, data=arr, track_times=False)
        f.create_dataset("input_msrpUSD", data=np.array(self._msrp, dtype=np.float32).reshape(n, 1),
                         track_times=False)
        f.create_dataset("input_productID", data=np.array(self._pid, dtype=np.int32).reshape(n, 1),
                         track_times=False)
        rows = np.arange(n, dtype=np.int64).reshape(n, 1)
        f.create_dataset("index", data=rows, track_times=False)
        f.create_dataset("index_2", data=rows, track_times=False)
        f.close()

    def _discard(self) -> None:
        self._f.close()
