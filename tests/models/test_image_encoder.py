import json

import numpy as np
import pytest
import torch
from PIL import Image

from unifashion.config import from_dict, to_dict
from unifashion.errors import ConfigError, DataError
from unifashion.models.image_encoder import (
    COLOUR_PART_SCALE,
    OPENAI_CLIP_MEAN,
    OPENAI_CLIP_STD,
    FrozenImageEncoder,
    ImageEncoderConfig,
    packaged_efficientnet_lite0_weights,
)

from encoder_inputs import TINY_VISION, noise_images, solid, tiny_blip2  # noqa: E402


@pytest.fixture(scope="module")
def lite0():
    return FrozenImageEncoder(ImageEncoderConfig())  # the embedded default: packaged ImageNet weights, 128 px


@pytest.fixture(scope="module")
def blip2_checkpoint(tmp_path_factory):
    """A tiny random Blip2ForImageTextRetrieval saved the transformers way, and the model itself."""
    from transformers import Blip2Config, Blip2ForImageTextRetrieval

    torch.manual_seed(0)
    config = Blip2Config(
        vision_config=TINY_VISION,
        qformer_config=dict(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                            intermediate_size=64, max_position_embeddings=64),
        text_config=dict(model_type="opt", vocab_size=100, hidden_size=16, num_hidden_layers=1, ffn_dim=32,
                         num_attention_heads=2, word_embed_proj_dim=16, max_position_embeddings=64),
        num_query_tokens=4,
        image_text_hidden_size=16,
    )
    model = Blip2ForImageTextRetrieval(config).eval()
    out = tmp_path_factory.mktemp("blip2") / "ckpt"
    model.save_pretrained(out)
    return out, model



# ----------------------------------------------------------------------------- EfficientNet-Lite0


def test_packaged_weights_loaded_exactly(lite0):
    package = torch.load(packaged_efficientnet_lite0_weights(), map_location="cpu", weights_only=True)
    ours = lite0.backbone.state_dict()
    # Both follow the network's order (stem, 16 blocks in order, head, classifier); compare pairwise,
    # independently of the renaming table.
    assert len(package) == len(ours) == 296
    for (pk, pv), (ok, ov) in zip(package.items(), ours.items()):
        assert pv.shape == ov.shape, (pk, ok)
        assert torch.equal(pv, ov), (pk, ok)
    # TF-ported weights: TF BatchNorm epsilon (the geffnet tf_ variant, with TF "SAME" padding)
    assert all(m.eps == 1e-3 for m in lite0.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d))


@pytest.mark.parametrize("size", [64, 128])
def test_efficientnet_token_shapes(lite0, size):
    encoder = lite0 if size == 128 else FrozenImageEncoder(ImageEncoderConfig(image_size=size))
    images = noise_images(2)
    tokens = encoder(encoder.preprocess(images))
    assert tokens.shape == (2, (size // 32) ** 2, 1280)
    assert encoder.hidden_size == 1280 and encoder.num_tokens == (size // 32) ** 2
    assert tokens.dtype == torch.float32 and torch.isfinite(tokens).all()
    assert (tokens >= 0).all() and (tokens <= 6).all()  # after ReLU6


def test_multiscale_tokens_add_early_stages(lite0):
    """tokens: multiscale = blocks 3 (80) and 5 (192) beside the last map (1280), each part layer-normed;
    the last map's part is the plain tokens, normalised. Another cache identity than 'last'."""
    multi = FrozenImageEncoder(ImageEncoderConfig(tokens="multiscale"))
    x = lite0.preprocess(noise_images(2))
    tokens = multi(x)
    assert tokens.shape == (2, 16, 80 + 192 + 1280) and multi.hidden_size == 1552 and multi.num_tokens == 16
    last = lite0(x)  # (2, 16, 1280)
    torch.testing.assert_close(tokens[..., 272:], torch.nn.functional.layer_norm(last, (1280,)))
    for part in (tokens[..., :80], tokens[..., 80:272]):
        torch.testing.assert_close(part.mean(-1), torch.zeros(2, 16), atol=1e-4, rtol=0)
    assert multi.identity != lite0.identity


def test_colour_tokens_add_each_patch_colour_histogram(lite0):
    """tokens: multiscale_colour = each 32x32 patch's joint RGB histogram (4^3 bins, layer-normed) before
    the multiscale parts; a patch of one colour has all its pixels in that colour's bin."""
    colour = FrozenImageEncoder(ImageEncoderConfig(tokens="multiscale_colour"))
    multi = FrozenImageEncoder(ImageEncoderConfig(tokens="multiscale"))
    image = np.zeros((128, 128, 3), np.uint8)
    image[:, :64] = (255, 0, 0)  # left half red, right half black
    x = colour.preprocess([Image.fromarray(image)])
    tokens = colour(x)  # (1, 16, 1616)
    assert tokens.shape == (1, 16, 64 + 1552) and colour.hidden_size == 1616
    torch.testing.assert_close(tokens[..., 64:], multi(x))
    red_bin, black_bin = (3 * 4 + 0) * 4 + 0, 0
    grid = tokens[0, :, :64].argmax(-1).view(4, 4)  # each patch's fullest bin
    assert (grid[:, :2] == red_bin).all() and (grid[:, 2:] == black_bin).all()
    torch.testing.assert_close(tokens[..., :64].std(-1, unbiased=False), torch.full((1, 16), COLOUR_PART_SCALE),
                               rtol=1e-3, atol=1e-3)  # layer-normed, then scaled
    assert colour.identity not in (multi.identity, lite0.identity)


def test_multiscale_tokens_need_efficientnet():
    with pytest.raises(ConfigError, match="multiscale"):
        ImageEncoderConfig(backbone="blip2_vision", random_init=True, tokens="multiscale")
    with pytest.raises(ConfigError, match="multiscale_colour"):
        ImageEncoderConfig(backbone="blip2_vision", random_init=True, tokens="multiscale_colour")


def test_encoder_is_frozen(lite0):
    assert not any(p.requires_grad for p in lite0.parameters())
    parent = torch.nn.ModuleDict({"encoder": lite0, "head": torch.nn.Linear(2, 2)})
    parent.train()
    assert parent.training and not lite0.training
    assert not any(m.training for m in lite0.modules())
    stats = {k: v.clone() for k, v in lite0.backbone.state_dict().items()}
    x = lite0.preprocess(noise_images(3))
    first, second = lite0(x), lite0(x)
    assert torch.equal(first, second)
    assert not first.requires_grad
    assert all(torch.equal(stats[k], v) for k, v in lite0.backbone.state_dict().items())  # BatchNorm untouched


def test_identity_is_stable_and_separates_encoders(lite0):
    again = FrozenImageEncoder(ImageEncoderConfig())
    assert again.identity == lite0.identity and len(lite0.identity) == 64
    assert FrozenImageEncoder(ImageEncoderConfig(image_size=64)).identity != lite0.identity  # same weights, other input
    assert FrozenImageEncoder(ImageEncoderConfig(random_init=True)).identity != lite0.identity
    assert tiny_blip2().identity != tiny_blip2().identity  # two random inits


# ----------------------------------------------------------------------------- preprocessing


def test_preprocess_solid_colour_values(lite0):
    x = lite0.preprocess([solid((255, 0, 128)), solid((10, 20, 30), size=(300, 200))])
    assert x.shape == (2, 3, 128, 128) and x.dtype == torch.float32
    expected = torch.tensor([[1.0, -1.0, (128 / 255 - 0.5) / 0.5],
                             [(10 / 255 - 0.5) / 0.5, (20 / 255 - 0.5) / 0.5, (30 / 255 - 0.5) / 0.5]])
    assert torch.allclose(x, expected[:, :, None, None].expand_as(x), atol=1e-6)

    blip = tiny_blip2()
    y = blip.preprocess([solid((255, 0, 128))])
    assert y.shape == (1, 3, 32, 32)
    mean, std = torch.tensor(OPENAI_CLIP_MEAN), torch.tensor(OPENAI_CLIP_STD)
    expected = (torch.tensor([255, 0, 128]) / 255 - mean) / std
    assert torch.allclose(y, expected[None, :, None, None].expand_as(y), atol=1e-6)


def test_preprocess_resizes_whole_image_and_converts_modes(lite0):
    half = np.zeros((40, 120, 3), dtype=np.uint8)  # wide image: left half red, right half blue
    half[:, :60, 0] = 255
    half[:, 60:, 2] = 255
    x = lite0.preprocess([Image.fromarray(half)])[0]  # squashed to 128 x 128, not cropped
    assert torch.allclose(x[:, :, :60], torch.tensor([1.0, -1.0, -1.0])[:, None, None].expand(3, 128, 60), atol=1e-6)
    assert torch.allclose(x[:, :, 68:], torch.tensor([-1.0, -1.0, 1.0])[:, None, None].expand(3, 128, 60), atol=1e-6)

    grey = lite0.preprocess([solid(255, mode="L")])
    assert torch.allclose(grey, torch.ones_like(grey))
    transparent = lite0.preprocess([solid((0, 0, 0, 0), mode="RGBA")])  # fully transparent -> white
    assert torch.allclose(transparent, torch.ones_like(transparent))


def test_preprocess_bad_input(lite0):
    with pytest.raises(DataError, match="no images"):
        lite0.preprocess([])
    with pytest.raises(DataError, match="image encoder: image 1: expected a PIL image, got str"):
        lite0.preprocess([solid((1, 2, 3)), "shirt.jpg"])
    with pytest.raises(DataError, match="expected pixel values"):
        lite0(torch.zeros(1, 3, 64, 64))


# ----------------------------------------------------------------------------- BLIP-2 vision


def test_blip2_tokens_match_transformers(blip2_checkpoint):
    path, model = blip2_checkpoint
    encoder = FrozenImageEncoder(ImageEncoderConfig(backbone="blip2_vision", image_size=32, pretrained=str(path)))
    assert encoder.hidden_size == 32 and encoder.num_tokens == 17
    assert not any(p.requires_grad for p in encoder.parameters())
    pixels = encoder.preprocess(noise_images(3))
    with torch.no_grad():
        expected = model.vision_model(pixel_values=pixels).last_hidden_state
    tokens = encoder(pixels)
    assert tokens.shape == (3, 17, 32)  # (B, (32/8)^2 + [CLS], D)
    assert torch.allclose(tokens, expected, atol=1e-6, rtol=0)


def test_blip2_vision_only_and_sharded_checkpoints(blip2_checkpoint, tmp_path):
    path, model = blip2_checkpoint
    pixels = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = model.vision_model(pixel_values=pixels).last_hidden_state

    model.vision_model.save_pretrained(tmp_path / "vision")  # a Blip2VisionModel alone
    (tmp_path / "vision" / "preprocessor_config.json").write_text(json.dumps(
        {"image_mean": [0.5, 0.5, 0.5], "image_std": [0.25, 0.25, 0.25]}))
    alone = FrozenImageEncoder(ImageEncoderConfig(backbone="blip2_vision", image_size=32,
                                                  pretrained=str(tmp_path / "vision")))
    assert torch.allclose(alone(pixels), expected, atol=1e-6, rtol=0)
    assert alone.mean == (0.5, 0.5, 0.5) and alone.std == (0.25, 0.25, 0.25)

    model.save_pretrained(tmp_path / "sharded", max_shard_size="20KB")
    assert (tmp_path / "sharded" / "model.safetensors.index.json").is_file()
    sharded = FrozenImageEncoder(ImageEncoderConfig(backbone="blip2_vision", image_size=32,
                                                    pretrained=str(tmp_path / "sharded")))
    assert torch.allclose(sharded(pixels), expected, atol=1e-6, rtol=0)


def test_blip2_config_errors(blip2_checkpoint, tmp_path):
    path, _ = blip2_checkpoint
    with pytest.raises(ConfigError, match="image_size 64 does not match .* 32"):
        FrozenImageEncoder(ImageEncoderConfig(backbone="blip2_vision", image_size=64, pretrained=str(path)))
    with pytest.raises(ConfigError, match="not found: .*nowhere"):
        FrozenImageEncoder(ImageEncoderConfig(backbone="blip2_vision", pretrained=str(tmp_path / "nowhere")))
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "config.json").write_text((path / "config.json").read_text())
    with pytest.raises(ConfigError, match="no model.safetensors"):
        FrozenImageEncoder(ImageEncoderConfig(backbone="blip2_vision", image_size=32, pretrained=str(tmp_path / "bin")))
    with pytest.raises(ConfigError, match="needs pretrained"):
        ImageEncoderConfig(backbone="blip2_vision")


# ----------------------------------------------------------------------------- config


def test_config_validation_and_round_trip(tmp_path):
    with pytest.raises(ConfigError, match="multiple of 32"):
        ImageEncoderConfig(image_size=100)
    with pytest.raises(ConfigError, match="vision_config"):
        ImageEncoderConfig(vision_config={"hidden_size": 8})
    with pytest.raises(ConfigError, match="random_init"):
        ImageEncoderConfig(pretrained="x.pth", random_init=True)
    with pytest.raises(ConfigError, match="unknown backbone"):
        ImageEncoderConfig(backbone="vit_g")
    with pytest.raises(ConfigError, match="vit_g"):
        from_dict(ImageEncoderConfig, {"backbone": "vit_g"})
    missing = tmp_path / "missing.pth"
    with pytest.raises(ConfigError, match=str(missing)):
        FrozenImageEncoder(ImageEncoderConfig(pretrained=str(missing)))
    config = ImageEncoderConfig(backbone="blip2_vision", image_size=32, random_init=True, vision_config=TINY_VISION)
    assert from_dict(ImageEncoderConfig, to_dict(config)) == config


def test_efficientnet_accepts_geffnet_named_safetensors(lite0, tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "lite0.safetensors"
    save_file({k: v.contiguous() for k, v in lite0.backbone.state_dict().items()}, path)
    again = FrozenImageEncoder(ImageEncoderConfig(pretrained=str(path)))
    assert again.identity == lite0.identity
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ConfigError, match="junk.safetensors"):
        FrozenImageEncoder(ImageEncoderConfig(pretrained=str(tmp_path / "junk.safetensors")))
