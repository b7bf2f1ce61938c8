"""Training losses. Each is an nn.Module whose forward returns a dict of `*_loss` terms; the caller
weights and sums them (the phase's `loss_weights`). Models return features and logits; nothing here
owns parameters (the ITC temperature belongs to the model).

    ITC   ImageTextContrastiveLoss  {"itc_loss"}                      contrastive.py
    ITM   ImageTextMatchingLoss     {"itm_loss"}                      matching.py
    ITG   CaptionLoss               {"itg_loss"}                      captioning.py
    q2I   NoisePredictionLoss       {"q2i_loss"}                      diffusion.py
    CIR   ComposedRetrievalLoss     {"cir_image_loss", "cir_caption_loss", "cir_itm_loss"}  composed.py
    VAE   AutoencoderLoss           {"recon_loss", "kl_loss"}         autoencoder.py (imported on first use)
"""
from unifashion.losses.captioning import CaptionLoss
from unifashion.losses.composed import ComposedRetrievalLoss
from unifashion.losses.contrastive import (
    TEMPERATURE_RANGE,
    ImageTextContrastiveLoss,
    clamp_temperature,
    clamp_temperature_,
)
from unifashion.losses.diffusion import NoisePredictionLoss, diffusion_target
from unifashion.losses.matching import ImageTextMatchingLoss, negative_weights, sample_negatives

__all__ = [
    "TEMPERATURE_RANGE", "AutoencoderLoss", "CaptionLoss", "ComposedRetrievalLoss", "ImageTextContrastiveLoss",
    "ImageTextMatchingLoss", "NoisePredictionLoss", "clamp_temperature", "clamp_temperature_", "diffusion_target",
    "negative_weights", "sample_negatives",
]


def __getattr__(name: str):
    if name == "AutoencoderLoss":  # diffusers is a slow import: only when asked for
        from unifashion.losses.autoencoder import AutoencoderLoss

        return AutoencoderLoss
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
