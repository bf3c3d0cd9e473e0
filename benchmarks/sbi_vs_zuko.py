"""Simulation-based inference on the two-moons simulator: flowforge's conditional NSF against zuko's.

The simulator (Greenberg et al., 2019, arXiv:1905.07488; the sbibm "two_moons" task): parameters
theta ~ U(-1, 1)^2, a ~ U(-pi/2, pi/2), r ~ N(0.1, 0.01^2), observation
x = (r cos a + 0.25, r sin a) + (-|theta_1 + theta_2| / sqrt 2, (-theta_1 + theta_2) / sqrt 2). Each library learns
the posterior p(theta | x) as a conditional NSF (x the context; 3 autoregressive transforms, MADE 2 x 64, 8 bins)
from the same simulations and batches, interleaved in rounds (``benchmarks.density_vs_peers``). Reported: step time,
the NLL of held-out (theta, x) pairs, and the coverage of the highest-posterior-density regions: for each of
``--coverage-pairs`` held-out pairs, 500 posterior draws give the level alpha at which the true theta enters the
HPD region; a calibrated posterior has P(alpha <= gamma) = gamma at every credibility gamma.

    OMP_NUM_THREADS=1 nice -n 5 .venv/bin/python -m benchmarks.sbi_vs_zuko --steps 2000 --batch 256

Results: benchmarks/results/sbi_vs_zuko.json.
"""

from __future__ import annotations

import math

import torch

from benchmarks.density_peers import BUILDERS, versions
from benchmarks.density_vs_peers import summarise, train_side_by_side, training_arguments
from benchmarks.harness import write_results

LEVELS = (0.5, 0.68, 0.9, 0.95)
LIBS = ("flowforge-nsf", "zuko-nsf")


def simulate(n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` pairs (theta (n, 2), x (n, 2)) of the two-moons simulator."""
    theta = 2 * torch.rand(n, 2, generator=gen) - 1
    a = math.pi * (torch.rand(n, generator=gen) - 0.5)
    r = 0.1 + 0.01 * torch.randn(n, generator=gen)
    p = torch.stack([r * torch.cos(a) + 0.25, r * torch.sin(a)], 1)
    shift = torch.stack([-(theta[:, 0] + theta[:, 1]).abs(), -theta[:, 0] + theta[:, 1]], 1) / math.sqrt(2)
    return theta, p + shift


def draws_and_log_probs(lib: str, module, theta: torch.Tensor, x: torch.Tensor, n: int, gen: torch.Generator):
    """(log q(theta_s | x_i) of n posterior draws (n, m), log q(theta_i | x_i) (m,))."""
    if lib.startswith("flowforge"):
        c = x.repeat(n, 1)  # (n m, 2): draw s of pair i at row s m + i
        draws = module.sample(len(c), context=c, generator=gen)
        return module.log_prob(draws, context=c).reshape(n, len(x)), module.log_prob(theta, context=x)
    posterior = module(x)
    torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=gen)))
    draws = posterior.sample((n,))  # (n, m, 2)
    return posterior.log_prob(draws), posterior.log_prob(theta)


@torch.no_grad()
def coverage(lib: str, module, theta: torch.Tensor, x: torch.Tensor, seed: int) -> dict[str, float]:
    """Empirical P(alpha <= gamma) at each credibility gamma of :data:`LEVELS`, alpha the HPD level of theta."""
    module.eval()
    log_q_draws, log_q_true = draws_and_log_probs(lib, module, theta, x, 500, torch.Generator().manual_seed(seed))
    alpha = (log_q_draws > log_q_true[None]).double().mean(0)  # (m,)
    return {f"{gamma:g}": float((alpha <= gamma).double().mean()) for gamma in LEVELS}


def main() -> None:
    parser = training_arguments(__doc__)
    parser.add_argument("--simulations", type=int, default=10000)
    parser.add_argument("--coverage-pairs", type=int, default=500)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(args.seed)
    theta, x = simulate(args.simulations, gen)
    test = simulate(5000, torch.Generator().manual_seed(12345))
    batches = []
    for _ in range(args.steps):
        i = torch.randint(0, len(theta), (args.batch,), generator=gen)
        batches.append((theta[i], x[i]))
    entries = {}
    for k, lib in enumerate(LIBS):
        torch.manual_seed(1000 + k)
        entries[lib] = BUILDERS[lib](2, 2, 64, 5.0)
    summary = summarise(entries, train_side_by_side(entries, batches, test, args), args.warmup)
    for lib, e in entries.items():
        n = args.coverage_pairs
        summary[lib]["coverage"] = coverage(lib, e.module, test[0][:n], test[1][:n], args.seed + 7)
        s = summary[lib]
        print(f"  {lib:14s} {s['median_ms_per_step']:7.2f} ms/step (x{s['ratio_to_flowforge_nsf']:.2f}) held-out NLL "
              f"{s['final_test_nll']:.4f} coverage {s['coverage']}", flush=True)
    write_results("sbi_vs_zuko", {"versions": versions(), "args": vars(args), "summary": summary})


if __name__ == "__main__":
    main()
