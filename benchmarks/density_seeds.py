"""How much of a gap between two density estimators is the seed: the final test NLL of each library's flow over
several seeds, at the matched size of ``benchmarks.density_vs_peers`` (same builders, data, batches and loop).

One seed of ``benchmarks.density_vs_peers`` is one draw from each library's distribution of outcomes; this
benchmark draws several. Seed ``s`` fixes the training set and the batches (shared by the libraries of that seed)
and each library's initialisation, so the libraries of one seed differ only in their code.

    OMP_NUM_THREADS=1 nice -n 5 .venv/bin/python -m benchmarks.density_seeds --sets moons \\
        --libs flowforge-maf zuko-maf --seeds 0 1 2 3 4 5 6 7 --steps 2000 --batch 256

Results go to benchmarks/results/density_seeds.json, one key per set and library, kept across runs.
"""

from __future__ import annotations

import json
import math
import statistics

import torch

from benchmarks.density_peers import BUILDERS, Entry, flowforge_entry, versions
from benchmarks.density_vs_peers import digits, training_arguments, two_d
from benchmarks.harness import RESULTS, write_results


def zuko_like_maf(dim: int, context: int, hidden: int, bound: float) -> Entry:
    """An ablation: flowforge's MAF with the two things zuko's MAF does differently, its log-scale soft clip
    ``a / (1 + |a| / ln 1000)`` (bound 6.9 instead of flowforge's ``3 tanh(a / 3)``) and a randomly initialised
    output layer (flowforge starts every layer at the identity, its MADE's output at zero)."""
    from flowforge.transforms import MonotonicAffine

    class SoftClipAffine(MonotonicAffine):
        def __call__(self, x, raw, inverse=False):
            shift, a = raw[..., 0], raw[..., 1] / (1 + (raw[..., 1] / self.bound).abs())  # (B, D) each
            return ((x - shift) * (-a).exp(), -a) if inverse else (x * a.exp() + shift, a)

    entry = flowforge_entry("maf", dim, context, hidden, bound)
    for layer in entry.module.transform:
        layer.map = SoftClipAffine(math.log(1000))
        layer.conditioner.out.reset_parameters()
    entry.name, entry.note = "flowforge-maf-zuko-clip-init", "flowforge MAF, zuko's log-scale clip and output init"
    return entry


LIBS = {**BUILDERS, "flowforge-maf-zuko-clip-init": zuko_like_maf}


def final_nll(lib: str, train: torch.Tensor, test: torch.Tensor, seed: int, args, hidden: int = 64) -> float:
    """``lib``'s flow (2 x ``hidden`` MADE: 64 on 2-D sets, 256 on digits, as ``benchmarks.density_vs_peers``; bound 5),
    initialised from ``seed``, after ``args.steps`` Adam steps on batches drawn with ``seed``: its test NLL in nats
    per example."""
    torch.manual_seed(1000 + seed)
    entry = LIBS[lib](train.shape[1], 0, hidden, 5.0)
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(entry.module.parameters(), lr=args.lr)
    for _ in range(args.steps):
        opt.zero_grad(set_to_none=True)
        entry.loss(train[torch.randint(0, len(train), (args.batch,), generator=g)], None).backward()
        opt.step()
    entry.module.eval()
    with torch.no_grad():
        return float(sum(entry.nll(test[i:i + 1000], None) * len(test[i:i + 1000])
                         for i in range(0, len(test), 1000)) / len(test))


def merged(old: dict | None, new: dict[int, float], args) -> dict:
    """The record of one set and library: the per-seed NLLs of ``new`` joined to those of ``old`` when ``old`` ran
    the same protocol (runs of other seeds, e.g. in parallel), and their mean, standard deviation and range."""
    protocol = {"steps": args.steps, "batch": args.batch, "lr": args.lr}
    same = old is not None and all(old.get(k) == v for k, v in protocol.items())
    per_seed = {**(old["per_seed"] if same else {}), **{str(s): v for s, v in new.items()}}
    values = list(per_seed.values())
    return {**protocol, "per_seed": per_seed, "seeds": sorted(int(s) for s in per_seed),
            "mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values)}


def main() -> None:
    parser = training_arguments(__doc__)
    parser.add_argument("--sets", nargs="+", default=["moons"])
    parser.add_argument("--libs", nargs="+", default=["flowforge-maf", "zuko-maf"], choices=list(LIBS))
    parser.add_argument("--seeds", nargs="+", type=int, default=list(range(8)))
    parser.add_argument("--hidden", type=int, default=None,
                        help="MADE width (default: 64 on 2-D sets, 256 on digits); another width is kept under "
                             "its own key, 'LIB 2xWIDTH'")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    path = RESULTS / "density_seeds.json"
    for name in args.sets:
        usual = 256 if name == "digits" else 64
        hidden = args.hidden or usual
        key = {lib: lib if hidden == usual else f"{lib} 2x{hidden}" for lib in args.libs}
        nll: dict[str, dict[int, float]] = {key[lib]: {} for lib in args.libs}
        for seed in args.seeds:
            train, test, _ = digits(seed) if name == "digits" else two_d(name, seed)
            for lib in args.libs:
                nll[key[lib]][seed] = final_nll(lib, train, test, seed, args, hidden)
                print(f"  {name:12s} seed {seed} {key[lib]:14s} NLL {nll[key[lib]][seed]:.4f}", flush=True)
        sets = json.loads(path.read_text())["sets"] if path.is_file() else {}  # read late: merge parallel runs
        block = sets.setdefault(name, {})
        block.update({lib: merged(block.get(lib), v, args) for lib, v in nll.items()})
        write_results("density_seeds", {"versions": versions(), "threads": args.threads, "sets": sets})


if __name__ == "__main__":
    main()
