"""``flowforge inpaint``: fill masked parts of held-out images of a run; the picture of original / masked /
filled triples. The algorithms are the models' own (:meth:`NormalizingFlow.inpaint`,
:func:`flowforge.models.repaint.inpaint_along_path`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..data import load_dataset
from ..data.masks import make_mask
from ..errors import UserError
from ..viz import image_grid
from .load import check_finite_samples, load_run, sample_options


def inpaint_run(run_dir: str | Path, mask: str, *, n: int = 8, out: str | Path, seed: int = 0,
                **options: Any) -> Path:
    """Inpaint ``n`` held-out images of a trained run under the named ``mask``; write a grid whose rows are
    (original, masked, filled) triples. ``options`` go to the model's ``inpaint``."""
    run = load_run(run_dir)
    dataset = load_dataset(run.config.data)
    if dataset.kind != "image":
        raise UserError(f"{run_dir}: inpainting pictures need image data, this run has {dataset.kind}; "
                        f"call model.inpaint(x, mask) from Python for other data")
    gen = torch.Generator().manual_seed(seed)
    index = torch.randperm(len(dataset.test), generator=gen)[:n]
    x = dataset.test[index]  # (n, C, H, W)
    known = torch.stack([make_mask(mask, dataset.shape, gen) for _ in range(len(x))])
    # the options each family's inpainting takes: sampling along the path, or NICE's gradient ascent
    allowed = ("sampler", "steps", "resample") if run.model.takes_sampler else ("steps", "lr")
    wrong = sorted(set(options) - set(allowed))
    if wrong:
        raise UserError(f"{run_dir} ({run.config.model.kind}) inpaints with {', '.join(allowed)}; "
                        f"{', '.join(wrong)} do not apply to it")
    if run.model.takes_sampler:
        # a continuous model samples along its path with the run's sample settings (sampler, grid, its options,
        # guidance), overridden by ``options``; a class-conditional one is told each image's true label
        resample = options.pop("resample", 1)
        options = sample_options(run.config, len(x), gen, sampler=options.pop("sampler", None),
                                 steps=options.pop("steps", None))
        options.update(resample=resample)
        if run.config.model.num_classes is not None and dataset.test_labels is not None:
            options["labels"] = dataset.test_labels[index]
    else:
        options["generator"] = gen
    filled = run.model.inpaint(x, known, **options)
    check_finite_samples(filled)
    pixels = [dataset.to_pixels(t) for t in (x, torch.where(known, x, torch.full_like(x, float("nan"))), filled)]
    pixels[1] = torch.nan_to_num(pixels[1], nan=0.5)  # missing pixels shown grey
    rows = torch.stack(pixels, dim=1).reshape(-1, *dataset.shape)  # (3n, C, H, W): triples side by side
    return image_grid(rows, Path(out), nrow=6 if len(x) % 2 == 0 else 3, scale=max(1, 96 // dataset.shape[-1]))
