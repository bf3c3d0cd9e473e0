"""MeanFlow's loss weight on the 2-D sets: the paper's adaptive weight (p = 0.5, 1) against plain least squares
(p = 0), the weight on ``r != t`` pairs only (``apart``) and one weight per group (``group``), the ``r != t``
share, and the time of the ``r = t`` pairs (the larger of two draws, as the paper's code, or one draw, flow
matching's law: "FM times"), each against flow matching with the same network, data, time law and budget.

Every run is ``configs/meanflow-checkerboard.yaml`` with the set's data and ``--overrides`` (flow matching: the
same with ``model.objective=regression``), trained through the library as a user trains it. Scores, 5000 samples
against 3 fresh reference draws (energy distance, mean over the draws): MeanFlow's sampler at 1 and 2 steps, and
the instantaneous field ``u(z, t, t)`` integrated by 100 Euler steps. On 8 Gaussians, where the data are a Gaussian
mixture and ``E[v | z_t]`` is known in closed form (:func:`exact_velocity`), also the RMS distance of the trained
field from it over ``z_t ~ p_t`` (t = 0.1 ... 0.9), and of the one-step map from the exact ODE's map of the same
noise (RK4, 400 steps of the exact field).

    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.meanflow_weighting --sets 8gaussians pinwheel
    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.meanflow_weighting --sets moons checkerboard \\
        --out benchmarks/results/meanflow_weighting_b.json

A second call with the same ``--out`` keeps the rows it already has (same set, variant and settings) and
trains only the missing runs; a run directory that holds a checkpoint is scored, not trained again.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch

from flowforge.config import load_config
from flowforge.data import load_dataset
from flowforge.data.toy import TOY_SETS
from flowforge.metrics import energy_distance
from flowforge.runs import load_run, read_metrics
from flowforge.train import train

from benchmarks.harness import RESULTS, ROOT, mean_std, write_results

# name -> overrides of the MeanFlow preset; "flow matching" is the reference every MeanFlow row is divided by
PAPER_TIMES = "model.meanflow.flow_matching_times=false"  # r = t pairs at the larger of two draws (the paper's code)
VARIANTS: dict[str, list[str]] = {
    "flow matching": ["model.objective=regression", "sample.sampler=euler", "sample.steps=100"],
    "p=0": ["model.meanflow.p=0", PAPER_TIMES],
    "p=0.5": ["model.meanflow.p=0.5", "model.meanflow.weighting=example", PAPER_TIMES],
    "p=1 (paper)": ["model.meanflow.p=1", "model.meanflow.weighting=example", PAPER_TIMES],
    "p=1 apart": ["model.meanflow.p=1", "model.meanflow.weighting=apart", PAPER_TIMES],
    "p=1 group": ["model.meanflow.p=1", "model.meanflow.weighting=group", PAPER_TIMES],
    "p=0 ratio 0.5": ["model.meanflow.p=0", "model.meanflow.ratio=0.5", PAPER_TIMES],
    "p=0 ratio 0.75": ["model.meanflow.p=0", "model.meanflow.ratio=0.75", PAPER_TIMES],
    # flowforge's defaults: r = t pairs at flow matching's times (one draw)
    "p=1 group, FM times": ["model.meanflow.p=1", "model.meanflow.weighting=group"],
    "p=0, FM times": ["model.meanflow.p=0"],
    "p=1 (paper), FM times": ["model.meanflow.p=1", "model.meanflow.weighting=example"],
    # the r != t share and the time law, with FM times and p = 0 (issue 31, step 2)
    "p=0, FM times, ratio 0.5": ["model.meanflow.p=0", "model.meanflow.ratio=0.5"],
    "p=0, FM times, ratio 0.75": ["model.meanflow.p=0", "model.meanflow.ratio=0.75"],
    "p=0, FM times, uniform t": ["model.meanflow.p=0", "model.time_sampler=uniform"],
    # minibatch-OT pairs: a conditional velocity closer to E[v | z], the target's noise lowered (meanflow_oracle)
    "p=0, FM times, minibatch OT": ["model.meanflow.p=0", "model.ot_coupling=true"],
    "flow matching, uniform t": ["model.objective=regression", "sample.sampler=euler", "sample.steps=100",
                                 "model.time_sampler=uniform"],
}
FIELD_TIMES = (0.1, 0.3, 0.5, 0.7, 0.9)


def eight_gaussians_mixture(noise: float) -> tuple[torch.Tensor, float]:
    """The 8-Gaussian set (``flowforge.data.toy.eight_gaussians``) as a mixture: centres (8, 2), component std."""
    angles = torch.arange(8, dtype=torch.float64) * (math.pi / 4)
    centres = 4.0 * torch.stack([angles.cos(), angles.sin()], 1) / 1.414
    return centres, noise / 1.414


def exact_velocity(z: torch.Tensor, t: torch.Tensor, centres: torch.Tensor, s: float) -> torch.Tensor:
    """``E[v | z_t = z]`` for data ``sum_k N(mu_k, s^2 I) / K`` on ``z_t = a x + t eps``, ``a = 1 - t``,
    ``v = eps - x``: given component k, ``z_t ~ N(a mu_k, S I)`` with ``S = a^2 s^2 + t^2`` and ``Cov(v, z_t) =
    (t - a s^2) I``, so ``E[v | z, k] = -mu_k + (t - a s^2) / S (z - a mu_k)``, averaged over the posterior of k
    (softmax of ``-|z - a mu_k|^2 / 2S``). z (N, 2), t (N,)."""
    a, tt = (1 - t)[:, None, None], t[:, None, None]  # (N, 1, 1)
    var = a**2 * s**2 + tt**2
    diff = z[:, None, :] - a * centres[None]  # (N, K, 2)
    post = torch.softmax(-diff.square().sum(-1, keepdim=True) / (2 * var), dim=1)  # (N, K, 1)
    given_k = -centres[None] + (tt - a * s**2) / var * diff  # (N, K, 2)
    return (post * given_k).sum(1)


def rk4_step(f, z: torch.Tensor, t, h):
    """One classical Runge-Kutta step of ``dz/dt = f(z, t)`` from ``t`` by ``h``: floats, or per-example (N,)
    tensors for points z (N, D)."""
    hz = h[:, None] if isinstance(h, torch.Tensor) else h  # the step as it scales z
    k1 = f(z, t)
    k2 = f(z + hz / 2 * k1, t + h / 2)
    k3 = f(z + hz / 2 * k2, t + h / 2)
    k4 = f(z + hz * k3, t + h)
    return z + hz / 6 * (k1 + 2 * k2 + 2 * k3 + k4)


def exact_flow_map(noise: torch.Tensor, centres: torch.Tensor, s: float, steps: int = 400) -> torch.Tensor:
    """The exact ODE ``dz/dt = E[v | z]`` from ``t = 1`` (noise) to ``t = 0`` (RK4, ``steps`` steps)."""
    z, h = noise.double(), -1.0 / steps
    f = lambda zz, tt: exact_velocity(zz, torch.full((len(zz),), tt, dtype=zz.dtype), centres, s)  # noqa: E731
    for i in range(steps):
        z = rk4_step(f, z, 1.0 - i / steps, h)
    return z


def field_errors(model, noise_level: float, n: int, seed: int) -> dict:
    """RMS distance of the trained ``u(z, t, t)`` from the exact ``E[v | z]`` at each of :data:`FIELD_TIMES`
    (``z_t`` drawn from the path's marginal), their mean, and the one-step map's RMS distance from the exact
    flow map of the same noise."""
    centres, s = eight_gaussians_mixture(noise_level)
    gen = torch.Generator().manual_seed(seed)
    x = centres[torch.randint(8, (n,), generator=gen)] + s * torch.randn(n, 2, generator=gen, dtype=torch.float64)
    eps = torch.randn(n, 2, generator=gen, dtype=torch.float64)
    out = {}
    with torch.no_grad():
        for t_value in FIELD_TIMES:
            t = torch.full((n,), t_value, dtype=torch.float64)
            z = (1 - t_value) * x + t_value * eps
            trained = model.net_output(z.float(), t.float(), None).double()
            out[f"field_rmse_t{t_value}"] = float((trained - exact_velocity(z, t, centres, s)).square().sum(1)
                                                  .mean().sqrt())
        out["field_rmse"] = sum(out[f"field_rmse_t{t}"] for t in FIELD_TIMES) / len(FIELD_TIMES)
        if model.objective.trains_interval:
            one = model.sample(n, sampler="mean-flow", steps=1, noise=eps.float()).double()
            out["one_step_map_rmse"] = float((one - exact_flow_map(eps, centres, s)).square().sum(1).mean().sqrt())
    return out


def energy(model, sampler: str, steps: int, refs: list[torch.Tensor], seed: int) -> float:
    x = model.sample(len(refs[0]), sampler=sampler, steps=steps, grid="uniform",
                     generator=torch.Generator().manual_seed(seed))
    return mean_std([float(energy_distance(x, ref)) for ref in refs])[0]


def score_run(run_dir: Path, data: str, refs: list[torch.Tensor], seed: int) -> dict:
    """The scores of one trained run (see the module's docstring)."""
    run = load_run(run_dir)
    model = run.model
    seconds = [r["seconds"] for r in read_metrics(run_dir) if "seconds" in r and r.get("kind", "train") == "train"]
    row = {"euler_100": energy(model, "euler", 100, refs, seed), "steps": run.step,
           "train_seconds": seconds[-1] if seconds else None,
           "parameters": sum(p.numel() for p in model.parameters())}
    if model.objective.trains_interval:
        row["meanflow_1"] = energy(model, "mean-flow", 1, refs, seed)
        row["meanflow_2"] = energy(model, "mean-flow", 2, refs, seed)
    if data == "8gaussians":
        row.update(field_errors(model, TOY_SETS["8gaussians"].noise, len(refs[0]), seed + 1))
    return row


def baselines(data: str, n: int, repeats: int, seed: int) -> tuple[list[torch.Tensor], dict]:
    """Reference draws of the set, its noise floor and a Gaussian with the data's mean and covariance."""
    dataset = load_dataset(load_config(ROOT / "configs/meanflow-checkerboard.yaml", [f"data.name={data}"]).data)
    refs = [dataset.reference(n, seed + i) for i in range(repeats)]
    fresh = [dataset.reference(n, seed + 100 + i) for i in range(repeats)]
    mean, cov = refs[0].mean(0), torch.cov(refs[0].T)
    gauss = torch.distributions.MultivariateNormal(mean, cov)
    torch.manual_seed(seed)
    return refs, {"noise_floor": mean_std([float(energy_distance(f, r)) for f, r in zip(fresh, refs)])[0],
                  "gaussian": mean_std([float(energy_distance(gauss.sample((n,)), r)) for r in refs])[0]}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets", nargs="+", default=["8gaussians", "pinwheel", "moons", "checkerboard"])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--overrides", nargs="*", default=["model.net.width=128", "model.net.depth=3",
                                                       "train.batch_size=256"],
                    help="config overrides of every run (network, batch) on top of the MeanFlow preset")
    ap.add_argument("--out-dir", default="runs/meanflow-weighting")
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=12345)
    ap.add_argument("--out", default=None, help="results JSON (default benchmarks/results/meanflow_weighting.json)")
    args = ap.parse_args(argv)
    out = Path(args.out) if args.out else RESULTS / "meanflow_weighting.json"
    settings = {"steps": args.steps, "overrides": args.overrides, "n": args.n, "repeats": args.repeats}
    old = json.loads(out.read_text()) if out.exists() else {}
    rows = [r for r in old.get("rows", []) if r.get("settings") == settings]
    sets = {k: v for k, v in old.get("sets", {}).items()}
    started = time.perf_counter()
    for data in args.sets:
        refs, sets[data] = baselines(data, args.n, args.repeats, args.seed)
        for variant in args.variants:
            if any(r["data"] == data and r["variant"] == variant for r in rows):
                continue
            run_dir = Path(args.out_dir) / data / variant.replace(" ", "-").replace("(", "").replace(")", "")
            t0 = time.perf_counter()
            done = (run_dir / "checkpoints").is_dir()
            if not done or load_run(run_dir).step < args.steps:  # a killed run resumes from its checkpoint
                train(load_config(ROOT / "configs/meanflow-checkerboard.yaml", [
                    f"data.name={data}", f"run.dir={run_dir}", f"train.steps={args.steps}", "train.sample_every=0",
                    "model.ot_coupling=false",  # the sweep's coupling; a variant may set OT
                    *args.overrides, *VARIANTS[variant]]), resume=done, progress=False)
            row = {"data": data, "variant": variant, "settings": settings, "run": str(run_dir),
                   "seconds": time.perf_counter() - t0, **score_run(run_dir, data, refs, args.seed + 7)}
            rows.append(row)
            print(json.dumps(row), flush=True)
            write_results("meanflow_weighting", {"sets": sets, "rows": rows,
                                                 "seconds": time.perf_counter() - started}, out)


if __name__ == "__main__":
    main()
