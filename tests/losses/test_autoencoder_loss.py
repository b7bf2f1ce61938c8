"""The VAE loss: zero-variance perfect reconstruction has no reconstruction loss; learning happens."""
import torch

from unifashion.losses.autoencoder import AutoencoderLoss
from unifashion.models.generator import Generator, GeneratorConfig

TINY = GeneratorConfig(image_size=16, num_queries=4, vae_block_out_channels=(8, 8), unet_block_out_channels=(8, 16),
                       unet_attention=(False, True), norm_num_groups=4, cross_attention_dim=8, attention_head_dim=2)


def test_reconstruction_loss_is_known_for_an_identity_decoder():
    class Identity(torch.nn.Module):  # a "VAE" whose posterior is exact and whose decoder is the identity
        def encode(self, x):
            class Dist:
                def sample(self, generator=None):
                    return x

                def mode(self):
                    return x

                def kl(self):
                    return torch.zeros(x.shape[0])
            return type("Out", (), {"latent_dist": Dist()})()

        def decode(self, z):
            return type("Out", (), {"sample": z})()

    pixels = torch.rand(2, 3, 8, 8) * 2 - 1
    for sample_posterior in (False, True):
        out = AutoencoderLoss(kl_weight=0.0, sample_posterior=sample_posterior)(Identity(), pixels)
        assert out["recon_loss"].item() == 0.0 and out["kl_loss"].item() == 0.0


def test_the_mean_is_decoded_unless_sampling_is_asked_for():
    torch.manual_seed(0)
    vae = Generator(TINY).vae
    pixels = torch.rand(2, 3, 16, 16) * 2 - 1
    mean = AutoencoderLoss()(vae, pixels)["recon_loss"]
    assert AutoencoderLoss()(vae, pixels)["recon_loss"].item() == mean.item()  # deterministic
    sampled = AutoencoderLoss(sample_posterior=True)(vae, pixels, generator=torch.Generator().manual_seed(0))
    assert sampled["recon_loss"].item() != mean.item()


def test_vae_learns_to_reconstruct():
    torch.manual_seed(0)
    vae = Generator(TINY).vae.requires_grad_(True)
    loss_fn = AutoencoderLoss()
    pixels = torch.zeros(8, 3, 16, 16)
    pixels[:, 0, :8] = 0.8  # a red top half on black
    pixels = pixels * 2 - 1
    opt = torch.optim.Adam(vae.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    first = None
    for _ in range(60):
        out = loss_fn(vae, pixels, generator=g)
        total = out["recon_loss"] + out["kl_loss"]
        first = first if first is not None else total.item()
        opt.zero_grad()
        total.backward()
        opt.step()
    assert total.item() < 0.3 * first
