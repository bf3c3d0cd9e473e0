"""Flow matching on 2-D toy sets: flowforge against torchcfm and Meta's flow_matching, side by side in one process.

What is the same for all three libraries:

- the network: ``flowforge.nets.MLP(shape=(2,), width=256, depth=3)`` (3 hidden layers x 256, SiLU, sinusoidal
  time embedding added to every hidden layer), built with the same seed, so the three start from identical
  weights; only each library's path / loss / sampling code differs;
- the data: flowforge's own toy loader (``load_dataset``: 10000 training points; moons is
  ``make_moons(noise=0.05)`` at scikit-learn's scale, checkerboard on [-4, 4]^2; flowforge does not standardise
  its toy sets, so none of the three sees standardised data), the same pre-drawn batches (flowforge's
  ``BatchOrder``), Adam 1e-3, no EMA, no schedule, and the same hand-written loop (zero_grad, loss, backward, step);
- the randomness of the loss: for every step one ``(noise, t)`` draw, handed to every library. flowforge puts data
  at t = 0 and noise at t = 1, the two peers put noise at t = 0 and data at t = 1, so the peers get ``t' = 1 - t``:
  the same (data, noise) pair and the same point ``x_t = (1 - t) x + t noise`` on the line. Each peer's network is
  then trained in that peer's own convention (input time t', target ``x - noise``; flowforge: input t, target
  ``noise - x``): same pairs, same init, but not the same function of the weights, so the three runs are
  different trainings of one objective and their spread is training noise. Before training, the script checks on
  the first batch that the three compute the same ``x_t`` (and that flowforge used the handed-in draws). The two
  peers do the same arithmetic in the same convention (``sigma = 0`` in torchcfm, ``sigma_min = 0`` in
  flow_matching's CondOT path, t ~ U[0, 1), plain mean of squares), so their trainings coincide bit for bit;
- sampling: the same 5000 N(0, I) starting points, Euler with NFE steps. flowforge uses ``model.sample(...,
  sampler="euler")``, flow_matching its ``ODESolver(...).sample(method="euler", step_size=1/NFE)`` (torchdiffeq),
  torchcfm has no sampler of its own without torchdyn, so its field is integrated with a plain Euler loop here.
  The NFE actually spent is counted on the network and stored; one Euler step of each sampler is checked against
  the start points moved by the network by hand (same start, each field read at its own training times).

Measured, per dataset and per repeat (``--repeats`` seeds: new init, batch order, draws, sampling noise and
reference draw; the training set stays):

- step time: median ms per step (loss + backward + Adam) after ``--warmup`` steps, as a ratio to flowforge's
  (> 1: slower than flowforge); the libraries alternate in rounds of ``--round`` steps with the first one
  rotating, so load on this shared 2-core machine hits all three alike;
- sample quality at each NFE: energy distance (V-statistic) of 5000 samples against 5000 fresh points, and
  sliced W2 at the largest NFE (``flowforge.metrics``); next to it the noise floor (5000 other fresh points against
  the same reference) and a Gaussian with the training data's mean and covariance (``matched_gaussian``).

Tables show mean +- std over repeats; every raw number (per-step times, losses, distances, NFE counted, sampling
seconds, the checks, flowforge's git commit and uncommitted files) goes to benchmarks/results/fm_vs_peers.json,
and ``--render FILE`` prints the tables of such a file again.

    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.fm_vs_peers               # 2000 steps, 3 repeats: ~15 min
    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.fm_vs_peers --quick       # smoke run, ~10 s
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor, nn

from flowforge.config import DataConfig
from flowforge.data import load_dataset
from flowforge.data.toy import TOY_SETS
from flowforge.metrics import energy_distance, matched_gaussian, sliced_wasserstein2
from flowforge.models import ContinuousFlow
from flowforge.nets import MLP
from flowforge.paths import LinearPath
from flowforge.rng import BatchRandom
from flowforge.train.batches import BatchOrder, step_seed

from benchmarks.harness import RESULTS, command_line, mean_std, write_results

LIBS = ("flowforge", "torchcfm", "flow_matching")
WIDTH, DEPTH = 256, 3
NFES = (1, 2, 4, 8, 16, 100)


# --------------------------------------------------------------------------- one library = loss + sampler


@dataclass
class Library:
    """One library's training objective and Euler sampler around a shared-architecture ``net``.

    ``loss(x, noise, t)`` takes flowforge's convention (data at t = 0); ``sample(n, nfe, seed)`` integrates
    ``start_points(n, seed)`` (N(0, I)) to data in ``nfe`` Euler steps.
    """

    name: str
    net: nn.Module
    loss: Callable[[Tensor, Tensor, Tensor], Tensor]
    sample: Callable[[int, int, int], Tensor]
    note: str


def start_points(n: int, seed: int) -> Tensor:
    """The sampling start shared by the three: ``(n, 2)`` N(0, I) draws, the call flowforge's prior makes."""
    return torch.randn((n, 2), generator=torch.Generator().manual_seed(seed))


class GivenDraws(BatchRandom):
    """A ``BatchRandom`` that hands ``ContinuousFlow.loss`` the pre-drawn ``noise`` and ``t``.

    The first ``randn`` of the data's per-example shape gets ``noise`` (B, 2), the first ``rand`` of scalar shape
    gets ``t`` (B,); anything else the loss draws (e.g. the label-dropout coin, unused by an unconditional model)
    comes from ``generator``. Keyed by kind and shape rather than by call order, so a reordering inside the loss
    keeps the draws; ``check_same_pairs`` verifies that the network really saw them.
    """

    def __init__(self, noise: Tensor, t: Tensor, generator: torch.Generator):
        super().__init__(generator, len(t), 0, len(t))
        self.noise, self.t = noise, t

    def randn(self, shape=(), like=None):
        if self.noise is not None and tuple(shape) == tuple(self.noise.shape[1:]):
            out, self.noise = self.noise, None
            return out
        return super().randn(shape, like)

    def rand(self, shape=(), like=None):
        if self.t is not None and tuple(shape) == ():
            out, self.t = self.t, None
            return out
        return super().rand(shape, like)


def build_flowforge(net: nn.Module) -> Library:
    model = ContinuousFlow(LinearPath(), net, (2,))
    other = torch.Generator().manual_seed(0)  # for draws other than noise and t (their values do not matter here)

    def sample(n: int, nfe: int, seed: int) -> Tensor:
        # model.sample draws its start from the generator itself (path.prior_sample); check_same_start verifies
        # that this is start_points(n, seed)
        return model.sample(n, sampler="euler", steps=nfe, generator=torch.Generator().manual_seed(seed))

    return Library("flowforge", net, lambda x, noise, t: model.loss(x, rng=GivenDraws(noise, t, other)), sample,
                   "ContinuousFlow(LinearPath(), net, (2,)).loss: x_t = (1-t) x + t eps, target eps - x, "
                   "mean squared error over dims then batch; sample(sampler='euler') from t=1 to 0")


def build_torchcfm(net: nn.Module) -> Library:
    from torchcfm.conditional_flow_matching import ConditionalFlowMatcher

    cfm = ConditionalFlowMatcher(sigma=0.0)

    def loss(x: Tensor, noise: Tensor, t: Tensor) -> Tensor:
        _, x_t, u_t = cfm.sample_location_and_conditional_flow(x0=noise, x1=x, t=1 - t)
        return (net(x_t, 1 - t) - u_t).square().mean()  # torchcfm's README: torch.mean((vt - ut) ** 2)

    @torch.no_grad()
    def sample(n: int, nfe: int, seed: int) -> Tensor:
        # torchcfm samples through torchdyn's NeuralODE, not installed here: the same Euler steps by hand
        x, h = start_points(n, seed), 1.0 / nfe
        for i in range(nfe):
            x = x + h * net(x, torch.full((len(x),), i * h))
        return x

    return Library("torchcfm", net, loss, sample,
                   "ConditionalFlowMatcher(sigma=0.0).sample_location_and_conditional_flow(x0=noise, x1=data, "
                   "t=1-t): x_t = t' x1 + (1-t') x0 (+ 0 * eps, eps still drawn), target x1 - x0; MSE; Euler loop "
                   "written here (torchcfm's sampler needs torchdyn)")


class _FMVelocity(nn.Module):
    """flow_matching's solver calls ``model(x=x, t=t)`` with a 0-d ``t``; the MLP wants ``t`` of shape (batch,)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: Tensor, t: Tensor, **extras) -> Tensor:
        return self.net(x, t.reshape(-1).expand(x.shape[0]))


def build_flow_matching(net: nn.Module) -> Library:
    from flow_matching.path import AffineProbPath
    from flow_matching.path.scheduler import CondOTScheduler
    from flow_matching.solver import ODESolver

    path = AffineProbPath(scheduler=CondOTScheduler())
    solver = ODESolver(velocity_model=_FMVelocity(net))

    def loss(x: Tensor, noise: Tensor, t: Tensor) -> Tensor:
        ps = path.sample(x_0=noise, x_1=x, t=1 - t)
        return (net(ps.x_t, ps.t) - ps.dx_t).pow(2).mean()  # flow_matching's 2-D example: torch.pow(..., 2).mean()

    @torch.no_grad()
    def sample(n: int, nfe: int, seed: int) -> Tensor:
        return solver.sample(x_init=start_points(n, seed), step_size=1.0 / nfe, method="euler")

    return Library("flow_matching", net, loss, sample,
                   "AffineProbPath(CondOTScheduler()).sample(x_0=noise, x_1=data, t=1-t): x_t = t' x1 + (1-t') x0 "
                   "(sigma_min = 0), target x1 - x0; MSE; ODESolver.sample(method='euler', step_size=1/NFE) via "
                   "torchdiffeq")


BUILDERS = {"flowforge": build_flowforge, "torchcfm": build_torchcfm, "flow_matching": build_flow_matching}


# --------------------------------------------------------------------------- checks


def check_same_pairs(libs: dict[str, Library], x: Tensor, noise: Tensor, t: Tensor) -> dict[str, float]:
    """Largest differences between what the three feed their networks on one batch (no training step).

    Records each library's network inputs ``(x_t, t)`` with a forward pre-hook, and checks flowforge's loss
    against the regression written out by hand with the given draws.
    """
    seen: dict[str, tuple[Tensor, Tensor]] = {}
    out: dict[str, float] = {}
    with torch.no_grad():
        for name, lib in libs.items():
            hook = lib.net.register_forward_pre_hook(lambda m, args, name=name: seen.setdefault(name, args))
            value = lib.loss(x, noise, t)
            hook.remove()
            if name == "flowforge":
                x_t = (1 - t)[:, None] * x + t[:, None] * noise
                by_hand = (lib.net(x_t, t) - (noise - x)).square().mean()
                out["flowforge_loss_vs_by_hand"] = abs(float(value) - float(by_hand))
        ff_x, ff_t = seen["flowforge"]
        for name in LIBS[1:]:
            px, pt = seen[name]
            out[f"{name}_x_t"] = float((px - ff_x).abs().max())
            out[f"{name}_t_plus_flowforge_t_minus_1"] = float((pt + ff_t - 1).abs().max())
    bad = {k: v for k, v in out.items() if v > 1e-5}
    if bad:
        raise RuntimeError(f"the libraries do not train on the same (x_t, t) pairs: {bad}")
    return out


def check_same_start(libs: dict[str, Library], n: int, seed: int) -> dict[str, float]:
    """One Euler step of each sampler against ``start_points`` moved by the network by hand.

    flowforge goes from t = 1 to 0: ``x - v(x, 1)``; the peers from t' = 0 to 1: ``x + v(x, 0)``. Equality shows
    that all three start from the same points and evaluate their fields at the times they were trained on.
    """
    x = start_points(n, seed)
    out = {}
    with torch.no_grad():
        for name, lib in libs.items():
            flowforge = name == "flowforge"
            by_hand = x + (-1.0 if flowforge else 1.0) * lib.net(x, torch.full((n,), 1.0 if flowforge else 0.0))
            out[name] = float((lib.sample(n, 1, seed) - by_hand).abs().max())
    bad = {k: v for k, v in out.items() if v > 1e-5}
    if bad:
        raise RuntimeError(f"a sampler does not start from the shared points at its training convention: {bad}")
    return out


class NFECounter:
    """Counts forward calls of a network (the NFE a sampler actually spent)."""

    def __init__(self, net: nn.Module):
        self.calls = 0
        self._hook = net.register_forward_pre_hook(self._count)

    def _count(self, module, args):
        self.calls += 1

    def remove(self) -> None:
        self._hook.remove()


# --------------------------------------------------------------------------- one repeat on one dataset


def train(libs: dict[str, Library], batches: Tensor, noises: Tensor, times: Tensor, args) -> dict[str, dict]:
    """Train the three side by side in alternating rounds; per-step seconds and losses of each."""
    opts = {n: torch.optim.Adam(lib.net.parameters(), lr=args.lr) for n, lib in libs.items()}
    secs = {n: [] for n in libs}
    losses = {n: [] for n in libs}
    order = list(libs)
    for r, start in enumerate(range(0, args.steps, args.round)):
        for name in order[r % len(order):] + order[:r % len(order)]:  # rotate who goes first
            lib, opt = libs[name], opts[name]
            for s in range(start, min(args.steps, start + args.round)):
                t0 = time.perf_counter()
                opt.zero_grad(set_to_none=True)
                loss = lib.loss(batches[s], noises[s], times[s])
                loss.backward()
                opt.step()
                secs[name].append(time.perf_counter() - t0)
                losses[name].append(loss.item())
    return {n: {"secs": secs[n], "losses": losses[n]} for n in libs}


def paired_ratios(secs: list[float], ref: list[float], args) -> list[float]:
    """Per round after warm-up: median step time of ``secs`` over that of ``ref`` (flowforge) in the same round."""
    return [statistics.median(secs[r0:r0 + args.round]) / statistics.median(ref[r0:r0 + args.round])
            for r0 in range(args.warmup, args.steps, args.round)]


def run_repeat(dataset, rep: int, args) -> dict:
    started = time.perf_counter()
    seed = step_seed(args.seed, rep)  # everything of this repeat except the training set
    order = BatchOrder(len(dataset.train), args.batch, seed)
    batches = torch.stack([dataset.train[order.indices(s + 1)] for s in range(args.steps)])  # (steps, B, 2)
    g = torch.Generator().manual_seed(seed + 1)
    noises = torch.randn((args.steps, args.batch, 2), generator=g)  # (steps, B, 2)
    times = torch.rand((args.steps, args.batch), generator=g)  # (steps, B), flowforge's t (0 = data)

    nets = {}
    for name in LIBS:
        torch.manual_seed(seed)
        nets[name] = MLP(shape=(2,), width=WIDTH, depth=DEPTH)
    for name in LIBS[1:]:
        same = all(torch.equal(a, b) for a, b in zip(nets["flowforge"].parameters(), nets[name].parameters()))
        assert same, f"{name}'s network does not start from flowforge's weights"
    libs = {name: BUILDERS[name](nets[name]) for name in LIBS}
    pair_check = check_same_pairs(libs, batches[0], noises[0], times[0])

    trained = train(libs, batches, noises, times, args)
    secs = {n: trained[n]["secs"] for n in LIBS}
    ms = {n: statistics.median(secs[n][args.warmup:]) * 1e3 for n in LIBS}

    # evaluation (not timed against each other): same start points, same reference draw
    n, start_seed, proj_seed = args.n_eval, seed + 2, seed + 3
    start_check = check_same_start(libs, n, start_seed)
    reference = dataset.reference(n, seed=seed + 4)
    floor = dataset.fresh(n, seed + 5)
    gauss = matched_gaussian(dataset.train, n, seed=seed + 6)
    result = {
        "seed": seed, "pair_check": pair_check, "start_check": start_check,
        "noise_floor": {"energy": energy_distance(floor, reference),
                        "sliced_w2": sliced_wasserstein2(floor, reference, seed=proj_seed)},
        "matched_gaussian": {"energy": energy_distance(gauss, reference),
                             "sliced_w2": sliced_wasserstein2(gauss, reference, seed=proj_seed)},
        "libs": {},
    }
    for name, lib in libs.items():
        lib.net.eval()
        quality = {"energy": {}, "sliced_w2": {}, "nfe_counted": {}, "sample_s": {}}  # sliced W2 at the top NFE
        for nfe in args.nfe:
            key = str(nfe)  # JSON's keys are strings: the same dicts in the run and in the file
            counter = NFECounter(lib.net)
            t0 = time.perf_counter()
            x = lib.sample(n, nfe, start_seed)
            quality["sample_s"][key] = time.perf_counter() - t0
            counter.remove()
            quality["nfe_counted"][key] = counter.calls
            if not torch.isfinite(x).all():
                quality["energy"][key] = quality["sliced_w2"][key] = float("nan")
                continue
            quality["energy"][key] = energy_distance(x, reference)
            if nfe == args.nfe[-1]:  # 1.6 s each on 5000 points: only where the table shows it
                quality["sliced_w2"][key] = sliced_wasserstein2(x, reference, seed=proj_seed)
        tail = trained[name]["losses"][-min(200, args.steps):]
        result["libs"][name] = {
            "step_ms_median": ms[name], "ratio_to_flowforge": ms[name] / ms["flowforge"],
            "paired_round_ratios": paired_ratios(secs[name], secs["flowforge"], args), "train_s": sum(secs[name]),
            "loss_first": trained[name]["losses"][0], "loss_last200_mean": statistics.fmean(tail), **quality,
        }
    line = ", ".join(f"{n} {ms[n]:.3f} ms/step ED@{args.nfe[-1]} {result['libs'][n]['energy'][str(args.nfe[-1])]:.5f}"
                     for n in LIBS)
    print(f"  {dataset.name} repeat {rep} ({time.perf_counter() - started:.0f} s): {line}", flush=True)
    return result


# --------------------------------------------------------------------------- summary and CLI


def fmt(values: list[float], fixed: int | None = None) -> str:
    """``mean ± std``: 3 significant digits (distances span 1e-5 to 1), or ``fixed`` decimals."""
    m, s = mean_std(values)
    return f"{m:.{fixed}f} ± {s:.{fixed}f}" if fixed is not None else f"{m:.3g} ± {s:.2g}"


def table(reps: list[dict], nfes: list[int]) -> str:
    """Markdown table of one dataset: a row per library, then the noise floor and the matched Gaussian."""
    top = str(nfes[-1])
    head = ["library", "step time ratio"] + [f"ED NFE={k}" for k in nfes] + [f"SW2 NFE={top}"]
    rows = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    for lib in LIBS:
        r = [rep["libs"][lib] for rep in reps]
        ratio = fmt([x["ratio_to_flowforge"] for x in r], 2)
        if lib == "flowforge":
            ratio += f" ({fmt([x['step_ms_median'] for x in r], 1)} ms)"
        cells = [lib, ratio] + [fmt([x["energy"][str(k)] for x in r]) for k in nfes] + \
                [fmt([x["sliced_w2"][top] for x in r])]
        rows.append("| " + " | ".join(cells) + " |")
    for key, label in (("noise_floor", "noise floor (fresh vs fresh)"), ("matched_gaussian", "matched Gaussian")):
        ed = fmt([rep[key]["energy"] for rep in reps])
        sw2 = fmt([rep[key]["sliced_w2"] for rep in reps])
        rows.append("| " + " | ".join([label, "—"] + [ed] * len(nfes) + [sw2]) + " |")
    return "\n".join(rows)


def report(record: dict) -> str:
    """The printed summary of a results record: a heading line and a table per dataset."""
    a = record["args"]
    head = (f"Flow matching, MLP {DEPTH}x{WIDTH} SiLU (flowforge.nets.MLP, same init), {a['steps']} steps x batch "
            f"{a['batch']}, Adam {a['lr']}, {record['threads']} thread(s); mean ± std over {a['repeats']} "
            f"repeat(s). Step time ratio: median ms/step over flowforge's (> 1: slower than flowforge). ED: energy "
            f"distance of {a['n_eval']} Euler samples vs {a['n_eval']} fresh points; SW2: sliced W2 (1000 "
            f"directions). Command: {record['command']}")
    tables = [f"### {name}\n\n{table(r['repeats'], a['nfe'])}" for name, r in record["results"].items()]
    return "\n\n".join([head, *tables])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--repeats", type=int, default=3, help="seeds: new init, batches, draws, sampling noise")
    p.add_argument("--datasets", nargs="+", default=["moons", "checkerboard"], choices=sorted(TOY_SETS))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--nfe", type=int, nargs="+", default=list(NFES), help="Euler steps to evaluate")
    p.add_argument("--n-train", type=int, default=10000)
    p.add_argument("--n-eval", type=int, default=5000, help="samples, reference and floor points")
    p.add_argument("--round", type=int, default=100, help="steps per library before switching")
    p.add_argument("--warmup", type=int, default=100, help="steps left out of the median step time")
    p.add_argument("--seed", type=int, default=0, help="seed of the training set and of the repeats")
    p.add_argument("--out", default=str(RESULTS / "fm_vs_peers.json"))
    p.add_argument("--quick", action="store_true",
                   help="smoke run: 50 steps, 1 repeat, NFE 1 and 4, 1000 evaluation points")
    p.add_argument("--render", metavar="JSON", help="print the tables of an earlier results file; run nothing")
    args = p.parse_args(argv)
    if args.quick:
        args.steps, args.repeats, args.nfe, args.n_eval, args.round, args.warmup = 50, 1, [1, 4], 1000, 10, 10
    args.nfe = sorted(set(args.nfe))
    if min(args.steps, args.repeats, args.threads, args.round, min(args.nfe)) < 1 or args.warmup >= args.steps:
        p.error("steps, repeats, threads, round and NFE must be >= 1, and warmup < steps")
    return args


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.render:
        record = json.loads(Path(args.render).read_text())
        print(report(record))
        return record
    torch.set_num_threads(args.threads)
    import flow_matching
    import torchcfm

    versions = {"torch": torch.__version__, "torchcfm": torchcfm.__version__,
                "flow_matching": flow_matching.__version__, "python": platform.python_version()}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); torchcfm {torchcfm.__version__}, "
          f"flow_matching {flow_matching.__version__}; MLP {DEPTH}x{WIDTH} SiLU; {args.steps} steps, batch "
          f"{args.batch}, Adam {args.lr}; {args.repeats} repeat(s); NFE {args.nfe}", flush=True)
    wall = time.perf_counter()
    results = {}
    for name in args.datasets:
        dataset = load_dataset(DataConfig(name=name, n_train=args.n_train, n_test=args.n_eval, seed=args.seed))
        results[name] = {"noise": TOY_SETS[name].noise, "repeats": [run_repeat(dataset, r, args)
                                                                    for r in range(args.repeats)]}
    wall = time.perf_counter() - wall

    record = {
        "command": command_line(["-m", "benchmarks.fm_vs_peers", *argv]), "args": vars(args), "versions": versions,
        "threads": torch.get_num_threads(), "wall_s": wall,
        "library_notes": {name: BUILDERS[name](MLP(shape=(2,), width=4, depth=1)).note for name in LIBS},
        "results": results,
    }
    print()
    print(report(record))
    print(f"\nwall time {wall:.0f} s")
    print(f"wrote {write_results('fm_vs_peers', record, path=args.out)}")
    return record


if __name__ == "__main__":
    main()
