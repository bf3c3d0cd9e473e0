"""``flowforge inpaint``: fill masked parts of held-out images of a run; the picture of original / masked /
filled triples. The algorithms are the models' own (:meth:`NormalizingFlow.inpaint`,
:func:`flowforge.models.repaint.inpaint_along_path`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..data import load_dataset
from ..data.latents import pixel_data
from ..data.masks import make_mask
from ..errors import UserError
from ..runs import Run, check_finite_samples, load_run
from ..viz import image_grid
from .device import device_generator, resolve_device


# where a flow's gradient ascent starts the missing part: uniform noise (NICE's "initial state") or the training
# set's mean image (``NormalizingFlow.inpaint``'s ``start``)
INPAINT_STARTS = ("noise", "mean")


def start_values(start: str | None, dataset) -> Tensor | None:
    """``NormalizingFlow.inpaint``'s ``start`` for a named one of :data:`INPAINT_STARTS`: the training set's mean
    image for ``mean``, None (uniform noise) for ``noise`` or None."""
    if start is not None and start not in INPAINT_STARTS:
        raise UserError(f"--start {start}: expected one of {', '.join(INPAINT_STARTS)}")
    return dataset.train.mean(0) if start == "mean" else None


def inpaint_options(run: Run, n: int, generator: torch.Generator | None = None, **chosen: Any) -> dict[str, Any]:
    """Keyword arguments of ``run.model.inpaint`` for ``n`` images: the user's ``chosen`` options (None = the
    default), which must be among the model's :attr:`~flowforge.protocol.GenerativeModel.inpaint_settings`, on
    top of the run's sample settings that the model's sampling takes (:func:`flowforge.runs.sample_options`:
    sampler, grid, its options, guidance and cycling labels along a path; only the generator for a flow).

    ``flowforge inpaint`` and the app's Inpaint tab both ask this, so both refuse the same options with the
    same message.
    """
    chosen = {k: v for k, v in chosen.items() if v is not None}
    run.model.check_settings("inpaint", chosen)
    sampling = {k: chosen.pop(k) for k in list(chosen) if k in run.model.sample_settings}
    options = run.sample_options(n, generator, **sampling)
    options.update(chosen)
    return options


def inpaint_run(run_dir: str | Path, mask: str, *, n: int = 8, out: str | Path, seed: int = 0,
                device: str | torch.device | None = "auto", **options: Any) -> Path:
    """Inpaint ``n`` held-out images of a trained run under the named ``mask``; write a grid whose rows are
    (original, masked, filled) triples. ``options`` go to the model's ``inpaint``; ``device`` as ``--device``
    (:func:`flowforge.jobs.device.resolve_device`): the images and masks are chosen on the CPU, the model's noise
    is drawn where it runs."""
    device = resolve_device(device)
    run = load_run(run_dir, device=device)
    dataset = load_dataset(pixel_data(run.config.data))  # a latent model inpaints images
    if dataset.kind != "image":
        raise UserError(f"{run_dir}: inpainting pictures need image data, this run has {dataset.kind}; "
                        f"call model.inpaint(x, mask) from Python for other data")
    gen = torch.Generator().manual_seed(seed)
    index = torch.randperm(len(dataset.test), generator=gen)[:n]
    x = dataset.test[index]  # (n, C, H, W)
    known = torch.stack([make_mask(mask, dataset.shape, gen) for _ in range(len(x))])
    noise = gen if device.type == "cpu" else device_generator(device, seed)
    options = inpaint_options(run, len(x), noise, **options)
    if isinstance(options.get("start"), str):  # flows: where the missing part starts
        start = start_values(options["start"], dataset)
        options["start"] = None if start is None else start.to(device)
    if "labels" in options and dataset.test_labels is not None:
        options["labels"] = dataset.test_labels[index].to(device)  # a class-conditional model is told its labels
    filled = run.model.inpaint(x.to(device), known.to(device), **options).cpu()
    check_finite_samples(filled)
    pixels = [dataset.to_pixels(t) for t in (x, torch.where(known, x, torch.full_like(x, float("nan"))), filled)]
    pixels[1] = torch.nan_to_num(pixels[1], nan=0.5)  # missing pixels shown grey
    rows = torch.stack(pixels, dim=1).reshape(-1, *dataset.shape)  # (3n, C, H, W): triples side by side
    return image_grid(rows, Path(out), nrow=6 if len(x) % 2 == 0 else 3, scale=max(1, 96 // dataset.shape[-1]))
