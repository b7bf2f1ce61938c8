import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def small_world(tmp_path_factory):
    """A small synthetic world, written once per test session."""
    from unifashion.data.synthetic.catalog import CatalogConfig
    from unifashion.data.synthetic.world import WorldConfig, write_world

    out = tmp_path_factory.mktemp("world") / "w"
    config = WorldConfig(CatalogConfig(products=60, seed=5, holdout=0.2), image_size=64, workers=2)
    manifest = write_world(out, config)
    return out, manifest, config
