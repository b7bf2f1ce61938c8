"""The diffusion module: shapes, one scheduler config, CFG, condition dropout, sampling, learning,
save/load round trips, the Stable-Diffusion-layout loader with a widened conv_in, bad input."""
import dataclasses

import pytest
import torch
from diffusers import AutoencoderKL, PNDMScheduler, UNet2DConditionModel

from unifashion.config import from_dict
from unifashion.errors import ConfigError, DataError
from unifashion.models.generator import (CONFIG_NAME, MAX_GUIDANCE_SCALE, MAX_SAMPLING_STEPS, Generator, GeneratorConfig,
                                         check_sampling, widen_conv_in)

# 16 px images -> 8x8x4 latents; UNet 8 -> 4; condition 4 tokens of width 16.
TINY = GeneratorConfig(
    image_size=16, num_queries=4, vae_block_out_channels=(8, 16), latent_channels=4,
    unet_block_out_channels=(16, 32), unet_attention=(False, True), layers_per_block=1, norm_num_groups=8,
    cross_attention_dim=16, attention_head_dim=2,
)
B, Q, D, C = 2, TINY.num_queries, TINY.cross_attention_dim, TINY.latent_channels
H, h = TINY.image_size, TINY.latent_size


def make(config: GeneratorConfig = TINY, seed: int = 0) -> Generator:
    torch.manual_seed(seed)
    return Generator(config).eval()


def cond(b: int = B, seed: int = 1) -> torch.Tensor:
    return torch.randn(b, Q, D, generator=torch.Generator().manual_seed(seed))


def inpaint_inputs(g: Generator, b: int = B, seed: int = 2) -> torch.Tensor:
    r = torch.Generator().manual_seed(seed)
    person = torch.rand(b, 3, H, H, generator=r) * 2 - 1
    mask = (torch.rand(b, 1, H, H, generator=r) > 0.5).float()
    sketch = torch.rand(b, 1, H, H, generator=r)
    pose = torch.rand(b, 3, H, H, generator=r)
    return g.conditioning_channels(person * (1 - mask), mask, sketch, pose)


class UNetCalls:
    def __init__(self, unet):
        self.n = 0
        self.handle = unet.register_forward_hook(self)

    def __call__(self, *_):
        self.n += 1


# ------------------------------------------------------------------------------------------ shapes
def test_shapes():
    g = make()
    x = torch.rand(B, 3, H, H) * 2 - 1
    z = g.encode_images(x)
    assert z.shape == (B, C, h, h)
    assert g.decode_latents(z).shape == (B, 3, H, H)
    t = torch.randint(0, 1000, (B,))
    assert g(z, t, cond()).shape == z.shape
    assert g.null_condition.shape == (1, Q, D)
    assert not any(p.requires_grad for p in g.vae.parameters())  # frozen for UNet training
    assert all(p.requires_grad for p in g.unet.parameters())


def test_inpainting_forward_takes_extra_channels():
    g = make(dataclasses.replace(TINY, inpainting=True))
    assert g.unet.config.in_channels == 4 + 9 and g.unet.conv_in.in_channels == 13
    extra = inpaint_inputs(g)
    assert extra.shape == (B, 9, h, h)
    # the mask is resized nearest: still binary at latent size
    assert set(extra[:, 4].unique().tolist()) <= {0.0, 1.0}
    z = torch.randn(B, C, h, h)
    out = g(z, torch.tensor([10, 500]), cond(), extra)
    assert out.shape == z.shape
    # the extra channels matter (conv_in of a scratch model is random, not zero, on them)
    assert not torch.allclose(out, g(z, torch.tensor([10, 500]), cond(), torch.zeros_like(extra)))


# ------------------------------------------------------------------------------------------ scheduler
@pytest.mark.parametrize("name", ["plms", "dpm++"])
def test_samplers_share_the_training_scheduler_config(name):
    g = make()
    s = g.make_sampler(name)
    assert s.config.num_train_timesteps == g.noise_scheduler.config.num_train_timesteps
    assert torch.equal(s.betas, g.noise_scheduler.betas)
    assert torch.equal(s.alphas_cumprod, g.noise_scheduler.alphas_cumprod)
    assert s.config.timestep_spacing == g.noise_scheduler.config.timestep_spacing == "trailing"
    if name == "plms":
        assert s.config.skip_prk_steps is True
    else:
        assert s.config.algorithm_type == "dpmsolver++"


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # diffusers 0.42 + numpy 2
def test_samplers_visit_the_same_timesteps():
    g = make()
    for steps in (2, 25):
        plms, dpm = g.make_sampler("plms"), g.make_sampler("dpm++")
        plms.set_timesteps(steps)
        dpm.set_timesteps(steps)
        assert dpm.timesteps[0] == plms.timesteps[0] == 999  # both start from pure noise
        assert sorted(set(plms.timesteps.tolist())) == sorted(dpm.timesteps.tolist())


# ------------------------------------------------------------------------------------------ CFG
def test_guidance_scale_one_is_conditional_and_null_row_is_used():
    g = make()
    z, t, c = torch.randn(B, C, h, h), torch.tensor(300), cond()
    with torch.no_grad():
        conditional = g(z, t, c)
        assert torch.equal(g.guided_prediction(z, t, c, guidance_scale=1.0), conditional)
        unconditional = g(z, t, g.null_condition.expand(B, -1, -1))
        guided = g.guided_prediction(z, t, c, guidance_scale=3.0)
        torch.testing.assert_close(guided, unconditional + 3.0 * (conditional - unconditional), atol=1e-5, rtol=1e-5)
        # change the null condition -> the guided prediction changes
        g.null_condition.add_(1.0)
        assert not torch.allclose(g.guided_prediction(z, t, c, guidance_scale=3.0), guided)


def test_condition_dropout():
    c = cond(b=8)
    g1 = make(dataclasses.replace(TINY, condition_dropout=1.0))
    assert torch.equal(g1.drop_condition(c), g1.null_condition.expand(8, -1, -1))
    g0 = make(dataclasses.replace(TINY, condition_dropout=0.0))
    assert torch.equal(g0.drop_condition(c), c)
    g = make(dataclasses.replace(TINY, condition_dropout=0.5))
    out = g.drop_condition(cond(b=64), generator=torch.Generator().manual_seed(0))
    dropped = (out == g.null_condition).all(dim=(1, 2))
    assert 0 < int(dropped.sum()) < 64
    # gradients reach the null condition through the dropped rows
    out.sum().backward()
    assert g.null_condition.grad is not None and g.null_condition.grad.abs().sum() > 0


# ------------------------------------------------------------------------------------------ sampling
@pytest.mark.parametrize("sampler,steps,calls", [("dpm++", 4, 4), ("plms", 4, 5), ("plms", 1, 1), ("dpm++", 1, 1)])
def test_sample_counts_deterministic_range(sampler, steps, calls):
    g = make()
    counter = UNetCalls(g.unet)
    seen = []
    a = g.sample(cond(), sampler=sampler, steps=steps, generator=torch.Generator().manual_seed(7),
                 progress=lambda i, n: seen.append((i, n)))
    # diffusers' PNDM with skip_prk_steps repeats its second timestep: steps + 1 calls (1 when steps=1)
    assert counter.n == calls
    assert seen == [(i, calls) for i in range(1, calls + 1)]
    b = g.sample(cond(), sampler=sampler, steps=steps, generator=torch.Generator().manual_seed(7))
    assert a.shape == (B, 3, H, H)
    assert torch.equal(a, b)
    assert a.min() >= 0 and a.max() <= 1
    c = g.sample(cond(), sampler=sampler, steps=steps, generator=torch.Generator().manual_seed(8))
    assert not torch.equal(a, c)


def test_sample_inpainting_and_given_latents():
    g = make(dataclasses.replace(TINY, inpainting=True))
    extra = inpaint_inputs(g)
    z = torch.randn(B, C, h, h)
    a = g.sample(cond(), extra_channels=extra, steps=2, latents=z)
    b = g.sample(cond(), extra_channels=extra, steps=2, latents=z.clone())
    assert a.shape == (B, 3, H, H) and torch.equal(a, b)


@pytest.mark.parametrize("sampler", ["dpm++", "plms"])
def test_sampling_keeps_the_kept_region(sampler):
    """keep_mask 1 everywhere: the result is the known latents decoded; 0 everywhere: as without keeping."""
    g = make(dataclasses.replace(TINY, inpainting=True))
    extra = inpaint_inputs(g)
    known = torch.randn(B, C, h, h, generator=torch.Generator().manual_seed(1))
    run = lambda mask: g.sample(cond(), extra_channels=extra, steps=3, sampler=sampler, keep_latents=known,
                                keep_mask=mask, generator=torch.Generator().manual_seed(7))
    decoded = (g.decode_latents(known) / 2 + 0.5).clamp(0, 1)
    torch.testing.assert_close(run(torch.ones(B, 1, h, h)), decoded)
    plain = g.sample(cond(), extra_channels=extra, steps=3, sampler=sampler, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(run(torch.zeros(B, 1, h, h)), plain)
    with pytest.raises(ValueError, match="together"):
        g.sample(cond(), extra_channels=extra, steps=1, keep_latents=known)


# ------------------------------------------------------------------------------------------ learning
def test_noise_prediction_loss_decreases():
    g = make(seed=3).train()
    r = torch.Generator().manual_seed(0)
    x0 = torch.randn(8, C, h, h, generator=r)
    c = torch.randn(8, Q, D, generator=r)
    eval_noise = torch.randn(8, C, h, h, generator=r)
    eval_t = torch.randint(0, 1000, (8,), generator=r)
    sched = g.noise_scheduler

    def eval_loss():
        with torch.no_grad():
            pred = g(sched.add_noise(x0, eval_noise, eval_t), eval_t, c)
            return float(((pred - eval_noise) ** 2).mean())

    before = eval_loss()
    opt = torch.optim.AdamW([p for p in g.parameters() if p.requires_grad], lr=2e-3)
    for _ in range(40):
        noise = torch.randn(x0.shape, generator=r)
        t = torch.randint(0, sched.config.num_train_timesteps, (8,), generator=r)
        pred = g(sched.add_noise(x0, noise, t), t, g.drop_condition(c, generator=r))
        loss = ((pred - noise) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = eval_loss()
    print(f"q2I-style MSE {before:.3f} -> {after:.3f}")
    assert after < 0.5 * before, (before, after)


# ------------------------------------------------------------------------------------------ persistence
@pytest.mark.parametrize("inpainting", [False, True])
def test_save_load_round_trip(tmp_path, inpainting):
    config = dataclasses.replace(TINY, inpainting=inpainting)
    g = make(config)
    g.calibrate_scaling_factor(torch.rand(4, 3, H, H) * 2 - 1)
    with torch.no_grad():
        g.null_condition.normal_()
    g.save_pretrained(tmp_path)
    for name in ("vae/diffusion_pytorch_model.safetensors", "unet/diffusion_pytorch_model.safetensors",
                 "scheduler/scheduler_config.json", "null_condition.safetensors", "generator_config.json"):
        assert (tmp_path / name).is_file(), name
    g2 = Generator.from_pretrained(tmp_path).eval()
    assert g2.config == g.config
    assert g2.vae.config.scaling_factor == g.vae.config.scaling_factor
    assert torch.equal(g2.null_condition, g.null_condition)
    public = lambda cfg: {k: v for k, v in cfg.items() if not k.startswith("_")}  # noqa: E731
    assert public(g2.noise_scheduler.config) == public(g.noise_scheduler.config)
    extra = inpaint_inputs(g) if inpainting else None
    z, t = torch.randn(B, C, h, h), torch.tensor([3, 900])
    with torch.no_grad():
        assert torch.equal(g(z, t, cond(), extra), g2(z, t, cond(), extra))
    kw = dict(extra_channels=extra, steps=3, sampler="plms")
    assert torch.equal(g.sample(cond(), generator=torch.Generator().manual_seed(5), **kw),
                       g2.sample(cond(), generator=torch.Generator().manual_seed(5), **kw))


def test_a_caller_that_keeps_the_config_saves_it_once(tmp_path):
    """UniFashion keeps the generator's config in its config.json: the generator folder then has none,
    and loading takes the caller's config; a folder that has one (older models) is read as before."""
    g = make(dataclasses.replace(TINY, pooled_condition=True))
    g.save_pretrained(tmp_path / "bare", write_config=False)
    assert not (tmp_path / "bare" / CONFIG_NAME).exists()
    with pytest.raises(ValueError, match="not a directory written by Generator.save_pretrained"):
        Generator.from_pretrained(tmp_path / "bare")
    assert Generator.from_pretrained(tmp_path / "bare", g.config).config == g.config
    g.save_pretrained(tmp_path / "full")
    assert Generator.from_pretrained(tmp_path / "full", TINY).config == g.config  # the folder's own config wins


def write_sd_like(directory, cross_attention_dim=24):
    """A tiny random model laid out like Stable Diffusion 1.4's diffusers directory."""
    torch.manual_seed(11)
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, block_out_channels=(16, 32),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        layers_per_block=1, norm_num_groups=8, cross_attention_dim=cross_attention_dim, attention_head_dim=2,
    )
    vae = AutoencoderKL(
        block_out_channels=(8, 16), down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4, norm_num_groups=8, sample_size=16,
    )
    sched = PNDMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000,
                          set_alpha_to_one=False, skip_prk_steps=True, steps_offset=1)
    unet.save_pretrained(directory / "unet")
    vae.save_pretrained(directory / "vae")
    sched.save_pretrained(directory / "scheduler")
    return unet.eval(), vae


def test_stable_diffusion_layout_loader(tmp_path):
    unet, vae = write_sd_like(tmp_path)
    g = Generator(GeneratorConfig(source="stable_diffusion", path=str(tmp_path), num_queries=4)).eval()
    assert g.config.cross_attention_dim == 24  # from the UNet config, not the dataclass default
    assert g.config.image_size == 16 and g.config.latent_size == 8
    assert g.vae.config.scaling_factor == pytest.approx(0.18215)
    assert torch.equal(g.noise_scheduler.betas, PNDMScheduler.from_pretrained(tmp_path / "scheduler").betas)
    z, t, c = torch.randn(B, 4, 8, 8), torch.tensor([1, 700]), torch.randn(B, 4, 24)
    with torch.no_grad():
        assert torch.equal(g(z, t, c), unet(z, t, encoder_hidden_states=c).sample)
    assert g.sample(c, steps=2).shape == (B, 3, 16, 16)
    with pytest.raises(ValueError, match="cross_attention_dim"):
        g(z, t, torch.randn(B, 4, 16))


def test_stable_diffusion_inpainting_widens_conv_in(tmp_path):
    unet, _ = write_sd_like(tmp_path)
    config = GeneratorConfig(source="stable_diffusion", path=str(tmp_path), num_queries=4, inpainting=True)
    g = Generator(config).eval()
    assert g.unet.config.in_channels == 13 and g.unet.conv_in.in_channels == 13
    w = g.unet.conv_in.weight
    assert torch.equal(w[:, :4], unet.conv_in.weight) and torch.equal(w[:, 4:], torch.zeros_like(w[:, 4:]))
    z, t, c = torch.randn(B, 4, 8, 8), torch.tensor([1, 700]), torch.randn(B, 4, 24)
    with torch.no_grad():
        original = unet(z, t, encoder_hidden_states=c).sample
        # zero-initialised weights on the new channels: at start the output ignores them entirely,
        # not only when they are zero (equal up to float summation order in the wider conv)
        for extra in (torch.zeros(B, 9, 8, 8), torch.randn(B, 9, 8, 8) * 5):
            torch.testing.assert_close(g(z, t, c, extra), original, atol=1e-5, rtol=1e-5)
    # the new width round-trips through save/load
    g.save_pretrained(tmp_path / "saved")
    g2 = Generator.from_pretrained(tmp_path / "saved").eval()
    assert g2.unet.config.in_channels == 13 and g2.config.source == "stable_diffusion"
    extra = torch.randn(B, 9, 8, 8)
    with torch.no_grad():
        assert torch.equal(g(z, t, c, extra), g2(z, t, c, extra))


def test_widen_conv_in_refuses_to_narrow():
    torch.manual_seed(0)
    g = make()
    with pytest.raises(ValueError, match="narrow"):
        widen_conv_in(g.unet, 2)


# ------------------------------------------------------------------------------------------ bad input
def test_bad_input_is_one_clear_value_error():
    g = make()
    z, t = torch.randn(B, C, h, h), torch.tensor(5)
    cases = [
        (lambda: g(z, t, torch.randn(B, Q, D + 1)), "cross_attention_dim"),
        (lambda: g.sample(torch.randn(B, Q, D + 1), steps=2), "cross_attention_dim"),
        (lambda: g.sample(cond(), sampler="ddim", steps=2), "sampler"),
        (lambda: g(z, t, cond(), torch.zeros(B, 9, h, h)), "not an inpainting"),
        (lambda: g.sample(cond(), steps=1, latents=torch.randn(B, C, h + 1, h)), "latents"),
    ]
    gi = make(dataclasses.replace(TINY, inpainting=True))
    cases += [
        (lambda: gi(z, t, cond()), "extra_channels"),
        (lambda: gi.sample(cond(), steps=2), "extra_channels"),
        (lambda: gi(z, t, cond(), torch.zeros(B, 5, h, h)), "extra_channels"),
    ]
    for fn, pattern in cases:
        with pytest.raises(ValueError, match=pattern) as info:
            fn()
        assert "\n" not in str(info.value)


@pytest.mark.parametrize("steps, scale, named", [
    (0, 3.0, "steps"), (MAX_SAMPLING_STEPS + 1, 3.0, "steps"), (True, 3.0, "steps"), (2.5, 3.0, "steps"),
    (2, float("inf"), "guidance scale"), (2, 1e30, "guidance scale"), (2, float("nan"), "guidance scale"),
    (2, -0.5, "guidance scale"), (2, MAX_GUIDANCE_SCALE + 0.1, "guidance scale"), (2, "3", "guidance scale"),
])
def test_sampling_settings_out_of_range_are_refused_before_any_step(steps, scale, named):
    g = make()
    calls = UNetCalls(g.unet)
    with pytest.raises(DataError, match=named):
        g.sample(cond(), steps=steps, guidance_scale=scale)
    assert calls.n == 0
    check_sampling(MAX_SAMPLING_STEPS, MAX_GUIDANCE_SCALE)  # the bounds themselves are allowed
    check_sampling(1, 0)
    with pytest.raises(DataError, match="from 1 to 10"):
        check_sampling(11, 1.0, max_steps=10)


def test_bad_config():
    with pytest.raises(ValueError, match="path"):
        GeneratorConfig(source="stable_diffusion")
    with pytest.raises(ValueError, match="divisible"):
        GeneratorConfig(image_size=60)
    with pytest.raises(ValueError, match="one flag per UNet block"):
        GeneratorConfig(unet_attention=(True,))
    with pytest.raises(ConfigError, match="unknown key 'colour' for GeneratorConfig"):
        from_dict(GeneratorConfig, {"image_size": 64, "colour": "red"})
    with pytest.raises(ValueError, match="condition_dropout"):
        GeneratorConfig(condition_dropout=1.5)
    with pytest.raises(ValueError, match="diffusers directory"):
        Generator(GeneratorConfig(source="stable_diffusion", path="/nonexistent"))


def test_pooled_condition_enters_the_timestep_embedding_and_round_trips(tmp_path):
    """With pooled_condition the condition's mean is a projection class embedding: a condition whose
    tokens are permuted keeps it, and zeroing the UNet's cross-attention still leaves the output
    dependent on the condition (through the pooled path alone)."""
    config = dataclasses.replace(TINY, pooled_condition=True)
    g = make(config)
    assert g.unet.config.class_embed_type == "projection"
    z, t = torch.randn(B, C, h, h), torch.tensor([10, 500])
    for m in g.unet.modules():  # cut cross-attention: only the pooled path reads the condition
        if hasattr(m, "attn2"):
            m.attn2.to_out[0].weight.data.zero_()
            m.attn2.to_out[0].bias.data.zero_()
    with torch.no_grad():
        a, b = g(z, t, cond(seed=1)), g(z, t, cond(seed=3))
        assert not torch.allclose(a, b)
    g.save_pretrained(tmp_path / "g")
    loaded = Generator.from_pretrained(tmp_path / "g")
    assert loaded.config.pooled_condition
    with torch.no_grad():
        assert torch.equal(loaded(z, t, cond(seed=1)), a)


def test_pooled_condition_needs_the_scratch_unet():
    with pytest.raises(ValueError, match="pooled_condition"):
        GeneratorConfig(source="stable_diffusion", path="/sd", pooled_condition=True)
