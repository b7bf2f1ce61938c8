"""data.tryon_inputs: a user's person, garment, mask and pose become the TryOnSample generation reads."""
import numpy as np
import pytest
from PIL import Image

from unifashion.data.formats import vitonhd
from unifashion.data.samples import AGNOSTIC_GREY, ImageRef
from unifashion.data.tryon_inputs import tryon_sample
from unifashion.errors import DataError


@pytest.fixture(scope="module")
def layout_sample(small_world):
    return vitonhd.load(small_world[0] / "vitonhd", "test", paired=True)[0]


def test_a_person_of_a_vitonhd_layout_takes_the_layouts_maps(layout_sample):
    s = tryon_sample(layout_sample.person.path, layout_sample.garment.path, caption=" a red dress ")
    assert s.agnostic.path == layout_sample.agnostic.path
    assert np.array_equal(np.asarray(s.agnostic_mask.load()), np.asarray(layout_sample.agnostic_mask.load()))
    assert s.pose_image.path == layout_sample.pose_image.path
    assert s.garment.path == layout_sample.garment.path and s.caption == "a red dress"


def test_a_mask_paints_the_person_grey_where_it_is_white(tmp_path):
    person = Image.new("RGB", (8, 6), (200, 10, 10))
    mask = Image.new("L", (8, 6), 0)
    mask.paste(255, (2, 1, 5, 4))
    mask.save(tmp_path / "mask.png")
    s = tryon_sample(person, Image.new("RGB", (4, 4)), mask=tmp_path / "mask.png")
    masked = np.asarray(s.agnostic.load())  # (6, 8, 3)
    assert (masked[1:4, 2:5] == AGNOSTIC_GREY).all() and (masked[0] == (200, 10, 10)).all()
    assert np.asarray(s.agnostic_mask.load()).max() == 255
    assert np.asarray(s.pose_image.load()).max() == 0  # no pose given: a black map
    assert s.caption is None and s.parse is None


@pytest.mark.parametrize("kwargs, message", [
    (dict(person="elsewhere/photo.jpg"), "not in a VITON-HD layout"),
    (dict(person=Image.new("RGB", (8, 8))), "give the mask"),
    (dict(person=Image.new("RGB", (8, 8)), mask=Image.new("L", (4, 4), 255)), "must cover the person"),
    (dict(person=Image.new("RGB", (8, 8)), mask=Image.new("L", (8, 8), 0)), "nothing to redraw"),
    (dict(person=Image.new("RGB", (8, 8)), mask=Image.new("L", (8, 8), 255), garment="missing.png"),
     "missing.png: image file not found"),
    (dict(person=Image.new("RGB", (8, 8)), mask=Image.new("L", (8, 8), 255), caption=3), "caption is a int"),
])
def test_bad_inputs_are_one_line_naming_the_input(kwargs, message):
    with pytest.raises(DataError, match=message):
        tryon_sample(**kwargs)


def test_a_layout_lacking_its_maps_is_named(tmp_path, layout_sample):
    person = tmp_path / "root" / "test" / "image" / "p.jpg"
    person.parent.mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(person)
    with pytest.raises(DataError, match="agnostic-v3.2"):
        tryon_sample(person, layout_sample.garment.path)


def test_generate_tryon_draws_from_a_users_pictures(tiny_tryon_model, layout_sample):
    model = tiny_tryon_model
    person = layout_sample.person.load()
    mask = layout_sample.agnostic_mask.load()
    garment = ImageRef(layout_sample.garment.path).load()
    samples = [tryon_sample(person, garment, mask=mask, caption="a red dress"),
               tryon_sample(layout_sample.person.path, layout_sample.garment.path)]
    out = model.generate_tryon(samples, steps=2)
    size = model.generator.config.image_size
    assert [im.size for im in out] == [(size, size)] * 2
    design = model.generate_tryon([tryon_sample(person, mask=mask, caption="a red dress")], garment_image=False,
                                  steps=2)
    assert design[0].size == (size, size)
