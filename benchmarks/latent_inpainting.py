"""Latent inpainting against pixel inpainting on the same Fashion-MNIST test images.

The two DiTs of ``benchmarks.latent_vs_pixel`` (``--latent``: trained on the 4-channel autoencoder's latents,
``--pixel``: the same DiT on the pixels; EMA weights) fill the same ``--n`` test images under each mask
(``left``: the left half missing; ``random:0.75``: each pixel missing with probability 0.75, one draw per image),
unconditionally (no label given: the class must come from the kept pixels), with each method of :data:`METHODS`
at the same settings for both. The latent model inpaints on the latent grid (a latent cell is kept only where
all the pixels of its 4 x 4 patch are kept), decodes, and puts the kept pixels back exactly
(:meth:`flowforge.models.latent.LatentFlow.inpaint`). Scores, pixels in [0, 1]:

- ``rmse``: of the filled pixels against the originals, on the missing pixels only;
- ``accuracy``: the share of fills that the pinned Fashion-MNIST classifier assigns to the original's label;
- ``seconds per image``: wall-clock of the batch's inpainting divided by n (``torch.backends.cpu`` capability
  recorded with the machine);
- the seam: ``seam``, the mean absolute step between 4-neighbour pixels of which one is kept and one filled,
  over the same in the originals (1: as smooth as the images themselves); for the latent model also
  ``kept_rmse``, what the decoder changed on the kept pixels before they were put back (the price of
  pixel-exact replacement: that much of a mismatch moves to the seam), and ``seam_decoded``, the seam ratio of
  the decoded fill without the replacement.

Floors: the originals (accuracy), the mean training image pasted into the hole, and for the latent model the
autoencoder's reconstruction of the whole original with the kept pixels put back (its rmse is the best a latent
model's fill can reach through this decoder).

    OMP_NUM_THREADS=1 nice -n 5 .venv/bin/python -m benchmarks.latent_inpainting --n 64

Results: ``benchmarks/results/latent_inpainting.json`` (keyed rows: a second call computes what is missing);
the docs' table: ``python -m benchmarks.render_tables --print latent_inpainting``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from flowforge.data import load_dataset
from flowforge.data.latents import pixel_data
from flowforge.data.masks import make_mask
from flowforge.metrics import default_extractor, load_extractor, reference_features, score_images
from flowforge.models.latent import LatentFlow
from flowforge.runs import load_run
from flowforge.runs.pairs import weights_sha256

from benchmarks.harness import RESULTS, KeyedRows, atomic_write_json, command_line, write_results
from benchmarks.tables import latent_inpainting as table

MASKS = ("left", "random:0.75")
# the same options for both models (label -> keyword arguments of model.inpaint), as benchmarks.inpaint's
METHODS = {"replacement, Heun 25": {"sampler": "heun", "steps": 25},
           "RePaint, DDPM 50 x 3": {"sampler": "ddpm", "steps": 50, "resample": 3}}


def seam_step(images: torch.Tensor, known: torch.Tensor) -> float:
    """The mean absolute difference of 4-neighbour pixels of which exactly one is known (images (n, C, H, W))."""
    steps, count = 0.0, 0
    for dim in (-1, -2):
        a, b = images.narrow(dim, 0, images.shape[dim] - 1), images.narrow(dim, 1, images.shape[dim] - 1)
        ka, kb = known.narrow(dim, 0, known.shape[dim] - 1), known.narrow(dim, 1, known.shape[dim] - 1)
        border = ka != kb  # one side kept, the other filled
        steps += float((a - b).abs()[border].sum())
        count += int(border.sum())
    return steps / max(count, 1)


class Scorer:
    """The test images (in [0, 1] and in the runs' range), their labels, the pinned classifier and its reference."""

    def __init__(self, run, n: int, seed: int):
        self.data = load_dataset(pixel_data(run.config.data))
        self.lo, self.hi = self.data.value_range
        name = default_extractor(self.data.name, self.data.shape)
        self.extractor = load_extractor(name)
        self.reference = reference_features(self.unit(self.data.test), dataset=self.data.name, split="test",
                                            extractor=self.extractor, value_range=(0.0, 1.0))
        self.index = torch.randperm(len(self.data.test), generator=torch.Generator().manual_seed(seed))[:n]
        self.x = self.data.test[self.index]  # (n, 1, 28, 28) in the runs' range
        self.labels = self.data.test_labels[self.index]
        self.mean = self.data.train.mean(0, keepdim=True).expand_as(self.x)
        self.seed = seed

    def unit(self, x: torch.Tensor) -> torch.Tensor:
        return ((x - self.lo) / (self.hi - self.lo)).clamp(0, 1)

    def score(self, filled: torch.Tensor, known: torch.Tensor) -> dict:
        """rmse on the missing pixels, label accuracy, FD (n-biased) and the seam ratio of ``filled``."""
        f, x = self.unit(filled), self.unit(self.x)
        s = score_images(f, self.reference, extractor=self.extractor, value_range=(0.0, 1.0), labels=self.labels,
                         seed=self.seed, check_range=False)
        if known.all():  # the originals themselves: nothing missing, no seam
            return {"accuracy": s["label_accuracy"], "fd": s["fd"]}
        return {"rmse": float(((f - x) ** 2)[~known].mean().sqrt()), "accuracy": s["label_accuracy"],
                "fd": s["fd"], "seam": seam_step(f, known) / seam_step(x, known)}

    def floors(self, masks: dict[str, torch.Tensor], latent: LatentFlow) -> dict:
        out = {"original": self.score(self.x, torch.ones_like(self.x, dtype=torch.bool))}
        with torch.no_grad():
            recon = latent.reconstruct(self.x)
        for name, known in masks.items():
            out[f"mean image: {name}"] = self.score(torch.where(known, self.x, self.mean), known)
            out[f"autoencoder reconstruction: {name}"] = self.score(torch.where(known, self.x, recon), known)
        return out


def fill(scorer: Scorer, run, known: torch.Tensor, options: dict, seed: int) -> dict:
    """Inpaint the scorer's images under ``known`` with ``run``'s model; score the fill (and, latent, its seam)."""
    gen = torch.Generator().manual_seed(seed)
    model, x = run.model, scorer.x
    t0 = time.perf_counter()
    with torch.no_grad():
        if isinstance(model, LatentFlow):  # LatentFlow.inpaint, with the fill before replacement kept
            decoded = model.decoded_fill(x, known, **options, generator=gen)
            filled = torch.where(known, x, decoded)
        else:
            decoded, filled = None, model.inpaint(x, known, **options, generator=gen)
    seconds = time.perf_counter() - t0
    row = {**scorer.score(filled, known), "seconds_per_image": seconds / len(x)}
    if decoded is not None:
        d, u = scorer.unit(decoded), scorer.unit(x)
        row["kept_rmse"] = float(((d - u) ** 2)[known].mean().sqrt())
        row["seam_decoded"] = seam_step(d, known) / seam_step(u, known)
    return row


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--latent", default="runs/bench-latent/dit-latent")
    p.add_argument("--pixel", default="runs/bench-latent/dit-pixel")
    p.add_argument("--n", type=int, default=64, help="test images filled per mask")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(RESULTS / "latent_inpainting.json"))
    args = p.parse_args(argv)
    torch.manual_seed(args.seed)
    runs = {"latent": load_run(args.latent), "pixel": load_run(args.pixel)}
    for run in runs.values():
        run.model.eval()
    scorer = Scorer(runs["pixel"], args.n, args.seed)
    masks = {name: torch.stack([make_mask(name, scorer.data.shape, torch.Generator().manual_seed(args.seed + i))
                                for i in range(args.n)]) for name in MASKS}
    rows = KeyedRows(Path(args.out), {"n": args.n, "seed": args.seed})
    record = {"command": command_line(argv), "n": args.n, "seed": args.seed, "masks": list(MASKS),
              "floors": scorer.floors(masks, runs["latent"].model), "runs": {}}
    for space, run in runs.items():
        sha = weights_sha256(run)
        record["runs"][space] = {"run": str(run.dir), "step": run.step, "weights_sha256": sha,
                                 "parameters": sum(p.numel() for p in run.model.parameters())}
        for method, options in METHODS.items():
            for name, known in masks.items():
                key = {"space": space, "weights_sha256": sha, "method": method, "mask": name}
                row = rows.get_or_compute(key, lambda: {**key, "options": options,
                                                        **fill(scorer, run, known, options, args.seed)})
                print(space, method, name, {k: round(v, 4) for k, v in row.items() if isinstance(v, float)},
                      flush=True)
                atomic_write_json(Path(args.out).with_suffix(".partial.json"), {**record, "rows": rows.rows})
    path = write_results("latent_inpainting", {**record, "rows": rows.rows}, args.out)
    Path(args.out).with_suffix(".partial.json").unlink(missing_ok=True)
    print(table.render({"latent_inpainting": record | {"rows": rows.rows}}))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
