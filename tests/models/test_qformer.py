"""The Q-Former: MiniLM init equals BERT, BLIP-2 checkpoints give transformers' own outputs, masks are right."""
from __future__ import annotations

import pytest
import torch

from unifashion.errors import ConfigError
from unifashion.models.qformer import (
    QFormer,
    QFormerConfig,
    bert_parameter_map,
    config_from_blip2,
    minilm_dir,
)

SENTENCES = ["a red silk dress with long sleeves", "jeans", "a black leather jacket, slim fit, two zip pockets"]

TINY = dict(num_query_tokens=4, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
            encoder_hidden_size=24, embed_dim=16, vocab_size=99, max_position_embeddings=20)


@pytest.fixture(scope="module")
def minilm():
    """The MiniLM-initialised Q-Former (default config: 1280-wide image tokens), BERT itself, a padded batch."""
    from transformers import BertModel

    model = QFormer.from_config(QFormerConfig()).eval()
    bert = BertModel.from_pretrained(str(minilm_dir()), local_files_only=True).eval()
    batch = model.tokenizer()(SENTENCES, padding=True, return_tensors="pt")
    return model, bert, batch


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return QFormer.from_config(QFormerConfig(init="random", **TINY)).eval()


def _text(batch=3, length=7, vocab=99, seed=1):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, vocab, (batch, length), generator=g)  # (B, L)
    mask = torch.ones(batch, length, dtype=torch.long)  # (B, L)
    mask[1, 4:] = 0  # one padded row
    ids[1, 4:] = 0
    return ids, mask


# ---- MiniLM init --------------------------------------------------------------------------------

def test_minilm_text_path_equals_bert(minilm):
    model, bert, batch = minilm
    assert batch["attention_mask"].eq(0).any(), "the batch must contain padding"
    with torch.no_grad():
        ours = model.text_features(batch["input_ids"], batch["attention_mask"]).text_output  # (B, L, H)
        ref = bert(**batch).last_hidden_state  # (B, L, H)
    valid = batch["attention_mask"].bool()
    torch.testing.assert_close(ours[valid], ref[valid], rtol=0, atol=1e-5)


def test_minilm_text_path_is_bert_exactly_in_float64(minilm):
    # In float32 the folded position table (position + token type 0) is rounded once; in float64 with the
    # fold done in float64 the two computations agree exactly, padding positions included.
    import copy

    model, bert, batch = minilm
    model64, bert64 = copy.deepcopy(model).double(), copy.deepcopy(bert).double()
    with torch.no_grad():
        model64.embeddings.position_embeddings.weight.copy_(
            bert64.embeddings.position_embeddings.weight + bert64.embeddings.token_type_embeddings.weight[0])
        ours = model64.text_features(batch["input_ids"], batch["attention_mask"]).text_output
        ref = bert64(**batch).last_hidden_state
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-12)


def test_minilm_parameters_are_berts(minilm):
    model, bert, _ = minilm
    ours, theirs = dict(model.named_parameters()), dict(bert.named_parameters())
    mapping = bert_parameter_map(model.config.num_hidden_layers)
    for name, bert_name in mapping.items():
        expected = theirs[bert_name]
        if name == "embeddings.position_embeddings.weight":
            expected = expected + theirs["embeddings.token_type_embeddings.weight"][0]
        assert torch.equal(ours[name], expected), name
    # every BERT weight except token types (folded) and the pooler (unused) is taken
    unused = set(theirs) - set(mapping.values())
    assert unused == {"embeddings.token_type_embeddings.weight", "pooler.dense.weight", "pooler.dense.bias"}
    # and everything else is new: queries, cross-attention, projections, ITM head
    new = set(ours) - set(mapping)
    assert new and all(n in ("query_tokens",) or "crossattention" in n or n.split(".")[0] in
                       ("vision_projection", "text_projection", "itm_head") for n in new), sorted(new)
    assert any("crossattention" in n for n in new)
    # cross-attention reads 1280-wide image tokens; BLIP-2's init: normal(0, 0.02)
    key = model.qformer.encoder.layer[0].crossattention.attention.key.weight
    assert key.shape == (384, 1280)
    assert 0.015 < key.std().item() < 0.025
    assert 0.015 < model.query_tokens.std().item() < 0.025


def test_minilm_tokenizer_is_bert_uncased(minilm):
    model, _, batch = minilm
    assert batch["input_ids"][0, 0].item() == 101  # [CLS]
    assert model.tokenizer().convert_ids_to_tokens(2417) == "red"


def test_minilm_config_that_does_not_fit_bert_is_refused():
    with pytest.raises(ConfigError, match="hidden_size"):
        QFormer.from_config(QFormerConfig(hidden_size=768))


# ---- BLIP-2 checkpoint --------------------------------------------------------------------------

def test_blip2_checkpoint_gives_transformers_outputs(blip2_checkpoint):
    directory, reference = blip2_checkpoint
    model = QFormer.load_blip2(directory).eval()
    assert model.config.encoder_hidden_size == 24 and model.config.num_query_tokens == 4
    assert model.config.num_hidden_layers == 3 and model.config.embed_dim == 16

    torch.manual_seed(2)
    pixels = torch.randn(3, 3, 16, 16)  # (B, 3, H, W)
    ids, mask = _text(batch=3, length=7)
    with torch.no_grad():
        image_tokens = reference.vision_model(pixel_values=pixels).last_hidden_state  # (B, N, 24)
        itc = reference(pixel_values=pixels, input_ids=ids, attention_mask=mask, use_image_text_matching_head=False)
        itm = reference(pixel_values=pixels, input_ids=ids, attention_mask=mask, use_image_text_matching_head=True)

        image = model.image_features(image_tokens)
        text = model.text_features(ids, mask)
        logits = model.itm_logits(image_tokens, ids, mask)
        composed = model.composed_features(image_tokens, ids, mask)

    tol = dict(rtol=0, atol=1e-5)
    torch.testing.assert_close(image.image_embeds, itc.image_embeds, **tol)
    torch.testing.assert_close(text.text_embeds, itc.text_embeds, **tol)
    torch.testing.assert_close(QFormer.similarity(image.image_embeds, text.text_embeds), itc.logits_per_image, **tol)
    torch.testing.assert_close(logits, itm.logits_per_image, **tol)
    # in ITM mode transformers returns the fused output as `text_embeds`
    torch.testing.assert_close(composed.fused_output, itm.text_embeds, **tol)


def test_blip2_state_dict_maps_one_to_one(blip2_checkpoint):
    directory, reference = blip2_checkpoint
    model = QFormer.load_blip2(directory)
    ref = {k: v for k, v in reference.state_dict().items() if not k.startswith("vision_model.")}
    ours = model.state_dict()
    assert set(ours) == set(ref)
    assert all(torch.equal(ours[k], ref[k]) for k in ref)


def test_blip2_config_mismatch_and_missing_checkpoint_are_refused(blip2_checkpoint, tmp_path):
    directory, _ = blip2_checkpoint
    with pytest.raises(ConfigError, match="hidden_size"):
        QFormer.from_config(QFormerConfig(init="blip2", pretrained=str(directory)))  # default sizes
    QFormer.from_config(config_from_blip2(directory))  # the matching config loads
    with pytest.raises(ConfigError, match="config.json"):
        QFormer.load_blip2(tmp_path)
    with pytest.raises(ConfigError, match="pretrained"):
        QFormerConfig(init="blip2")


# ---- masks --------------------------------------------------------------------------------------

def test_text_mode_ignores_queries_and_image(tiny):
    ids, mask = _text()
    with torch.no_grad():
        before = tiny.text_features(ids, mask).text_output
        saved = tiny.query_tokens.clone()
        tiny.query_tokens.add_(torch.randn_like(saved))
        tiny.image_features(torch.randn(3, 5, 24))  # running the image side in between changes nothing
        after = tiny.text_features(ids, mask).text_output
        tiny.query_tokens.copy_(saved)
    torch.testing.assert_close(after, before, rtol=0, atol=0)


def test_image_mode_depends_on_queries_and_image(tiny):
    image = torch.randn(2, 5, 24)
    with torch.no_grad():
        base = tiny.image_features(image).query_output
        other_image = tiny.image_features(image + torch.randn_like(image)).query_output
    assert not torch.allclose(base, other_image, atol=1e-4)


def test_composed_mode_is_bidirectional(tiny):
    ids, mask = _text()
    image = torch.randn(3, 5, 24)
    q = tiny.config.num_query_tokens
    with torch.no_grad():
        base = tiny.composed_features(image, ids, mask)
        other_text = tiny.composed_features(image, torch.roll(ids, 1, dims=0), torch.roll(mask, 1, dims=0))
        other_image = tiny.composed_features(image + torch.randn_like(image), ids, mask)
    assert base.fused_output.shape == (3, q + 7, 32) and base.queries.shape == (3, q, 32)
    assert base.composed_embeds.shape == (3, 16)
    torch.testing.assert_close(base.composed_embeds.norm(dim=-1), torch.ones(3))
    assert not torch.allclose(base.queries, other_text.queries, atol=1e-4)  # text -> queries
    # image -> queries -> text [CLS]: small at random init (0.02-std weights), but present; without a
    # path from the image the two runs would be bit-identical
    cls, cls_other = base.fused_output[:, q], other_image.fused_output[:, q]
    assert (cls - cls_other).abs().max() > 1e-6
    text_only = tiny.text_features(ids, mask).text_output[:, 0]
    assert (cls - text_only).abs().max() > 1e-3  # the composed [CLS] is not the text-alone [CLS]


def test_padding_does_not_change_cls(tiny):
    ids, mask = _text()
    image = torch.randn(3, 5, 24)
    longer_ids = torch.cat([ids, torch.randint(1, 99, (3, 4))], dim=1)  # (B, L+4) junk tokens...
    longer_mask = torch.cat([mask, torch.zeros(3, 4, dtype=torch.long)], dim=1)  # ...that are masked out
    with torch.no_grad():
        text, text_long = tiny.text_features(ids, mask), tiny.text_features(longer_ids, longer_mask)
        comp, comp_long = tiny.composed_features(image, ids, mask), tiny.composed_features(image, longer_ids, longer_mask)
        itm, itm_long = tiny.itm_logits(image, ids, mask), tiny.itm_logits(image, longer_ids, longer_mask)
    tol = dict(rtol=0, atol=1e-5)
    torch.testing.assert_close(text_long.text_embeds, text.text_embeds, **tol)
    torch.testing.assert_close(comp_long.composed_embeds, comp.composed_embeds, **tol)
    torch.testing.assert_close(comp_long.queries, comp.queries, **tol)
    torch.testing.assert_close(itm_long, itm, **tol)


def test_similarity_is_max_over_queries():
    torch.manual_seed(3)
    image_embeds, text_embeds = torch.randn(2, 4, 8), torch.randn(5, 8)
    sim = QFormer.similarity(image_embeds, text_embeds)
    expected = torch.stack([torch.stack([max(float(q @ t) for q in img) * torch.ones(()) for t in text_embeds])
                            for img in image_embeds])
    torch.testing.assert_close(sim, expected)
    with pytest.raises(ValueError):
        QFormer.similarity(text_embeds, text_embeds)


def test_gradients_reach_queries_and_cross_attention(tiny):
    ids, mask = _text()
    tiny.zero_grad()
    tiny.composed_features(torch.randn(3, 5, 24), ids, mask).composed_embeds.sum().backward()
    assert tiny.query_tokens.grad.abs().sum() > 0
    assert tiny.qformer.encoder.layer[0].crossattention.attention.key.weight.grad.abs().sum() > 0
    tiny.zero_grad()


# ---- bad input ----------------------------------------------------------------------------------

@pytest.mark.parametrize("call, message", [
    (lambda m, ids, mask: m.image_features(torch.zeros(0, 5, 24)), "empty image batch"),
    (lambda m, ids, mask: m.text_features(ids[:0], mask[:0]), "empty text batch"),
    (lambda m, ids, mask: m.composed_features(torch.zeros(2, 5, 24), ids, mask), "batch sizes differ: 2 images but 3 texts"),
    (lambda m, ids, mask: m.itm_logits(torch.zeros(4, 5, 24), ids, mask), "batch sizes differ"),
    (lambda m, ids, mask: m.image_features(torch.zeros(3, 5, 25)), r"image tokens must be \(B, N, 24\)"),
    (lambda m, ids, mask: m.text_features(ids, mask[:, :3]), "must both be"),
    (lambda m, ids, mask: m.text_features(torch.ones(1, 21, dtype=torch.long), torch.ones(1, 21)), "max_position_embeddings"),
])
def test_bad_input_is_one_clear_value_error(tiny, call, message):
    ids, mask = _text()
    with pytest.raises(ValueError, match=message) as info:
        call(tiny, ids, mask)
    assert "\n" not in str(info.value)


def test_bad_config_is_refused():
    with pytest.raises(ConfigError, match="init"):
        QFormerConfig(init="bert")
    with pytest.raises(ConfigError, match="multiple"):
        QFormerConfig(init="random", hidden_size=30, num_attention_heads=4)
