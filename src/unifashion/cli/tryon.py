"""`unifashion tryon`: a garment drawn onto a person's photo by the inpainting try-on model (or, with
--design, a garment drawn from its caption alone)."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from unifashion.cli.options import check_out_file, check_sampling_options, check_text, check_tryon_model, load_model
from unifashion.cli.output import StageProgress, err, print_json
from unifashion.errors import UnifashionError


def tryon(
    model: Annotated[Path, typer.Option(help="An inpainting try-on model (`unifashion train --phase tryon`; the quickstart's OUT/tryon_model).")],
    person: Annotated[Path, typer.Option(help="The person photo. Without --mask it must lie in a VITON-HD layout (ROOT/SPLIT/image/STEM.jpg), whose agnostic image, mask and pose render are used.")],
    out: Annotated[Path, typer.Option(help="PNG file to write (the generator's size).")],
    garment: Annotated[Path | None, typer.Option(help="The in-shop garment photo to put on (not needed with --design).")] = None,
    caption: Annotated[str | None, typer.Option(help="The garment's description (composed with --garment; with --design, all there is).")] = None,
    design: Annotated[bool, typer.Option("--design", help="Draw the garment from --caption alone (MGD's design), not from --garment.")] = False,
    mask: Annotated[Path | None, typer.Option(help="The region to redraw, white on black, the person's size (a person outside a VITON-HD layout needs one).")] = None,
    pose: Annotated[Path | None, typer.Option(help="A rendered pose map of the person (default: the VITON-HD layout's; with --mask none, which gives worse shapes).")] = None,
    steps: Annotated[int, typer.Option(min=1, help="Denoising steps (up to the generator's MAX_SAMPLING_STEPS).")] = 25,
    seed: Annotated[int, typer.Option()] = 0,
    guidance_scale: Annotated[float, typer.Option("--guidance-scale", help="Classifier-free guidance scale: 1 = none, up to the generator's MAX_GUIDANCE_SCALE.")] = 3.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print what was written as JSON.")] = False,
) -> None:
    """Put a garment on a person (virtual try-on), or draw one from words onto them (--design)."""
    from unifashion.data.formats.common import save_image_atomic
    from unifashion.data.tryon_inputs import tryon_sample

    check_sampling_options(steps, guidance_scale)
    check_out_file(out, suffixes=(".png",))
    if design and caption is None:
        raise UnifashionError("--design draws the garment from --caption alone: give --caption")
    if not design and garment is None:
        raise UnifashionError("give --garment (the garment to put on), or --design with --caption")
    caption = check_text(caption, "--caption") if caption is not None else None
    check_tryon_model(model)  # before the model loads: its saved config says
    sample = tryon_sample(person, garment, mask=mask, pose=pose, caption=caption)  # a bad input fails before loading
    net = load_model(model, json_on_stdout=as_json)
    with StageProgress(json_on_stdout=as_json) as progress:
        picture = net.generate_tryon([sample], garment_image=not design, steps=steps, seed=seed,
                                     guidance_scale=guidance_scale,
                                     progress=lambda d, t: progress("design" if design else "try-on", d, t))[0]
    save_image_atomic(picture, out)
    if as_json:
        print_json({"image": str(out), "size": list(picture.size), "design": design, "steps": steps, "seed": seed,
                    "guidance_scale": guidance_scale, "person": str(person),
                    "garment": str(garment) if garment is not None else None, "caption": caption})
    else:
        err.print(f"wrote {out} ({picture.size[0]}x{picture.size[1]}, {'design' if design else 'try-on'}, "
                  f"{steps} steps)")

