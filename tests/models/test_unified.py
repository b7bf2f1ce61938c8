"""The unified model: every API function on tiny paper-scale classes, save/load, and the embedded build."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from unifashion.errors import ConfigError, DataError
from unifashion.models.model_config import load_config
from unifashion.models.unified import UniFashion

TEXTS = ["red striped dress", "navy wool coat"]


def images():
    return [Image.new("RGB", (40, 48), (200, 20, 20)), Image.new("RGB", (36, 36), (20, 30, 120))]


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return UniFashion.from_config("tiny")


def test_every_api_function_has_the_documented_shapes(tiny):
    q, e = tiny.config.qformer.num_query_tokens, tiny.config.qformer.embed_dim
    f = tiny.encode_image(images())
    assert f.query_output.shape == (2, q, tiny.config.qformer.hidden_size) and f.image_embeds.shape == (2, q, e)
    t = tiny.encode_text(TEXTS + ["a third text"])
    assert t.text_embeds.shape == (3, e)
    assert torch.allclose(t.text_embeds.norm(dim=-1), torch.ones(3), atol=1e-5)
    sims = tiny.similarity(f.image_embeds, t.text_embeds)
    assert sims.shape == (2, 3)
    brute = torch.einsum("bqe,te->bqt", f.image_embeds, t.text_embeds).max(dim=1).values
    assert torch.allclose(sims, brute)
    c = tiny.encode_composed(images(), ["is blue", "is red"])
    assert c.composed_embeds.shape == (2, e) and c.queries.shape == (2, q, tiny.config.qformer.hidden_size)
    itm = tiny.itm_score(images(), TEXTS)
    assert itm.shape == (2,) and ((itm >= 0) & (itm <= 1)).all()
    classes = tiny.classify(images(), ["dress", "coat", "bag"])
    assert classes.labels == ("dress", "coat", "bag")
    assert classes.probs.shape == (2, 3) and torch.allclose(classes.probs.sum(-1), torch.ones(2))
    captions = tiny.caption(images(), "short", max_new_tokens=4)
    assert len(captions) == 2 and all(isinstance(s, str) for s in captions)
    out = tiny.generate(texts=["red dress"], steps=2)
    assert len(out) == 1 and out[0].size == (16, 16) and out[0].mode == "RGB"
    assert len(tiny.generate(images=images(), texts=["is blue", "is red"], steps=1)) == 2
    assert len(tiny.generate(images=images()[:1], steps=1)) == 1


def test_model_is_built_for_inference_and_deterministic(tiny):
    assert not tiny.training
    a = tiny.encode_image(images()).image_embeds
    b = tiny.encode_image(images()).image_embeds
    assert torch.equal(a, b)
    assert np.array_equal(np.asarray(tiny.generate(texts=["x"], steps=2, seed=3)[0]),
                          np.asarray(tiny.generate(texts=["x"], steps=2, seed=3)[0]))


def test_save_load_round_trip_gives_identical_outputs(tiny, tmp_path):
    tiny.save_pretrained(tmp_path / "m")
    assert not list(tmp_path.glob("*.tmp*"))
    loaded = UniFashion.from_pretrained(tmp_path / "m")
    assert loaded.config == tiny.config
    ims = images()
    for fn in (lambda m: m.encode_image(ims).image_embeds, lambda m: m.encode_image(ims).query_output,
               lambda m: m.encode_text(TEXTS).text_embeds, lambda m: m.encode_composed(ims, TEXTS).composed_embeds,
               lambda m: m.itm_score(ims, TEXTS), lambda m: m.classify(ims, ["dress", "coat"]).probs,
               lambda m: m.similarity(m.encode_image(ims).image_embeds, m.encode_text(TEXTS).text_embeds)):
        assert torch.equal(fn(tiny), fn(loaded))
    assert tiny.caption(ims, "detailed", max_new_tokens=5) == loaded.caption(ims, "detailed", max_new_tokens=5)
    assert np.array_equal(np.asarray(tiny.generate(texts=["red"], steps=2)[0]),
                          np.asarray(loaded.generate(texts=["red"], steps=2)[0]))


def test_the_generator_config_is_saved_once_and_older_models_still_load(tiny, tmp_path):
    """config.json holds the generator's config; a model saved when generator/generator_config.json held
    a second copy loads from that copy, as it did then."""
    from dataclasses import replace

    from unifashion.config import to_dict
    from unifashion.models.generator import CONFIG_NAME
    from unifashion.storage import write_manifest

    tiny.save_pretrained(tmp_path / "m")
    assert not (tmp_path / "m" / "generator" / CONFIG_NAME).exists()
    saved = json.loads((tmp_path / "m" / "config.json").read_text())
    assert saved["generator"] == to_dict(tiny.generator.config)

    old = replace(tiny.generator.config, condition_dropout=0.25)  # tells the two copies apart
    (tmp_path / "m" / "generator" / CONFIG_NAME).write_text(json.dumps(to_dict(old), indent=2) + "\n")
    (tmp_path / "m" / "manifest.json").unlink()
    write_manifest(tmp_path / "m")
    assert UniFashion.from_pretrained(tmp_path / "m").generator.config == old


def test_tied_lm_weights_save_and_load(tmp_path):
    """A random captioner with tied input/output embeddings (the quickstart's) survives a round trip."""
    cfg = load_config("tiny", {"captioner": {"random_config": {"hidden_size": 32, "intermediate_size": 64,
                                                               "num_hidden_layers": 1, "num_attention_heads": 2,
                                                               "num_key_value_heads": 2, "tie_word_embeddings": True}}})
    torch.manual_seed(0)
    model = UniFashion.from_config(cfg)
    lm = model.captioner.lm.get_base_model()
    assert lm.lm_head.weight.data_ptr() == lm.get_input_embeddings().weight.data_ptr()
    model.save_pretrained(tmp_path / "m")
    loaded = UniFashion.from_pretrained(tmp_path / "m")
    lm2 = loaded.captioner.lm.get_base_model()
    assert lm2.lm_head.weight.data_ptr() == lm2.get_input_embeddings().weight.data_ptr()
    assert torch.equal(lm2.lm_head.weight, lm.lm_head.weight)
    assert model.caption(images(), "short", max_new_tokens=4) == loaded.caption(images(), "short", max_new_tokens=4)


def test_bad_input_is_one_clear_error(tiny, tmp_path):
    with pytest.raises(DataError, match="no images"):
        tiny.encode_image([])
    with pytest.raises(DataError, match="text 1 is empty"):
        tiny.encode_text(["fine", "   "])
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG not really")
    with pytest.raises(DataError, match="broken.png"):
        tiny.encode_image([broken])
    with pytest.raises(DataError, match="missing.jpg"):
        tiny.caption([tmp_path / "missing.jpg"])
    with pytest.raises(DataError, match="2 images but 1 texts"):
        tiny.encode_composed(images(), ["one"])
    with pytest.raises(DataError, match="unknown caption style 'poetic'"):
        tiny.caption(images(), "poetic")
    with pytest.raises(DataError, match="text, an image or both"):
        tiny.generate()


def test_configs_reject_unknown_keys_and_missing_paths(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("qformer:\n  num_querys: 8\n")
    with pytest.raises(ConfigError, match="unknown key 'num_querys'"):
        load_config(bad)
    with pytest.raises(ConfigError, match="pretrained"):
        load_config("paper")  # every paper-scale path must come from the user
    cfg = load_config("paper", {"image_encoder": {"pretrained": "/m/blip2"}, "qformer": {"pretrained": "/m/blip2"},
                                "captioner": {"path": "/m/vicuna"}, "generator": {"path": "/m/sd14"}})
    assert cfg.qformer.hidden_size == 768 and cfg.captioner.lora_r == 128 and cfg.generator.cross_attention_dim == 768
    with pytest.raises(ConfigError, match="no such config"):
        load_config("huge")


def test_model_info_cli_json():
    r = subprocess.run([sys.executable, "-m", "unifashion", "model", "info", "--config", "tiny", "--json"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    parts = {p["part"]: p for p in info["parts"]}
    assert set(parts) == {"image_encoder", "qformer", "adapters", "captioner", "generator"}
    assert parts["image_encoder"]["trainable"] == 0
    # tiny's captioner is a random LM: phase 1b trains it whole (Captioner.adaptation_parameters), not LoRA alone
    assert parts["captioner"]["trainable"] == parts["captioner"]["parameters"] > 0
    assert parts["captioner"]["source"] == "random; trained whole (phase 1b)"
    r = subprocess.run([sys.executable, "-m", "unifashion", "model", "info", "--config", "paper"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 1 and "pretrained" in r.stderr and len(r.stderr.strip().splitlines()) == 1


@pytest.fixture(scope="module")
def embedded():
    return UniFashion.from_config("embedded")


def test_embedded_parts_carry_the_packaged_weights(embedded):
    from safetensors.torch import load_file

    from unifashion.models.image_encoder import packaged_efficientnet_lite0_weights
    from unifashion.models.qformer import bert_parameter_map, minilm_dir

    bert = {k.removeprefix("bert."): v for k, v in load_file(str(minilm_dir() / "model.safetensors")).items()}
    for ours, theirs in bert_parameter_map(6).items():
        if ours == "embeddings.position_embeddings.weight":
            expected = bert[theirs] + bert["embeddings.token_type_embeddings.weight"][0]
        else:
            expected = bert[theirs]
        assert torch.equal(embedded.qformer.get_parameter(ours), expected), ours
    package = torch.load(packaged_efficientnet_lite0_weights(), map_location="cpu", weights_only=True)
    ours = embedded.image_encoder.backbone.state_dict()
    assert len(package) == len(ours)
    assert all(torch.equal(pv, ov) for pv, ov in zip(package.values(), ours.values()))  # network order
    assert embedded.captioner.hidden_size == 576  # SmolLM2-135M
    assert embedded.adapters.to_llm.out_features == 576


def test_embedded_parts_summary_counts_only_lora_as_the_captioners_trainable_part(embedded):
    parts = {p["part"]: p for p in embedded.parts_summary()}
    lora = sum(p.numel() for n, p in embedded.captioner.named_parameters() if "lora_" in n)
    assert parts["captioner"]["trainable"] == lora < parts["captioner"]["parameters"]
    assert parts["captioner"]["source"] == "SmolLM2-135M-Instruct (packaged GGUF) + LoRA; only LoRA trains"
    assert parts["generator"]["trainable"] == parts["generator"]["parameters"]  # scratch: the VAE trains too
    assert parts["image_encoder"]["trainable"] == 0


def test_embedded_model_round_trips(embedded, tmp_path):
    ims = images()
    embedded.save_pretrained(tmp_path / "e")
    assert not (tmp_path / "e" / "image_encoder.safetensors").exists()  # packaged weights are referenced
    loaded = UniFashion.from_pretrained(tmp_path / "e")
    assert torch.equal(embedded.encode_image(ims).image_embeds, loaded.encode_image(ims).image_embeds)
    assert torch.equal(embedded.encode_text(TEXTS).text_embeds, loaded.encode_text(TEXTS).text_embeds)
    assert embedded.caption(ims[:1], "short", max_new_tokens=6) == loaded.caption(ims[:1], "short", max_new_tokens=6)


def test_blip2_checkpoint_through_our_image_encoder_and_qformer_matches_transformers(blip2_checkpoint):
    """A tiny Blip2ForImageTextRetrieval loaded into our encoder path gives transformers' own scores."""
    from unifashion.models.image_encoder import FrozenImageEncoder, ImageEncoderConfig
    from unifashion.models.qformer import QFormer

    directory, reference = blip2_checkpoint
    encoder = FrozenImageEncoder(ImageEncoderConfig(backbone="blip2_vision", image_size=16, pretrained=str(directory)))
    qformer = QFormer.load_blip2(directory).eval()
    g = torch.Generator().manual_seed(5)
    pixels = torch.randn(3, 3, 16, 16, generator=g)  # (B, 3, H, W)
    ids = torch.randint(1, 99, (3, 6), generator=g)  # (B, L)
    mask = torch.ones(3, 6, dtype=torch.long)
    mask[2, 3:] = 0
    with torch.no_grad():
        tokens = encoder(pixels)  # our path: frozen encoder -> Q-Former
        sims = UniFashion.similarity(qformer.image_features(tokens).image_embeds,
                                     qformer.text_features(ids, mask).text_embeds)
        itm = qformer.itm_logits(tokens, ids, mask).softmax(-1)[:, 1]
        ref_itc = reference(pixel_values=pixels, input_ids=ids, attention_mask=mask, use_image_text_matching_head=False)
        ref_itm = reference(pixel_values=pixels, input_ids=ids, attention_mask=mask, use_image_text_matching_head=True)
    torch.testing.assert_close(sims, ref_itc.logits_per_image, rtol=0, atol=1e-5)
    torch.testing.assert_close(itm, ref_itm.logits_per_image.softmax(-1)[:, 1], rtol=0, atol=1e-5)


def test_feature_cache_serves_the_frozen_encoder(tiny, tmp_path):
    direct = tiny.encode_image(images()).image_embeds
    tiny.use_feature_cache(tmp_path / "cache")
    try:
        first = tiny.encode_image(images()).image_embeds
        second = tiny.encode_image(images()).image_embeds
        assert tiny.feature_cache.misses == 2 and tiny.feature_cache.hits == 2
    finally:
        tiny.use_feature_cache(None)
    torch.testing.assert_close(first, direct, rtol=0, atol=1e-5)
    assert torch.equal(first, second)


def test_tryon_generation_with_an_inpainting_model(small_world):
    from dataclasses import replace

    from unifashion.data.formats import vitonhd

    torch.manual_seed(0)
    config = load_config("tiny")
    model = UniFashion.from_config(replace(config, generator=replace(config.generator, inpainting=True)))
    samples = vitonhd.load(small_world[0] / "vitonhd", "test", paired=False)[:2]
    extra = model.tryon_channels(samples)
    c = model.generator.config
    assert extra.shape == (2, c.latent_channels + 5, c.latent_size, c.latent_size)
    garments = [s.garment.load() for s in samples]
    out = model.generate(images=garments, steps=2, extra_channels=extra)
    assert len(out) == 2 and out[0].size == (c.image_size, c.image_size)
    with pytest.raises(ConfigError, match="inpainting"):
        UniFashion.from_config("tiny").tryon_channels(samples)


def test_text_alone_conditions_on_a_blank_canvas(tiny):
    texts = ["a red dress", "a navy striped shirt with long sleeves"]
    size = tiny.config.image_encoder.image_size
    canvas = [Image.new("RGB", (size, size), (255, 255, 255)) for _ in texts]
    with torch.no_grad():
        cached = tiny.condition_queries(texts=texts)  # (2, 32, H), canvas tokens computed once
        again = tiny.condition_queries(texts=texts[:1])
        explicit = tiny.encode_composed(canvas, texts).queries  # (2, 32, H)
    assert cached.shape == explicit.shape == (2, tiny.qformer.config.num_query_tokens, tiny.qformer.config.hidden_size)
    torch.testing.assert_close(cached, explicit, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(again[0], explicit[0], atol=1e-5, rtol=1e-5)
