"""RealNVP on two moons: flowforge against normflows and zuko, side by side in one process.

Every library gets the same architecture (8 affine couplings on alternating halves of the 2 coordinates,
conditioners MLP 128x128 ReLU, standard Gaussian prior), the same pre-drawn batches, Adam 1e-3 and the
same hand-written training loop (no flowforge training engine: zero_grad, loss, backward, step). The
libraries are interleaved in rounds of ``--round`` steps, so load on this noisy 2-core machine hits them
alike. Reported per library:

- median milliseconds per step (forward + backward + Adam step) after ``--warmup`` steps, and its ratio
  to flowforge's (> 1: the peer is slower);
- test NLL (nats per example) on 5000 fresh points, every ``--eval-every`` steps, against the cumulative
  training time (evaluation not timed), so the NLL each library reached at the wall-clock time flowforge
  needed for all its steps can be read off (linear interpolation between evaluations).

Next to it: a Gaussian with the training data's mean and covariance (trivial baseline) and the exact
NLL of the true moons density (noise floor: make_moons places points uniformly in the angle on two
half circles, then adds N(0, noise^2) noise, so its density is a 1-D integral done on a fine grid).

    .venv/bin/python -m benchmarks.flows_vs_peers --steps 2000 --batch 256 --threads 1 --repeats 3

Results also go to benchmarks/results/flows_vs_peers.json.
"""

from __future__ import annotations

import argparse
import math
import platform
import statistics
import time
from typing import Callable

import numpy as np
import torch
from sklearn.datasets import make_moons

from benchmarks.harness import RESULTS, write_results

LIBS = ("flowforge", "normflows", "zuko")
COUPLINGS, HIDDEN = 8, 128


# --------------------------------------------------------------------------- the three models


class Entry:
    """One library's model: ``loss(x)`` is its training objective, ``nll(x)`` the test NLL per example."""

    def __init__(self, name: str, module: torch.nn.Module, loss: Callable, nll: Callable, note: str):
        self.name, self.module, self.loss, self.nll, self.note = name, module, loss, nll, note
        self.params = sum(p.numel() for p in module.parameters() if p.requires_grad)


def build_flowforge() -> Entry:
    from flowforge.config import FlowConfig
    from flowforge.flows import realnvp

    model = realnvp(FlowConfig(couplings=COUPLINGS, hidden=HIDDEN, hidden_layers=2, scale_fn="tanh", prior="gaussian"),
                    {"shape": [2], "kind": "points", "levels": None, "value_range": None})
    # model.loss is the objective flowforge's trainer uses: mean NLL per dimension (= per-example NLL / 2;
    # Adam is invariant to that constant factor up to its eps).
    return Entry("flowforge", model, model.loss, lambda x: -model.log_prob(x).mean(),
                 "AffineCoupling(half_mask) x8, conditioner MLP 2-128-128-4 on the masked input (zero-init last "
                 "layer), log s = a * tanh(raw) with learned a per dim")


def build_normflows() -> Entry:
    import normflows as nf

    flows = []
    for _ in range(COUPLINGS):
        flows += [nf.flows.AffineCouplingBlock(nf.nets.MLP([1, HIDDEN, HIDDEN, 2], init_zeros=True)),
                  nf.flows.Permute(2, mode="swap")]
    model = nf.NormalizingFlow(nf.distributions.DiagGaussian(2, trainable=False), flows)
    return Entry("normflows", model, model.forward_kld, lambda x: -model.log_prob(x).mean(),
                 "AffineCouplingBlock(MLP [1,128,128,2], init_zeros=True) + Permute(swap) x8, scale_map='exp' "
                 "(unbounded log-scale), fixed DiagGaussian")


def build_zuko() -> Entry:
    import zuko

    flow = zuko.flows.RealNVP(2, transforms=COUPLINGS, hidden_features=(HIDDEN, HIDDEN))
    for t in flow.transform.transforms:  # zero-init the last layer like the other two (zuko has no option for it)
        torch.nn.init.zeros_(t.hyper[-1].weight)
        torch.nn.init.zeros_(t.hyper[-1].bias)

    def nll(x):
        return -flow().log_prob(x).mean()

    return Entry("zuko", flow, nll, nll,
                 "RealNVP(2, transforms=8, hidden_features=(128,128)): GeneralCouplingTransform with "
                 "MonotonicAffineTransform (log-scale soft-clipped to |.| < 6.9), MLP 1-128-128-2 (last layer "
                 "zeroed here), index split/merge")


BUILDERS = {"flowforge": build_flowforge, "normflows": build_normflows, "zuko": build_zuko}


# --------------------------------------------------------------------------- references


def true_moons_nll(x: np.ndarray, noise: float, grid: int = 4000, chunk: int = 500) -> float:
    """Exact NLL (nats/example) of make_moons' distribution: angle uniform on [0, pi] for each half circle,
    then isotropic Gaussian noise; the angle is integrated on a fine grid (spacing pi/grid << noise)."""
    t = np.linspace(0.0, math.pi, grid)
    centres = np.concatenate([np.stack([np.cos(t), np.sin(t)], 1),
                              np.stack([1 - np.cos(t), 1 - np.sin(t) - 0.5], 1)])  # (2 grid, 2)
    log_p = []
    for xc in np.array_split(x, max(1, len(x) // chunk)):
        d2 = ((xc[:, None, :] - centres[None]) ** 2).sum(-1)  # (chunk, 2 grid)
        log_k = -d2 / (2 * noise**2) - math.log(2 * math.pi * noise**2)
        m = log_k.max(1, keepdims=True)
        log_p.append(m[:, 0] + np.log(np.exp(log_k - m).mean(1)))
    return float(-np.concatenate(log_p).mean())


def gaussian_nll(train: np.ndarray, test: np.ndarray) -> float:
    mu, cov = train.mean(0), np.cov(train.T)
    d = test - mu
    maha = np.einsum("ni,ij,nj->n", d, np.linalg.inv(cov), d)
    return float((0.5 * maha + 0.5 * np.log(np.linalg.det(cov)) + math.log(2 * math.pi)).mean())


# --------------------------------------------------------------------------- the run


def nll_at(curve: list[tuple[float, float]], t: float) -> tuple[float, bool]:
    """NLL at training time ``t`` by linear interpolation on (seconds, NLL); (value, reached) where
    ``reached`` is False when the run finished before ``t`` (then its final NLL)."""
    for (t0, v0), (t1, v1) in zip(curve, curve[1:]):
        if t0 <= t <= t1:
            return (v0 + (v1 - v0) * (t - t0) / (t1 - t0) if t1 > t0 else v1), True
    return curve[-1][1], t <= curve[-1][0]


def run_repeat(rep: int, args, batches: list[torch.Tensor], x_test: torch.Tensor) -> dict:
    entries = {}
    for i, name in enumerate(LIBS):
        torch.manual_seed(1000 * rep + i)
        entries[name] = BUILDERS[name]()
    opts = {n: torch.optim.Adam(e.module.parameters(), lr=args.lr) for n, e in entries.items()}
    times = {n: [] for n in LIBS}  # seconds per step, in step order
    curves = {n: [] for n in LIBS}  # (cumulative training seconds, test NLL)

    def evaluate(name: str) -> None:
        e = entries[name]
        e.module.eval()
        with torch.no_grad():
            v = float(e.nll(x_test))
        e.module.train()
        curves[name].append((sum(times[name]), v))

    for name in LIBS:
        evaluate(name)
    steps_done = {n: 0 for n in LIBS}
    rounds = math.ceil(args.steps / args.round)
    for r in range(rounds):
        order = LIBS[r % len(LIBS):] + LIBS[:r % len(LIBS)]  # rotate who goes first
        for name in order:
            e, opt = entries[name], opts[name]
            stop = min(args.steps, steps_done[name] + args.round)
            for s in range(steps_done[name], stop):
                xb = batches[s]
                t0 = time.perf_counter()
                opt.zero_grad(set_to_none=True)
                loss = e.loss(xb)
                loss.backward()
                opt.step()
                times[name].append(time.perf_counter() - t0)
                if (s + 1) % args.eval_every == 0 or s + 1 == args.steps:
                    evaluate(name)
            steps_done[name] = stop
    for name in LIBS:
        print(f"  repeat {rep}: {name:9s} {statistics.median(times[name][args.warmup:]) * 1e3:6.3f} ms/step, "
              f"{sum(times[name]):6.2f} s, final NLL {curves[name][-1][1]:.4f}", flush=True)
    return {"times": times, "curves": curves,
            "params": {n: e.params for n, e in entries.items()}, "notes": {n: e.note for n, e in entries.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3, help="independent trainings (new inits, same batches)")
    parser.add_argument("--round", type=int, default=100, help="steps per library before switching")
    parser.add_argument("--warmup", type=int, default=100, help="steps left out of the median step time")
    parser.add_argument("--eval-every", type=int, default=250)
    parser.add_argument("--seed", type=int, default=0, help="seed of the training set and of the batches")
    parser.add_argument("--out", default=str(RESULTS / "flows_vs_peers.json"))
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.set_default_dtype(torch.float32)
    noise = 0.05
    train_np = make_moons(10000, noise=noise, random_state=args.seed)[0].astype(np.float32)
    test_np = make_moons(5000, noise=noise, random_state=12345)[0].astype(np.float32)
    train, x_test = torch.from_numpy(train_np), torch.from_numpy(test_np)
    g = torch.Generator().manual_seed(args.seed)
    per_epoch = len(train) // args.batch
    idx = torch.cat([torch.randperm(len(train), generator=g)[: per_epoch * args.batch]
                     for _ in range(math.ceil(args.steps / per_epoch))]).reshape(-1, args.batch)[: args.steps]
    batches = [train[i].contiguous() for i in idx]  # the same tensors for every library

    import normflows
    import zuko
    versions = {"torch": torch.__version__, "normflows": normflows.__version__, "zuko": zuko.__version__,
                "python": platform.python_version()}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); normflows {normflows.__version__}, "
          f"zuko {zuko.__version__}; {args.steps} steps, batch {args.batch}, Adam {args.lr}, rounds of "
          f"{args.round} steps, {args.repeats} repeat(s)", flush=True)

    reps = [run_repeat(r, args, batches, x_test) for r in range(args.repeats)]

    floor = true_moons_nll(test_np.astype(np.float64), noise)
    baseline = gaussian_nll(train_np.astype(np.float64), test_np.astype(np.float64))
    params = reps[0]["params"]
    summary = {}
    for name in LIBS:
        post = [t for rep in reps for t in rep["times"][name][args.warmup:]]
        # paired ratio: per round and repeat, this library's median step time over flowforge's in the same round
        paired = []
        for rep in reps:
            for r0 in range(args.warmup, args.steps, args.round):
                a, b = rep["times"][name][r0:r0 + args.round], rep["times"]["flowforge"][r0:r0 + args.round]
                if a and b:
                    paired.append(statistics.median(a) / statistics.median(b))
        at_ff = [nll_at(rep["curves"][name], sum(rep["times"]["flowforge"])) for rep in reps]
        summary[name] = {
            "params": params[name],
            "median_ms_per_step": statistics.median(post) * 1e3,
            "total_train_s": statistics.median(sum(rep["times"][name]) for rep in reps),
            "paired_round_ratio_median": statistics.median(paired),
            "final_test_nll": statistics.median(rep["curves"][name][-1][1] for rep in reps),
            "final_test_nll_per_repeat": [rep["curves"][name][-1][1] for rep in reps],
            "nll_at_flowforge_time": statistics.median(v for v, _ in at_ff),
            "reached_flowforge_time": all(ok for _, ok in at_ff),
            "architecture": reps[0]["notes"][name],
        }
    ff = summary["flowforge"]["median_ms_per_step"]
    for name in LIBS:
        summary[name]["ratio_to_flowforge"] = summary[name]["median_ms_per_step"] / ff

    print()
    print(f"RealNVP 8 affine couplings, MLP 128x2, moons; {args.steps} steps x batch {args.batch}; "
          f"median of {args.repeats} repeat(s); ratio = ms/step / flowforge's (> 1: slower than flowforge)")
    head = (f"{'library':10s} {'params':>7s} {'ms/step':>8s} {'ratio':>6s} {'paired':>6s} {'train s':>8s} "
            f"{'final NLL':>9s} {'NLL @ ff time':>13s}")
    print(head)
    print("-" * len(head))
    for name in LIBS:
        s = summary[name]
        mark = "" if s["reached_flowforge_time"] else "*"
        print(f"{name:10s} {s['params']:7d} {s['median_ms_per_step']:8.3f} {s['ratio_to_flowforge']:6.2f} "
              f"{s['paired_round_ratio_median']:6.2f} {s['total_train_s']:8.2f} {s['final_test_nll']:9.4f} "
              f"{s['nll_at_flowforge_time']:12.4f}{mark or ' '}")
    print(f"{'Gaussian fit (trivial baseline)':40s} test NLL {baseline:.4f}")
    print(f"{'true moons density (noise floor)':40s} test NLL {floor:.4f}")
    print("NLL in nats per example on make_moons(5000, noise=0.05, random_state=12345); 'paired' = median over "
          "rounds of the per-round ratio; 'NLL @ ff time' = NLL each library had after the training time "
          "flowforge needed for all its steps" + ("; * = finished earlier, final NLL shown"
                                                 if not all(summary[n]["reached_flowforge_time"] for n in LIBS) else ""))

    out = write_results("flows_vs_peers", {
        "args": vars(args), "versions": versions, "threads": torch.get_num_threads(),
        "noise_floor_true_density_nll": floor, "gaussian_baseline_nll": baseline,
        "summary": summary,
        "curves": {n: [rep["curves"][n] for rep in reps] for n in LIBS},
        "step_ms_median_per_repeat": {n: [statistics.median(rep["times"][n][args.warmup:]) * 1e3 for rep in reps]
                                      for n in LIBS},
    }, path=args.out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
