"""Each training phase on the tiny model: finite losses, and only the phase's own parameters move."""
import pytest
import torch

from unifashion.data.formats import catalog, fashioniq
from unifashion.data.training_sets import ComposedTriplets, ImageTextPairs, collate_items
from unifashion.models.unified import UniFashion
from unifashion.training.phases import (AutoencoderPretraining, ComposedFinetuning, GarmentGeneration,
                                        GenerativeAdaptation, QFormerPretraining)

PARTS = ("qformer", "adapters", "captioner", "generator.unet", "generator.vae", "image_encoder")


def snapshot(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def moved_parts(model, before):
    moved = set()
    for n, p in model.named_parameters():
        if not torch.equal(before[n], p.detach()):
            moved.add(next((part for part in PARTS if n.startswith(part)), n))
    return moved


@pytest.fixture(scope="module")
def batches(small_world):
    root = small_world[0]
    pairs = ImageTextPairs(catalog.load(root / "catalog", split="train"))
    seen, items = set(), []
    for i in range(len(pairs)):  # distinct products, so ITM has negatives
        it = pairs[i]
        if it.product_id not in seen:
            seen.add(it.product_id)
            items.append(it)
        if len(items) == 4:
            break
    triplets = ComposedTriplets(fashioniq.load(root / "fashioniq", "train"),
                                fashioniq.load_image_captions(root / "fashioniq"))
    return collate_items(items), collate_items([triplets[4 * i] for i in range(4)])


@pytest.mark.parametrize("phase, data, expected_losses, expected_parts", [
    (AutoencoderPretraining(), 0, {"recon_loss", "kl_loss"}, {"generator.vae"}),
    (QFormerPretraining(), 0, {"itc_loss", "itm_loss"}, {"qformer", "temperature"}),
    (GenerativeAdaptation(), 0, {"itg_loss", "q2i_loss"}, {"adapters", "captioner", "generator.unet",
                                                          "generator.null_condition"}),
    (ComposedFinetuning(), 1, {"cir_image_loss", "cir_caption_loss", "cir_itm_loss", "itg_loss", "q2i_loss"},
     {"qformer", "temperature"}),
])
def test_phase_step_trains_only_its_parameters(batches, phase, data, expected_losses, expected_parts):
    torch.manual_seed(0)
    model = UniFashion.from_config("tiny").train()
    groups = phase.parameter_groups(model)
    trainable = {id(p) for g in groups for p in g["params"]}
    assert all(p.requires_grad == (id(p) in trainable) for p in model.parameters())
    before = snapshot(model)
    losses = phase.losses(model, batches[data])
    assert set(losses) == expected_losses
    assert all(torch.isfinite(v) and v.ndim == 0 for v in losses.values())
    total = sum(phase.loss_weights.get(k, 1.0) * v for k, v in losses.items())
    optimizer = torch.optim.SGD(groups, lr=1e-2)
    total.backward()
    optimizer.step()
    moved = moved_parts(model, before)
    # the learned null condition only gets a gradient when condition dropout picked a row
    assert moved - {"generator.null_condition"} == expected_parts - {"generator.null_condition"}, moved


def test_zero_weighted_terms_are_not_computed(batches):
    model = UniFashion.from_config("tiny").train()
    phase = QFormerPretraining(itm_weight=0.0)
    phase.parameter_groups(model)
    assert set(phase.losses(model, batches[0])) == {"itc_loss"}
    phase = ComposedFinetuning(cir_itm_weight=0.0, itg_weight=0.0, q2i_weight=0.0)
    phase.parameter_groups(model)
    assert set(phase.losses(model, batches[1])) == {"cir_image_loss", "cir_caption_loss"}


def test_generative_adaptation_can_train_the_diffusion_alone(batches):
    model = UniFashion.from_config("tiny").train()
    phase = GenerativeAdaptation(train_llm=False)
    phase.parameter_groups(model)
    assert set(phase.losses(model, batches[0])) == {"q2i_loss"}
    assert phase.loss_weights["itg_loss"] == 0.0 and phase.loss_weights["q2i_loss"] == 1.0


def test_q2i_text_condition_fraction_conditions_on_the_words(batches):
    """With fraction 1 the UNet's condition is the caption composed with a blank canvas (what
    `generate(texts=...)` feeds): other words give another loss. With fraction 0 words do not matter."""
    model = UniFashion.from_config("tiny").train()
    pairs = batches[0]
    reworded = {**pairs, "text": ["a bright yellow scarf"] * len(pairs["text"])}

    def q2i(fraction, batch):
        phase = GenerativeAdaptation(train_llm=False, text_condition_fraction=fraction)
        phase.parameter_groups(model)
        torch.manual_seed(0)  # same noise, timesteps and condition dropout
        return phase.losses(model, batch)["q2i_loss"].item()

    assert q2i(0.0, pairs) == q2i(0.0, reworded)
    assert q2i(1.0, pairs) != q2i(1.0, reworded)
    assert q2i(1.0, pairs) != q2i(0.0, pairs)
    for train_llm in (True, False):  # half worded, half imaged, with and without ITG
        phase = GenerativeAdaptation(train_llm=train_llm, text_condition_fraction=0.5)
        phase.parameter_groups(model)
        terms = phase.losses(model, pairs)
        assert set(terms) == ({"itg_loss", "q2i_loss"} if train_llm else {"q2i_loss"})
        assert all(torch.isfinite(v) for v in terms.values())


@pytest.mark.parametrize("fraction", [-0.1, 1.5])
def test_text_condition_fraction_is_checked(fraction):
    from unifashion.errors import ConfigError

    with pytest.raises(ConfigError, match="text_condition_fraction"):
        GenerativeAdaptation(text_condition_fraction=fraction)


def test_with_settings_changes_typed_settings_and_refuses_the_rest():
    from unifashion.errors import ConfigError
    from unifashion.training.phases import QFormerPretraining, with_settings

    phase = with_settings(GenerativeAdaptation(), {"train_diffusion": False, "llm_lr": 1, "adapter_lr": "1e-3"})
    assert phase.train_diffusion is False and phase.llm_lr == 1.0 and isinstance(phase.llm_lr, float)
    assert phase.adapter_lr == 1e-3
    with pytest.raises(ConfigError, match="llm_lr='fast': expected a float"):
        with_settings(GenerativeAdaptation(), {"llm_lr": "fast"})
    assert phase.name == "phase1b" and phase.loss_weights["q2i_loss"] == 0.0
    with pytest.raises(ConfigError, match="'itm_weight' is not a phase1b setting"):
        with_settings(GenerativeAdaptation(), {"itm_weight": 0.0})
    with pytest.raises(ConfigError, match="train_llm='no': expected a bool"):
        with_settings(GenerativeAdaptation(), {"train_llm": "no"})
    with pytest.raises(ConfigError, match="'name' is not"):
        with_settings(QFormerPretraining(), {"name": "other"})
    with pytest.raises(ConfigError, match="text_condition_fraction"):  # the phase's own checks still run
        with_settings(GenerativeAdaptation(), {"text_condition_fraction": 2.0})


def test_garment_generation_trains_the_inpainting_unet_on_tryon_samples(small_world):
    from dataclasses import replace

    from unifashion.data.formats import vitonhd
    from unifashion.data.training_sets import TryOnSamples
    from unifashion.errors import ConfigError, DataError

    samples = TryOnSamples(vitonhd.load(small_world[0] / "vitonhd", "train", paired=True))
    batch = collate_items([samples[i] for i in range(3)])
    torch.manual_seed(0)
    model = UniFashion.from_config("tiny").train()
    phase = GarmentGeneration()
    with pytest.raises(ConfigError, match="inpainting"):
        phase.parameter_groups(model)
    # switching to the inpainting generator keeps what the UNet does: the new channels start at zero weight
    g = model.generator
    latents = torch.randn(2, g.config.latent_channels, g.config.latent_size, g.config.latent_size)
    condition = torch.randn(2, g.config.num_queries, g.config.cross_attention_dim)
    with torch.no_grad():
        plain = g(latents, torch.tensor([10, 500]), condition)
        model.make_generator_inpainting()
        extra = torch.randn(2, g.config.extra_channels, g.config.latent_size, g.config.latent_size)
        assert torch.allclose(g(latents, torch.tensor([10, 500]), condition, extra), plain, atol=1e-5)
    assert model.config.generator.inpainting and g.unet.config.in_channels == 2 * g.config.latent_channels + 5

    groups = phase.parameter_groups(model)
    before = snapshot(model)
    losses = phase.losses(model, batch)
    assert set(losses) == {"q2i_loss"} and torch.isfinite(losses["q2i_loss"])
    losses["q2i_loss"].backward()
    torch.optim.SGD(groups, lr=1e-2).step()
    assert moved_parts(model, before) - {"generator.null_condition"} == {"adapters", "generator.unet"}
    assert all(not n.startswith("adapters.to_llm") for n, p in model.named_parameters()
               if not torch.equal(before[n], p.detach()))

    # the condition: the garment composed with its caption (try-on), or the caption alone (design)
    model.eval()  # no dropout: the same inputs give the same queries
    first = [s.sample for s in (samples[0], samples[1])]
    assert all(s.caption for s in first)
    recaptioned = [replace(s, caption="a plain black coat") for s in first]
    tryon = model.tryon_condition_queries(first)
    assert tryon.shape == (2, model.config.qformer.num_query_tokens, model.config.qformer.hidden_size)
    assert not torch.allclose(tryon, model.tryon_condition_queries(recaptioned))
    design = model.tryon_condition_queries(first, garment_image=False)
    assert torch.allclose(design, model.condition_queries(texts=[s.caption for s in first]), atol=1e-6)
    mixed = [first[0], replace(first[1], caption=None)]  # a sample without a caption: its garment alone
    queries = model.tryon_condition_queries(mixed)
    assert torch.allclose(queries[0], tryon[0], atol=1e-6)
    assert torch.allclose(queries[1], model.condition_queries([first[1].garment.load()])[0], atol=1e-6)
    with pytest.raises(DataError, match="needs a caption"):
        model.tryon_condition_queries(mixed, garment_image=False)


def test_phase1b_step_reads_the_frozen_qformer_and_vae_once_per_image(batches):
    """Phase 1b freezes the Q-Former and the VAE: a second step on the same images calls neither, and
    its loss equals the loss of a model that computes them fresh (cache cleared)."""
    torch.manual_seed(0)
    model = UniFashion.from_config("tiny").train()
    phase = GenerativeAdaptation()
    phase.parameter_groups(model)
    calls = {"qformer": 0, "vae": 0}
    hooks = [model.qformer.qformer.register_forward_hook(lambda *a: calls.__setitem__("qformer", calls["qformer"] + 1)),
             model.generator.vae.encoder.register_forward_hook(lambda *a: calls.__setitem__("vae", calls["vae"] + 1))]

    def step():
        torch.manual_seed(1)  # the same noise, timesteps and condition dropout
        return {k: v.item() for k, v in phase.losses(model, batches[0]).items()}

    first = step()
    assert calls["qformer"] > 0 and calls["vae"] > 0
    calls.update(qformer=0, vae=0)
    second = step()
    assert calls == {"qformer": 0, "vae": 0}, calls
    assert model.frozen_outputs.hits > 0
    model.frozen_outputs.clear()
    fresh = step()
    assert second == first == fresh
    for h in hooks:
        h.remove()


def test_frozen_outputs_are_recomputed_for_a_part_that_trains():
    from unifashion.models.frozen_outputs import FrozenOutputs

    layer = torch.nn.Linear(3, 2)
    cache, seen = FrozenOutputs(), []

    def compute(idx):
        seen.append(list(idx))
        return layer(torch.ones(len(idx), 3))

    cache.rows("x", layer, ["a", "b"], compute)  # trainable: computed, not stored
    cache.rows("x", layer, ["a", "b"], compute)
    assert seen == [[0, 1], [0, 1]] and cache.hits == 0
    layer.requires_grad_(False)
    cache.rows("x", layer, ["a", "b", "a"], compute)  # frozen: each key once
    rows = cache.rows("x", layer, ["b", "a"], compute)
    assert seen[2:] == [[0, 1]] and rows.shape == (2, 2) and cache.hits == 3


def test_phases_by_name_declare_the_data_they_train_on(small_world):
    from dataclasses import asdict

    from unifashion.data.training_sets import (FASHIONIQ_TRIPLETS, IMAGE_TEXT_PAIRS, VITONHD_TRYON, ComposedTriplets,
                                               TryOnSamples)
    from unifashion.errors import ConfigError
    from unifashion.training.phases import PHASES, phase_by_name
    from unifashion.training.run_phase import phase_data

    assert [p.name for p in PHASES] == ["vae", "phase1a", "phase1b", "phase2", "tryon"]
    assert all(phase_by_name(p.name) is p for p in PHASES)
    with pytest.raises(ConfigError, match=r"unknown phase 'phase3' \(known: vae, phase1a, phase1b, phase2, tryon\)"):
        phase_by_name("phase3")
    assert [p.training_data for p in PHASES] == [IMAGE_TEXT_PAIRS] * 3 + [FASHIONIQ_TRIPLETS, VITONHD_TRYON]
    assert "training_data" not in asdict(GenerativeAdaptation())  # a declaration, not a setting

    world = small_world[0]
    pairs = phase_data(QFormerPretraining(), world)  # a world: its catalog
    assert isinstance(pairs.dataset, ImageTextPairs) and pairs.style == "professional"
    assert pairs.source == str(world / "catalog")
    assert isinstance(phase_data(ComposedFinetuning(), world).dataset, ComposedTriplets)
    assert isinstance(phase_data(GarmentGeneration(), world).dataset, TryOnSamples)
    # phase 1b captions in the style of the data it trains on; the other phases keep their settings
    titles = phase_data(GenerativeAdaptation(), world / "fashion200k")
    assert titles.style == "short" and GenerativeAdaptation().for_data(titles).caption_style == "short"
    assert GenerativeAdaptation().for_data(pairs) == GenerativeAdaptation()
    assert ComposedFinetuning(caption_style="short").for_data(pairs).caption_style == "short"
