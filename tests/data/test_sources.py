"""Which data the folders hold: a synthetic world told apart from the other folders that keep a
manifest.json (models, indexes, checkpoints), and the format folder a task or phase reads."""
import shutil

import pytest

from unifashion.data.formats import catalog, fashion200k, fashiongen
from unifashion.data.sources import PAIR_LOADERS, SPLITS, find_sources, format_folder, is_world
from unifashion.errors import DataError
from unifashion.storage import write_manifest


def test_a_world_is_recognised_by_its_manifest(small_world):
    root = small_world[0]
    assert is_world(root)
    assert not is_world(root / "catalog")
    assert find_sources([root]).world == root


def test_other_folders_with_a_manifest_are_not_worlds(tmp_path):
    from unifashion.search.catalog_index import CatalogIndex
    from unifashion.training import checkpoint

    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}\n")
    write_manifest(model)  # what a saved model keeps
    index = tmp_path / "index"
    CatalogIndex.create(index, fingerprint="0" * 64, model_source="m", num_queries=2, embed_dim=4)
    step = checkpoint.commit(checkpoint.begin(tmp_path / "checkpoints", 3), 3)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "manifest.json").write_text("{not json")
    for folder in (model, index, step, broken, tmp_path / "absent"):
        assert (folder / "manifest.json").is_file() or folder.name == "absent"
        assert not is_world(folder), folder
    with pytest.raises(DataError, match="no known dataset layout"):  # not "the world has none of ..."
        find_sources([model])


def test_format_folder_is_the_first_wanted_format(small_world):
    root = small_world[0]
    assert format_folder(root, ("catalog", "fashiongen")) == ("catalog", root / "catalog")
    assert format_folder(root, ("fashion200k", "catalog")) == ("fashion200k", root / "fashion200k")
    assert format_folder(root / "fashioniq", ("fashioniq",)) == ("fashioniq", root / "fashioniq")
    with pytest.raises(DataError, match="is catalog data; this phase needs fashioniq or vitonhd"):
        format_folder(root / "catalog", ("fashioniq", "vitonhd"))
    with pytest.raises(DataError, match="this command needs vitonhd"):
        format_folder(root / "catalog", ("vitonhd",), needed_by="this command")


def test_a_world_without_the_wanted_formats(small_world, tmp_path):
    world = tmp_path / "w"
    world.mkdir()
    shutil.copy(small_world[0] / "manifest.json", world)
    assert is_world(world)
    with pytest.raises(DataError, match="the world has none of vitonhd"):
        format_folder(world, ("vitonhd",))
    with pytest.raises(DataError, match="the world has none of catalog, fashioniq, vitonhd"):
        find_sources([world])


def test_pair_loaders_and_splits_are_the_formats_own():
    assert PAIR_LOADERS == {"fashiongen": fashiongen.load, "catalog": catalog.load, "fashion200k": fashion200k.load}
    assert SPLITS["fashiongen"] == ("train", "validation") and SPLITS["fashion200k"] == ("train", "test")
    assert SPLITS["catalog"] == ("train", "val", "test")
