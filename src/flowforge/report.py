"""``report.md``: what was trained, how it went, what it makes and how it scores."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from .train.logging import read_metrics
from .viz import plot_curves

_ROWS = (("model", "model"), ("noise_floor", "noise floor (data vs data)"),
         ("matched_gaussian", "matched Gaussian baseline"))


def _eval_table(ev: dict) -> list[str]:
    how = f"Sampler `{ev['sampler']}`" + (f", {ev['steps']} steps" if ev["steps"] else "")
    lines = [f"{how}, {ev['n_reference']} samples against "
             f"{ev['n_reference']} held-out points ({ev['weights']} weights, step {ev['step']}); "
             f"mean ± std over {ev['repeats']} reference draw(s).", "",
             "| | energy distance | sliced W2 | exact W2 |", "|---|---:|---:|---:|"]
    if "likelihood" in ev:
        lk = ev["likelihood"]
        lines = [f"Held-out negative log-likelihood: **{lk['nll']:.3f} ± {lk['nll_stderr']:.3f} nats** per example "
                 f"(log-likelihood {lk['log_likelihood']:.2f}), **{lk['bits_per_dim']:.4f} bits/dim**, "
                 f"on {lk['n']} examples.", ""] + lines
    for key, label in _ROWS:
        m, sd = ev[key], ev[key + "_std"]
        lines.append(f"| {label} | {m['energy_distance']:.5f} ± {sd['energy_distance']:.5f} "
                     f"| {m['sliced_w2']:.4f} ± {sd['sliced_w2']:.4f} | {m['w2']:.4f} ± {sd['w2']:.4f} |")
    return lines


def _describe_model(model: dict) -> str:
    if model["kind"] in ("continuous", "rectified-flow"):
        net = model["net"]
        size = (f"{net['depth']}x{net['width']} ({net['activation']})" if net["name"] == "mlp" else
                f"{net['channels']} channels x {net.get('channel_mult')}, {net.get('num_res_blocks')} blocks/level")
        what = "EDM-preconditioned denoiser" if model.get("precond") == "edm" else f"`{model.get('target', 'velocity')}` target"
        classes = f", {model['num_classes']} classes" if model.get("num_classes") else ""
        return (f"continuous model on the `{model['path']}` path, {what}, {model.get('time_sampler', 'uniform')} "
                f"training time{classes}; {net['name']} {size}")
    f = model["flow"]
    return (f"`{model['kind']}` normalizing flow: {f['couplings']} couplings, {f['levels']} levels, "
            f"{f['steps_per_level']} steps/level, conditioner width {f['hidden']}, {f['prior']} prior")


def write_report(run_dir: str | Path) -> Path:
    """(Re)write ``run_dir/report.md`` from the files the run has produced so far."""
    run_dir = Path(run_dir)
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    records = read_metrics(run_dir)
    train_rows = [r for r in records if r.get("kind", "train") == "train"]
    data_path = run_dir / "data.json"
    data = json.loads(data_path.read_text()) if data_path.is_file() else {}
    lines = [f"# flowforge run `{cfg['run']['name']}`", "",
             f"- data: `{cfg['data']['name']}`, example shape {tuple(data.get('shape', []))}",
             f"- model: {_describe_model(cfg['model'])}",
             f"- training: batch {cfg['train']['batch_size']}, AdamW lr {cfg['train']['lr']} "
             f"({cfg['train']['schedule']}, {cfg['train']['warmup_steps']} warmup), EMA {cfg['train']['ema_decay']}, "
             f"precision {cfg['train']['precision']}"]
    if train_rows:
        last = train_rows[-1]
        lines.append(f"- trained {last['step']} steps in {last['seconds']:.1f} s; last logged loss {last['loss']:.5f}")
        plot_curves(records, run_dir / "curves.png")
        lines += ["", "![training curves](curves.png)"]
    ev_path = run_dir / "eval.json"
    if ev_path.is_file():
        lines += ["", "## Sample quality", ""] + _eval_table(json.loads(ev_path.read_text()))
        lines += ["", "![samples](samples/eval.png)"]
    else:
        pictures = sorted((run_dir / "samples").glob("step-*.png")) if (run_dir / "samples").is_dir() else []
        if pictures:
            lines += ["", "## Samples", "", f"![samples](samples/{pictures[-1].name})"]
        lines += ["", f"Run `flowforge eval {run_dir}` to score the samples."]
    lines += ["", "## Config", "", "```yaml", yaml.safe_dump(cfg, sort_keys=False).rstrip(), "```", ""]
    out = run_dir / "report.md"
    out.write_text("\n".join(lines))
    return out
