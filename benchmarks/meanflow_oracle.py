"""Why MeanFlow's one step misses on 2-D data: its target, or the function it must learn? (issue 31)

On 8 Gaussians the data are a Gaussian mixture, so the exact instantaneous field ``v*(z, t) = E[v | z_t = z]``
(``benchmarks.meanflow_weighting.exact_velocity``) and the exact *average* velocity

.. math:: u^*(z_t, r, t) = \\frac{z_t - \\Phi_{t \\to r}(z_t)}{t - r},

with ``Phi`` the exact ODE's flow (RK4 on ``v*``, :func:`exact_average_velocity`), are known. The same network, data,
``(r, t)`` draws, optimiser, EMA and budget are trained four ways, each through ``flowforge.train`` as a user
trains the MeanFlow preset (``configs/meanflow-checkerboard.yaml`` with ``data.name=8gaussians`` and the
``benchmarks.meanflow_weighting`` network), only the regression target of ``MeanFlow.terms`` swapped:

- ``flow matching``: ``model.objective=regression`` (the reference; sampled by 100 Euler steps), and ``flow
  matching, exact v``: the same regression (MeanFlow's code with no ``r != t`` pairs) on ``v*`` instead of the
  conditional velocity, the reference without the target's sampling noise;
- ``MeanFlow``: the library's target ``sg(v - (t - r) du/dt)``, ``v = eps - x`` the conditional velocity and
  ``du/dt`` the network's own (forward-mode JVP);
- ``MeanFlow, exact v``: the same with ``v`` replaced by ``v*(z_t, t)`` at the same ``z_t`` (the data and noise of
  the pair moved to ``x' = z_t - t v*``, ``eps' = z_t + (1 - t) v*``, so the library's code computes the target):
  the target's sampling noise removed, its bootstrap through the network's ``du/dt`` kept;
- ``oracle u``: the network regressed on ``u*(z_t, r, t)`` itself (``v*`` where ``r = t``): no noise, no
  bootstrap. What is left is how well this network and budget represent the average velocity.

If the oracle reaches flow matching's quality in one step and MeanFlow does not, MeanFlow's target is the cause;
if the oracle misses as MeanFlow does, the function (the near-discontinuous one-step map between the modes) is.
Scores as ``benchmarks.meanflow_weighting`` (energy distance of 5000 samples against 3 reference draws; the
trained field's and the one-step map's RMS distance from the exact ones), over ``--seeds``; and, for the first
seed's MeanFlow networks, how much of the conditional velocity's sampling noise reaches the target through the
network's ``du/dt`` (:func:`target_noise`).

    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.meanflow_oracle --seeds 0 1 --steps 2000
    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.meanflow_oracle --seeds 0 1 --steps 5000 \\
        --out benchmarks/results/meanflow_oracle_5000.json
"""

from __future__ import annotations

import argparse
import json
import time
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

import torch

from flowforge.config import load_config
from flowforge.data.toy import TOY_SETS
from flowforge.models.objectives import MeanFlow
from flowforge.runs import load_run
from flowforge.train import train

from benchmarks.harness import RESULTS, ROOT, write_results
from benchmarks.meanflow_weighting import baselines, eight_gaussians_mixture, exact_velocity, rk4_step, score_run

DATA = "8gaussians"
NETWORK = ["model.net.width=128", "model.net.depth=3", "train.batch_size=256"]  # meanflow_weighting's
VARIANTS: dict[str, tuple[list[str], str | None]] = {  # name -> (overrides, target swapped into MeanFlow.terms)
    "flow matching": (["model.objective=regression", "sample.sampler=euler", "sample.steps=100"], None),
    # flow matching through MeanFlow's code (no r != t pairs) on the exact field: flow matching without its
    # target's sampling noise, the reference for the exact-v and oracle rows
    "flow matching, exact v": (["model.meanflow.ratio=0", "sample.sampler=euler", "sample.steps=100"], "exact-v"),
    "MeanFlow": ([], None),
    "MeanFlow, exact v": ([], "exact-v"),
    "oracle u": ([], "oracle"),
    # a lever a user has: minibatch-OT pairs of noise and data, whose conditional velocity is closer to E[v | z]
    "MeanFlow, minibatch OT": (["model.ot_coupling=true"], None),
}


def exact_average_velocity(z: torch.Tensor, r: torch.Tensor, t: torch.Tensor, centres: torch.Tensor, s: float,
                           substeps: int = 32) -> torch.Tensor:
    """``u*(z, r, t) = (z - Phi_{t->r}(z)) / (t - r)`` for the mixture's exact field, by ``substeps`` RK4 steps of
    ``(r - t) / substeps`` per example (float64); ``v*(z, t)`` where ``t - r < 1e-6``. z (N, 2), r, t (N,)."""
    z, r, t = z.double(), r.double(), t.double()
    h = (r - t) / substeps  # (N,), negative: from t down to r
    y, tau = z.clone(), t.clone()
    f = lambda yy, tt: exact_velocity(yy, tt, centres, s)  # noqa: E731
    for _ in range(substeps):
        y, tau = rk4_step(f, y, tau, h), tau + h
    width = (t - r)[:, None]
    return torch.where(width > 1e-6, (z - y) / width.clamp(min=1e-6), f(z, t))


def posterior_velocities(z: torch.Tensor, t: torch.Tensor, centres: torch.Tensor, s: float, m: int,
                         gen: torch.Generator) -> torch.Tensor:
    """``m`` draws of the conditional velocity ``v = eps - x`` given ``z_t = z`` (N, 2) at ``t`` (N,): the data
    point from its posterior under the mixture (component by its posterior weight, then ``x | z, k`` Gaussian
    with precision ``1 / s^2 + a^2 / t^2``, ``a = 1 - t``), the noise from ``eps = (z - a x) / t``. (m, N, 2)."""
    z, t = z.double(), t.double()
    a, tt = (1 - t)[:, None], t[:, None]
    var = a[..., None] ** 2 * s**2 + tt[..., None] ** 2  # (N, 1, 1)
    logits = -(z[:, None, :] - a[..., None] * centres[None]).square().sum(-1) / (2 * var[..., 0])  # (N, K)
    k = torch.multinomial(torch.softmax(logits, 1), m, replacement=True, generator=gen).T  # (m, N)
    precision = 1 / s**2 + a**2 / tt**2  # (N, 1)
    mean = (centres[k] / s**2 + (a * z / tt**2)[None]) / precision[None]  # (m, N, 2)
    x = mean + torch.randn(mean.shape, generator=gen, dtype=mean.dtype) / precision[None].sqrt()
    return (z[None] - a[None] * x) / tt[None] - x


def target_noise(model, n: int = 400, m: int = 64, seed: int = 0) -> list[dict]:
    """How much of the conditional velocity's sampling noise reaches MeanFlow's target through the network's own
    ``du/dt``: for ``z_t`` from the path at ``(r, t)`` pairs with ``t - r`` in each of a few bins, the target
    ``v - (t - r) (v . d_z u + d_t u)`` of ``m`` posterior draws of ``v`` (:func:`posterior_velocities`) per
    ``z``; the mean over ``z`` of the target's total variance divided by ``v``'s (1 at ``r = t``)."""
    centres, s = eight_gaussians_mixture(TOY_SETS[DATA].noise)
    gen = torch.Generator().manual_seed(seed)
    out = []
    for lo, hi in ((0.0, 0.0), (0.0, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1.0)):
        width = lo + (hi - lo) * torch.rand(n, generator=gen, dtype=torch.float64)
        r = (1 - width) * torch.rand(n, generator=gen, dtype=torch.float64)
        t = (r + width).clamp(0.02, 0.98)  # away from the ends, where z_t = x or eps exactly
        r = torch.minimum(r, t)
        x = centres[torch.randint(8, (n,), generator=gen)] + s * torch.randn(n, 2, generator=gen, dtype=torch.float64)
        z = (1 - t)[:, None] * x + t[:, None] * torch.randn(n, 2, generator=gen, dtype=torch.float64)
        v = posterior_velocities(z, t, centres, s, m, gen)  # (m, n, 2)
        zf, tf, rf = (a.float().repeat(m, *([1] * (a.dim() - 1))) for a in (z, t, r))
        vf = v.reshape(m * n, 2).float()
        with torch.no_grad():
            _, du_dt = torch.func.jvp(lambda zz, time: model.net_output(zz, time, None, interval=time - rf),
                                      (zf, tf), (vf, torch.ones_like(tf)))
        target = (vf - (tf - rf)[:, None] * du_dt).double().reshape(m, n, 2)
        ratio = target.var(0).sum(-1) / v.var(0).sum(-1).clamp(min=1e-12)  # (n,)
        out.append({"width": [lo, hi], "variance_ratio_mean": float(ratio.mean()),
                    "variance_ratio_median": float(ratio.median()), "velocity_variance": float(v.var(0).sum(-1).mean())})
    return out


@contextmanager
def swapped_target(kind: str | None, substeps: int):
    """``MeanFlow.terms`` with its target swapped (see the module's docstring) for the duration."""
    if kind is None:
        yield
        return
    centres, s = eight_gaussians_mixture(TOY_SETS[DATA].noise)
    library = MeanFlow.terms

    def terms(self, model, x0, noise, r, t, labels=None):
        z = model.path.sample(x0, noise, t).x_t
        if kind == "exact-v":
            v = exact_velocity(z.double(), t.double(), centres, s).to(z.dtype)
            tt = t[:, None]
            return library(self, model, z - tt * v, z + (1 - tt) * v, r, t, labels)
        u = model.net_output(z, t, labels, interval=t - r)
        return u, exact_average_velocity(z, r, t, centres, s, substeps).to(u.dtype)

    with mock.patch.object(MeanFlow, "terms", terms):
        yield


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--substeps", type=int, default=32, help="RK4 steps of the oracle's exact average velocity")
    ap.add_argument("--out-dir", default="runs/meanflow-oracle")
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=12345, help="reference draws and scoring noise")
    ap.add_argument("--out", default=None, help="results JSON (default benchmarks/results/meanflow_oracle.json)")
    args = ap.parse_args(argv)
    out = Path(args.out) if args.out else RESULTS / "meanflow_oracle.json"
    settings = {"steps": args.steps, "overrides": NETWORK, "n": args.n, "repeats": args.repeats,
                "substeps": args.substeps}
    old = json.loads(out.read_text()) if out.exists() else {}
    rows = [r for r in old.get("rows", []) if r.get("settings") == settings]
    refs, floors = baselines(DATA, args.n, args.repeats, args.seed)
    started = time.perf_counter()
    for variant in args.variants:
        for seed in args.seeds:
            if any(r["variant"] == variant and r["seed"] == seed for r in rows):
                continue
            overrides, kind = VARIANTS[variant]
            name = variant.replace(" ", "-").replace(",", "")
            run_dir = Path(args.out_dir) / f"{args.steps}" / f"{name}-seed{seed}"
            done = (run_dir / "checkpoints").is_dir()
            t0 = time.perf_counter()
            if not done or load_run(run_dir).step < args.steps:  # a killed run resumes from its checkpoint
                with swapped_target(kind, args.substeps):
                    train(load_config(ROOT / "configs/meanflow-checkerboard.yaml", [
                        f"data.name={DATA}", f"run.dir={run_dir}", f"run.seed={seed}", f"train.steps={args.steps}",
                        "train.sample_every=0", "model.ot_coupling=false", *NETWORK, *overrides]),
                          resume=done, progress=False)
            row = {"variant": variant, "seed": seed, "target": kind or "library", "settings": settings,
                   "run": str(run_dir), "seconds": time.perf_counter() - t0,
                   **score_run(run_dir, DATA, refs, args.seed + 7)}
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "settings"}), flush=True)
            write_results("meanflow_oracle", {"data": DATA, "floors": floors, "rows": rows,
                                              "seconds": time.perf_counter() - started}, out)
    noise = {}  # how the conditional velocity's noise reaches the target, on the first seed's trained networks
    for r in rows:
        if r["seed"] == args.seeds[0] and r["target"] in ("library", "exact-v") and r["variant"].startswith("MeanFlow"):
            noise[r["variant"]] = target_noise(load_run(r["run"]).model, seed=args.seed)
            print(r["variant"], json.dumps(noise[r["variant"]]), flush=True)
    write_results("meanflow_oracle", {"data": DATA, "floors": floors, "rows": rows, "target_noise": noise,
                                      "seconds": time.perf_counter() - started}, out)


if __name__ == "__main__":
    main()
