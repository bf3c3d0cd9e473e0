"""One table across model families: RealNVP, Glow, NSF, MAF and flow matching's ODE likelihood on the 2-D sets.

Each family trains from its flowforge preset through the training engine (``flowforge.train``), on the same set,
steps and batch (``--steps``, ``--batch``; the presets' own learning rates, schedules and EMA), and is scored on the
same 5000 fresh points of the true distribution: exact NLL for the discrete flows, the instantaneous change of
variables with the exact trace (dopri5, rtol = atol = 1e-5) for flow matching, the only family whose likelihood
is an ODE solve. Beside each NLL: the training seconds (engine included) and the evaluation seconds.

    OMP_NUM_THREADS=1 nice -n 5 .venv/bin/python -m benchmarks.density_families --steps 2000 --batch 256

Results: benchmarks/results/density_families.json (one key per set, kept across runs).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import torch

from benchmarks.harness import RESULTS, write_results

PRESETS = {  # family -> (preset, extra overrides)
    "RealNVP": ("configs/realnvp-moons.yaml", []),
    "Glow": ("configs/glow-checkerboard.yaml", ["data.n_train=10000", "train.ema_decay=null"]),
    "NSF": ("configs/nsf-moons.yaml", ["model.flow.tail_bound=5.0"]),
    "MAF": ("configs/maf-moons.yaml", []),
    "flow matching (exact-trace ODE)": ("configs/rf-moons.yaml", []),
}


def run_family(family: str, data: str, args, workdir: str) -> dict:
    from flowforge import load_config
    from flowforge.data import load_dataset
    from flowforge.train import train

    preset, extra = PRESETS[family]
    overrides = [f"data.name={data}", f"run.dir={workdir}/{family.split()[0]}-{data}", f"train.steps={args.steps}",
                 f"train.batch_size={args.batch}", "train.sample_every=0", "train.tensorboard=false",
                 f"train.ckpt_every={args.steps}", "train.warmup_steps=0", *extra]
    if data != "moons":
        overrides.append("data.noise=null")
    config = load_config(preset, overrides)
    result = train(config, progress=False)
    model = (result.ema if result.ema is not None else result.model).eval()
    test = load_dataset(config.data).reference(args.test, seed=12345)
    t0 = time.perf_counter()
    with torch.no_grad() if family != "flow matching (exact-trace ODE)" else torch.enable_grad():
        options = {"divergence": "exact"} if family.startswith("flow matching") else {}
        log_p = torch.cat([model.log_prob(test[i:i + 1000], **options).detach() for i in range(0, len(test), 1000)])
    return {"preset": preset, "overrides": overrides, "train_s": result.seconds,
            "eval_s": time.perf_counter() - t0, "test_nll": float(-log_p.double().mean()),
            "params": sum(p.numel() for p in model.parameters())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", nargs="+", default=["moons", "checkerboard", "8gaussians"])
    parser.add_argument("--families", nargs="+", default=list(PRESETS), choices=list(PRESETS))
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--test", type=int, default=5000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    path = RESULTS / "density_families.json"
    sets = json.loads(path.read_text())["sets"] if path.is_file() else {}
    with tempfile.TemporaryDirectory() as workdir:
        for data in args.sets:
            rows = sets.setdefault(data, {})
            for family in args.families:
                rows[family] = run_family(family, data, args, workdir)
                r = rows[family]
                print(f"  {data:12s} {family:32s} NLL {r['test_nll']:8.4f}  train {r['train_s']:6.1f} s  "
                      f"eval {r['eval_s']:6.1f} s", flush=True)
                write_results("density_families", {"steps": args.steps, "batch": args.batch, "sets": sets})


if __name__ == "__main__":
    main()
