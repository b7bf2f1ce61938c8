"""Paper scale on a GPU: the encoding and training ratios with EVA ViT-g/14 and the BLIP-2 Q-Former.

    python benchmarks/paper_scale_gpu.py [--quick] [--dtype bf16|fp16|fp32] [--train-batch 32] [--json OUT]

The paper's image side with random weights (the timings do not depend on the values): EVA ViT-g/14 at
224 px (1B parameters, frozen) and the 12-layer BLIP-2 Q-Former with 32 queries, on CUDA. Not part of
`make bench` (it needs a GPU; it refuses to run without one).

1. Encoding: images/s of the frozen backbone's forward against backbone + Q-Former image side (what
   `encode_image` runs after preprocessing), alternated, median of rounds. Target: >= 0.7.
2. Training (phase 1a, ITC): one optimiser step of the Q-Former (image and text sides, the ITC loss,
   backward, AdamW) on cached backbone tokens against the same step that first runs the frozen
   backbone on the pixels. Target: >= 3x.
"""
from __future__ import annotations

import torch

from common import Report, median, parser, run, seconds


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--dtype", choices=("bf16", "fp16", "fp32"), default="bf16",
                   help="weights and activations of the frozen backbone and the Q-Former's forward (default bf16)")
    p.add_argument("--train-batch", type=int, default=32, help="examples per training step (default 32)")
    args = p.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("error: paper_scale_gpu.py needs a CUDA GPU (torch.cuda.is_available() is False)")
    from unifashion.losses.contrastive import ImageTextContrastiveLoss
    from unifashion.models.image_encoder import FrozenImageEncoder, ImageEncoderConfig
    from unifashion.models.qformer import QFormer, QFormerConfig

    device = torch.device("cuda")
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[args.dtype]
    batch_sizes = (1, 32) if args.quick else (1, 8, 32, 64, 128)
    rounds = 3 if args.quick else 7
    steps = 3 if args.quick else 10
    train_batch = args.train_batch

    torch.manual_seed(0)
    # 1. the paper's image side (random weights): ViT-g/14 frozen, the BLIP-2 Q-Former
    encoder = FrozenImageEncoder(ImageEncoderConfig(backbone="blip2_vision", image_size=224, random_init=True))
    encoder = encoder.to(device, dtype).eval()
    qformer = QFormer.from_config(QFormerConfig(hidden_size=768, num_hidden_layers=12, intermediate_size=3072,
                                                encoder_hidden_size=1408, init="random")).to(device)
    report = Report("paper_scale_gpu", args.quick, setup={
        "gpu": torch.cuda.get_device_name(0), "dtype": args.dtype, "backbone": "EVA ViT-g/14 @224 (random weights)",
        "qformer": "BLIP-2 Q-Former, 12 layers, 32 queries (random weights)", "rounds": rounds,
        "train_batch": train_batch, "train_steps_per_round": steps,
        "backbone_parameters": sum(p.numel() for p in encoder.parameters()),
        "qformer_parameters": sum(p.numel() for p in qformer.parameters())})

    def timed(fn):
        def wrapped():
            fn()
            torch.cuda.synchronize()
        return wrapped

    # 2. encoding: backbone alone against backbone + Q-Former image side
    qformer.eval()
    ratio_at = {}
    for b in batch_sizes:
        pixels = torch.randn(b, 3, 224, 224, device=device, dtype=dtype)  # (b, 3, 224, 224)

        @timed
        def backbone() -> None:
            with torch.inference_mode():
                encoder(pixels)  # (b, 257, 1408)

        @timed
        def encode() -> None:
            with torch.inference_mode(), torch.autocast("cuda", dtype=dtype, enabled=dtype != torch.float32):
                qformer.image_features(encoder(pixels))  # (b, 32, 256) query embeddings

        t_backbone, t_ours = [], []
        seconds(backbone, repeat=1, warmup=2), seconds(encode, repeat=1, warmup=2)
        for _ in range(rounds):  # alternate, so drift hits both alike
            t_backbone += seconds(backbone, repeat=1, warmup=0)
            t_ours += seconds(encode, repeat=1, warmup=0)
        ratio_at[b] = median(t_backbone) / median(t_ours)
        report.row(part="encoding", batch=b, backbone_images_per_s=b / median(t_backbone),
                   encode_images_per_s=b / median(t_ours), ratio=ratio_at[b])

    # 3. training: a phase-1a ITC step on cached tokens against one that runs the backbone first
    qformer.train()
    itc = ImageTextContrastiveLoss()
    temperature = torch.nn.Parameter(torch.tensor(0.07, device=device))
    optimizer = torch.optim.AdamW([*qformer.parameters(), temperature], lr=1e-5)
    pixels = torch.randn(train_batch, 3, 224, 224, device=device, dtype=dtype)  # (B, 3, 224, 224)
    with torch.inference_mode():
        cached = encoder(pixels).clone()  # (B, 257, 1408): what the feature cache holds
    ids = torch.randint(1000, 30000, (train_batch, 32), device=device)  # (B, 32) caption tokens
    mask = torch.ones_like(ids)  # (B, 32)

    def step(tokens_of) -> None:
        with torch.autocast("cuda", dtype=dtype, enabled=dtype != torch.float32):
            tokens = tokens_of()  # (B, 257, 1408)
            image = qformer.image_features(tokens.float() if dtype == torch.float32 else tokens)
            text = qformer.text_features(ids, mask)
            loss = itc(image.image_embeds.float(), text.text_embeds.float(), temperature)["itc_loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def from_backbone():
        with torch.no_grad():
            return encoder(pixels)  # (B, 257, 1408)

    @timed
    def cached_steps() -> None:
        for _ in range(steps):
            step(lambda: cached)

    @timed
    def backbone_steps() -> None:
        for _ in range(steps):
            step(from_backbone)

    t_cached, t_backbone = [], []
    seconds(cached_steps, repeat=1, warmup=1), seconds(backbone_steps, repeat=1, warmup=1)
    for _ in range(rounds):
        t_cached += seconds(cached_steps, repeat=1, warmup=0)
        t_backbone += seconds(backbone_steps, repeat=1, warmup=0)
    train_ratio = median(t_backbone) / median(t_cached)
    report.row(part="training ITC", batch=train_batch, step_s_cached=median(t_cached) / steps,
               step_s_backbone=median(t_backbone) / steps, ratio=train_ratio)

    for b in batch_sizes:
        report.target(f"paper scale on {torch.cuda.get_device_name(0)}: encode / backbone images/s at batch {b}",
                      ratio_at[b], 0.7)
    report.target(f"paper scale on {torch.cuda.get_device_name(0)}: ITC step time backbone / cached",
                  train_ratio, 3.0)
    report.finish(args.json)


if __name__ == "__main__":
    run(main)
