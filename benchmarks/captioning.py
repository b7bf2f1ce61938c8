"""Captioning: generated tokens/s with batching and the KV cache against one image at a time.

    python benchmarks/captioning.py [--quick] [--model DIR] [--json OUT]

The same catalog images are captioned (greedy, the professional style) three ways: one image at a
time without the KV cache (every token recomputes the whole prompt), one at a time with it, and in
batches with it. Tokens are the caption's tokens under the captioner's own tokenizer (EOS and padding
not counted), so a batch that waits for its longest caption is charged for the wait.
"""
from __future__ import annotations

import time

import torch

from common import Report, RESULTS, add_model_argument, catalog_pairs, load_model, parser, run, synthetic_world


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    add_model_argument(p)
    args = p.parse_args()
    n_images = 8 if args.quick else 32
    batch_size = 8 if args.quick else 16
    max_new_tokens = 24 if args.quick else 48

    model, model_name, _ = load_model(args.model)
    world = synthetic_world(RESULTS / "worlds", 40 if args.quick else 120)
    images = [pair.image.load().convert("RGB") for pair in catalog_pairs(world, n_images)]
    tokenizer = model.captioner.tokenizer
    report = Report("captioning", args.quick, setup={
        "model": model_name, "captioner": model.captioner.config.source, "images": len(images),
        "batch_size": batch_size, "max_new_tokens": max_new_tokens, "decoding": "greedy"})

    with torch.inference_mode():
        prompts = model.adapters.soft_prompt(model.encode_image(images).query_output)  # (N, 32, H_llm)

    def caption(batch: int, use_cache: bool) -> tuple[float, int]:
        texts, start = [], time.perf_counter()
        with torch.inference_mode():
            for s in range(0, len(images), batch):
                texts += model.captioner.generate(prompts[s:s + batch], "professional",
                                                  max_new_tokens=max_new_tokens, use_cache=use_cache)
        seconds = time.perf_counter() - start
        tokens = sum(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts)
        return seconds, tokens

    caption(batch_size, True)  # warm-up
    rates = {}
    for name, batch, use_cache in (("one at a time, no KV cache", 1, False), ("one at a time", 1, True),
                                   (f"batches of {batch_size}", batch_size, True)):
        seconds, tokens = caption(batch, use_cache)
        rates[name] = tokens / seconds
        report.row(mode=name, kv_cache=use_cache, seconds=seconds, tokens=tokens, tokens_per_s=rates[name])
    single = rates["one at a time"]
    report.setup["ratio_batched_over_single"] = rates[f"batches of {batch_size}"] / single
    report.setup["ratio_cache_over_no_cache"] = single / rates["one at a time, no KV cache"]
    report.note(f"batched / one at a time: {report.setup['ratio_batched_over_single']:.2f}x; "
                f"KV cache / none (one at a time): {report.setup['ratio_cache_over_no_cache']:.2f}x (no target set)")
    report.finish(args.json)


if __name__ == "__main__":
    run(main)
