"""Why a normalizing flow's gradient-ascent fills are speckle: the log-density landscape around the originals.

For a trained MNIST flow run (NICE by default), ``--n`` test images and each ``--masks`` mask, in the
dequantized space [0, 1] the flow models and the gradient is taken in:

- ``grad_rms_background`` / ``grad_rms_ink``: the root mean square of ``d log p / d y`` at the originals (bin
  centres) over the missing pixels whose original is the darkest level (background) or not (ink): the step
  ``alpha * grad`` a projected gradient step takes there, divided by ``alpha``;
- ``log_p_original``: ``log p`` of the originals (nats per image);
- ``log_p_from_original``: ``log p`` after ``--steps`` steps of projected ascent started *at the originals*
  on the paper's fixed schedule ``lr 100 / (100 + i)`` (no noise): below the originals, the steps overshoot;
- ``log_p_search_from_original``: the same with flowforge's line search (``log p`` cannot fall): if it climbs
  far above the originals, the model prefers other images to the data, and its fills reflect the model;
- ``saturated_original`` / ``saturated_from_original``: the share of missing pixels at the range's ends
  (the lowest or highest of the 256 levels), of the originals and after the fixed-schedule ascent;
- ``rmse_from_original`` / ``rmse_search_from_original``: how far each ascent moves the missing pixels (root
  mean square, [0, 1] units).

    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.inpaint_landscape runs/ip-nice-mnist --n 30

Results: ``benchmarks/results/inpaint_landscape.json``; the docs' table: ``render_tables --print inpaint_landscape``.
"""

from __future__ import annotations

import argparse

import torch

from flowforge.data import load_dataset
from flowforge.data.masks import make_mask
from flowforge.runs import load_run
from flowforge.runs.pairs import weights_sha256

from benchmarks.harness import RESULTS, write_results


def saturated(y: torch.Tensor, missing: torch.Tensor) -> float:
    """Share of the ``missing`` entries of ``y`` (in [0, 1]) in the lowest or highest of 256 bins."""
    v = y[missing]
    return float(((v < 1 / 256) | (v >= 255 / 256)).double().mean())


def ascend(model, y0: torch.Tensor, known: torch.Tensor, steps: int, lr: float) -> torch.Tensor:
    """Projected gradient ascent on ``log p`` over the missing entries of ``y0``, NICE's step schedule."""
    y = y0.detach()
    for i in range(steps):
        y.requires_grad_(True)
        grad, = torch.autograd.grad(model.log_prob_flow(y).sum(), y)
        with torch.no_grad():
            y = torch.where(known, y0, (y + lr * 100.0 / (100.0 + i) * grad).clamp(0, 1)).detach()
    return y


def measure(model, y: torch.Tensor, known: torch.Tensor, steps: int, lr: float) -> dict:
    """The landscape numbers of the module docstring for originals ``y`` (bin centres) under ``known``."""
    missing = ~known
    y_req = y.clone().requires_grad_(True)
    grad, = torch.autograd.grad(model.log_prob_flow(y_req).sum(), y_req)
    background = missing & (y < 1 / 256)
    ink = missing & ~(y < 1 / 256)
    moved = ascend(model, y, known, steps, lr)
    searched = model._ascend_with_line_search(y, lambda v: torch.where(known, y, v.clamp(0, 1)), steps, 0.001)
    with torch.no_grad():
        return {
            "grad_rms_background": float(grad[background].pow(2).mean().sqrt()),
            "grad_rms_ink": float(grad[ink].pow(2).mean().sqrt()),
            "log_p_original": float(model.log_prob_flow(y).mean()),
            "log_p_from_original": float(model.log_prob_flow(moved).mean()),
            "log_p_search_from_original": float(model.log_prob_flow(searched).mean()),
            "saturated_original": saturated(y, missing),
            "saturated_from_original": saturated(moved, missing),
            "rmse_from_original": float((moved - y)[missing].pow(2).mean().sqrt()),
            "rmse_search_from_original": float((searched - y)[missing].pow(2).mean().sqrt()),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", nargs="?", default="runs/ip-nice-mnist")
    parser.add_argument("--n", type=int, default=30)
    parser.add_argument("--masks", nargs="+", default=["left", "top", "random:0.75"])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--lr", type=float, default=0.1, help="the paper's 10 / (100 + i)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(RESULTS / "inpaint_landscape.json"))
    args = parser.parse_args()
    run = load_run(args.run_dir)
    run.model.eval()
    data = load_dataset(run.config.data)
    x = data.test[torch.randperm(len(data.test), generator=torch.Generator().manual_seed(args.seed))[:args.n]]
    y = run.model.to_flow_input(x)  # bin centres in [0, 1]
    rows = {}
    for name in args.masks:
        gen = torch.Generator().manual_seed(args.seed)
        known = torch.stack([make_mask(name, data.shape, gen) for _ in range(len(x))])
        rows[name] = measure(run.model, y, known, args.steps, args.lr)
        print(name, {k: round(v, 4) for k, v in rows[name].items()}, flush=True)
    path = write_results("inpaint_landscape", {"run": args.run_dir, "step": run.step, "kind": run.config.model.kind,
                                          "weights_sha256": weights_sha256(run), "n": args.n, "steps": args.steps,
                                          "lr": args.lr, "rows": rows}, args.out)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
