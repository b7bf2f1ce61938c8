"""The losses on cases whose value is known: ITC, ITM (hard negatives), ITG (shift, -100), q2I (the one
scheduler, v-prediction target, condition dropout) and the composed-retrieval loss."""
import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from unifashion.losses import (
    CaptionLoss,
    ComposedRetrievalLoss,
    ImageTextContrastiveLoss,
    ImageTextMatchingLoss,
    NoisePredictionLoss,
    clamp_temperature_,
    diffusion_target,
    negative_weights,
    sample_negatives,
)
from unifashion.models.captioner import IGNORE_INDEX
from unifashion.models.qformer import QFormer

ITC = ImageTextContrastiveLoss()


def basis(b: int, e: int = 8) -> torch.Tensor:
    return torch.eye(e)[:b]  # (b, E) orthonormal rows


def aligned(b: int = 4, q: int = 3, e: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Image b's query 0 is text b's embedding; the other queries point away from every text."""
    texts = basis(b, e)  # (B, E)
    images = torch.zeros(b, q, e)
    images[:, 0] = texts
    images[:, 1:] = -F.normalize(torch.ones(e), dim=0)  # dot with every text < 0
    return images, texts


def random_unit(*shape, seed=0) -> torch.Tensor:
    return F.normalize(torch.randn(*shape, generator=torch.Generator().manual_seed(seed)), dim=-1)


# ================================================================================================ ITC
def test_itc_scores_with_the_qformers_similarity():
    img, txt = random_unit(3, 4, 8, seed=1), random_unit(3, 8, seed=2)
    sim = QFormer.similarity(img, txt) / 0.1  # (B, B)
    target = torch.arange(3)
    want = (F.cross_entropy(sim, target) + F.cross_entropy(sim.t(), target)) / 2
    torch.testing.assert_close(ITC(img, txt, 0.1)["itc_loss"], want)
    with pytest.raises(ValueError, match=r"\(B, Q, E\)"):
        QFormer.similarity(txt, txt)


def test_itc_aligned_with_tiny_temperature_is_zero():
    images, texts = aligned()
    assert ITC(images, texts, torch.tensor(0.001))["itc_loss"] < 1e-6


def test_itc_all_equal_embeddings_give_log_batch():
    b = 5
    e = random_unit(8, seed=3)
    loss = ITC(e.expand(b, 3, 8), e.expand(b, 8), torch.tensor(0.07))["itc_loss"]
    assert abs(loss.item() - math.log(b)) < 1e-6


def test_itc_hand_computed_two_by_two():
    # one query per image; sims: i0.t0 = 0.8, i0.t1 = 0, i1.t0 = 0.96, i1.t1 = 0.8; temperature 0.5
    images = torch.tensor([[[1.0, 0.0]], [[0.6, 0.8]]])
    texts = torch.tensor([[0.8, 0.6], [0.0, 1.0]])
    # logits i2t = [[1.6, 0.0], [1.92, 1.6]], t2i = its transpose = [[1.6, 1.92], [0.0, 1.6]]
    ce_i2t = (-math.log(math.exp(1.6) / (math.exp(1.6) + math.exp(0.0)))
              - math.log(math.exp(1.6) / (math.exp(1.92) + math.exp(1.6)))) / 2
    ce_t2i = (-math.log(math.exp(1.6) / (math.exp(1.6) + math.exp(1.92)))
              - math.log(math.exp(1.6) / (math.exp(0.0) + math.exp(1.6)))) / 2
    loss = ITC(images, texts, torch.tensor(0.5))["itc_loss"]
    assert abs(loss.item() - (ce_i2t + ce_t2i) / 2) < 1e-6


def test_itc_shuffled_pairs_cost_much_more_than_aligned():
    b = 8
    images = random_unit(b, 4, 16, seed=4)
    texts = images[:, 1].clone()  # each text is one of its image's queries
    aligned_loss = ITC(images, texts, torch.tensor(0.07))["itc_loss"]
    shuffled_loss = ITC(images, texts[torch.roll(torch.arange(b), 1)], torch.tensor(0.07))["itc_loss"]
    assert shuffled_loss > aligned_loss + 5.0


def test_itc_same_product_items_are_all_positives():
    # items 0 and 1 are the same product with identical embeddings; 2 and 3 unique
    images, texts = aligned(4)
    images[1], texts[1] = images[0], texts[0]
    ids = torch.tensor([7, 7, 8, 9])
    img, txt = images.clone().requires_grad_(), texts.clone().requires_grad_()
    loss = ITC(img, txt, torch.tensor(0.001), ids)["itc_loss"]
    # soft targets 1/2, 1/2 on the duplicate rows: the minimum is their entropy, log 2, on 2 of 4 rows
    assert abs(loss.item() - math.log(2) / 2) < 1e-5
    loss.backward()
    assert img.grad.abs().max() < 1e-4 and txt.grad.abs().max() < 1e-4  # nothing pushes the duplicates apart
    # with product ids, which text of a product is paired with which image does not matter
    img, txt = random_unit(4, 3, 8, seed=20), random_unit(4, 8, seed=21)
    swapped = txt[[1, 0, 2, 3]]
    torch.testing.assert_close(ITC(img, swapped, 0.1, ids)["itc_loss"], ITC(img, txt, 0.1, ids)["itc_loss"])
    assert not torch.allclose(ITC(img, swapped, 0.1)["itc_loss"], ITC(img, txt, 0.1)["itc_loss"])


def test_itc_soft_targets_match_an_explicit_reference():
    b, q, e, tau = 6, 3, 8, 0.2
    img, txt = random_unit(b, q, e, seed=5), random_unit(b, e, seed=6)
    ids = torch.tensor([1, 2, 1, 3, 2, 4])
    sim = torch.tensor([[max(float(img[i, k] @ txt[j]) for k in range(q)) for j in range(b)] for i in range(b)])
    total = 0.0
    for logits in (sim / tau, sim.t() / tau):
        for i in range(b):
            pos = [j for j in range(b) if ids[j] == ids[i]]
            logp = torch.log_softmax(logits[i], 0)
            total += -sum(float(logp[j]) for j in pos) / len(pos) / b
    loss = ITC(img, txt, torch.tensor(tau), ids)["itc_loss"]
    assert abs(loss.item() - total / 2) < 1e-5
    # unique ids are the same as no ids
    torch.testing.assert_close(ITC(img, txt, tau, torch.arange(b))["itc_loss"], ITC(img, txt, tau)["itc_loss"])


def test_itc_only_the_best_query_matters():
    images, texts = aligned(4, q=3)
    base = ITC(images, texts, torch.tensor(0.1))["itc_loss"]
    other = images.clone()
    other[:, 1] = -F.normalize(torch.arange(8.0) + 1, dim=0)  # different, still below every best query
    other[:, 2] = -texts.roll(1, 0)
    torch.testing.assert_close(ITC(other, texts, torch.tensor(0.1))["itc_loss"], base)
    torch.testing.assert_close(ITC(images[:, :1], texts, torch.tensor(0.1))["itc_loss"], base)  # Q = 1
    img = images.clone().requires_grad_()
    ITC(img, texts, torch.tensor(0.1))["itc_loss"].backward()
    assert img.grad[:, 0].abs().sum() > 0 and img.grad[:, 1:].abs().sum() == 0  # only the argmax query learns


def test_itc_temperature_is_clamped():
    img, txt = random_unit(4, 2, 8, seed=7), random_unit(4, 8, seed=8)
    loss = lambda t: ITC(img, txt, torch.tensor(t))["itc_loss"]  # noqa: E731
    torch.testing.assert_close(loss(1e-6), loss(0.001))
    torch.testing.assert_close(loss(10.0), loss(0.5))
    assert not torch.allclose(loss(0.1), loss(0.5))
    p = torch.nn.Parameter(torch.tensor(3.0))
    clamp_temperature_(p)
    assert p.item() == 0.5 and p.requires_grad


def test_itc_gradients_reach_both_sides_and_the_temperature():
    img = random_unit(4, 3, 8, seed=9).requires_grad_()
    txt = random_unit(4, 8, seed=10).requires_grad_()
    temp = torch.nn.Parameter(torch.tensor(0.07))
    ITC(img, txt, temp)["itc_loss"].backward()
    for g in (img.grad, txt.grad, temp.grad):
        assert g is not None and torch.isfinite(g).all() and g.abs().sum() > 0


def test_itc_bad_input():
    img, txt = random_unit(4, 3, 8), random_unit(3, 8)
    with pytest.raises(ValueError, match="of one batch"):
        ITC(img, txt, 0.07)
    with pytest.raises(ValueError, match="product_ids"):
        ITC(img, random_unit(4, 8), 0.07, torch.arange(3))
    with pytest.raises(ValueError, match="scalar"):
        ITC(img, random_unit(4, 8), torch.ones(2))


# ================================================================================================ ITM
def identity_batch(ids: list[int]):
    """Image tokens and texts that carry an identity; `oracle` matches them perfectly."""
    t = torch.tensor(ids, dtype=torch.float)
    tokens = t[:, None, None].expand(-1, 2, 3).clone()  # (B, N=2, D=3)
    input_ids = torch.tensor(ids)[:, None].repeat(1, 4)  # (B, L=4)
    mask = torch.ones_like(input_ids)
    return tokens, input_ids, mask


def oracle(tokens, input_ids, mask):
    match = tokens[:, 0, 0].long() == input_ids[:, 0]  # (B',)
    logit = torch.where(match, 20.0, -20.0)
    return torch.stack([-logit, logit], dim=1)  # (B', 2): [no match, match]


def test_itm_with_a_perfect_head_is_zero():
    b = 6
    tokens, ids, mask = identity_batch(list(range(b)))
    sim = random_unit(b, 8, seed=1) @ random_unit(b, 8, seed=2).t() / 0.07
    loss = ImageTextMatchingLoss()(oracle, tokens, ids, mask, sim, sim.t(), generator=torch.Generator().manual_seed(0))
    assert loss["itm_loss"] < 1e-8
    # a head that says "match" to everything pays for the 2B negatives
    always = lambda t, i, m: torch.tensor([[-20.0, 20.0]]).expand(t.shape[0], 2)  # noqa: E731
    bad = ImageTextMatchingLoss()(always, tokens, ids, mask, sim, sim.t())["itm_loss"]
    assert abs(bad.item() - 2 / 3 * 40) < 1e-3


def test_itm_batch_layout_positives_then_negatives():
    b = 5
    tokens, ids, mask = identity_batch([10, 11, 12, 13, 14])
    sim = torch.randn(b, b, generator=torch.Generator().manual_seed(3))
    batch = ImageTextMatchingLoss.build_batch(tokens, ids, mask, sim, sim.t(), generator=torch.Generator().manual_seed(1))
    assert batch.labels.tolist() == [1] * b + [0] * (2 * b)
    assert batch.image_tokens.shape == (3 * b, 2, 3) and batch.input_ids.shape == (3 * b, 4)
    img_id, txt_id = batch.image_tokens[:, 0, 0].long(), batch.input_ids[:, 0]
    assert torch.equal(img_id[:b], txt_id[:b])  # positives
    assert torch.equal(txt_id[b:2 * b], ids[:, 0])  # each text with a negative image
    assert torch.equal(img_id[2 * b:], ids[:, 0])  # each image with a negative text
    assert (img_id[b:] != txt_id[b:]).all()
    # the second block's images are the drawn negatives
    assert torch.equal(img_id[b:2 * b], ids[batch.negative_image, 0])


def test_hard_negatives_never_positive_or_same_product_and_follow_the_softmax():
    ids = torch.tensor([0, 0, 1, 1, 2, 3])
    b = len(ids)
    sim = torch.randn(b, b, generator=torch.Generator().manual_seed(4)) * 2
    w = negative_weights(sim, ids)
    same = ids[:, None] == ids[None, :]
    assert (w[same] == 0).all()
    torch.testing.assert_close(w.sum(1), torch.ones(b))
    rng = torch.Generator().manual_seed(5)
    draws = torch.stack([sample_negatives(sim, ids, rng) for _ in range(3000)])  # (3000, B)
    assert not same[torch.arange(b).expand_as(draws), draws].any()
    freq = torch.stack([(draws == j).float().mean(0) for j in range(b)], dim=1)  # (B, B)
    assert (freq - w).abs().max() < 0.04
    # without product ids only the item itself is excluded
    plain = torch.stack([sample_negatives(sim, None, rng) for _ in range(300)])
    assert (plain != torch.arange(b)).all()


def test_hard_negatives_are_deterministic_with_a_generator():
    b = 8
    sim = torch.randn(b, b, generator=torch.Generator().manual_seed(6))
    tokens, ids, mask = identity_batch(list(range(b)))
    build = lambda seed: ImageTextMatchingLoss.build_batch(  # noqa: E731
        tokens, ids, mask, sim, sim.t(), generator=torch.Generator().manual_seed(seed))
    a, c = build(0), build(0)
    assert torch.equal(a.negative_image, c.negative_image) and torch.equal(a.negative_text, c.negative_text)
    assert any(not torch.equal(build(s).negative_image, a.negative_image) for s in range(1, 6))


def test_itm_same_product_is_never_a_negative_and_a_batch_of_one_product_is_an_error():
    tokens, ids, mask = identity_batch([0, 1, 2])
    sim = torch.zeros(3, 3)
    batch = ImageTextMatchingLoss.build_batch(tokens, ids, mask, sim, product_ids=torch.tensor([5, 5, 6]),
                                              generator=torch.Generator().manual_seed(0))
    assert batch.labels.tolist() == [1, 1, 1, 0, 0, 0, 0, 0, 0]
    assert batch.negative_image.tolist() == [2, 2, 0] or batch.negative_image.tolist() == [2, 2, 1]
    assert batch.negative_text[:2].tolist() == [2, 2]
    with pytest.raises(ValueError, match="same product id"):
        ImageTextMatchingLoss.build_batch(tokens, ids, mask, sim, product_ids=torch.tensor([5, 5, 5]))
    with pytest.raises(ValueError, match="batch size 1"):
        ImageTextMatchingLoss()(oracle, tokens[:1], ids[:1], mask[:1], sim[:1, :1], sim[:1, :1])
    with pytest.raises(ValueError, match=r"\(3, 3\)"):
        ImageTextMatchingLoss.build_batch(tokens, ids, mask, torch.zeros(2, 2))


def test_itm_with_the_qformer_head_trains_it():
    from unifashion.models.qformer import QFormerConfig

    torch.manual_seed(0)
    qformer = QFormer.from_config(QFormerConfig(
        init="random", num_query_tokens=4, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=37, encoder_hidden_size=24, embed_dim=16, vocab_size=99, max_position_embeddings=20))
    tokens = torch.randn(3, 5, 24)
    ids = torch.randint(1, 99, (3, 6))
    mask = torch.ones_like(ids)
    sim = QFormer.similarity(qformer.image_features(tokens).image_embeds,
                             qformer.text_features(ids, mask).text_embeds).detach() / 0.07
    loss = ImageTextMatchingLoss()(qformer.itm_logits, tokens, ids, mask, sim, sim.t())["itm_loss"]
    loss.backward()
    assert torch.isfinite(loss) and qformer.itm_head.weight.grad.abs().sum() > 0


# ================================================================================================ ITG
def test_itg_uniform_logits_give_log_vocab():
    v = 50
    labels = torch.randint(0, v, (2, 7))
    labels[:, :3] = IGNORE_INDEX
    assert abs(CaptionLoss()(torch.zeros(2, 7, v), labels)["itg_loss"].item() - math.log(v)) < 1e-6


def onehot_logits(tokens: torch.Tensor, v: int) -> torch.Tensor:
    return F.one_hot(tokens.clamp_min(0), v).float() * 30.0  # (B, T, V)


def test_itg_shift_convention_only_the_shifted_alignment_is_zero():
    v = 20
    labels = torch.tensor([[IGNORE_INDEX, IGNORE_INDEX, 4, 7, 9, 2], [IGNORE_INDEX, 5, 5, 1, 3, 8]])
    # logits at t predict the label at t + 1
    next_tokens = torch.cat([labels[:, 1:], torch.zeros(2, 1, dtype=torch.long)], dim=1)
    assert CaptionLoss()(onehot_logits(next_tokens, v), labels)["itg_loss"] < 1e-10
    # logits that predict the label at their own position (no shift) are wrong
    assert CaptionLoss()(onehot_logits(labels, v), labels)["itg_loss"] > 10


def test_itg_ignores_minus_100_and_averages_over_supervised_tokens():
    v = 11
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 8, v, generator=g)
    labels = torch.randint(0, v, (3, 8), generator=g)
    labels[0, :5] = IGNORE_INDEX
    labels[2, 6:] = IGNORE_INDEX  # right padding
    loss = CaptionLoss()(logits, labels)["itg_loss"]
    ref = F.cross_entropy(logits[:, :-1].reshape(-1, v), labels[:, 1:].reshape(-1), ignore_index=-100)
    torch.testing.assert_close(loss, ref)
    # logits whose next label is -100 do not matter
    changed = logits.clone()
    changed[0, :4] = 1e3 * torch.randn(4, v, generator=g)
    changed[:, -1] = 1e3
    torch.testing.assert_close(CaptionLoss()(changed, labels)["itg_loss"], loss)


def test_itg_nothing_supervised_is_a_zero_with_a_graph_and_bad_shapes_are_errors():
    logits = torch.randn(2, 4, 5, requires_grad=True)
    loss = CaptionLoss()(logits, torch.full((2, 4), IGNORE_INDEX))["itg_loss"]
    loss.backward()
    assert loss.item() == 0.0 and logits.grad is not None
    with pytest.raises(ValueError, match=r"\(B, T, V\)"):
        CaptionLoss()(logits, torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="token ids"):
        CaptionLoss()(logits, torch.full((2, 4), 5))


# ================================================================================================ q2I
@pytest.fixture(scope="module")
def tiny_generator_config():
    from unifashion.models.generator import GeneratorConfig

    return GeneratorConfig(
        image_size=16, num_queries=4, vae_block_out_channels=(8, 16), latent_channels=4,
        unet_block_out_channels=(16, 32), unet_attention=(False, True), layers_per_block=1, norm_num_groups=8,
        cross_attention_dim=16, attention_head_dim=2, condition_dropout=0.0,
    )


def make_generator(config, **changes):
    from unifashion.models.generator import Generator

    torch.manual_seed(0)
    return Generator(dataclasses.replace(config, **changes))


def recovered_noise(g, latents, noisy, t):
    """Invert add_noise: eps = (x_t - sqrt(abar_t) x_0) / sqrt(1 - abar_t)."""
    abar = g.noise_scheduler.alphas_cumprod[t].to(latents.dtype)[:, None, None, None]
    return (noisy - abar.sqrt() * latents) / (1 - abar).sqrt()


def oracle_unet(g, latents, kind, seen):
    def forward(noisy, t, condition, extra_channels=None):
        seen.append((noisy, t, condition))
        eps = recovered_noise(g, latents, noisy, t)
        if kind == "epsilon":
            return eps
        if kind == "v_prediction":
            return g.noise_scheduler.get_velocity(latents, eps, t)
        return latents
    return forward


@pytest.mark.parametrize("kind", ["epsilon", "v_prediction", "sample"])
def test_q2i_a_model_that_knows_the_answer_has_zero_loss(tiny_generator_config, kind):
    g = make_generator(tiny_generator_config, prediction_type=kind)
    latents = torch.randn(3, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    seen = []
    g.forward = oracle_unet(g, latents, kind, seen)
    loss = NoisePredictionLoss()(g, latents, torch.randn(3, 4, 16), rng=torch.Generator().manual_seed(2))["q2i_loss"]
    assert loss < 1e-8
    (_, t, _), = seen
    assert t.dtype == torch.long and t.shape == (3,) and (0 <= t).all() and (t < 1000).all()


def test_q2i_v_prediction_target_is_the_schedulers_velocity(tiny_generator_config):
    g = make_generator(tiny_generator_config, prediction_type="v_prediction")
    latents = torch.randn(4, 4, 8, 8, generator=torch.Generator().manual_seed(3))
    noise = torch.randn(4, 4, 8, 8, generator=torch.Generator().manual_seed(4))
    t = torch.tensor([0, 10, 500, 999])
    target = diffusion_target(g.noise_scheduler, latents, noise, t)
    torch.testing.assert_close(target, g.noise_scheduler.get_velocity(latents, noise, t))
    assert not torch.allclose(target, noise)
    # a model that predicts zeros pays exactly mean(v^2) for the noise and timesteps it was given
    seen = []
    g.forward = lambda noisy, t, c, e=None: seen.append((noisy, t)) or torch.zeros_like(noisy)
    loss = NoisePredictionLoss()(g, latents, torch.randn(4, 4, 16), rng=torch.Generator().manual_seed(5))["q2i_loss"]
    (noisy, ts), = seen
    v = g.noise_scheduler.get_velocity(latents, recovered_noise(g, latents, noisy, ts), ts)
    torch.testing.assert_close(loss, v.pow(2).mean(), rtol=1e-4, atol=1e-6)


def test_q2i_uses_the_generators_one_scheduler(tiny_generator_config, monkeypatch):
    g = make_generator(tiny_generator_config)
    calls = []
    original = g.noise_scheduler.add_noise
    monkeypatch.setattr(g.noise_scheduler, "add_noise", lambda *a: calls.append(1) or original(*a))
    NoisePredictionLoss()(g, torch.randn(2, 4, 8, 8), torch.randn(2, 4, 16))
    assert calls == [1]


def capture_condition(g):
    seen = []
    g.unet.register_forward_pre_hook(lambda m, args, kwargs: seen.append(kwargs["encoder_hidden_states"]),
                                     with_kwargs=True)
    return seen


def test_q2i_condition_dropout_reaches_the_unet(tiny_generator_config):
    cond = torch.randn(2, 4, 16)
    g = make_generator(tiny_generator_config, condition_dropout=1.0)
    seen = capture_condition(g)
    NoisePredictionLoss()(g, torch.randn(2, 4, 8, 8), cond)
    torch.testing.assert_close(seen[0], g.null_condition.expand(2, -1, -1))
    g = make_generator(tiny_generator_config, condition_dropout=0.0)
    seen = capture_condition(g)
    NoisePredictionLoss()(g, torch.randn(2, 4, 8, 8), cond)
    torch.testing.assert_close(seen[0], cond)


def test_q2i_real_unet_is_reproducible_and_trains_unet_and_condition(tiny_generator_config):
    g = make_generator(tiny_generator_config)
    latents = torch.randn(2, 4, 8, 8)
    cond = torch.randn(2, 4, 16, requires_grad=True)
    run = lambda: NoisePredictionLoss()(g, latents, cond, rng=torch.Generator().manual_seed(7))["q2i_loss"]  # noqa: E731
    loss = run()
    torch.testing.assert_close(run(), loss)
    loss.backward()
    assert torch.isfinite(loss) and cond.grad.abs().sum() > 0
    assert g.unet.conv_in.weight.grad.abs().sum() > 0


# ================================================================================================ CIR
CIR = ComposedRetrievalLoss()


def test_cir_aligned_is_zero_and_all_equal_is_log_batch():
    images, texts = aligned(4)
    out = CIR(texts, images, texts, torch.tensor(0.001))
    assert set(out) == {"cir_image_loss", "cir_caption_loss"}
    assert out["cir_image_loss"] < 1e-6 and out["cir_caption_loss"] < 1e-6
    e = random_unit(8, seed=11)
    out = CIR(e.expand(5, 8), e.expand(5, 3, 8), e.expand(5, 8), torch.tensor(0.07))
    for v in out.values():
        assert abs(v.item() - math.log(5)) < 1e-6


def test_cir_terms_are_one_directional_infonce():
    b, tau = 5, 0.1
    q, img, cap = random_unit(b, 8, seed=12), random_unit(b, 3, 8, seed=13), random_unit(b, 8, seed=14)
    out = CIR(q, img, cap, tau)
    target = torch.arange(b)
    torch.testing.assert_close(out["cir_image_loss"], F.cross_entropy(QFormer.similarity(img, q).t() / tau, target))
    torch.testing.assert_close(out["cir_caption_loss"], F.cross_entropy(q @ cap.t() / tau, target))
    # not the symmetric loss
    assert not torch.allclose(out["cir_caption_loss"], ITC(cap[:, None], q, tau)["itc_loss"])
    # same-product targets are all positives
    ids = torch.tensor([0, 0, 1, 2, 3])
    logp = torch.log_softmax(q @ cap.t() / tau, dim=1)
    ref = -(logp[0, :2].mean() + logp[1, :2].mean() + logp[2, 2] + logp[3, 3] + logp[4, 4]) / b
    torch.testing.assert_close(CIR(q, img, cap, tau, target_ids=ids)["cir_caption_loss"], ref)


def test_cir_itm_term_with_all_inputs_only():
    b = 4
    images, texts = aligned(b)
    tokens, ids, mask = identity_batch(list(range(b)))
    out = CIR(texts, images, texts, 0.001, itm_logits_fn=oracle, target_image_tokens=tokens, mod_ids=ids,
              mod_mask=mask, generator=torch.Generator().manual_seed(0))
    assert set(out) == {"cir_image_loss", "cir_caption_loss", "cir_itm_loss"}
    assert out["cir_itm_loss"] < 1e-8
    with pytest.raises(ValueError, match="needs all of"):
        CIR(texts, images, texts, 0.07, itm_logits_fn=oracle, target_image_tokens=tokens)


def test_cir_gradients_reach_query_targets_and_captions():
    q = random_unit(4, 8, seed=15).requires_grad_()
    img = random_unit(4, 3, 8, seed=16).requires_grad_()
    cap = random_unit(4, 8, seed=17).requires_grad_()
    sum(CIR(q, img, cap, torch.tensor(0.07)).values()).backward()
    assert all(t.grad is not None and t.grad.abs().sum() > 0 for t in (q, img, cap))
