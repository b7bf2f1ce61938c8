"""Readers and writers of the dataset release formats (FashionGen, Fashion200K, Fashion-IQ, VITON-HD/MGD, catalog)."""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import h5py
import numpy as np
import pytest
from PIL import Image

from unifashion.data.formats import catalog, fashion200k, fashiongen, fashioniq, vitonhd
from unifashion.data.formats.common import LoadReport
from unifashion.data.formats.detect import detect_format, summarize
from unifashion.errors import DataError

FIX = Path(__file__).resolve().parents[1] / "fixtures"


def copy_fixture(name: str, tmp_path: Path) -> Path:
    dst = tmp_path / name
    shutil.copytree(FIX / name, dst)
    return dst


def tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def img(colour, size=(8, 8), mode="RGB") -> Image.Image:
    return Image.new(mode, size, colour)


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


# ------------------------------------------------------------------------------------------ fixtures


def test_fashiongen_fixture():
    items = fashiongen.load(FIX / "fashiongen", "validation")
    assert [s.item_id for s in items] == ["validation-0", "validation-1", "validation-2"]
    assert [s.product_id for s in items] == ["2002", "3003", "3003"]
    assert items[1].category == "JACKETS & COATS" and items[1].subcategory == "LEATHER JACKETS"
    assert items[1].caption == "Lambskin jacket in noir. Notched lapel café collar."  # Latin-1 byte decoded
    assert items[1].title == "Noir Leather Jacket" and items[1].split == "val"
    assert items[1].extra["pose"] == "id_gridfs_1" and items[1].extra["msrp_usd"] == pytest.approx(1450.5)
    assert items[1].extra["brand"] == "Acme"
    im = np.asarray(items[1].image.load())
    assert im.shape == (16, 16, 3) and im[0, 0, 0] == 60 and im[5, 5, 1] == 200
    assert len(fashiongen.load(FIX / "fashiongen", "train", check_images=True)) == 2


def test_fashion200k_fixture():
    train = fashion200k.load(FIX / "fashion200k", "train")
    assert [(s.category, s.product_id) for s in train] == [("dress", "51727804"), ("dress", "51727804"),
                                                           ("top", "60015120")]
    s = train[0]
    assert s.item_id == "women/dresses/casual_and_day_dresses/51727804/51727804_0.jpeg"
    assert s.subcategory == "casual and day dresses" and s.caption == "black lace cocktail dress"
    assert s.extra["detection_score"] == pytest.approx(0.835052) and s.split == "train"
    test = fashion200k.load(FIX / "fashion200k", "test", check_images=True)
    assert {s.category for s in test} == {"dress", "shoes"}  # extra category file read
    assert fashion200k.load_test_queries(FIX / "fashion200k") == [
        ("women/dresses/maxi_dresses/49931111/49931111_0.jpeg", "women/dresses/maxi_dresses/49931112/49931112_0.jpeg")]


def test_fashioniq_fixture():
    root = FIX / "fashioniq"
    assert fashioniq.categories(root) == ["dress", "toptee"]
    val = fashioniq.load(root, "val")
    assert [(t.category, t.reference_id, t.target_id) for t in val] == [
        ("dress", "B008MTHLHQ", "B005X4PL1G"), ("toptee", "B0083I6W08", "B00A3OGGPG")]
    assert val[0].modifications == ("is shorter and red.", "is sleeveless")
    assert val[0].reference.path.name == "B008MTHLHQ.png" and val[0].split == "val"
    assert len(fashioniq.load(root, "train", "dress", check_images=True)) == 2
    test = fashioniq.load(root, "test")
    assert test[0].target_id is None and test[0].target is None
    assert fashioniq.load_image_split(root, "toptee", "val") == ["B00A3OGGPG", "B0083I6W08"]


def test_vitonhd_fixture():
    root = FIX / "vitonhd"
    unpaired = vitonhd.load(root, "test", paired=False, check_images=True)
    assert [(s.person_id, s.garment_id) for s in unpaired] == [("12419_00.jpg", "03191_00.jpg"),
                                                              ("03191_00.jpg", "12419_00.jpg")]
    s = unpaired[0]
    assert s.caption == "white petite t-shirt, white perforated leather front tee, white detail tee"
    assert s.sketch.path.name == "12419_00_03191_00.png" and s.garment.path.name == "03191_00.jpg"
    assert s.garment_mask.path.parent.name == "cloth-mask" and s.agnostic_mask.path.name == "12419_00_mask.png"
    assert s.pose_keypoints.shape == (18, 3)
    assert s.pose_keypoints[8].tolist() == pytest.approx([5, 9, 0.6])  # COCO RHip = BODY_25 index 9
    paired = vitonhd.load(root, "test", paired=True)
    assert all(s.paired and s.person_id == s.garment_id for s in paired)
    assert paired[0].sketch.path.name == "12419_00.png"
    assert paired[0].caption.startswith("black curve cami")
    train = vitonhd.load(root, "train", paired=True)
    assert len(train) == 1 and train[0].sketch is None and train[0].caption is None
    assert train[0].parse.load().mode == "P"


def test_vitonhd_derives_agnostic_mask_when_the_folder_is_missing(tmp_path):
    root = copy_fixture("vitonhd", tmp_path)
    shutil.rmtree(root / "test" / "agnostic-mask")
    before = sorted(p for p in root.rglob("*"))
    s = vitonhd.load(root, "test", paired=True)[0]
    assert s.agnostic_mask.grey_paint_mask and s.agnostic_mask.path.parent.name == "agnostic-v3.2"
    m = np.asarray(s.agnostic_mask.load())
    assert m[6, 5] == 255 and m[0, 0] == 0  # the grey rectangle (3..9 x 4..10) is the mask
    assert sorted(p for p in root.rglob("*")) == before  # a reader writes nothing into the dataset


def test_catalog_fixture():
    items = catalog.load(FIX / "catalog")
    assert [s.item_id for s in items] == ["p0001_v0", "p0001_v1", "p0002_v0"]
    assert items[0].caption == "A red striped t-shirt with short sleeves." and items[0].title == "red striped t-shirt"
    assert items[0].extra["attributes"]["pattern"] == "stripes" and items[0].extra["view"] == {"pose": "front"}
    assert items[2].extra["view"] is None
    assert [s.item_id for s in catalog.load(FIX / "catalog", "val", check_images=True)] == ["p0002_v0"]


# ----------------------------------------------------------------------------------- round trips


def write_fashiongen(root: Path) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (16, 16, 3), dtype=np.uint8) for _ in range(3)]
    with fashiongen.FashionGenWriter(root, "validation", 16) as w:
        for i, im in enumerate(images):
            w.add(image=im, description=f"description {i} in café red", name=f"Name {i}", category="TOPS",
                  subcategory="SHIRT", product_id=500 + i // 2, pose=f"id_gridfs_{i}", gender="WOMEN", brand="B",
                  composition="100% silk", season="SS2018", department="CLOTHING", msrp_usd=12.25 * i)
    return images


def test_fashiongen_round_trip_and_determinism(tmp_path):
    images = write_fashiongen(tmp_path / "a")
    write_fashiongen(tmp_path / "b")
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["fashiongen_16_16_validation.h5"]
    assert tree_digest(tmp_path / "a") == tree_digest(tmp_path / "b")
    items = fashiongen.load(tmp_path / "a", "validation", check_images=True)
    assert [s.product_id for s in items] == ["500", "500", "501"]
    assert [s.caption for s in items] == [f"description {i} in café red" for i in range(3)]
    assert items[2].extra["msrp_usd"] == pytest.approx(24.5) and items[2].title == "Name 2"
    for s, im in zip(items, images):
        assert np.array_equal(np.asarray(s.image.load()), im)
    with h5py.File(tmp_path / "a" / "fashiongen_16_16_validation.h5") as f:  # the release's shapes
        assert f["input_description"].shape == (3, 1) and f["input_description"].dtype.kind == "S"
        assert f["input_image"].shape == (3, 16, 16, 3)


def test_fashiongen_interrupted_write_leaves_no_file(tmp_path):
    with pytest.raises(RuntimeError):
        with fashiongen.FashionGenWriter(tmp_path, "train", 8) as w:
            w.add(image=np.zeros((8, 8, 3), np.uint8), description="d", name="n", category="c", subcategory="s",
                  product_id=1, pose="p", gender="g", brand="b", composition="c", season="s", department="d",
                  msrp_usd=1.0)
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def write_fashion200k(root: Path):
    with fashion200k.Fashion200kWriter(root) as w:
        a = w.add("train", "dress", "cocktail dresses", 11, 0, img((255, 0, 0)), "red cocktail dress", 0.9)
        w.add("train", "dress", "cocktail dresses", 11, 1, img((250, 0, 0)), "red cocktail dress", 0.8)
        b = w.add("test", "shoes", "ankle boots", 22, 0, img((0, 0, 255)), "blue ankle boots")
        c = w.add("test", "pants", "jeans", 33, 0, img((0, 255, 0)), "green jeans")
        w.add_test_query(b, c)
    return a


def test_fashion200k_round_trip_and_determinism(tmp_path):
    rel = write_fashion200k(tmp_path / "a")
    write_fashion200k(tmp_path / "b")
    assert tree_digest(tmp_path / "a") == tree_digest(tmp_path / "b")
    assert rel == "women/dresses/cocktail_dresses/11/11_0.jpeg"
    assert (tmp_path / "a" / "labels" / "dress_train_detect_all.txt").is_file()
    train = fashion200k.load(tmp_path / "a", "train", check_images=True)
    assert [(s.item_id, s.product_id, s.category, s.subcategory, s.caption) for s in train][0] == (
        rel, "11", "dress", "cocktail dresses", "red cocktail dress")
    assert train[1].extra["detection_score"] == pytest.approx(0.8)
    px = np.asarray(train[0].image.load()).astype(int)
    assert np.abs(px - [255, 0, 0]).max() <= 4  # JPEG: approximately
    test = fashion200k.load(tmp_path / "a", "test")
    assert sorted(s.category for s in test) == ["pants", "shoes"]
    assert fashion200k.load_test_queries(tmp_path / "a") == [
        ("women/shoes/ankle_boots/22/22_0.jpeg", "women/pants/jeans/33/33_0.jpeg")]


def write_fashioniq(root: Path):
    with fashioniq.FashionIQWriter(root) as w:
        for k, name in enumerate(["A1", "A2", "A3"]):
            w.add_image(name, img((10 * k, 20, 30)))
        w.add_triplet("dress", "train", "A1", "A2", ["is longer", "is red"])
        w.add_triplet("footwear", "val", "A2", "A3", ["is a boot", "is taller"])
        w.add_triplet("footwear", "test", "A3", None, ["is flat", "is white"])
        w.set_image_split("dress", "train", ["A1", "A2"])
        w.set_image_split("footwear", "val", ["A2", "A3"])


def test_fashioniq_round_trip_and_determinism(tmp_path):
    write_fashioniq(tmp_path / "a")
    write_fashioniq(tmp_path / "b")
    assert tree_digest(tmp_path / "a") == tree_digest(tmp_path / "b")
    root = tmp_path / "a"
    assert fashioniq.categories(root) == ["dress", "footwear"]
    (t,) = fashioniq.load(root, "val", check_images=True)
    assert (t.category, t.reference_id, t.target_id, t.modifications) == ("footwear", "A2", "A3",
                                                                          ("is a boot", "is taller"))
    assert np.asarray(t.target.load())[0, 0].tolist() == [20, 20, 30]  # PNG: exact
    (t,) = fashioniq.load(root, "test")
    assert t.target_id is None
    assert fashioniq.load_image_split(root, "footwear", "val") == ["A2", "A3"]
    raw = json.loads((root / "captions" / "cap.dress.train.json").read_text())
    assert list(raw[0]) == ["target", "candidate", "captions"]


def tryon_images(k: int, with_sketch=True):
    parse = np.zeros((16, 12), np.uint8)
    parse[4:10, 3:9] = 5
    parse[1:4, 4:8] = 13
    mask = np.zeros((16, 12), np.uint8)
    mask[4:10, 3:9] = 255
    kp = np.zeros((18, 3), np.float32)
    kp[:, 0] = np.arange(18)
    kp[:, 1] = 2 * np.arange(18) + k
    kp[:, 2] = 0.5
    return SimpleNamespace(
        person=img((200, 100, 50 + k), (12, 16)), garment=img((10, 200, 10), (12, 16)),
        garment_mask=img(255, (12, 16), "L"), agnostic=img((128, 128, 128), (12, 16)),
        agnostic_mask=Image.fromarray(mask, "L"), parse=Image.fromarray(parse, "L"),
        sketch=img(200 + k, (12, 16), "L") if with_sketch else None, pose_keypoints=kp,
        pose_image=img((0, 0, 0), (12, 16)))


def write_vitonhd(root: Path):
    with vitonhd.VitonHDWriter(root) as w:
        w.add("train", "00001_00", tryon_images(0), "red t-shirt, cotton tee, crew neck top")
        w.add("test", "00002_00", tryon_images(1), "blue blouse, silk blouse, v-neck")
        w.add("test", "00003_00", tryon_images(2), "green top, knit top, short sleeves")
        w.add_pair("test", "00002_00", "00003_00")
        w.add_pair("test", "00003_00", "00002_00")


def test_vitonhd_round_trip_and_determinism(tmp_path):
    write_vitonhd(tmp_path / "a")
    write_vitonhd(tmp_path / "b")
    assert tree_digest(tmp_path / "a") == tree_digest(tmp_path / "b")
    root = tmp_path / "a"
    assert (root / "train_pairs.txt").read_text() == "00001_00.jpg 00001_00.jpg\n"
    assert (root / "test_pairs.txt").read_text() == "00002_00.jpg 00003_00.jpg\n00003_00.jpg 00002_00.jpg\n"
    body25 = json.loads((root / "test" / "openpose_json" / "00002_00_keypoints.json").read_text())
    assert len(body25["people"][0]["pose_keypoints_2d"]) == 75
    unpaired = vitonhd.load(root, "test", paired=False, check_images=True)
    s = unpaired[0]
    assert (s.person_id, s.garment_id, s.paired) == ("00002_00.jpg", "00003_00.jpg", False)
    assert s.caption == "green top, knit top, short sleeves"  # the garment's caption (MGD keys by cloth)
    assert np.allclose(s.pose_keypoints, tryon_images(1).pose_keypoints)
    assert np.array_equal(np.asarray(s.agnostic_mask.load()), np.asarray(tryon_images(1).agnostic_mask))
    assert np.array_equal(np.asarray(s.parse.load()), np.asarray(tryon_images(1).parse))
    assert np.asarray(s.sketch.load())[0, 0] == 202  # the cloth's (00003_00) sketch
    assert np.abs(np.asarray(s.person.load()).astype(int) - [200, 100, 51]).max() <= 4  # JPEG
    paired = vitonhd.load(root, "test", paired=True)
    assert [(s.person_id, s.garment_id) for s in paired] == [("00002_00.jpg", "00002_00.jpg"),
                                                            ("00003_00.jpg", "00003_00.jpg")]
    assert paired[0].caption == "blue blouse, silk blouse, v-neck"
    assert len(vitonhd.load(root, "train", paired=True)) == 1


def write_catalog(root: Path):
    with catalog.CatalogWriter(root) as w:
        w.add("i1", "p1", "tops", "shirt", "train", img((1, 2, 3)), "white shirt", "A white shirt.",
              "A white cotton shirt with a collar.", {"colour": "white", "material": "cotton"}, {"pose": "front"})
        w.add("i2", "p2", "bags", "tote", "test", img((4, 5, 6)), "tote", "A tote bag.", "A large brown tote.",
              {"colour": "brown"}, None)


def test_catalog_round_trip_and_determinism(tmp_path):
    write_catalog(tmp_path / "a")
    write_catalog(tmp_path / "b")
    assert tree_digest(tmp_path / "a") == tree_digest(tmp_path / "b")
    items = catalog.load(tmp_path / "a", check_images=True)
    assert [(s.item_id, s.product_id, s.category, s.subcategory, s.split, s.title, s.caption) for s in items] == [
        ("i1", "p1", "tops", "shirt", "train", "white shirt", "A white shirt."),
        ("i2", "p2", "bags", "tote", "test", "tote", "A tote bag.")]
    assert items[0].extra == {"detailed": "A white cotton shirt with a collar.",
                              "attributes": {"colour": "white", "material": "cotton"}, "view": {"pose": "front"}}
    assert np.asarray(items[1].image.load())[0, 0].tolist() == [4, 5, 6]


def test_catalog_interrupted_write_leaves_no_catalog(tmp_path):
    with pytest.raises(RuntimeError):
        with catalog.CatalogWriter(tmp_path) as w:
            w.add("i1", "p1", "tops", "shirt", "train", img((1, 2, 3)), "t", "d", "dd", {})
            raise RuntimeError("interrupted")
    assert not (tmp_path / "catalog.jsonl").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".jsonl") or ".tmp-" in p.name]


def test_every_writer_writes_its_last_files_on_a_clean_close_only(tmp_path):
    """The shared staged-writer rule: leaving a writer's context with an exception writes none of the
    files written on close (and leaves no temporary file); closing twice writes once."""
    def interrupted(writer, add):
        with pytest.raises(RuntimeError):
            with writer as w:
                add(w)
                raise RuntimeError("interrupted")

    interrupted(fashion200k.Fashion200kWriter(tmp_path / "f200k"),
                lambda w: w.add("train", "dress", "cocktail dresses", 11, 0, img((255, 0, 0)), "red dress"))
    interrupted(fashioniq.FashionIQWriter(tmp_path / "fiq"),
                lambda w: (w.add_image("A1", img((1, 2, 3))), w.set_image_split("dress", "train", ["A1"])))
    interrupted(vitonhd.VitonHDWriter(tmp_path / "viton"),
                lambda w: w.add("train", "00001_00", tryon_images(0), "red t-shirt, cotton tee"))
    assert not (tmp_path / "f200k" / "labels").exists()
    assert not (tmp_path / "fiq" / "captions").exists() and not (tmp_path / "fiq" / "image_splits").exists()
    assert not (tmp_path / "viton" / "train_pairs.txt").exists() and not (tmp_path / "viton" / "captions.json").exists()
    assert not [p for p in tmp_path.rglob("*") if ".tmp-" in p.name]

    w = catalog.CatalogWriter(tmp_path / "cat")
    w.add("i1", "p1", "tops", "shirt", "train", img((1, 2, 3)), "t", "d", "dd", {})
    w.close()
    first = tree_digest(tmp_path / "cat")
    w.close()
    w.abort()  # after close: nothing to discard
    assert tree_digest(tmp_path / "cat") == first and [s.item_id for s in catalog.load(tmp_path / "cat")] == ["i1"]


# -------------------------------------------------------------------------------------- bad data


def expect_bad(load, *, file_part: str, where: str, n_good: int):
    """Raises DataError naming file and place; with skip_bad the good items come back and the bad one is reported."""
    with pytest.raises(DataError) as e:
        load(skip_bad=False)
    assert file_part in str(e.value) and where in str(e.value)
    report = LoadReport()
    good = load(skip_bad=True, report=report)
    assert len(good) == n_good
    assert len(report.skipped) == 1 and file_part in report.skipped[0] and where in report.skipped[0]
    return str(e.value)


def test_missing_image_is_a_bad_item(tmp_path):
    root = copy_fixture("fashion200k", tmp_path)
    (root / "women/dresses/casual_and_day_dresses/51727804/51727804_1.jpeg").unlink()
    msg = expect_bad(lambda **kw: fashion200k.load(root, "train", **kw), file_part="dress_train_detect_all.txt",
                     where=":2", n_good=2)
    assert "not found" in msg


def test_truncated_image_with_check_images(tmp_path):
    root = copy_fixture("fashioniq", tmp_path)
    truncate(root / "images" / "B005X4PL1G.png")
    assert len(fashioniq.load(root, "val", "dress")) == 1  # a stat does not see it
    expect_bad(lambda **kw: fashioniq.load(root, "val", check_images=True, **kw), file_part="cap.dress.val.json",
               where="[0]", n_good=1)


def test_truncated_vitonhd_image_with_check_images(tmp_path):
    root = copy_fixture("vitonhd", tmp_path)
    truncate(root / "test" / "cloth" / "03191_00.jpg")
    msg = expect_bad(lambda **kw: vitonhd.load(root, "test", paired=False, check_images=True, **kw),
                     file_part="test_pairs.txt", where=":1", n_good=1)
    assert "03191_00.jpg" in msg


def test_catalog_malformed_json_line(tmp_path):
    root = copy_fixture("catalog", tmp_path)
    lines = (root / "catalog.jsonl").read_text().splitlines()
    lines[1] = lines[1][:40]
    (root / "catalog.jsonl").write_text("\n".join(lines) + "\n")
    expect_bad(lambda **kw: catalog.load(root, **kw), file_part="catalog.jsonl", where=":2", n_good=2)


def test_catalog_missing_key_and_wrong_type(tmp_path):
    root = copy_fixture("catalog", tmp_path)
    lines = [json.loads(x) for x in (root / "catalog.jsonl").read_text().splitlines()]
    del lines[0]["description"]
    lines[2]["attributes"] = ["red"]
    (root / "catalog.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    with pytest.raises(DataError, match=r"catalog\.jsonl:1: missing key 'description'"):
        catalog.load(root)
    report = LoadReport()
    assert len(catalog.load(root, skip_bad=True, report=report)) == 1
    assert "catalog.jsonl:3" in report.skipped[1] and "attributes" in report.skipped[1]


def test_fashioniq_malformed_json_file(tmp_path):
    root = copy_fixture("fashioniq", tmp_path)
    (root / "captions" / "cap.toptee.val.json").write_text('[\n  {"target": "B1",\n  "candidate": \n]\n')
    expect_bad(lambda **kw: fashioniq.load(root, "val", **kw), file_part="cap.toptee.val.json", where=":4",
               n_good=1)


def test_fashioniq_missing_key(tmp_path):
    root = copy_fixture("fashioniq", tmp_path)
    path = root / "captions" / "cap.dress.train.json"
    data = json.loads(path.read_text())
    del data[1]["captions"]
    path.write_text(json.dumps(data))
    msg = expect_bad(lambda **kw: fashioniq.load(root, "train", **kw), file_part="cap.dress.train.json",
                     where="[1]", n_good=1)
    assert "captions" in msg


def test_fashiongen_wrong_key(tmp_path):
    src = FIX / "fashiongen" / "fashiongen_16_16_validation.h5"
    dst = tmp_path / "fashiongen_16_16_validation.h5"
    with h5py.File(src) as f, h5py.File(dst, "w") as g:
        for k in f:
            g.create_dataset("input_desc" if k == "input_description" else k, data=f[k][()])
    with pytest.raises(DataError, match=r"fashiongen_16_16_validation\.h5: HDF5 key 'input_description' missing"):
        fashiongen.load(tmp_path, "validation")


def test_fashiongen_mismatched_row_counts(tmp_path):
    src = FIX / "fashiongen" / "fashiongen_16_16_validation.h5"
    dst = tmp_path / "fashiongen_16_16_validation.h5"
    with h5py.File(src) as f, h5py.File(dst, "w") as g:
        for k in f:
            g.create_dataset(k, data=f[k][:2] if k == "input_name" else f[k][()])
    msg = expect_bad(lambda **kw: fashiongen.load(tmp_path, "validation", **kw),
                     file_part="fashiongen_16_16_validation.h5", where="row 2", n_good=2)
    assert "input_name" in msg


def test_vitonhd_bad_pose_json_and_pair_line(tmp_path):
    root = copy_fixture("vitonhd", tmp_path)
    (root / "test" / "openpose_json" / "03191_00_keypoints.json").write_text('{"people": []}')
    expect_bad(lambda **kw: vitonhd.load(root, "test", paired=True, **kw), file_part="test_pairs.txt",
               where=":2", n_good=1)
    (root / "train_pairs.txt").write_text("00000_00.jpg\n")
    expect_bad(lambda **kw: vitonhd.load(root, "train", paired=True, **kw), file_part="train_pairs.txt",
               where=":1", n_good=0)


def test_unknown_split_and_not_a_root(tmp_path):
    with pytest.raises(DataError, match="unknown FashionGen split 'test'"):
        fashiongen.load(FIX / "fashiongen", "test")
    with pytest.raises(DataError, match="unknown Fashion-IQ split"):
        fashioniq.load(FIX / "fashioniq", "dev")
    for load in (lambda r: fashiongen.load(r, "train"), lambda r: fashion200k.load(r, "train"),
                 lambda r: fashioniq.load(r, "val"), lambda r: vitonhd.load(r, "test", paired=True),
                 lambda r: catalog.load(r)):
        with pytest.raises(DataError, match=str(tmp_path / "nowhere")):
            load(tmp_path / "nowhere")
        with pytest.raises(DataError, match=str(tmp_path)):
            load(tmp_path)  # an empty folder is not the format


# --------------------------------------------------------------------------------------- detection


@pytest.mark.parametrize("fmt", ["fashiongen", "fashion200k", "fashioniq", "vitonhd", "catalog"])
def test_detect_and_summarize_fixtures(fmt):
    assert detect_format(FIX / fmt) == fmt
    summary = summarize(FIX / fmt)
    json.dumps(summary)
    assert summary["format"] == fmt and summary["examples"] and summary["skipped"] == 0


def test_summarize_counts():
    assert summarize(FIX / "fashioniq")["splits"]["val"] == {
        "count": 2, "per_category": {"dress": 1, "toptee": 1}, "gallery_images_per_category": {"dress": 2, "toptee": 2}}
    v = summarize(FIX / "vitonhd")
    assert v["mgd_captions"] and v["splits"]["test"]["count"] == 2 and v["splits"]["test"]["sketches_unpaired"]
    assert summarize(FIX / "fashion200k")["splits"]["test"]["per_category"] == {"dress": 2, "shoes": 1}


def test_detect_rejects_a_non_dataset_folder(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match=f"{tmp_path}: no known dataset layout"):
        detect_format(tmp_path)
    with pytest.raises(DataError, match="not found"):
        detect_format(tmp_path / "missing")
