"""Neural spline flows and MAFs: flowforge against zuko, normflows and nflows on the 2-D sets and digits.

Each library builds its NSF (and zuko and flowforge their MAF) as its documentation does, at one size: 3
autoregressive transforms, MADE conditioners of 2 hidden layers (64 units on 2-D sets, 256 on digits), 8 bins
(:mod:`benchmarks.density_peers`). All get the same pre-drawn batches, Adam at the same rate and the same
hand-written loop, interleaved in rounds of ``--round`` steps so load on this shared machine hits them alike.
Reported per set and library: median ms per step (forward + backward + Adam), its ratio to flowforge's NSF, the
test NLL (nats per example) after all steps and at the wall-clock time flowforge's NSF needed for all of its.
Beside them: a Gaussian with the training data's mean and covariance, and on moons the true density's NLL.

Digits are the 8x8 scikit-learn digits in [0, 1] (17 levels, divided by 17 after adding uniform noise, one fixed
draw for the test set), so the NLL is that of the dequantized density, as flowforge's flows report it.

    OMP_NUM_THREADS=1 nice -n 5 .venv/bin/python -m benchmarks.density_vs_peers --sets moons checkerboard \\
        8gaussians digits --steps 2000 --batch 256

Results go to benchmarks/results/density_vs_peers.json (one key per set, kept across runs).

With ``--recipes`` every library comes as a user gets it instead (:data:`benchmarks.density_peers.RECIPES`): its
flow and optimiser as its README or example builds them, flowforge's the presets configs/nsf-moons.yaml and
configs/maf-moons.yaml; same batches, steps and loop. Results go to benchmarks/results/density_recipes.json.

    OMP_NUM_THREADS=1 nice -n 5 .venv/bin/python -m benchmarks.density_vs_peers --recipes --sets moons \
        --steps 1000 --batch 256
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time

import numpy as np
import torch

from benchmarks.density_peers import BUILDERS, RECIPES, versions
from benchmarks.flows_vs_peers import gaussian_nll, nll_at, true_moons_nll
from benchmarks.harness import RESULTS, write_results

REFERENCE = "flowforge-nsf"


def two_d(name: str, seed: int) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """10000 training and 5000 test points of a 2-D set; moons from make_moons (noise 0.05), the others from
    flowforge's toy sets."""
    if name == "moons":
        from sklearn.datasets import make_moons
        train, test = (make_moons(n, noise=0.05, random_state=s)[0] for n, s in ((10000, seed), (5000, 12345)))
        extra = {"noise_floor_true_density_nll": true_moons_nll(test, 0.05)}
    else:
        from flowforge.data.toy import TOY_SETS
        toy = TOY_SETS[name]
        train, test = (toy.sample(n, np.random.default_rng([seed, s]), toy.noise or 0.0)
                       for n, s in ((10000, 0), (5000, 1)))
        extra = {}
    extra["gaussian_baseline_nll"] = gaussian_nll(train.astype(np.float64), test.astype(np.float64))
    return torch.tensor(train, dtype=torch.float32), torch.tensor(test, dtype=torch.float32), extra


def digits(seed: int) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """Digits' fixed 1500 / 297 split (flowforge.data.digits), dequantized to [0, 1]: the training set with fresh
    noise per batch is approximated by 20 noisy copies; the test set with one fixed draw."""
    from flowforge.config import DataConfig
    from flowforge.data import load_dataset

    data = load_dataset(DataConfig(name="digits", image_range="unit"))
    levels = [torch.round(x.flatten(1) * 16) for x in (data.train, data.test)]  # 0..16
    g = torch.Generator().manual_seed(seed)
    train = torch.cat([(levels[0] + torch.rand(levels[0].shape, generator=g)) / 17 for _ in range(20)])
    test = (levels[1] + torch.rand(levels[1].shape, generator=g)) / 17
    extra = {"gaussian_baseline_nll": gaussian_nll(train.double().numpy(), test.double().numpy()),
             "nats_to_bits_per_dim": "bits/dim = (NLL + 64 ln 17) / (64 ln 2)"}
    return train, test, extra


def train_side_by_side(entries: dict, batches: list[tuple], test: tuple, args) -> dict:
    """Every library trained on the same batches ``(x, context or None)`` in interleaved rounds; step times and
    (seconds, test NLL) curves, the NLL of ``test = (x, context or None)``."""
    x_test, c_test = test
    opts = {n: torch.optim.Adam(e.module.parameters(), lr=e.lr or args.lr, weight_decay=e.weight_decay)
            for n, e in entries.items()}
    times = {n: [] for n in entries}
    curves = {n: [] for n in entries}
    names = list(entries)

    def evaluate(name: str) -> None:
        e = entries[name]
        e.module.eval()
        with torch.no_grad():
            v = float(sum(e.nll(x_test[i:i + 1000], None if c_test is None else c_test[i:i + 1000])
                          * len(x_test[i:i + 1000]) for i in range(0, len(x_test), 1000)) / len(x_test))
        e.module.train()
        curves[name].append((sum(times[name]), v))

    for name in names:
        evaluate(name)
    for r in range(math.ceil(len(batches) / args.round)):
        for name in names[r % len(names):] + names[:r % len(names)]:  # rotate who goes first
            e, opt = entries[name], opts[name]
            for s in range(r * args.round, min(len(batches), (r + 1) * args.round)):
                t0 = time.perf_counter()
                opt.zero_grad(set_to_none=True)
                e.loss(*batches[s]).backward()
                opt.step()
                times[name].append(time.perf_counter() - t0)
                if (s + 1) % args.eval_every == 0 or s + 1 == len(batches):
                    evaluate(name)
    return {"times": times, "curves": curves}


def summarise(entries: dict, run: dict, warmup: int) -> dict:
    times, curves = run["times"], run["curves"]
    ref_ms = statistics.median(times[REFERENCE][warmup:])
    out = {}
    for name, e in entries.items():
        at, reached = nll_at(curves[name], sum(times[REFERENCE]))
        ms = statistics.median(times[name][warmup:])
        out[name] = {"params": e.params, "median_ms_per_step": ms * 1e3, "ratio_to_flowforge_nsf": ms / ref_ms,
                     "train_s": sum(times[name]), "final_test_nll": curves[name][-1][1],
                     "nll_at_flowforge_nsf_time": at, "reached_flowforge_nsf_time": reached,
                     "architecture": e.note, "curve": curves[name]}
    return out


def run_set(name: str, args) -> dict:
    train, x_test, extra = digits(args.seed) if name == "digits" else two_d(name, args.seed)
    dim, hidden, bound = train.shape[1], (256 if name == "digits" else 64), 5.0
    g = torch.Generator().manual_seed(args.seed)
    batches = [(train[torch.randint(0, len(train), (args.batch,), generator=g)], None) for _ in range(args.steps)]
    entries = {}
    for i, lib in enumerate(args.libs):
        torch.manual_seed(1000 + i)
        entries[lib] = RECIPES[lib](dim) if args.recipes else BUILDERS[lib](dim, 0, hidden, bound)
    run = train_side_by_side(entries, batches, (x_test, None), args)
    summary = summarise(entries, run, args.warmup)
    for lib, s in summary.items():
        print(f"  {name:12s} {lib:14s} {s['params']:8d} params {s['median_ms_per_step']:7.2f} ms/step "
              f"(x{s['ratio_to_flowforge_nsf']:.2f}) NLL {s['final_test_nll']:8.4f}, at ff-nsf time "
              f"{s['nll_at_flowforge_nsf_time']:8.4f}", flush=True)
    print(f"  {name:12s} baselines {json.dumps({k: v for k, v in extra.items() if 'nll' in k})}", flush=True)
    sizes = {"recipes": True} if args.recipes else {"hidden": hidden, "bound": bound}
    return {"steps": args.steps, "batch": args.batch, "lr": args.lr, **sizes, **extra, "summary": summary}


def training_arguments(doc: str) -> argparse.ArgumentParser:
    """The options of a side-by-side training run (shared with ``benchmarks.sbi_vs_zuko``)."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--round", type=int, default=100, help="steps per library before switching")
    parser.add_argument("--warmup", type=int, default=100, help="steps left out of the median step time")
    parser.add_argument("--eval-every", type=int, default=250)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    return parser


def main() -> None:
    parser = training_arguments(__doc__)
    parser.add_argument("--sets", nargs="+", default=["moons", "checkerboard", "8gaussians", "digits"])
    parser.add_argument("--libs", nargs="+", help=f"default: all; {', '.join(BUILDERS)} (with --recipes: "
                        f"{', '.join(RECIPES)})")
    parser.add_argument("--recipes", action="store_true", help="each library as its README or example builds it")
    args = parser.parse_args()
    known = RECIPES if args.recipes else BUILDERS
    args.libs = args.libs or list(known)
    if unknown := sorted(set(args.libs) - set(known)):
        parser.error(f"--libs: {unknown} not among {list(known)}")
    torch.set_num_threads(args.threads)
    result = "density_recipes" if args.recipes else "density_vs_peers"
    path = RESULTS / f"{result}.json"
    for name in args.sets:
        row = run_set(name, args)
        sets = json.loads(path.read_text())["sets"] if path.is_file() else {}  # read late: runs of other sets may
        sets[name] = row                                                        # have written theirs meanwhile
        write_results(result, {"versions": versions(), "threads": args.threads, "sets": sets})


if __name__ == "__main__":
    main()
