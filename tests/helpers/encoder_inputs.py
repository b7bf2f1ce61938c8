"""Images and a tiny BLIP-2 vision encoder shared by the image-encoder and feature-cache tests."""
import numpy as np
from PIL import Image

from unifashion.models.image_encoder import FrozenImageEncoder, ImageEncoderConfig

TINY_VISION = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                   image_size=32, patch_size=8)


def tiny_blip2() -> FrozenImageEncoder:
    return FrozenImageEncoder(ImageEncoderConfig(backbone="blip2_vision", image_size=32, random_init=True,
                                                 vision_config=TINY_VISION))


def solid(colour, size=(50, 30), mode="RGB"):
    return Image.new(mode, size, colour)


def noise_images(n, size=(40, 56), seed=0):
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)) for _ in range(n)]
