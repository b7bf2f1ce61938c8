"""The Python API as a user of transformers / open_clip expects it (issue 20): top-level names, one item where
a batch is taken, features without autograd in eval mode, similarity of features, classify with its labels,
a truthful parts summary, and a try-on sample without its garment refused by name. Each test's input is the
one a new user tried on the demo model; here on the tiny random model."""
import subprocess
import sys
from dataclasses import replace

import pytest
import torch
from PIL import Image

import unifashion
from unifashion.errors import DataError
from unifashion.models.unified import UniFashion, as_batch, label_list


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return UniFashion.from_config("tiny")


@pytest.fixture
def photo(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # "photo.png", as typed, relative to the working directory
    Image.new("RGB", (40, 48), (200, 20, 20)).save("photo.png")
    return "photo.png"


# ---- 1. top-level exports, imported lazily --------------------------------------------------------

def test_the_public_names_come_from_the_package_itself():
    from unifashion import (CatalogIndex, CatalogSearch, ConfigError, DataError as TopDataError, UniFashion as Top,
                            UniFashionConfig, UnifashionError, build_index, load_config)
    from unifashion.models.model_config import UniFashionConfig as config_class, load_config as loader
    from unifashion.search.catalog_index import CatalogIndex as index_class
    from unifashion.search.engine import CatalogSearch as search_class
    from unifashion.search.index_build import build_index as builder

    assert (Top, CatalogSearch, CatalogIndex, build_index, load_config, UniFashionConfig) == (
        UniFashion, search_class, index_class, builder, loader, config_class)
    assert TopDataError is DataError and issubclass(ConfigError, UnifashionError)
    assert all(hasattr(unifashion, name) for name in unifashion.__all__)
    assert set(unifashion.__all__) <= set(dir(unifashion))
    with pytest.raises(AttributeError, match="no attribute 'Unifashion'"):
        unifashion.Unifashion  # noqa: B018 - a typo is an AttributeError, not an ImportError deep inside


def test_import_unifashion_does_not_load_torch():
    code = "import sys, unifashion; print(unifashion.__version__); assert 'torch' not in sys.modules, 'torch loaded'"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == unifashion.__version__


# ---- 2. one str / Path / PIL image is one item ---------------------------------------------------

def test_the_batch_rule():
    im = Image.new("RGB", (4, 4))
    assert as_batch("red dress") == ["red dress"] and as_batch(im) == [im] and as_batch(None) is None
    assert as_batch(("a", "b")) == ["a", "b"] and as_batch(x for x in "ab") == ["a", "b"]
    assert label_list("dress,coat") == ["dress", "coat"]
    assert label_list(" dress , coat,, dress,") == ["dress", "coat"] == label_list(["dress", " coat", "", "dress"])
    assert label_list(["dress, coat", "bag", "coat"]) == ["dress", "coat", "bag"]  # each field split, as the service's
    with pytest.raises(DataError, match="at least one label"):
        label_list(" , ")
    with pytest.raises(DataError, match="label 1 is a int"):
        label_list(["dress", 3])


def test_a_single_text_or_path_is_one_item_everywhere(tiny, photo):
    from pathlib import Path

    text = tiny.encode_text("red dress").text_embeds
    assert text.shape == (1, tiny.config.qformer.embed_dim)
    assert torch.equal(text, tiny.encode_text(["red dress"]).text_embeds)
    image = tiny.encode_image("photo.png").image_embeds
    assert image.shape[0] == 1 and torch.equal(image, tiny.encode_image(["photo.png"]).image_embeds)
    assert torch.equal(tiny.encode_image(Path(photo)).image_embeds, image)
    assert torch.equal(tiny.encode_image(Image.open(photo)).image_embeds, image)
    assert torch.equal(tiny.encode_composed("photo.png", "is blue").composed_embeds,
                       tiny.encode_composed(["photo.png"], ["is blue"]).composed_embeds)
    assert tiny.itm_score("photo.png", "red dress").shape == (1,)
    assert len(tiny.caption("photo.png", "short", max_new_tokens=3)) == 1
    assert len(tiny.generate("red dress", steps=1)) == 1
    assert len(tiny.generate(images="photo.png", texts="is blue", steps=1)) == 1


def test_classify_splits_a_string_of_labels_on_commas(tiny, photo):
    result = tiny.classify(["photo.png"], "dress,coat")
    assert result.labels == ("dress", "coat") and result.probs.shape == (1, 2)  # not 10 single characters
    assert torch.equal(result.probs, tiny.classify("photo.png", ["dress", "coat"]).probs)


# ---- 3. inference without autograd; training still gets gradients ---------------------------------

def test_features_in_eval_mode_carry_no_graph(tiny, photo):
    assert not tiny.training and any(p.requires_grad for p in tiny.qformer.parameters())
    outputs = [tiny.encode_image("photo.png").image_embeds, tiny.encode_image("photo.png").query_output,
               tiny.encode_text("red dress").text_embeds, tiny.encode_composed("photo.png", "is blue").composed_embeds,
               tiny.itm_score("photo.png", "red dress"), tiny.condition_queries(texts="red dress"),
               tiny.classify("photo.png", "dress,coat").probs]
    assert [(o.grad_fn, o.requires_grad) for o in outputs] == [(None, False)] * len(outputs)


def test_in_training_mode_the_same_methods_give_gradients(photo):
    torch.manual_seed(0)
    model = UniFashion.from_config("tiny").train()
    loss = model.similarity(model.encode_image("photo.png"), model.encode_text("red dress")).sum() \
        + model.encode_composed("photo.png", "is blue").composed_embeds.sum()
    loss.backward()
    assert model.qformer.query_tokens.grad is not None and model.qformer.query_tokens.grad.abs().sum() > 0
    with torch.no_grad():  # the caller's no_grad still holds in training mode
        assert model.encode_text("red dress").text_embeds.grad_fn is None


# ---- 4. similarity of features ---------------------------------------------------------------------

def test_similarity_takes_the_features_encode_returns(tiny, photo):
    image, text = tiny.encode_image(photo), tiny.encode_text(["red dress", "navy coat"])
    sims = tiny.similarity(image, text)
    assert sims.shape == (1, 2) and torch.equal(sims, tiny.similarity(image.image_embeds, text.text_embeds))
    composed = tiny.encode_composed(photo, "is blue")
    assert torch.equal(tiny.similarity(image, composed), tiny.similarity(image.image_embeds, composed.composed_embeds))
    with pytest.raises(TypeError, match="got str and TextFeatures"):
        tiny.similarity("photo.png", text)


# ---- 5. classify returns its labels; one de-duplication rule -----------------------------------------

def test_classify_returns_labels_with_probabilities_and_drops_repeats(tiny, photo):
    from unifashion.search.engine import classify_images

    result = tiny.classify([photo, Image.new("RGB", (30, 30), (10, 10, 200))], ["dress", " dress", "coat", "", "bag"])
    assert result.labels == ("dress", "coat", "bag")
    assert result.probs.shape == (2, 3) and torch.allclose(result.probs.sum(-1), torch.ones(2))
    ranked = result.ranked()
    assert [sorted(label for label, _ in row) for row in ranked] == [["bag", "coat", "dress"]] * 2
    assert all([p for _, p in row] == sorted((p for _, p in row), reverse=True) for row in ranked)
    assert result.top() == [row[0][0] for row in ranked]
    # the CLI's and the service's path: `classify --labels dress,dress` gives ("dress", "dress")
    (cli_row,) = classify_images(tiny, [photo], ("dress", "dress"))
    assert cli_row == [("dress", pytest.approx(1.0))]


# ---- 6. the parts summary of a saved quickstart-like model (random captioner, trained whole) -------

def test_parts_summary_of_a_saved_model_with_a_random_captioner(tiny, tmp_path):
    tiny.save_pretrained(tmp_path / "m")
    parts = {p["part"]: p for p in UniFashion.from_pretrained(tmp_path / "m").parts_summary()}
    captioner = parts["captioner"]
    assert captioner["trainable"] == captioner["parameters"] == sum(p.numel() for p in tiny.captioner.parameters())
    assert captioner["frozen"] == 0 and captioner["source"] == "random; trained whole (phase 1b)"
    assert "LoRA" not in captioner["source"]


def test_parts_summary_counts_what_the_phase_trains_not_what_was_last_unfrozen(tiny):
    from unifashion.training.phases import GenerativeAdaptation, _freeze_all

    torch.manual_seed(0)
    model = UniFashion.from_config("tiny")
    before = model.parts_summary()
    GenerativeAdaptation().parameter_groups(model)  # freezes the Q-Former, unfreezes the captioner
    assert model.parts_summary() == before
    _freeze_all(model)
    assert model.parts_summary() == before


# ---- 7. try-on without a garment image -------------------------------------------------------------

def test_tryon_without_a_garment_image_is_refused_design_is_not(tiny, small_world):
    from unifashion.data.formats import vitonhd

    sample = vitonhd.load(small_world[0] / "vitonhd", "test", paired=False)[0]
    design = replace(sample, garment=None, caption="a red striped shirt")
    with pytest.raises(DataError) as err:
        tiny.tryon_condition_queries([design], garment_image=True)
    assert str(err.value) == (f"try-on needs a garment image (sample {sample.person_id}); "
                              "design needs only a caption")
    queries = tiny.tryon_condition_queries([design], garment_image=False)
    assert queries.shape == (1, tiny.config.qformer.num_query_tokens, tiny.config.qformer.hidden_size)
