"""SD3's scaling study at a small budget: three DiT sizes and a U-Net trained for equal compute at two budgets.

Esser et al. (2024, arXiv:2403.03206, Sec. 5.3, Fig. 8) train rectified-flow transformers of several sizes and
find that the validation loss falls smoothly with model size and training FLOPs, and that it predicts sample
quality. Here ``configs/dit-mnist.yaml``'s DiT (rotary positions, QK-norm, logit-normal t), unconditional, patch 2
on the 8 x 8 digits (16 tokens), is trained at sizes ``tiny`` (0.33 M parameters), ``mini`` (0.89 M) and ``small``
(1.86 M), and ``configs/fm-digits.yaml``'s U-Net (0.76 M, the size of DiT-mini) with the same recipe. Each run gets
a budget of training FLOPs, not steps: ``steps = budget / FLOPs per step``. FLOPs (2 per multiply-add) of one
training step of batch 64: for the DiT, 3 x ``benchmarks.gpu.dit_forward_flops`` (forward and a backward of twice
the forward); for the U-Net, :class:`torch.utils.flop_counter.FlopCounterMode` over one forward and backward
(``tests/test_bench_sd3.py`` checks the DiT's count against the same counter). Per run it records SD3's
validation loss (``train.val_every``: 256 held-out digits, fixed noise, 8 fixed times; EMA weights) and the FD of
``--n`` samples (Euler, 25 uniform steps, EMA weights) in the pinned digits classifier against the 297 test digits.

    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.sd3_scaling --tiny-steps 400 1200 --seeds 0 1 --workers 2
    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.sd3_scaling --quick --out /tmp/sc.json   # a smoke run

Rows are kept across calls (``KeyedRows``). Results: benchmarks/results/sd3_scaling.json and the figure
sd3-scaling.png beside it (``python -m benchmarks.render_tables --print sd3_scaling``).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from flowforge.config import load_config
from flowforge.data import load_dataset
from flowforge.models import build_model
from flowforge.runs import load_run, read_metrics
from flowforge.train import train

from benchmarks.gpu import dit_forward_flops
from benchmarks.harness import RESULTS, KeyedRows, atomic_write_json, figure_path, pyplot, save_figure, write_results
from benchmarks.sd3_time_sampling import Scorer

NAME = "sd3_scaling"
PRESET = "configs/dit-mnist.yaml"
UNET = ["model.net.name=unet", "model.net.channels=32", "model.net.channel_mult=[1,2]",
        "model.net.num_res_blocks=1", "model.net.attention_levels=[1]", "model.net.time_embed_dim=64"]  # fm-digits
MODELS = {"DiT-tiny": ["model.net.size=tiny"], "DiT-mini": ["model.net.size=mini"],
          "DiT-small": ["model.net.size=small"], "U-Net": UNET}
REFERENCE = "DiT-tiny"  # the budget is set by this model's steps
GRID = 25  # Euler steps for FD
BATCH = 64


def config(model: str, seed: int, steps: int, run_dir: Path):
    return load_config(PRESET, [
        f"run.dir={run_dir}", f"run.seed={seed}", "data.name=digits", "model.num_classes=null", "model.net.patch=2",
        *MODELS[model], f"train.steps={steps}", f"train.batch_size={BATCH}",
        f"train.warmup_steps={min(50, steps // 5)}", "train.precision=auto", "train.log_every=50",
        f"train.val_every={max(steps // 4, 1)}", "train.sample_every=0", f"train.ckpt_every={steps}",
        "train.tensorboard=false", "sample.steps=4", "sample.guidance=1.0"])


def counted_step_flops(cfg) -> int:
    """FlopCounterMode's FLOPs of one training step (loss forward and backward) of ``cfg``'s model on a batch;
    attention through the math backend, whose products the counter sees."""
    dataset = load_dataset(cfg.data)
    torch.manual_seed(0)
    model = build_model(cfg.model, dataset.spec())
    x = dataset.train[:cfg.train.batch_size]
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model.loss(x).backward()
    return counter.get_total_flops()


def step_flops(model: str) -> int:
    """Training FLOPs of one step of batch ``BATCH``: the DiT by hand (gpu.py's count, x3 for the backward),
    the U-Net by FlopCounterMode."""
    cfg = config(model, 0, 1, Path("unused"))
    net = cfg.model.net
    if net.name != "dit":
        return counted_step_flops(cfg)
    channels, height, width = load_dataset(cfg.data).spec()["shape"]
    tokens = (height // net.patch) * (width // net.patch)
    return 3 * BATCH * dit_forward_flops(net.size, tokens, channels * net.patch ** 2, net.time_embed_dim)


_SCORER: Scorer | None = None


def one_run(model: str, seed: int, steps: int, flops: int, n: int) -> dict:
    global _SCORER  # one scorer per worker process: the classifier and the test features load once
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        cfg = config(model, seed, steps, run_dir)
        _SCORER = _SCORER or Scorer(load_dataset(cfg.data))
        start = time.perf_counter()
        train(cfg, progress=False)
        seconds = time.perf_counter() - start
        run = load_run(run_dir)  # the EMA weights
        with torch.no_grad():
            gen = torch.Generator().manual_seed(1000 + seed)
            samples = run.model.sample(n, **run.sample_options(n, gen, sampler="euler", steps=GRID, grid="uniform"))
        fd = _SCORER.fd(samples)
        val = [[r["step"], r["loss"]] for r in read_metrics(run_dir) if r.get("kind") == "val_loss"]
        params = sum(p.numel() for p in run.model.parameters())
    return {"model": model, "seed": seed, "steps": steps, "step_flops": flops, "train_flops": steps * flops,
            "params": params, "n": n, "train_seconds": seconds, "fd": fd, "val_curve": val, "val_loss": val[-1][1]}


def draw(rows: list[dict], path: str) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for i, model in enumerate(MODELS):
        mine = sorted((r for r in rows if r["model"] == model), key=lambda r: (r["seed"], r["train_flops"]))
        colour = plt.cm.tab10(i)
        for j, r in enumerate(mine):  # the validation loss along training, against the FLOPs spent so far
            axes[0].plot([s * r["step_flops"] for s, _ in r["val_curve"]], [v for _, v in r["val_curve"]],
                         ".-" if r["train_flops"] == max(q["train_flops"] for q in mine) else ".:", color=colour,
                         lw=1, label=model if j == 0 else None)
        axes[1].plot([r["train_flops"] for r in mine], [r["fd"] for r in mine], "o", color=colour, label=model)
    axes[0].set(xlabel="training FLOPs", ylabel="validation loss (8 fixed t)", xscale="log",
                title="SD3 validation loss along training")
    axes[1].set(xlabel="training FLOPs (budget)", ylabel=f"FD, {GRID} Euler steps", xscale="log",
                title="FD at the end of each run")
    for ax in axes:  # the log axis's minor labels (2 x 10^11, 3 x 10^11, ...) crowd each other
        ax.xaxis.set_minor_formatter(plt.NullFormatter())
        ax.legend(fontsize=8)
    save_figure(fig, path)


def run_all(keys: list[dict], rows: KeyedRows, partial: Path, protocol: dict, workers: int) -> None:
    """Compute the rows ``rows`` lacks, ``workers`` runs at a time, saving each finished row, then take every
    key's row in key order."""
    todo = [k for k in keys if rows.find(k) is None]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [(k, pool.submit(one_run, k["model"], k["seed"], k["steps"], k["step_flops"], protocol["n"]))
                   for k in todo]
        for key, future in futures:
            row = future.result()
            rows.previous.append(row)  # found by the key below, and kept by a partial write
            atomic_write_json(partial, {**protocol, "rows": rows.pending(keys)})  # a kill loses no finished row
            print(f"{key['model']} {key['steps']} steps: FD {row['fd']:.1f} val {row['val_loss']:.4f}", flush=True)
    for key in keys:
        rows.get_or_compute(key, lambda key=key: one_run(key["model"], key["seed"], key["steps"],
                                                          key["step_flops"], protocol["n"]))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny-steps", type=int, nargs="+", default=[400, 1200],
                        help=f"the budgets, as steps of {REFERENCE}")
    parser.add_argument("--n", type=int, default=500, help="samples per FD")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--workers", type=int, default=1, help="runs at a time, one thread each")
    parser.add_argument("--quick", action="store_true", help="budgets of 20 and 40 tiny steps, 50 samples")
    parser.add_argument("--out", default=None, help=f"results file (default benchmarks/results/{NAME}.json)")
    parser.add_argument("--figure", default=None, help="figure file ('' for none; default beside the results)")
    args = parser.parse_args(argv)
    if args.quick:
        args.tiny_steps, args.n = [20, 40], 50
    out = Path(args.out) if args.out else RESULTS / f"{NAME}.json"
    flops = {model: step_flops(model) for model in MODELS}
    protocol = {"preset": PRESET, "n": args.n, "grid": GRID, "batch_size": BATCH}
    partial = out.with_suffix(".partial.json")  # rows so far; the results file is written complete, once
    rows = KeyedRows(partial if partial.is_file() else out, protocol)
    keys = [{"model": m, "seed": s, "steps": max(1, round(t * flops[REFERENCE] / flops[m])), "step_flops": flops[m]}
            for t in args.tiny_steps for s in args.seeds for m in MODELS]
    run_all(keys, rows, partial, protocol, args.workers)
    scorer = Scorer(load_dataset(config(REFERENCE, 0, 1, Path("unused")).data))
    train_set = scorer.dataset.train
    floor = scorer.fd(train_set[torch.randperm(len(train_set), generator=torch.Generator().manual_seed(2))[:args.n]])
    write_results(NAME, {**protocol, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                         "budgets_tiny_steps": args.tiny_steps, "sampler": f"euler, {GRID} uniform steps",
                         "noise_floor_fd": floor, "rows": rows.rows}, out)
    partial.unlink(missing_ok=True)
    figure = figure_path(args.figure, args.out, "sd3-scaling.png")
    if figure:
        draw(rows.rows, figure)


if __name__ == "__main__":
    main()
