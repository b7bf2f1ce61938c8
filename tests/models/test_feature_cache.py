"""The frozen encoder's token cache: content keys, hits and misses, corrupt files, one folder per encoder."""
import numpy as np
import pytest
import torch
from PIL import Image

from unifashion.errors import ConfigError, DataError
from unifashion.models.feature_cache import FeatureCache
from unifashion.models.image_encoder import FrozenImageEncoder, ImageEncoderConfig

from encoder_inputs import TINY_VISION, noise_images, solid, tiny_blip2  # noqa: E402


@pytest.fixture(scope="module")
def lite0():
    return FrozenImageEncoder(ImageEncoderConfig())  # the embedded default: packaged ImageNet weights, 128 px



def test_feature_cache_hits_and_misses(lite0, tmp_path):
    cache = FeatureCache(tmp_path, lite0)
    images = noise_images(5)
    first = cache.encode(images, batch_size=2)
    assert first.shape == (5, 16, 1280) and first.dtype == torch.float32
    assert (cache.misses, cache.hits) == (5, 0)
    direct = lite0(lite0.preprocess(images))  # batch composition changes the last bits only
    assert torch.allclose(first, direct, atol=1e-5, rtol=1e-5)

    second = FeatureCache(tmp_path, lite0).encode(images[::-1])  # a fresh cache object reads the files
    assert torch.equal(second, first.flip(0))
    again = cache.encode(images)
    assert (cache.misses, cache.hits) == (5, 5) and torch.equal(again, first)

    files = sorted(tmp_path.rglob("*.safetensors"))
    assert len(files) == 5 and not list(tmp_path.rglob("*.tmp"))
    key = cache.key(images[0])
    assert cache.path(key) == tmp_path / lite0.identity[:16] / key[:2] / f"{key}.safetensors"


def test_feature_cache_recomputes_corrupt_files(tmp_path):
    encoder = tiny_blip2()
    cache = FeatureCache(tmp_path, encoder)
    images = noise_images(3)
    first = cache.encode(images)
    path = cache.path(cache.key(images[1]))
    path.write_bytes(path.read_bytes()[:-7])  # truncated
    cache.path(cache.key(images[2])).write_bytes(b"")  # empty
    again = cache.encode(images)
    assert (cache.misses, cache.hits) == (3 + 2, 1)
    assert torch.equal(again, first)
    assert torch.equal(FeatureCache(tmp_path, encoder).encode(images), first)  # rewritten files are valid


def test_feature_cache_keys(tmp_path):
    cache = FeatureCache(tmp_path, tiny_blip2())
    a, b = noise_images(2)
    assert cache.key(a) != cache.key(b)
    assert cache.key(a) == cache.key(a.copy())
    assert cache.key(solid((1, 2, 3))) != cache.key(solid((1, 2, 3), size=(30, 50)))  # same bytes, other size
    assert cache.key(solid(7, mode="L")) != cache.key(solid(7, mode="P"))
    tokens = cache.encode([a, b, a.copy(), a])  # duplicates within one call are computed once
    assert (cache.misses, cache.hits) == (2, 2)
    assert torch.equal(tokens[0], tokens[2]) and torch.equal(tokens[0], tokens[3])
    with pytest.raises(DataError, match="no images"):
        cache.encode([])
    with pytest.raises(ConfigError, match="batch_size"):
        cache.encode([a], batch_size=0)


def test_feature_cache_separates_encoders(lite0, tmp_path):
    small = FrozenImageEncoder(ImageEncoderConfig(image_size=64))
    images = noise_images(2)
    big = FeatureCache(tmp_path, lite0).encode(images)
    other = FeatureCache(tmp_path, small)
    assert other.encode(images).shape == (2, 4, 1280) and other.misses == 2  # no collision with the 128 px rows
    assert big.shape == (2, 16, 1280)
    assert len({p.name for p in tmp_path.iterdir()}) == 2
