"""UniFashion: one Q-Former whose queries serve retrieval, captioning and generation (paper §3).

    images ─▶ FrozenImageEncoder ─▶ tokens (B, N, D) ─▶ QFormer ─┬─▶ image_embeds (B, 32, E)   retrieval
    texts  ─▶ tokenizer ──────────────────────────────▶ QFormer ─┼─▶ text_embeds (T, E)        retrieval
    image + modification text ───────────────────────▶ QFormer ─┼─▶ composed_embeds (B, E)    composed retrieval
                                                                 ├─▶ adapters.to_llm ─▶ Captioner ─▶ captions
                                                                 └─▶ adapters.to_condition ─▶ Generator ─▶ images

Saved layout (`save_pretrained(dir)`): `config.json`, `qformer.safetensors`, `adapters.safetensors`
(+ the ITC temperature), `tokenizer/`, `captioner/` (LoRA weights; the whole LM when it is a random
test model), `generator/` (diffusers layout; its config is config.json's `generator`, so older models'
generator/generator_config.json is read when present, no longer written), `image_encoder.safetensors`
only when the frozen encoder is random (pretrained encoders are referenced by path: they are never
trained), and `manifest.json` (sha256 and size of every other file, written last; checked before loading).
"""
from __future__ import annotations

import functools
import json
import logging
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from torch import nn

from unifashion.config import read_mapping, to_dict
from unifashion.data.samples import ImageRef, TryOnSample
from unifashion.errors import ConfigError, DataError
from unifashion.storage import MANIFEST, recover_dir, replace_dir, staging_dir, verify_manifest, write_manifest
from unifashion.models.adapters import AdapterConfig, TaskAdapters
from unifashion.models.captioner import DEFAULT_CAPTION_STYLE, Captioner, CaptionerConfig, check_caption_style
from unifashion.models.feature_cache import FeatureCache, image_key
from unifashion.models.generator import Generator
from unifashion.models.frozen_outputs import FrozenOutputs
from unifashion.models.image_encoder import FrozenImageEncoder
from unifashion.models.model_config import UniFashionConfig, config_from_dict, load_config
from unifashion.models.qformer import ComposedFeatures, ImageFeatures, QFormer, TextFeatures

CONFIG_FILE = "config.json"
FORMAT_VERSION = 1
logger = logging.getLogger(__name__)


ImageInput = Image.Image | str | Path  # a PIL image or an image file's path
ONE_ITEM = (str, Path, Image.Image)  # what a batch argument takes as one item, never as a sequence of items


def as_batch(items):
    """The batch rule of every method taking images or texts: a single `str` (a text or a path), `Path`
    or PIL image is ONE item (a batch of 1); anything else is a sequence of items, listed. None stays None."""
    if items is None:
        return None
    if isinstance(items, ONE_ITEM):
        return [items]
    return list(items)


def label_list(labels: str | Sequence[str]) -> list[str]:
    """The labels of a zero-shot classification, as the model, the search facade, the CLI and the service
    take them: a string ("dress,coat") or a sequence of strings, each split at commas; every label
    stripped, empty ones dropped and repeats too, keeping the first order. DataError when none is left."""
    out: list[str] = []
    for i, field in enumerate(as_batch(labels)):
        if not isinstance(field, str):
            raise DataError(f"label {i} is a {type(field).__name__}, not a string")
        for label in field.split(","):
            label = label.strip()
            if label and label not in out:
                out.append(label)
    if not out:
        raise DataError("classification needs at least one label")
    return out


@dataclass(frozen=True, eq=False)
class Classification:
    """What `UniFashion.classify` returns: the labels (after `label_list`) and each image's probabilities."""
    labels: tuple[str, ...]  # (L,) in the order given, de-duplicated
    probs: torch.Tensor  # (B, L) softmax over the labels per image; rows sum to 1

    def ranked(self) -> list[list[tuple[str, float]]]:
        """Per image, (label, probability) from the most probable label down."""
        rows = self.probs.float().cpu().tolist()  # (B, L)
        return [sorted(zip(self.labels, row), key=lambda x: -x[1]) for row in rows]

    def top(self) -> list[str]:
        """Each image's most probable label."""
        return [self.labels[i] for i in self.probs.argmax(dim=-1).tolist()]


def _inference(method):
    """Autograd off while the model is in eval mode (the default of from_config / from_pretrained), so that
    features come back without a graph; in training mode (`model.train()`) it stays as the caller set it."""
    @functools.wraps(method)
    def run(self, *args, **kwargs):
        with torch.set_grad_enabled(self.training and torch.is_grad_enabled()):
            return method(self, *args, **kwargs)
    return run


def _load_images(images: ImageInput | Sequence[ImageInput]) -> list[Image.Image]:
    images = as_batch(images)
    if not images:
        raise DataError("no images given")
    out = []
    for i, im in enumerate(images):
        if isinstance(im, (str, Path)):
            im = ImageRef(Path(im)).load()
        elif not isinstance(im, Image.Image):
            raise DataError(f"image {i} is a {type(im).__name__}, not a PIL image or a path")
        out.append(im)
    return out


class UniFashion(nn.Module):
    """The unified model. Build with `from_config`, load with `from_pretrained`."""

    def __init__(self, config: UniFashionConfig, *, image_encoder: FrozenImageEncoder, qformer: QFormer,
                 tokenizer, captioner: Captioner, generator: Generator):
        super().__init__()
        if qformer.config.encoder_hidden_size != image_encoder.hidden_size:
            raise ConfigError(f"qformer.encoder_hidden_size is {qformer.config.encoder_hidden_size} but the image "
                              f"encoder gives {image_encoder.hidden_size}-wide tokens")
        if generator.config.num_queries != qformer.config.num_query_tokens:
            raise ConfigError(f"generator.num_queries is {generator.config.num_queries} but the Q-Former has "
                              f"{qformer.config.num_query_tokens} queries")
        self.config = config
        self.image_encoder = image_encoder
        self.qformer = qformer
        self.tokenizer = tokenizer
        self.captioner = captioner
        self.generator = generator
        self.adapters = TaskAdapters(AdapterConfig(query_dim=qformer.config.hidden_size,
                                                   llm_dim=captioner.hidden_size,
                                                   condition_dim=generator.config.cross_attention_dim))
        self.temperature = nn.Parameter(torch.tensor(config.temperature))  # ITC temperature, learnable
        self.feature_cache: FeatureCache | None = None  # set by `use_feature_cache`
        self.frozen_outputs = FrozenOutputs()  # rows of frozen parts, computed once per input (phases 1b, 2, try-on)
        self._blank_tokens: dict[tuple, torch.Tensor] = {}  # see _blank_canvas_tokens

    # ---- construction -------------------------------------------------------------------------

    @classmethod
    def from_config(cls, config: UniFashionConfig | str | Path = "embedded") -> "UniFashion":
        """Build every part from its source (packaged weights, user directories or random)."""
        if not isinstance(config, UniFashionConfig):
            config = load_config(config)
        image_encoder = FrozenImageEncoder(config.image_encoder)
        qformer = QFormer.from_config(config.qformer)
        tokenizer = qformer.tokenizer()
        captioner = Captioner(config.captioner, tokenizer=_llm_tokenizer_for_random(config.captioner, tokenizer))
        generator = Generator(config.generator)
        model = cls(config, image_encoder=image_encoder, qformer=qformer, tokenizer=tokenizer, captioner=captioner,
                    generator=generator)
        return model.eval()  # inference by default (no dropout); trainers call .train()

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write the model to `directory` crash-safely: every file into a temporary sibling, fsynced,
        `manifest.json` (sha256 and size of each file) last, then the directory swapped in whole; a
        crash at any point leaves the previous model or the new one, never a mix."""
        directory = Path(directory)
        tmp = staging_dir(directory)
        try:
            self._write_files(tmp)
            write_manifest(tmp)
            replace_dir(tmp, directory)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return directory

    def _write_files(self, tmp: Path) -> None:
        config = self.config
        if self.generator.config != config.generator:  # loading a pretrained SD dir fills in its sizes
            config = replace(config, generator=self.generator.config)
        (tmp / CONFIG_FILE).write_text(json.dumps({"format_version": FORMAT_VERSION, **to_dict(config)}, indent=2) + "\n")
        save_file(_contiguous(self.qformer.state_dict()), tmp / "qformer.safetensors")
        save_file(_contiguous({**self.adapters.state_dict(), "temperature": self.temperature.detach()}),
                  tmp / "adapters.safetensors")
        self.tokenizer.save_pretrained(str(tmp / "tokenizer"))
        if config.image_encoder.random_init:
            save_file(_contiguous(self.image_encoder.state_dict()), tmp / "image_encoder.safetensors")
        if config.captioner.source == "random":  # a random test LM exists nowhere else
            save_file(_contiguous(self.captioner.state_dict()), tmp / "captioner.safetensors")
            self.captioner.tokenizer.save_pretrained(str(tmp / "captioner_tokenizer"))
        else:
            self.captioner.save_lora(tmp / "captioner")
        self.generator.save_pretrained(tmp / "generator", write_config=False)  # its config is config.json's

    @classmethod
    def from_pretrained(cls, directory: str | Path, *, verify: bool = True) -> "UniFashion":
        """Load what `save_pretrained` wrote. Every file is checked against `manifest.json` (size, and
        sha256 with `verify`) before a tensor is read: a damaged file is a one-line ConfigError naming it.
        A model saved before manifests existed loads with a logged warning."""
        directory = Path(directory)
        recover_dir(directory)  # a save interrupted between its two renames left the old model aside
        config_file = directory / CONFIG_FILE
        if not directory.is_dir() or not (config_file.is_file() or (directory / MANIFEST).is_file()):
            raise ConfigError(f"{directory}: not a saved UniFashion model (no {CONFIG_FILE})")
        manifest = verify_manifest(directory, ConfigError, checksums=verify,
                                   hint="the saved model is damaged: save it again or restore a copy")
        if manifest is None:
            logger.warning("%s: saved without a checksum manifest (an older version): loading it unverified; "
                           "save it again with save_pretrained to add one", directory)
        data = read_mapping(config_file)
        version = data.pop("format_version", None)
        if version != FORMAT_VERSION:
            raise ConfigError(f"{config_file}: format_version {version!r} is not {FORMAT_VERSION}")
        config = config_from_dict(data, where=str(config_file))

        image_encoder = FrozenImageEncoder(config.image_encoder)
        if config.image_encoder.random_init:
            _load_into(image_encoder, directory / "image_encoder.safetensors")
        qformer = QFormer(config.qformer)  # structure only; the trained weights follow
        _load_into(qformer, directory / "qformer.safetensors")
        tokenizer = _load_tokenizer(directory / "tokenizer")
        if config.captioner.source == "random":
            captioner = Captioner(config.captioner, tokenizer=_load_tokenizer(directory / "captioner_tokenizer"))
            _load_into(captioner, directory / "captioner.safetensors")
        else:
            captioner = Captioner(config.captioner)
            captioner.load_lora(directory / "captioner")
        generator = Generator.from_pretrained(directory / "generator", config.generator)
        model = cls(config, image_encoder=image_encoder, qformer=qformer, tokenizer=tokenizer, captioner=captioner,
                    generator=generator)
        adapters = _read_tensors(directory / "adapters.safetensors")
        with torch.no_grad():
            model.temperature.copy_(adapters.pop("temperature"))
        model.adapters.load_state_dict(adapters)
        return model.eval()

    def use_feature_cache(self, root: str | Path | None) -> None:
        """Cache frozen-encoder tokens on disk under `root` (None turns the cache off)."""
        self.feature_cache = FeatureCache(Path(root), self.image_encoder) if root is not None else None

    # ---- inputs -------------------------------------------------------------------------------

    @property
    def device(self) -> torch.device:
        return self.temperature.device

    def image_tokens(self, images: ImageInput | Sequence[ImageInput]) -> torch.Tensor:
        """Frozen-encoder tokens (B, N, D), from the feature cache when one is set."""
        pil = _load_images(images)
        if self.feature_cache is not None:
            return self.feature_cache.encode(pil).to(self.device)  # (B, N, D)
        pixels = self.image_encoder.preprocess(pil).to(self.device)  # (B, 3, S, S)
        with torch.no_grad():
            return self.image_encoder(pixels)  # (B, N, D)

    def generator_pixels(self, images: ImageInput | Sequence[ImageInput]) -> torch.Tensor:
        """Images as the generator's input: (B, 3, S, S) in [-1, 1] at its square image size."""
        size = (self.generator.config.image_size, self.generator.config.image_size)
        arrays = [np.asarray(im.convert("RGB").resize(size, Image.Resampling.BICUBIC), dtype=np.float32)
                  for im in _load_images(images)]
        pixels = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2) / 127.5 - 1.0  # (B, 3, S, S)
        return pixels.to(self.device)

    def tokenize(self, texts: str | Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Q-Former input ids and attention mask (B, L); an empty text is an error naming it."""
        texts = as_batch(texts)
        if not texts:
            raise DataError("no texts given")
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise DataError(f"text {i} is a {type(t).__name__}, not a string")
            if not t.strip():
                raise DataError(f"text {i} is empty")
        enc = self.tokenizer(list(texts), padding="longest", truncation=True, max_length=self.config.max_text_length,
                             return_tensors="pt")
        return enc["input_ids"].to(self.device), enc["attention_mask"].to(self.device)  # (B, L), (B, L)

    # ---- what frozen parts compute, once per input (training phases that freeze them) -----------

    def frozen_image_queries(self, images: ImageInput | Sequence[ImageInput]) -> torch.Tensor:
        """Z_I (B, 32, H) of a frozen Q-Former, computed once per image (eval mode) while it stays frozen."""
        pil = _load_images(images)
        return self.frozen_outputs.rows("image_queries", self.qformer, [image_key(im) for im in pil],
                                        lambda idx: self.encode_image([pil[i] for i in idx]).query_output)

    def frozen_canvas_queries(self, texts: str | Sequence[str]) -> torch.Tensor:
        """The text-only generation condition (B, 32, H) of a frozen Q-Former, once per text."""
        texts = as_batch(texts)
        return self.frozen_outputs.rows("canvas_queries", self.qformer, texts,
                                        lambda idx: self.condition_queries(texts=[texts[i] for i in idx]))

    def frozen_latents(self, images: ImageInput | Sequence[ImageInput]) -> torch.Tensor:
        """Scaled VAE latents (B, C, h, w) of a frozen VAE (posterior mean), once per image."""
        pil = _load_images(images)
        return self.frozen_outputs.rows(
            "latents", self.generator.vae, [image_key(im) for im in pil],
            lambda idx: self.generator.encode_images(self.generator_pixels([pil[i] for i in idx])))

    def frozen_tryon_inputs(self, samples: Sequence[TryOnSample], *, garment_image: bool = True
                            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """A try-on step's frozen inputs, once per sample: the person's latents (B, C, h, w), the
        inpainting channels (B, C + 5, h, w) and the condition queries (B, 32, H)."""
        samples = list(samples)
        keys = [f"{s.person}|{s.garment}|{s.caption}|{garment_image}" for s in samples]
        latents = self.frozen_outputs.rows(
            "tryon_latents", self.generator.vae, keys,
            lambda idx: self.generator.encode_images(self.generator_pixels([samples[i].person.load() for i in idx])))
        extra = self.frozen_outputs.rows("tryon_channels", self.generator.vae, keys,
                                         lambda idx: self.tryon_channels([samples[i] for i in idx]))
        queries = self.frozen_outputs.rows(
            "tryon_queries", self.qformer, keys,
            lambda idx: self.tryon_condition_queries([samples[i] for i in idx], garment_image=garment_image))
        return latents, extra, queries

    # ---- retrieval ----------------------------------------------------------------------------

    # Every method below takes one image / text or a sequence of them (`as_batch`) and, in eval mode,
    # runs without autograd (`_inference`); the training phases call the Q-Former's own passes.

    @_inference
    def encode_image(self, images: ImageInput | Sequence[ImageInput]) -> ImageFeatures:
        """Z_I (B, 32, H) and the normalised query embeddings (B, 32, E)."""
        return self.qformer.image_features(self.image_tokens(images))

    @_inference
    def encode_text(self, texts: str | Sequence[str]) -> TextFeatures:
        """e_cls of each text alone (unimodal mask): (T, E) normalised."""
        return self.qformer.text_features(*self.tokenize(texts))

    @_inference
    def encode_composed(self, images: ImageInput | Sequence[ImageInput], texts: str | Sequence[str]) -> ComposedFeatures:
        """Reference image + modification text -> Z_R (B, 32, H) and the composed query (B, E)."""
        tokens = self.image_tokens(images)
        ids, mask = self.tokenize(texts)
        if tokens.shape[0] != ids.shape[0]:
            raise DataError(f"{tokens.shape[0]} images but {ids.shape[0]} texts")
        return self.qformer.composed_features(tokens, ids, mask)

    @staticmethod
    def similarity(image_embeds: torch.Tensor | ImageFeatures,
                   text_embeds: torch.Tensor | TextFeatures | ComposedFeatures) -> torch.Tensor:
        """(B, Q, E) x (T, E) -> (B, T): the best-matching query's dot product (BLIP-2); takes
        `encode_image` / `encode_text` (or `encode_composed`) outputs or their embedding tensors."""
        return QFormer.similarity(image_embeds, text_embeds)

    @_inference
    def itm_score(self, images: ImageInput | Sequence[ImageInput], texts: str | Sequence[str]) -> torch.Tensor:
        """Probability that each image matches its text (B,), from the ITM head."""
        tokens = self.image_tokens(images)
        ids, mask = self.tokenize(texts)
        if tokens.shape[0] != ids.shape[0]:
            raise DataError(f"{tokens.shape[0]} images but {ids.shape[0]} texts")
        return self.qformer.itm_logits(tokens, ids, mask).softmax(dim=-1)[:, 1]  # (B,)

    @torch.no_grad()
    def classify(self, images: ImageInput | Sequence[ImageInput], labels: str | Sequence[str]) -> Classification:
        """Zero-shot: each image's probabilities over `labels` ("dress,coat" or ["dress", "coat"];
        `label_list`: stripped, no empty ones, no repeats) from image-text similarity of prompts."""
        labels = label_list(labels)
        prompts = [self.config.classify_template.format(label=label) for label in labels]
        sims = self.similarity(self.encode_image(images), self.encode_text(prompts))  # (B, L)
        return Classification(tuple(labels), (sims / self.temperature).softmax(dim=-1))  # probs (B, L)

    # ---- generation ---------------------------------------------------------------------------

    @torch.no_grad()
    def caption(self, images: ImageInput | Sequence[ImageInput], style: str = DEFAULT_CAPTION_STYLE, *,
                num_beams: int = 1, max_new_tokens: int | None = None,
                hints: str | Sequence[str | None] | None = None, max_seconds: float | None = None) -> list[str]:
        """Captions in a style (short, professional, detailed) from the image; `hints` add attribute
        keywords to the instruction (Fashion-IQ-Cap annotation of training images only); `max_seconds`
        cuts decoding short (Captioner.generate)."""
        check_caption_style(style)
        queries = self.encode_image(images).query_output  # (B, 32, H)
        return self.captioner.generate(self.adapters.soft_prompt(queries), style, num_beams=num_beams,
                                       max_new_tokens=max_new_tokens, hints=as_batch(hints), max_seconds=max_seconds)

    @_inference
    def condition_queries(self, images: ImageInput | Sequence[ImageInput] | None = None,
                          texts: str | Sequence[str] | None = None) -> torch.Tensor:
        """The 32 query outputs that condition generation: Z_I (image), Z_R (image + text).

        Text alone is composed with a blank white image: the queries always exist, and "design
        from words" is a modification of an empty canvas.
        """
        if images is None and texts is None:
            raise DataError("generation needs a text, an image or both")
        if images is None:  # the canvas is always the same: its frozen tokens are computed once
            ids, mask = self.tokenize(texts)  # (B, L)
            tokens = self._blank_canvas_tokens().expand(ids.shape[0], -1, -1)  # (B, N, D)
            return self.qformer.composed_features(tokens, ids, mask).queries  # (B, 32, H)
        if texts is None:
            return self.encode_image(images).query_output  # (B, 32, H)
        return self.encode_composed(images, texts).queries  # (B, 32, H)

    def _blank_canvas_tokens(self) -> torch.Tensor:
        """The frozen encoder's tokens (1, N, D) of a blank white image, cached per device and dtype."""
        weight = next(self.image_encoder.parameters())
        key = (weight.device, weight.dtype)
        if key not in self._blank_tokens:
            size = self.config.image_encoder.image_size
            self._blank_tokens[key] = self.image_tokens([Image.new("RGB", (size, size), (255, 255, 255))])  # (1, N, D)
        return self._blank_tokens[key]

    def make_generator_inpainting(self) -> None:
        """Switch the generator to the inpainting variant for try-on / design (paper Figure 3), in place:
        the UNet's new input channels start at zero weight, so nothing it learned is lost."""
        self.generator.make_inpainting()
        self.config = replace(self.config, generator=self.generator.config)

    @torch.no_grad()
    def tryon_condition_queries(self, samples: Sequence[TryOnSample], *, garment_image: bool = True) -> torch.Tensor:
        """The queries a try-on / design generation is conditioned on, (B, 32, H).

        Try-on (garment_image): the in-shop garment composed with its caption (MGD's text), or the garment
        alone when the sample has no caption. Design (not garment_image): the caption alone on a blank
        canvas, since the garment is what gets drawn; every sample then needs a caption.
        """
        if not samples:
            raise DataError("no try-on samples given")
        captions = [s.caption if s.caption and s.caption.strip() else None for s in samples]
        if not garment_image and None in captions:
            raise DataError(f"design generation needs a caption; sample {samples[captions.index(None)].person_id} "
                            "has none")
        missing = next((s for s in samples if s.garment is None), None) if garment_image else None
        if missing is not None:
            raise DataError(f"try-on needs a garment image (sample {missing.person_id}); design needs only a caption")
        worded = [i for i, c in enumerate(captions) if c is not None]
        plain = [i for i, c in enumerate(captions) if c is None]
        garments = [s.garment.load() for s in samples] if garment_image else None
        parts = []
        if worded:
            parts.append(self.condition_queries([garments[i] for i in worded] if garments else None,
                                                [captions[i] for i in worded]))  # (w, 32, H)
        if plain:
            parts.append(self.condition_queries([garments[i] for i in plain]))  # (p, 32, H)
        queries = torch.cat(parts)  # (B, 32, H), worded rows first
        return queries[torch.argsort(torch.tensor(worded + plain))]  # back in the samples' order

    @torch.no_grad()
    def tryon_channels(self, samples: Sequence[TryOnSample]) -> torch.Tensor:
        """The inpainting model's extra inputs for try-on / design samples, (B, latent_channels + 5, h, w).

        Agnostic (masked) person, inpainting mask, garment sketch (lines = 1; zeros when the sample has
        none) and pose map, each resized to the generator's square image size.
        """
        if not self.generator.config.inpainting:
            raise ConfigError("this model's generator is not the inpainting variant (generator.inpainting: true)")
        if not samples:
            raise DataError("no try-on samples given")
        size = (self.generator.config.image_size, self.generator.config.image_size)

        def pixels(ref, mode: str) -> torch.Tensor:
            im = ref.load().convert(mode).resize(size, Image.Resampling.BILINEAR)
            arr = torch.from_numpy(np.asarray(im, dtype=np.float32) / 255.0)  # (H, W) or (H, W, 3)
            return arr.permute(2, 0, 1) if arr.ndim == 3 else arr[None]  # (C, H, W)

        masked = torch.stack([pixels(s.agnostic, "RGB") * 2 - 1 for s in samples])  # (B, 3, H, W) in [-1, 1]
        mask = torch.stack([(pixels(s.agnostic_mask, "L") > 0.5).float() for s in samples])  # (B, 1, H, W)
        sketch = torch.stack([1 - pixels(s.sketch, "L") if s.sketch is not None else torch.zeros(1, *size)
                              for s in samples])  # (B, 1, H, W), lines = 1
        pose = torch.stack([pixels(s.pose_image, "RGB") for s in samples])  # (B, 3, H, W)
        dev = self.device
        return self.generator.conditioning_channels(masked.to(dev), mask.to(dev), sketch.to(dev), pose.to(dev))

    @torch.no_grad()
    def generate(self, texts: str | Sequence[str] | None = None, images: ImageInput | Sequence[ImageInput] | None = None,
                 *, steps: int = 25, sampler: str = "dpm++", guidance_scale: float = 3.0, seed: int = 0,
                 extra_channels: torch.Tensor | None = None, progress=None) -> list[Image.Image]:
        """Images from words, a reference image or both (+ try-on channels for an inpainting model).

        Stages: 1. condition queries  2. adapter to the UNet's space  3. sampling  4. PIL images.
        """
        queries = self.condition_queries(images, texts)  # (B, 32, H)
        return self._draw(queries, extra_channels, steps=steps, sampler=sampler, guidance_scale=guidance_scale,
                          seed=seed, progress=progress)

    @torch.no_grad()
    def generate_tryon(self, samples: Sequence[TryOnSample], *, garment_image: bool = True, steps: int = 25,
                       sampler: str = "dpm++", guidance_scale: float = 3.0, seed: int = 0, keep_person: bool = True,
                       progress=None) -> list[Image.Image]:
        """Try-on (the garment + its caption) or design (the caption alone) images of the persons in
        `samples`, at the generator's size, from the inpainting model (paper Figure 3). `keep_person`:
        outside the mask the latents are the person's own at every step (else the UNet redraws them too).

        Stages: 1. condition queries  2. masked person, mask, sketch and pose channels  3.-5. as generate.
        """
        queries = self.tryon_condition_queries(samples, garment_image=garment_image)  # (B, 32, H)
        extra = self.tryon_channels(samples)  # (B, C + 5, h, w): masked person latents, mask, sketch, pose
        c = self.generator.config.latent_channels
        keep = (extra[:, :c], 1 - extra[:, c:c + 1]) if keep_person else (None, None)  # (B, C, h, w), (B, 1, h, w)
        return self._draw(queries, extra, steps=steps, sampler=sampler, guidance_scale=guidance_scale, seed=seed,
                          progress=progress, keep=keep)

    def _draw(self, queries: torch.Tensor, extra_channels: torch.Tensor | None, *, steps: int, sampler: str,
              guidance_scale: float, seed: int, progress, keep=(None, None)) -> list[Image.Image]:
        condition = self.adapters.condition(queries)  # (B, 32, Dc)
        generator = torch.Generator(device="cpu").manual_seed(seed)
        pixels = self.generator.sample(condition, extra_channels=extra_channels, sampler=sampler, steps=steps,
                                       guidance_scale=guidance_scale, generator=generator, keep_latents=keep[0],
                                       keep_mask=keep[1], progress=progress)
        arrays = (pixels.permute(0, 2, 3, 1).cpu().numpy() * 255).round().astype(np.uint8)  # (B, H, W, 3)
        return [Image.fromarray(a, "RGB") for a in arrays]

    # ---- inspection ---------------------------------------------------------------------------

    def parts_summary(self) -> list[dict]:
        """Per part: parameter count, how many of them the phase that trains the part updates
        ("trainable", training/phases.py), and where the weights came from. Read from the config and the
        parts, not from `requires_grad` (which says only what the last phase run unfroze): the image
        encoder never trains; the Q-Former and the adapters train whole; the captioner trains
        `Captioner.adaptation_parameters` (LoRA on a pretrained LM, every weight of a random one); a
        scratch generator trains its VAE (phase vae) and its UNet, a Stable Diffusion one its UNet only."""
        c = self.config
        g = self.generator
        lm = {"smollm2_gguf": "SmolLM2-135M-Instruct (packaged GGUF) + LoRA; only LoRA trains",
              "directory": f"{c.captioner.path} + LoRA; only LoRA trains",
              "random": "random; trained whole (phase 1b)"}[c.captioner.source]
        if c.generator.source == "scratch":
            generator = ("scratch; VAE and UNet trained here", list(g.parameters()))
        else:
            vae = {id(p) for p in g.vae.parameters()}
            generator = (f"Stable Diffusion {c.generator.path}; UNet trains, VAE frozen",
                         [p for p in g.parameters() if id(p) not in vae])
        parts = {
            "image_encoder": (self.image_encoder, "random" if c.image_encoder.random_init else
                              c.image_encoder.pretrained or f"{c.image_encoder.backbone} (packaged ImageNet weights)",
                              []),
            "qformer": (self.qformer, {"minilm": f"MiniLM {c.qformer.pretrained or '(packaged)'} + new cross-attention",
                                       "blip2": f"BLIP-2 {c.qformer.pretrained}", "random": "random"}[c.qformer.init],
                        list(self.qformer.parameters())),
            "adapters": (self.adapters, "new", list(self.adapters.parameters())),
            "captioner": (self.captioner, lm, self.captioner.adaptation_parameters()),
            "generator": (g, *generator),
        }
        rows = []
        for name, (module, source, trained) in parts.items():
            total = sum(p.numel() for p in module.parameters())
            trainable = sum(p.numel() for p in trained)
            rows.append({"part": name, "parameters": total, "trainable": trainable,
                         "frozen": total - trainable, "source": source})
        return rows


def _llm_tokenizer_for_random(config: CaptionerConfig, qformer_tokenizer):
    """A random test LM needs some tokenizer; without a `path` it borrows the Q-Former's (BERT) one."""
    if config.source != "random" or config.path is not None:
        return None
    tok = qformer_tokenizer.__class__.from_pretrained(qformer_tokenizer.name_or_path, local_files_only=True)
    tok.eos_token = tok.sep_token  # BERT has no EOS: [SEP] ends a caption
    return tok


def _contiguous(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Contiguous CPU tensors for safetensors, which refuses tensors that share memory: a tied weight
    (an LM's embedding and output head) is written once per name, as a copy."""
    out, seen = {}, set()
    for k, v in state.items():
        v = v.detach().contiguous().cpu()
        if v.data_ptr() in seen:
            v = v.clone()
        seen.add(v.data_ptr())
        out[k] = v
    return out


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise ConfigError(f"{path}: missing from the saved model")
    try:
        return load_file(str(path))
    except Exception as e:  # safetensors raises its own error types for corrupt files
        raise ConfigError(f"{path}: cannot read weights ({e})") from None


def _load_into(module: nn.Module, path: Path) -> None:
    state = _read_tensors(path)
    missing, unexpected = module.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ConfigError(f"{path}: weights do not match the config (missing {missing[:3]}, unexpected {unexpected[:3]})")


def _load_tokenizer(directory: Path):
    from transformers import AutoTokenizer

    if not directory.is_dir():
        raise ConfigError(f"{directory}: tokenizer missing from the saved model")
    return AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
