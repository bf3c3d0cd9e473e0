"""``report.md``: what was trained, how it went, what it makes and how it scores."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..models import describe_model
from ..viz import plot_curves
from ..errors import RunError
from .checkpoint import atomic_write_text, latest_checkpoint, read_state
from .load import read_config
from .metrics_log import read_metrics

_ROWS = (("model", "model"), ("raw_weights", "model, raw weights (no EMA)"),
         ("noise_floor", "noise floor (data vs data)"), ("matched_gaussian", "matched Gaussian baseline"))


def eval_tables(ev: dict) -> list[str]:
    """Markdown lines of an ``eval.json`` record: likelihood, sample distances and (images) feature scores, each
    beside the noise floor and the matched Gaussian; ``flowforge eval`` prints them, the report shows them."""
    how = f"Sampler `{ev['sampler']}`" + (f", {ev['steps']} steps" if ev["steps"] else "")
    if "nfe" in ev:
        how += f" ({ev['nfe']} network evaluations)"
    lines = [f"{how}, {ev['n_reference']} samples against "
             f"{ev['n_reference']} held-out points ({ev['weights']} weights, step {ev['step']}); "
             f"mean ± std over {ev['repeats']} reference draw(s).", "",
             "| | energy distance | sliced W2 | exact W2 |", "|---|---:|---:|---:|"]
    if "likelihood" in ev:
        lk = ev["likelihood"]
        lines = [f"Held-out negative log-likelihood: **{lk['nll']:.3f} ± {lk['nll_stderr']:.3f} nats** per example "
                 f"(log-likelihood {lk['log_likelihood']:.2f}), **{lk['bits_per_dim']:.4f} bits/dim**, "
                 f"on {lk['n']} examples"
                 + (f"; the matched Gaussian scores {lk['matched_gaussian_nll']:.3f} nats"
                    if "matched_gaussian_nll" in lk else "") + ".", ""] + lines
    if "reconstruction" in ev:  # a latent model or an autoencoder
        rc = ev["reconstruction"]
        lines = [f"Reconstructions of {rc['n']} held-out images by the autoencoder: PSNR **{rc['psnr']:.2f} dB**, "
                 f"SSIM **{rc['ssim']:.4f}**.", ""] + lines
    if "latent_likelihood" in ev:  # a latent model: the density of latents, never pixel bits/dim
        lk = ev["latent_likelihood"]
        lines = [f"Held-out negative log-likelihood of the **latents** (not of the pixels): "
                 f"**{lk['nll_latent_nats']:.3f} ± {lk['nll_stderr']:.3f} latent nats** per example, "
                 f"**{lk['bits_per_latent_dim']:.4f} bits per latent dimension** ({lk['latent_dims']} dims), "
                 f"on {lk['n']} examples.", ""] + lines
    for key, label in _ROWS:
        if key not in ev:  # raw_weights: runs with an EMA, evaluated since eval scores both
            continue
        m, sd = ev[key], ev[key + "_std"]
        lines.append(f"| {label} | {m['energy_distance']:.5f} ± {sd['energy_distance']:.5f} "
                     f"| {m['sliced_w2']:.4f} ± {sd['sliced_w2']:.4f} | {m['w2']:.4f} ± {sd['w2']:.4f} |")
    if "straightness" in ev:
        st = ev["straightness"]
        spread = f" ± {st['stderr']:.2g}" if "stderr" in st else ""  # evals before the standard error was kept
        lines += ["", f"Straightness of the ODE's paths (Liu et al., 2022; 0 = straight lines, one Euler step exact): "
                      f"**{st['value']:.4g}**{spread} per dimension, "
                      f"in the linear path's time, {st['n']} paths, {st['steps']} RK4 steps."]
    if "image" in ev:
        lines += [""] + image_table(ev["image"])
    return lines


def image_table(scores: dict[str, Any]) -> list[str]:
    """Markdown lines: one row per yardstick, FD / KD / precision / recall (and label accuracy when scored)."""
    if "skipped" in scores:
        return [f"Image scores skipped: {scores['skipped']}"]
    labelled = "label_accuracy" in scores["model"]
    head = "| | FD | KD | precision | recall | confidence |" + (" label accuracy |" if labelled else "")
    lines = [f"In the features of the `{scores['extractor']}` extractor (weights sha256 "
             f"{scores['weights_sha256'][:12]}): {scores['n_samples']} images per row against the "
             f"{scores['n_reference']} images of `{scores['reference']}`. FD is the Fréchet distance in these "
             f"features (FID only in Inception's, under its protocol); KD the unbiased kernel distance (KID's "
             f"estimator) ± its standard error." + (f" The classifier's accuracy on the test split: "
             f"{scores['classifier_test_accuracy']:.4f} (on the training images of the floor row it was trained on)."
             if "classifier_test_accuracy" in scores else ""), "", head,
             "|---|---:|---:|---:|---:|---:|" + ("---:|" if labelled else "")]
    for key, label in (("model", "model"), ("noise_floor", "noise floor (training images)"),
                       ("matched_gaussian", "matched Gaussian"),
                       ("reconstruction_floor", "reconstruction floor (the autoencoder's reconstructions)")):
        if scores.get(key) is None:  # reconstruction_floor: latent models only
            continue
        r = scores[key]
        conf = f"{r['confidence']:.3f}" if "confidence" in r else "-"
        acc = f" {r['label_accuracy']:.3f} |" if "label_accuracy" in r else (" - |" if labelled else "")
        lines.append(f"| {label} | {r['fd']:.2f} | {r['kd']:.4g} ± {r['kd_stderr']:.2g} | "
                     f"{r['precision']:.3f} | {r['recall']:.3f} | {conf} |{acc}")
    return lines


def _engine_choices(run_dir: Path) -> dict:
    """What the engine chose on the run's hardware (optimizer implementation, precision), from its newest
    checkpoint; empty for runs that predate the record or have no checkpoint yet."""
    ckpt = latest_checkpoint(run_dir)
    try:
        engine = read_state(ckpt).get("engine", {}) if ckpt is not None else {}
    except RunError:
        return {}
    return engine if isinstance(engine, dict) else {}


def describe_ema(tc) -> str:
    """``warmup to 0.999``: the EMA's decay schedule (flowforge.train.ema), or ``off``."""
    if tc.ema_decay is None:
        return "off"
    return {"warmup": f"warm-up to {tc.ema_decay}", "power": f"power function, sigma_rel {tc.ema_sigma_rel}",
            "constant": f"constant {tc.ema_decay}"}.get(tc.ema_schedule, tc.ema_schedule)


def validation_loss_lines(records: list[dict[str, Any]], tc) -> list[str]:
    """Markdown lines of the run's SD3 validation loss (``val_loss`` records, flowforge.train.validation): the
    last value, the best, and the last one at each fixed time; none when the run logged none."""
    rows = [r for r in records if r.get("kind") == "val_loss"]
    if not rows:
        return []
    last, best = rows[-1], min(rows, key=lambda r: r["loss"])
    by_time = last.get("by_time", {})
    return ["", f"Validation loss (SD3's: {tc.val_examples} held-out examples, fixed noise, mean over "
                f"{len(by_time)} fixed times, every {tc.val_every} steps): **{last['loss']:.5f}** at step "
                f"{last['step']}, best {best['loss']:.5f} at step {best['step']}.", "",
            "| t | " + " | ".join(by_time) + " |", "|---|" + "---:|" * len(by_time),
            f"| loss at step {last['step']} | " + " | ".join(f"{v:.5f}" for v in by_time.values()) + " |"]


def write_report(run_dir: str | Path) -> Path:
    """(Re)write ``run_dir/report.md`` from the files the run has produced so far."""
    run_dir = Path(run_dir)
    config = read_config(run_dir)
    tc = config.train
    records = read_metrics(run_dir)
    train_rows = [r for r in records if r.get("kind", "train") == "train"]
    data_path = run_dir / "data.json"
    try:
        data = json.loads(data_path.read_text()) if data_path.is_file() else {}
        shape = tuple(data.get("shape", []))
    except (ValueError, AttributeError, TypeError):
        shape = "unreadable data.json"
    resolutions = config.data.resolutions
    batch = (f"packs of at most {tc.pack_tokens} tokens of images at {', '.join(map(str, resolutions))} px"
             if resolutions else f"batch {tc.batch_size}")
    engine = _engine_choices(run_dir)
    lines = [f"# flowforge run `{config.run.name}`", "",
             f"- data: `{config.data.name}`, example shape {shape}",
             f"- model: {describe_model(config.model)}",
             f"- training: {batch}, {engine.get('optimizer', 'AdamW')} lr {tc.lr} ({tc.schedule}, "
             f"{tc.warmup_steps} warmup), EMA {describe_ema(tc)}, precision {engine.get('precision', tc.precision)}"]
    if config.reflow.parent is not None:
        rc = config.reflow
        lines.append(f"- trained on {rc.pairs} (noise, sample) pairs of `{rc.parent}` ({rc.sampler} ODE"
                     f"{f', guidance {rc.guidance}' if rc.guidance != 1 else ''}), "
                     f"{'from its weights' if rc.init else 'from scratch'}"
                     f"{f'; distilled to {config.model.grid_steps} step(s)' if config.model.time_sampler == 'grid' else ''}")
    if train_rows:
        last = train_rows[-1]
        lines.append(f"- trained {last['step']} steps in {last['seconds']:.1f} s; last logged loss {last['loss']:.5f}")
        plot_curves(records, run_dir / "curves.png")
        lines += ["", "![training curves](curves.png)"]
        lines += validation_loss_lines(records, tc)
    ev_path = run_dir / "eval.json"
    if ev_path.is_file():
        try:
            lines += ["", "## Sample quality", ""] + eval_tables(json.loads(ev_path.read_text()))
            lines += ["", "![samples](samples/eval.png)"]
        except (ValueError, KeyError, TypeError) as err:  # a damaged or hand-edited file must not fail a run
            lines += ["", f"`eval.json` is unreadable ({type(err).__name__}: {err}); run `flowforge eval "
                          f"{run_dir}` again."]
    else:
        pictures = sorted((run_dir / "samples").glob("step-*.png")) if (run_dir / "samples").is_dir() else []
        if pictures:
            lines += ["", "## Samples", "", f"![samples](samples/{pictures[-1].name})"]
        lines += ["", f"Run `flowforge eval {run_dir}` to score the samples."]
    lines += ["", "## Config", "", "```yaml", config.to_yaml().rstrip(), "```", ""]
    out = run_dir / "report.md"
    atomic_write_text(out, "\n".join(lines))
    return out
