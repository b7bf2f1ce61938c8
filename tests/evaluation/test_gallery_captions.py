"""Caption-assisted retrieval data: gallery captions from images alone; Fashion-IQ-Cap keyword prompts."""
import json
import subprocess
import sys

import pytest

from unifashion.data.samples import ImageRef, Triplet
from unifashion.errors import DataError
from unifashion.evaluation.gallery_captions import caption_images, relative_caption_keywords
from unifashion.models.unified import UniFashion


def triplet(target, caps, split="train"):
    ref = ImageRef("x.png")
    return Triplet("dress", "R", target, tuple(caps), ref, ref, split)


def test_keywords_come_from_training_relative_captions_only():
    kw = relative_caption_keywords([triplet("T1", ["is red with long sleeves", "has stripes and is red"]),
                                    triplet("T2", ["is more casual", "is shorter"])])
    assert kw["T1"].split(", ")[0] == "red"  # most frequent first
    assert set(kw["T1"].split(", ")) == {"red", "long", "sleeve", "stripe"}
    assert "T2" not in kw  # no clothing words: no prompt ("shorter" is not the lemma "short")
    with pytest.raises(DataError, match="training split only"):
        relative_caption_keywords([triplet("T3", ["is blue"], split="val")])


def test_hints_change_the_prompt_and_captions_are_batched(small_world):
    model = UniFashion.from_config("tiny")
    refs = [(f"img{i}", ImageRef(p)) for i, p in
            enumerate(sorted((small_world[0] / "fashioniq" / "images").iterdir())[:3])]
    plain = caption_images(model, refs, batch_size=2, max_new_tokens=4)
    assert list(plain) == ["img0", "img1", "img2"]
    head, tail = model.captioner._prompt("detailed")
    _, hinted = model.captioner._prompt("detailed", "red, stripe")
    assert len(hinted) > len(tail)
    one = caption_images(model, refs[:1], max_new_tokens=4)
    assert one["img0"] == plain["img0"]  # batching does not change a caption


def test_captions_cli_writes_gallery_and_fashion_iq_cap(small_world, tmp_path):
    model = UniFashion.from_config("tiny")
    model.save_pretrained(tmp_path / "m")
    world = small_world[0]
    for extra, name in (([], "gallery.json"), (["--fashion-iq-cap"], "fiqcap.json")):
        r = subprocess.run([sys.executable, "-m", "unifashion", "captions", "--model", str(tmp_path / "m"),
                            "--data", str(world), "--out", str(tmp_path / name), "--max-new-tokens", "3", "--json",
                            *extra], capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr[-2000:]
        summary = json.loads(r.stdout)
        written = json.loads((tmp_path / name).read_text())
        assert summary["images"] == len(written) > 0
    assert json.loads((tmp_path / "fiqcap.json").read_text()).keys().isdisjoint(
        json.loads((tmp_path / "gallery.json").read_text()).keys())  # train images vs val gallery


def test_gallery_captions_see_only_the_gallery_images(small_world, monkeypatch):
    """No query text reaches the captioner: it gets each gallery image and the style, no hints."""
    from unifashion.data.formats import fashioniq
    from unifashion.evaluation.gallery_captions import fashioniq_gallery

    root = small_world[0] / "fashioniq"
    model = UniFashion.from_config("tiny")
    calls = []

    def spy(images, style, *, max_new_tokens=None, hints=None, **kw):
        calls.append({"n": len(images), "style": style, "hints": hints, "extra": kw})
        return ["x"] * len(images)

    monkeypatch.setattr(model, "caption", spy)
    gallery = fashioniq_gallery(root, "val")
    captions = caption_images(model, gallery, batch_size=4)
    assert set(captions) == {name for name, _ in gallery}
    assert sum(c["n"] for c in calls) == len(gallery)
    assert all(c["style"] == "detailed" and c["hints"] is None and not c["extra"] for c in calls)
    queries = fashioniq.load(root, "val")
    assert queries and {name for name, _ in gallery} >= {t.target_id for t in queries if t.target_id}
