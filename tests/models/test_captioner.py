"""The captioner: template + soft prompt, label mask, LoRA-only learning, generation, LoRA round trip.

All but the last test use a tiny random LlamaForCausalLM (hidden 32, 2 layers) with a byte-level BPE
tokenizer trained here on a few sentences, so they need no network and no model files. The last test
loads the real embedded SmolLM2-135M-Instruct through the safetensors cache (built on first use,
~50 s; <1 s afterwards).
"""

import time
import warnings

import pytest
import torch
import torch.nn.functional as F

from unifashion.errors import DataError
from unifashion.models import captioner as cap
from unifashion.models.captioner import STYLES, TEMPLATE_HEAD, TEMPLATE_TAIL, Captioner, CaptionerConfig

ANSWERS = ["a red silk dress with long sleeves", "navy wool coat", "black leather ankle boots"]
TINY = dict(
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=256,
    initializer_range=0.3,  # the default 0.02 leaves the frozen LM head too weak to ever be confident
)


@pytest.fixture(autouse=True)
def one_thread(request):
    """The tiny model's ops are too small to gain from threads, and on a busy 2-core machine
    intra-op threads waiting on each other made the overfit test ~15x slower."""
    if "embedded" in request.node.name:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = [TEMPLATE_HEAD, *(TEMPLATE_TAIL.format(instruction=i) for i in STYLES.values()), *ANSWERS]
    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<eos>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tk.train_from_iterator(corpus, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tk, eos_token="<eos>", pad_token="<eos>")


def make(tokenizer, seed=0, **overrides):
    torch.manual_seed(seed)
    config = CaptionerConfig(source="random", random_config=TINY, max_new_tokens=20, **overrides)
    return Captioner(config, tokenizer=tokenizer)


def itg_loss(out):
    """CE with the transformers convention: labels aligned with inputs, shifted here."""
    logits, labels = out["logits"][:, :-1], out["labels"][:, 1:]
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100)


def test_styles_are_the_papers_instructions():
    assert set(STYLES) == {"short", "professional", "detailed"}
    assert STYLES["short"] == "Short description."
    assert STYLES["professional"] == "Write a detail and professional description for the cloth."
    assert STYLES["detailed"].startswith("Describe the cloth's style, color, design")


def test_labels_supervise_only_answer_and_eos(tokenizer):
    model = make(tokenizer)
    prefix = torch.randn(2, 5, model.hidden_size)  # (B, P, D)
    styles = ["short", "detailed"]
    embeds, mask, labels = model.build_inputs(prefix, styles, ANSWERS[:2])
    B, T, D = embeds.shape
    assert (B, D) == (2, model.hidden_size) and mask.shape == labels.shape == (B, T)
    embed = model.lm.get_input_embeddings()
    for i, (style, answer) in enumerate(zip(styles, ANSWERS[:2])):
        head, tail = model._prompt(style)
        n = int(mask[i].sum())
        assert mask[i, :n].all() and not mask[i, n:].any()  # right padding
        # the soft prompt sits right after "USER: <Img>"
        assert torch.equal(embeds[i, len(head) : len(head) + 5], prefix[i])
        supervised = (labels[i] != -100).nonzero().flatten()
        # exactly the answer tokens + EOS, contiguous, ending at the last real position
        answer_ids = tokenizer(f" {answer}", add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        assert labels[i, supervised].tolist() == answer_ids
        assert supervised.tolist() == list(range(n - len(answer_ids), n))
        assert supervised[0] == len(head) + 5 + len(tail)
        # labels are aligned with the inputs (the token at position t is labels[t]); the loss shifts
        assert torch.allclose(embeds[i, supervised], embed(labels[i, supervised]))
        assert tokenizer.decode(labels[i, supervised][:-1]).strip() == answer
    out = model(prefix, styles, ANSWERS[:2])
    assert out["logits"].shape == (B, T, len(tokenizer)) and torch.equal(out["labels"], labels)


def test_a_random_lm_is_adapted_whole(tokenizer):
    model = make(tokenizer, seed=1)
    assert {id(p) for p in model.adaptation_parameters()} == {id(p) for p in model.parameters()}


def test_learns_answer_with_lora_only_and_generates_it(tokenizer):
    model = make(tokenizer, seed=1, lora_dropout=0.0)
    base_before = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n, p in model.named_parameters() if p.requires_grad)
    assert sum(p.numel() for p in trainable) == model.trainable_parameters()
    # per layer: r * (in + out) for q (32->32), k (32->16), v (32->16), o (32->32); 2 layers
    assert model.trainable_parameters() == 2 * 16 * (64 + 48 + 48 + 64)

    torch.manual_seed(2)
    prefix = torch.randn(1, 4, model.hidden_size)
    optimizer = torch.optim.Adam(trainable, lr=1e-2)
    model.train()
    first = None
    for _ in range(60):
        loss = itg_loss(model(prefix, "professional", ANSWERS[:1]))
        first = loss.item() if first is None else first
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.05 * first
    assert model.generate(prefix, "professional") == [ANSWERS[0]]
    assert model.training  # generate restores the mode
    for n, p in model.named_parameters():
        if not p.requires_grad:
            assert torch.equal(p, base_before[n]), n

    beams = model.generate(prefix, "professional", num_beams=3)
    assert len(beams) == 1 and isinstance(beams[0], str)


def test_batched_generation_equals_per_item(tokenizer):
    model = make(tokenizer, seed=3)
    prefixes = torch.randn(3, 4, model.hidden_size)
    styles = ["short", "detailed", "professional"]  # different prompt lengths: left padding matters
    batched = model.generate(prefixes, styles, max_new_tokens=12)
    single = [model.generate(prefixes[i : i + 1], styles[i], max_new_tokens=12)[0] for i in range(3)]
    assert len(batched) == 3 and batched == single
    beams = model.generate(prefixes, styles, num_beams=3, max_new_tokens=8)
    assert len(beams) == 3 and all(isinstance(b, str) for b in beams)


def _repeats_a_trigram(ids: list[int]) -> bool:
    grams = [tuple(ids[i:i + 3]) for i in range(len(ids) - 2)]
    return len(set(grams)) < len(grams)


def test_decoding_never_loops_unless_told_to(tokenizer):
    prefixes = torch.randn(6, 4, 32, generator=torch.Generator().manual_seed(0))

    def generated_ids(model):  # the token ids the LM produced (decoded text does not re-tokenise to them)
        seen, generate = [], model.lm.generate
        model.lm.generate = lambda *a, **k: seen.append(generate(*a, **k)) or seen[-1]
        model.generate(prefixes, "short", max_new_tokens=20)
        return seen[0].tolist()

    free = generated_ids(make(tokenizer, seed=3, no_repeat_ngram_size=0, no_immediate_repeat=False))
    banned = generated_ids(make(tokenizer, seed=3))  # the defaults: no repeated 3-gram, no token twice in a row
    stutters = lambda ids: any(a == b for a, b in zip(ids, ids[1:]))
    assert any(_repeats_a_trigram(i) for i in free) and any(stutters(i) for i in free)  # it loops when it may
    assert not any(_repeats_a_trigram(i) or stutters(i) for i in banned)
    with pytest.raises(ValueError, match="no_repeat_ngram_size"):
        CaptionerConfig(no_repeat_ngram_size=-1)


def test_lora_round_trip_gives_identical_logits(tokenizer, tmp_path):
    trained = make(tokenizer, seed=4)
    for n, p in trained.named_parameters():  # make the adapter non-trivial (lora_B starts at 0)
        if p.requires_grad:
            torch.nn.init.normal_(p, std=0.2)
    trained.eval()
    prefix = torch.randn(2, 4, trained.hidden_size)
    want = trained(prefix, "short", ANSWERS[:2])["logits"]
    trained.save_lora(tmp_path / "lora")
    saved = {p.name for p in (tmp_path / "lora").iterdir()}
    assert {"adapter_model.safetensors", "adapter_config.json"} <= saved
    assert not any(name.endswith((".bin", ".pt", ".pth")) for name in saved)

    fresh = make(tokenizer, seed=4)  # same base weights (same seed), LoRA B zero
    fresh.eval()
    assert not torch.allclose(fresh(prefix, "short", ANSWERS[:2])["logits"], want)
    fresh.load_lora(tmp_path / "lora")
    assert torch.equal(fresh(prefix, "short", ANSWERS[:2])["logits"], want)

    other = make(tokenizer, seed=4, lora_r=8)
    with pytest.raises(ValueError, match="r 16 != 8"):
        other.load_lora(tmp_path / "lora")


def test_bad_input_is_one_clear_error(tokenizer):
    model = make(tokenizer)
    good = torch.randn(1, 4, model.hidden_size)
    with pytest.raises(ValueError, match=r"unknown caption style 'poetic'; allowed: short, professional, detailed"):
        model.generate(good, "poetic")
    with pytest.raises(ValueError, match="empty batch"):
        model.generate(torch.randn(0, 4, model.hidden_size))
    with pytest.raises(ValueError, match=r"prefix_embeds width 16 != the LM's embedding width 32"):
        model(torch.randn(1, 4, 16), "short", ["x"])
    with pytest.raises(ValueError, match="2 answers for a batch of 1"):
        model(good, "short", ["x", "y"])
    with pytest.raises(ValueError, match="needs a tokenizer"):
        Captioner(CaptionerConfig(source="random", random_config=TINY))


def test_check_caption_style_is_one_message():
    assert cap.DEFAULT_CAPTION_STYLE in STYLES
    for style in STYLES:
        assert cap.check_caption_style(style) == style
    with pytest.raises(DataError) as info:
        cap.check_caption_style("poetic")
    assert str(info.value) == "unknown caption style 'poetic' (known: short, professional, detailed)"


def test_embedded_smollm2_loads_from_cache_and_generates():
    """The real embedded LM. First run builds the cache (~50 s on 2 cores); later runs take ~1-2 s."""
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        model = Captioner(CaptionerConfig(max_new_tokens=8))
    load_s = time.perf_counter() - start
    assert model.hidden_size == 576
    assert model.base_parameters() == 134_515_008  # SmolLM2-135M, tied embeddings
    assert model.trainable_parameters() == 30 * 16 * (1152 + 768 + 768 + 1152)  # LoRA r16 on q, k, v, o
    # generative adaptation tunes only LoRA on a pretrained LM
    assert sum(p.numel() for p in model.adaptation_parameters()) == model.trainable_parameters()
    embed = model.lm.get_input_embeddings()
    ids = model.tokenizer(" a red silk dress", add_special_tokens=False, return_tensors="pt")["input_ids"]
    prefix = embed(ids).detach()  # (1, P, 576): a text-like soft prompt
    texts = model.generate(prefix, "short")
    assert len(texts) == 1 and isinstance(texts[0], str) and texts[0]
    print(f"embedded SmolLM2: load {load_s:.1f} s, caption {texts[0]!r}")


def test_caption_tokenizer_is_small_and_says_the_captions(tmp_path):
    """The from-scratch captioner's tokenizer: learnt from the captions, a few hundred pieces, the
    template without unknown pieces, and a caption decodes back to its words."""
    texts = ["Cotton jacket in blue. Classic collar. Contrast trim in grey.",
             "a red striped dress made of silk with long sleeves", "navy wool coat", *ANSWERS]
    directory = cap.build_caption_tokenizer(texts, tmp_path / "tok", vocab_size=300)
    tok = __import__("transformers").AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
    assert len(tok) <= 300 and tok.eos_token == "[EOS]" and tok.pad_token == "[PAD]"
    for style in STYLES:
        ids = tok(TEMPLATE_TAIL.format(instruction=STYLES[style]), add_special_tokens=False)["input_ids"]
        assert tok.unk_token_id not in ids
    ids = tok(texts[0], add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == texts[0].lower()
    model = Captioner(CaptionerConfig(source="random", path=str(directory), random_config=TINY))
    assert model.lm.get_input_embeddings().num_embeddings == len(tok)
