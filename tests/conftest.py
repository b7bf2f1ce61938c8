import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

# the shared test helpers (toy trainer, hostile corpus, crash writer) import by module name
sys.path.insert(0, str(Path(__file__).resolve().parent / "helpers"))

import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.fixture(scope="session")
def small_world(tmp_path_factory):
    """A small synthetic world, written once per test session."""
    from unifashion.data.synthetic.products import CatalogConfig
    from unifashion.data.synthetic.world import WorldConfig, write_world

    out = tmp_path_factory.mktemp("world") / "w"
    config = WorldConfig(CatalogConfig(products=60, seed=5, holdout=0.2), image_size=64, workers=2)
    manifest = write_world(out, config)
    return out, manifest, config


@pytest.fixture(scope="session")
def blip2_checkpoint(tmp_path_factory):
    from transformers import Blip2Config, Blip2ForImageTextRetrieval

    torch.manual_seed(0)
    config = Blip2Config(
        vision_config=dict(hidden_size=24, intermediate_size=37, num_hidden_layers=1, num_attention_heads=2,
                           image_size=16, patch_size=8),
        qformer_config=dict(vocab_size=99, hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
                            intermediate_size=37, max_position_embeddings=20, use_qformer_text_input=True),
        num_query_tokens=4, image_text_hidden_size=16,
    )
    reference = Blip2ForImageTextRetrieval(config)
    with torch.no_grad():  # transformers initialises these to zero/one: make them informative
        reference.query_tokens.normal_()
        for name, p in reference.named_parameters():
            if "LayerNorm" in name or "layernorm" in name or name.endswith("bias"):
                p.add_(0.1 * torch.randn_like(p))
    directory = tmp_path_factory.mktemp("blip2")
    reference.save_pretrained(directory)
    return directory, reference.eval()


@pytest.fixture(scope="session")
def service_search(small_world, tmp_path_factory):
    """A CatalogSearch for the service tests: the quickstart model (untrained Q-Former, but the
    pretrained image backbone, so items score differently) over a quarter of the small world.
    Captions are capped at 6 tokens to keep the index build to seconds."""
    from unifashion.search.engine import CatalogSearch
    from unifashion.search.index_build import build_index, items_from_data
    from unifashion.models.model_config import load_config
    from unifashion.models.unified import UniFashion

    torch.manual_seed(0)
    model = UniFashion.from_config(load_config("quickstart", {"captioner": {"max_new_tokens": 6}}))
    items = items_from_data(small_world[0])[::6]  # 24 items across the products and categories
    index = build_index(model, items, tmp_path_factory.mktemp("service") / "index", model_source="quickstart")
    index.warm()
    return CatalogSearch(model, index)


@pytest.fixture(scope="session")
def tiny_tryon_model():
    """The tiny config with the inpainting generator: a try-on model for the service, page and CLI tests."""
    from dataclasses import replace

    from unifashion.models.model_config import load_config
    from unifashion.models.unified import UniFashion

    torch.manual_seed(0)
    config = load_config("tiny")
    return UniFashion.from_config(replace(config, generator=replace(config.generator, inpainting=True))).eval()
