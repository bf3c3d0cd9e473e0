"""Time to quality on 2-D sets and digits: flowforge's recipes against torchcfm and Meta's flow_matching, each
library with its own usual network and defaults, as a new user would run it.

The peers (a hand-written loop each, as their READMEs / example notebooks write it; one thread, the same
training set of 10 000 points, batch 256, Adam at torch's default 1e-3, constant learning rate, no EMA,
2000 steps, the README's protocol):

- ``torchcfm``: ``ConditionalFlowMatcher(sigma=0)`` with its ``models.MLP(dim=2, time_varying=True)``, the
  README's quick start (width 64, three SELU layers, ``t`` concatenated to ``x``: 8.7k parameters);
- ``torchcfm-w256``: the same with ``w=256`` (133k parameters), the network issue 12 measured;
- ``flow_matching``: ``AffineProbPath(CondOTScheduler())`` with the MLP of its 2-D example notebook (hidden 512,
  Swish, ``t`` concatenated: 794k parameters; the notebook trains it at batch 4096 for 20 000 steps).

Each peer is snapshotted every ``--every`` steps (training time excludes the snapshots) and sampled with
100 Euler steps from the same 5000 prior points; its curve is energy distance against training seconds.

flowforge is run as a user runs it: ``flowforge.train.train`` on a preset with overrides (the engine: schedule,
EMA, clipping, checkpoints), once per step budget, because with a cosine schedule the model after 500 of 2000
steps is not the model of a 500-step run. Its time is the engine's own training time (``TrainResult.seconds``),
its samples the preset's sampler (100 Euler steps for ``rf-moons``; the demo's 50 Heun steps otherwise, 99 NFE),
EMA weights as ``flowforge.load`` returns them.

The target on each set is the best peer's energy distance after its 2000 steps; a flowforge recipe's time to
quality is the training time of its smallest budget whose energy distance (mean over references and seeds) is
at or below the target. Energy distance: 5000 samples against ``--refs`` fresh draws of 5000 points; the noise
floor (a fresh draw against the same references) and the matched Gaussian are stored beside.

Digits (scikit-learn 8x8, ``--datasets digits``): the peers' networks are the same MLPs on the flattened 64-pixel
images (torchcfm's U-Net refuses 8x8 images; flow_matching's lives in its examples, not its package), the
score is the Fréchet distance in the pinned digits CNN's features (``flowforge.metrics``; ``--n`` samples against
the test split; floor: ``--n`` training images), flowforge's recipes start from ``fm-digits``.

    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.time_to_quality              # ~15 min on one thread
    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.time_to_quality --datasets digits --seeds 1 --n 1000
    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.time_to_quality --quick      # smoke run, into /tmp
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch import Tensor, nn

from flowforge.config import load_config
from flowforge.data import load_dataset
from flowforge.metrics import (default_extractor, energy_distance, load_extractor, matched_gaussian,
                               reference_features, score_images)
from flowforge.train import train

from benchmarks.harness import RESULTS, ROOT, mean_std, write_results

METRIC = {"points": "energy_distance", "image": "fd"}  # the score of each kind of data set (lower is better)
PRESET = {"moons": "rf-moons", "checkerboard": "rf-checkerboard", "8gaussians": "rf-moons", "digits": "fm-digits"}
# flowforge recipes: name -> preset -> overrides on top of the data set's preset (data.name set by the script).
# "preset-9e0d588": the presets as they were before this benchmark (rf-moons: MLP 3x256, lr 1e-3 constant, no
# warm-up; rf-checkerboard unchanged since); "w128-lr1e-2-cosine": the recipe rf-moons has used since.
FAST = ["model.net.width=128", "train.lr=1e-2", "train.schedule=cosine", "train.warmup_steps=100"]
# Digits: "preset-9e0d588" is fm-digits as it is (a U-Net, lr 1e-3, batch 100); "unet-lr2e-3" the same network
# at twice the learning rate with logit-normal times; "mlp-3x512" flowforge's MLP on the flattened images, the
# peers' kind of network, at batch 256 and lr 2e-3. A recipe without an entry for a preset is not run on its sets.
RECIPES: dict[str, dict[str, list[str]]] = {
    "preset-9e0d588": {"rf-moons": ["model.net.width=256", "train.lr=1e-3", "train.schedule=constant",
                                    "train.warmup_steps=0"], "rf-checkerboard": [], "fm-digits": []},
    "w128-lr1e-2-cosine": {"rf-moons": FAST, "rf-checkerboard": FAST},
    "unet-lr2e-3": {"fm-digits": ["train.lr=2e-3", "model.time_sampler=logit-normal"]},
    "mlp-3x512": {"fm-digits": ["model.net.name=mlp", "model.net.width=512", "model.net.depth=3",
                                "model.net.attention_levels=[]", "train.batch_size=256", "train.lr=2e-3"]},
}
PEERS = ("torchcfm", "torchcfm-w256", "flow_matching")


def data_overrides(name: str) -> list[str]:
    """The set at its customary noise: rf-moons' ``data.noise: 0.05`` is moons' own, not 8 Gaussians' (0.5)."""
    return [f"data.name={name}"] + ([] if name in ("moons", "digits") else ["data.noise=null"])


# --------------------------------------------------------------------------- the peers, as their examples write them


class Swish(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x * torch.sigmoid(x)


class NotebookMLP(nn.Module):
    """flow_matching's 2-D example network: x and t concatenated, 4 Swish layers of ``hidden``."""

    def __init__(self, dim: int = 2, hidden: int = 512):
        super().__init__()
        self.main = nn.Sequential(nn.Linear(dim + 1, hidden), Swish(), nn.Linear(hidden, hidden), Swish(),
                                  nn.Linear(hidden, hidden), Swish(), nn.Linear(hidden, hidden), Swish(),
                                  nn.Linear(hidden, dim))

    def forward(self, x: Tensor, t: Tensor, **extras) -> Tensor:
        t = t.reshape(-1, 1).expand(x.shape[0], 1)
        return self.main(torch.cat([x, t], dim=1))


def peer(name: str, dim: int):
    """(network, loss(x1, generator), velocity(x, t)) of a peer, data at t = 1 and noise at t = 0."""
    if name.startswith("torchcfm"):
        from torchcfm.conditional_flow_matching import ConditionalFlowMatcher
        from torchcfm.models import MLP
        net = MLP(dim=dim, time_varying=True, w=256 if name.endswith("w256") else 64)
        fm = ConditionalFlowMatcher(sigma=0.0)

        def loss(x1: Tensor, gen: torch.Generator) -> Tensor:
            x0 = torch.randn(x1.shape, generator=gen)
            t, xt, ut = fm.sample_location_and_conditional_flow(x0, x1)
            return ((net(torch.cat([xt, t[:, None]], dim=-1)) - ut) ** 2).mean()

        def velocity(x: Tensor, t: float) -> Tensor:
            return net(torch.cat([x, torch.full((len(x), 1), t)], dim=-1))
    else:
        from flow_matching.path import AffineProbPath
        from flow_matching.path.scheduler import CondOTScheduler
        net = NotebookMLP(dim)
        path = AffineProbPath(scheduler=CondOTScheduler())

        def loss(x1: Tensor, gen: torch.Generator) -> Tensor:
            x0 = torch.randn(x1.shape, generator=gen)
            t = torch.rand(len(x1), generator=gen)
            s = path.sample(t=t, x_0=x0, x_1=x1)
            return ((net(s.x_t, s.t) - s.dx_t) ** 2).mean()

        def velocity(x: Tensor, t: float) -> Tensor:
            return net(x, torch.full((len(x),), t))
    return net, loss, velocity


@torch.no_grad()
def euler(velocity, start: Tensor, steps: int) -> Tensor:
    x, h = start.clone(), 1.0 / steps
    for i in range(steps):
        x = x + h * velocity(x, i * h)
    return x


def run_peer(name: str, data: Tensor, args, seed: int, start: Tensor, score) -> dict:
    torch.manual_seed(seed)
    net, loss, velocity = peer(name, data.shape[1])
    opt = torch.optim.Adam(net.parameters())  # lr 1e-3, the examples' default
    gen = torch.Generator().manual_seed(seed)
    curve, seconds = [], 0.0
    for step in range(1, args.steps + 1):
        t0 = time.perf_counter()
        x1 = data[torch.randint(len(data), (args.batch,), generator=gen)]
        opt.zero_grad()
        loss(x1, gen).backward()
        opt.step()
        seconds += time.perf_counter() - t0
        if step % args.every == 0 or step == args.steps:
            net.eval()
            curve.append({"step": step, "seconds": seconds, **score(euler(velocity, start.flatten(1), 100))})
            net.train()
    n_params = sum(p.numel() for p in net.parameters())
    return {"parameters": n_params, "curve": curve}


# --------------------------------------------------------------------------- flowforge through the engine


def run_flowforge(dataset_name: str, overrides: list[str], steps: int, seed: int, start: Tensor, score) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(ROOT / "configs" / f"{PRESET[dataset_name]}.yaml",
                          [*data_overrides(dataset_name), f"run.dir={tmp}/run", f"train.steps={steps}",
                           f"run.seed={seed}", "train.sample_every=0", "train.tensorboard=false",
                           f"train.ckpt_every={steps}", f"train.log_every={min(100, steps)}", *overrides])
        result = train(cfg, progress=False)
    model = result.ema if result.ema is not None else result.model
    model.eval()
    options = {"sampler": cfg.sample.sampler, "steps": cfg.sample.steps}
    with torch.no_grad():
        x = model.sample(len(start), noise=start.clone(), **options)  # the peers' start points
    return {"step": steps, "seconds": result.seconds, "sampler": options,
            "parameters": sum(p.numel() for p in result.model.parameters()), **score(x)}


# --------------------------------------------------------------------------- one data set


def image_scorer(dataset, n: int):
    """Fréchet distance in the data set's pinned extractor (``flowforge.metrics``) against its test split."""
    extractor = load_extractor(default_extractor(dataset.name, dataset.shape))
    value_range = tuple(dataset.value_range)
    reference = reference_features(dataset.test, dataset=dataset.name, split="test", extractor=extractor,
                                   value_range=value_range)

    def score(x: Tensor, check_range: bool = False) -> dict:
        r = score_images(x.reshape(len(x), *dataset.shape)[:n], reference, extractor=extractor,
                         value_range=value_range, seed=0, check_range=check_range)
        return {METRIC["image"]: r["fd"], "per_reference": [r["fd"]]}
    return score


def run_dataset(name: str, args, earlier: dict | None = None) -> dict:
    """One data set's peers and flowforge runs; with ``earlier`` (this set's results from an earlier run of the
    script) its peers' curves and flowforge runs are kept and only the (seed, recipe, budget) runs it lacks run."""
    cfg = load_config(ROOT / "configs" / f"{PRESET[name]}.yaml", data_overrides(name))
    dataset = load_dataset(cfg.data)
    data = dataset.train.flatten(1)
    metric = METRIC[dataset.kind]
    if dataset.kind == "image":
        score = image_scorer(dataset, args.n)
        pick = torch.randperm(len(dataset.train), generator=torch.Generator().manual_seed(999))[:args.n]
        floor = score(dataset.train[pick], check_range=True)[metric]
        gauss = score(matched_gaussian(dataset.train, args.n, seed=998).clamp(*dataset.value_range))[metric]
    else:
        refs = [dataset.reference(args.n, seed=1000 + k) for k in range(args.refs)]

        def score(x: Tensor) -> dict:
            values = [energy_distance(x[:len(r)], r) for r in refs]
            return {metric: statistics.fmean(values), "per_reference": values}

        floor = score(dataset.fresh(args.n, 999))[metric]
        gauss = score(matched_gaussian(dataset.train, args.n, seed=998).flatten(1))[metric]
    print(f"{name}: noise floor {floor:.4f}, matched Gaussian {gauss:.4f} ({metric})", flush=True)
    out: dict = {"metric": metric, "noise_floor": floor, "matched_gaussian": gauss, "peers": {}, "flowforge": {}}
    done = set()
    if earlier is not None:
        out["peers"] = {p: {k: v for k, v in rec.items() if k != "mean_curve"} for p, rec in earlier["peers"].items()}
        out["flowforge"] = {r: {k: v for k, v in rec.items() if k not in ("mean_curve", "time_to_target",
                                                                          "ratio_to_peer")}
                            for r, rec in earlier["flowforge"].items()}
        done = {(run["seed"], recipe, run["step"]) for recipe, rec in out["flowforge"].items() for run in rec["runs"]}
    for seed in range(args.seeds):
        start = torch.randn(args.n, *dataset.shape, generator=torch.Generator().manual_seed(10_000 + seed))
        for p in args.peers if earlier is None else ():
            r = run_peer(p, data, args, seed, start, score)
            out["peers"].setdefault(p, {"parameters": r["parameters"], "seeds": []})["seeds"].append(r["curve"])
            last = r["curve"][-1]
            print(f"  seed {seed} {p:14s} {last['step']} steps {last['seconds']:6.1f} s  "
                  f"{metric} {last[metric]:.4f}", flush=True)
        for recipe in args.recipes:
            if PRESET[name] not in RECIPES[recipe]:
                continue
            for steps in args.budgets:
                if (seed, recipe, steps) in done:
                    continue
                overrides = RECIPES[recipe][PRESET[name]]
                r = run_flowforge(name, overrides, steps, seed, start, score)
                rec = out["flowforge"].setdefault(recipe, {"overrides": overrides, "parameters": r["parameters"],
                                                           "sampler": r["sampler"], "runs": []})
                rec["runs"].append({"seed": seed, **{k: r[k] for k in ("step", "seconds", metric, "per_reference")}})
                print(f"  seed {seed} flowforge {recipe:24s} {steps:5d} steps {r['seconds']:6.1f} s  "
                      f"{metric} {r[metric]:.4f}", flush=True)
    summarise(out)
    return out


def summarise(out: dict) -> None:
    """Means over seeds; the target (best peer at its last step) and each recipe's time to reach it."""
    m = out.get("metric", "energy_distance")
    for p, rec in out["peers"].items():
        points = list(zip(*rec["seeds"]))
        rec["mean_curve"] = [{"step": pts[0]["step"], "seconds": statistics.fmean(x["seconds"] for x in pts),
                              m: statistics.fmean(x[m] for x in pts)} for pts in points]
    best = min(out["peers"], key=lambda p: out["peers"][p]["mean_curve"][-1][m])
    target = out["peers"][best]["mean_curve"][-1]
    out["target"] = {"peer": best, m: target[m], "seconds": target["seconds"]}
    for rec in out["flowforge"].values():
        by_step: dict[int, list[dict]] = {}
        for r in rec["runs"]:
            by_step.setdefault(r["step"], []).append(r)
        rec["mean_curve"] = [{"step": s, "seconds": statistics.fmean(r["seconds"] for r in rs),
                              m: statistics.fmean(r[m] for r in rs), f"{m}_std": mean_std([r[m] for r in rs])[1]}
                             for s, rs in sorted(by_step.items())]
        hit = [c for c in rec["mean_curve"] if c[m] <= target[m]]
        rec["time_to_target"] = hit[0]["seconds"] if hit else None
        rec["ratio_to_peer"] = hit[0]["seconds"] / target["seconds"] if hit else None


def figure(results: dict, path: Path, peer_steps: int) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    names = list(results)
    fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 4), squeeze=False)
    for ax, name in zip(axes[0], names):
        r = results[name]
        m = r.get("metric", "energy_distance")
        for p, rec in r["peers"].items():
            c = rec["mean_curve"]
            ax.plot([x["seconds"] for x in c], [x[m] for x in c], "--o", ms=3, label=p)
        for recipe, rec in r["flowforge"].items():
            c = rec["mean_curve"]
            ax.plot([x["seconds"] for x in c], [x[m] for x in c], "-s", ms=4, label=f"flowforge {recipe}")
        ax.axhline(r["target"][m], color="k", lw=0.8, label=f"target (best peer, {peer_steps} steps)")
        ax.axhline(r["noise_floor"], color="grey", ls=":", lw=0.8, label="noise floor")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("training seconds (one thread)")
        ax.set_ylabel({"energy_distance": "energy distance", "fd": "Fréchet distance (digits CNN)"}[m])
        ax.set_title(name)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def read_json(path: str) -> dict:
    import json
    return json.loads(Path(path).read_text())


# the arguments that define what an earlier run measured: an extension must share them, or its budgets would be
# set against peers trained and scored another way
SHARED_ARGS = ("peers", "steps", "batch", "every", "seeds", "n", "refs")


def earlier_results(parser: argparse.ArgumentParser, args: argparse.Namespace) -> dict:
    """The results file ``--extend`` adds to, checked to measure the same thing as this run."""
    if not Path(args.out).is_file():
        parser.error(f"--extend: no results file {args.out} to extend; run without --extend first")
    before = read_json(args.out)
    missing = [name for name in args.datasets if name not in before.get("results", {})]
    if missing:
        parser.error(f"--extend: {args.out} has no results for {', '.join(missing)}; run them without --extend "
                     f"(and another --out)")
    differ = {k: (before["args"].get(k), getattr(args, k)) for k in SHARED_ARGS
              if before["args"].get(k) != getattr(args, k)}
    if differ:
        parser.error("--extend: " + ", ".join(f"--{k} {new} differs from the earlier run's {old}"
                                              for k, (old, new) in differ.items())
                     + f" in {args.out}; pass the earlier values")
    return before


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", nargs="+", default=["moons", "checkerboard", "8gaussians"], choices=sorted(PRESET))
    p.add_argument("--peers", nargs="+", default=list(PEERS), choices=PEERS)
    p.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=sorted(RECIPES))
    p.add_argument("--budgets", type=int, nargs="+", default=[250, 500, 1000, 2000], help="flowforge step budgets")
    p.add_argument("--steps", type=int, default=2000, help="peers' training steps")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--every", type=int, default=500, help="peers' snapshot interval")
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--n", type=int, default=5000)
    p.add_argument("--refs", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="smoke run: 1 set, tiny budgets")
    p.add_argument("--extend", action="store_true",
                   help="keep the results file's peers and flowforge runs; run only the budgets it lacks")
    p.add_argument("--out", default=None, help="results JSON (default benchmarks/results/time_to_quality.json, "
                                               "time_to_quality_digits.json for --datasets digits)")
    args = p.parse_args()
    if args.out is None:  # a smoke run's results go to the temporary directory, never over the committed ones
        args.out = str(Path(tempfile.gettempdir()) / "time_to_quality_quick.json" if args.quick
                       else RESULTS / ("time_to_quality_digits.json" if args.datasets == ["digits"]
                                       else "time_to_quality.json"))
    if args.quick:
        args.datasets, args.budgets, args.steps, args.every, args.seeds, args.n = ["moons"], [50], 100, 50, 1, 500
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    before = earlier_results(p, args) if args.extend else None
    results = {name: run_dataset(name, args, before["results"][name] if before else None) for name in args.datasets}
    if before:  # the sets this run did not touch stay as they were
        results = {**{k: v for k, v in before["results"].items() if k not in results}, **results}
    recorded = {k: v for k, v in vars(args).items() if k != "out"}
    recorded["recipes"] = list(dict.fromkeys(r for res in results.values() for r in res["flowforge"]))  # all kept
    record = {"args": recorded, "threads": 1,
              "extends": {k: before.get(k) for k in ("date", "command", "args", "seconds", "extends")} if before
              else None,
              "cpu_capability": torch.backends.cpu.get_cpu_capability(), "results": results,
              "seconds": time.perf_counter() - t0}
    path = write_results(Path(args.out).stem, record, args.out)
    # the docs' figure's name for a default results file (`make docs-figures` copies it); beside any other
    default = Path(args.out).parent == RESULTS and Path(args.out).stem.startswith("time_to_quality")
    figure(results, RESULTS / f"{Path(args.out).stem.replace('_', '-')}.png" if default
           else Path(args.out).with_suffix(".png"), args.steps)
    for name, r in results.items():
        t = r["target"]
        print(f"{name}: target {t[r['metric']]:.4f} ({t['peer']}, {t['seconds']:.1f} s)")
        for recipe, rec in r["flowforge"].items():
            ratio = rec["ratio_to_peer"]
            print(f"  {recipe:24s} " + (f"{rec['time_to_target']:.1f} s = {ratio:.2f}x" if ratio else "not reached"))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
