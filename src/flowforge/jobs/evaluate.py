"""``flowforge eval``: sample quality of a trained run next to the noise floor and a trivial baseline."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..data import Dataset, load_dataset
from ..data.latents import pixel_data
from ..errors import UserError
from ..metrics import heldout_likelihood, matched_gaussian, sample_distances
from ..metrics.likelihood import matched_gaussian_nll
from ..models.field import PathField
from ..paths import LinearPath
from ..runs import (MetricsLog, Run, atomic_write_text, check_finite_samples, check_sample_memory, load_run,
                    write_report, write_samples_picture)
from ..solvers import straightness
from .device import device_generator, resolve_device
from .image_eval import image_extractor, image_scores
from .latent_eval import reconstruction_floor, reconstruction_held_out, reconstructs
from .progress import network_progress


def path_straightness(model, n: int, steps: int, seed: int, labels: Tensor | None = None,
                      guidance: float = 1.0) -> dict[str, Any]:
    """Straightness (Liu et al., 2022) of ``model``'s probability-flow ODE, per dimension, from ``n`` prior draws
    integrated to the data with ``steps`` RK4 steps, conditioned like the samples (``labels``, ``guidance``).

    Straightness depends on the time variable (VE's time is sigma^2, EDM's sigma), so every model is measured in
    one: the linear path's ``t`` in ``[0, 1]``, on whose ODE every model can be integrated (one probability flow,
    another clock), with a uniform grid.
    """
    device = next(model.parameters()).device
    labels = labels[:n] if labels is not None else None
    field = PathField(model, LinearPath(), model.conditioning(labels, n, device, guidance))
    times = model.time_grid(steps, grid="uniform", path=field.path)
    x = field.path.prior_sample((n, *model.shape), float(times[0]),
                                generator=torch.Generator().manual_seed(seed)).to(device)
    t0 = time.perf_counter()
    result = straightness(field.velocity, x, times)
    return {"value": result.value, "stderr": result.stderr, "n": n, "steps": steps, "time": "linear path t",
            "nfe": result.nfe, "seconds": time.perf_counter() - t0}


def raw_weight_samples(run_dir: str | Path, run, n: int, options: dict[str, Any]) -> Tensor | None:
    """Samples of the run's raw (non-averaged) weights from the same draws as the EMA's, or ``None`` when the run
    keeps no EMA: ``eval`` scores both, since a badly set average can be worse than the weights it averages."""
    if run.weights != "ema":
        return None
    device = next(run.model.parameters()).device
    raw = load_run(run_dir, ema=False, device=device).model
    options = {**options, "generator": device_generator(device, run.config.eval.seed)}
    samples = raw.sample(n, **options).cpu()
    check_finite_samples(samples)
    return samples


def sample_scores(dataset: Dataset, rows: dict[str, Tensor | None], ec) -> tuple[dict[str, Any], list[Tensor]]:
    """Sample distances of each row (``noise_floor``: a second draw of the data) to the reference draws: their
    mean and std over the draws per metric (``ROW`` and ``ROW_std``); and the reference draws."""
    # A single reference draw makes a noisy yardstick (on checkerboard the floor of one draw of 5000 points
    # ranges over 0.0005-0.008), so toy sets are scored against several independent draws.
    n = len(rows["model"])
    repeats = ec.repeats if dataset.fresh is not None else 1
    opts = dict(n_exact=ec.n_exact, n_projections=ec.n_projections, seed=ec.seed)
    scores: dict[str, list[dict[str, float]]] = {k: [] for k, v in rows.items() if k == "noise_floor" or v is not None}
    references = [dataset.reference(n, seed=ec.seed + 1 + 10 * k) for k in range(repeats)]
    for k, reference in enumerate(references):
        if dataset.fresh is not None:
            floor = dataset.fresh(len(reference), ec.seed + 2 + 10 * k)
        else:
            pick = torch.randperm(len(dataset.train), generator=torch.Generator().manual_seed(ec.seed + 2))
            floor = dataset.train[pick[:len(reference)]]
        # equal sizes in every row: the V-statistic's bias depends on the sample sizes
        m = len(reference)
        for key in scores:
            x = floor if key == "noise_floor" else rows[key]
            scores[key].append(sample_distances(x[:m], reference, **opts))
    out: dict[str, Any] = {}
    for key, draws in scores.items():
        values = {metric: torch.tensor([r[metric] for r in draws], dtype=torch.float64) for metric in draws[0]}
        out[key] = {metric: float(v.mean()) for metric, v in values.items()}
        out[key + "_std"] = {metric: float(v.std()) if len(v) > 1 else 0.0 for metric, v in values.items()}
    return out, references


def held_out_scores(run: Run, dataset: Dataset, references: list[Tensor], n: int, n_likelihood: int | None,
                    options: dict[str, Any], phase: Callable[[str], None], progress: bool = False) -> dict[str, Any]:
    """The held-out likelihood (the test split, or the first fresh reference draw of a toy set) and, for a model
    with a sampler, the straightness of its paths; ``progress``: a bar of the network evaluations of each."""
    ec = run.config.eval
    # an ODE likelihood costs hundreds of network passes per example, so eval.n_likelihood can score the first N
    held_out = dataset.test if dataset.fresh is None else references[0]
    n_lik = n_likelihood if n_likelihood is not None else ec.n_likelihood
    if n_lik < 0:
        raise UserError(f"n_likelihood must be >= 0 (0 = every held-out example), got {n_lik}")
    scored = held_out[:n_lik] if n_lik else held_out
    phase(f"likelihood of {len(scored)} held-out examples")
    with network_progress(run.model, "likelihood", enabled=progress):
        context = dataset.test_context[:len(scored)] if dataset.test_context is not None else None
        out = {"likelihood": heldout_likelihood(run.model, scored, seed=ec.seed, context=context)}
    if dataset.kind == "points" and run.model.quantization is None:  # the trivial baseline's NLL, beside the model's
        out["likelihood"]["matched_gaussian_nll"] = matched_gaussian_nll(dataset.train, scored)
    if run.model.takes_sampler and ec.straightness_steps:
        paths = min(n, ec.straightness_samples or (200 if dataset.kind == "image" else 1000))
        phase(f"straightness of {paths} paths, {ec.straightness_steps} RK4 steps")
        # RK4: 4 evaluations a step and one at the end (guidance evaluates the network twice per evaluation)
        with network_progress(run.model, "straightness", total=4 * ec.straightness_steps + 1, enabled=progress):
            out["straightness"] = path_straightness(run.model, paths, ec.straightness_steps, ec.seed + 4,
                                                    options.get("labels"), options.get("guidance", 1.0))
    return out


def phase_printer(start: float) -> Callable[[str], None]:
    """A function printing one line per phase on stderr, with the seconds since ``start``: an image eval can run
    for half an hour, and a log should show where."""
    def phase(what: str) -> None:
        print(f"eval [{time.perf_counter() - start:6.0f} s] {what}", file=sys.stderr, flush=True)

    return phase


def timed_samples(run: Run, n: int, options: dict[str, Any]) -> tuple[Tensor, int, float]:
    """``n`` samples of ``run``'s model (checked finite), the network evaluations and the seconds they took."""
    t0 = time.perf_counter()
    samples, nfe = run.model.sample_with_nfe(n, **options)
    samples = samples.cpu()  # the one copy to the host: the sampling clock includes it, the scores run on the CPU
    seconds = time.perf_counter() - t0
    check_finite_samples(samples)
    return samples, nfe, seconds


def evaluate(run_dir: str | Path, *, n_samples: int | None = None, sampler: str | None = None,
             steps: int | None = None, grid: str | None = None, n_likelihood: int | None = None,
             progress: bool = False, device: str = "auto") -> dict[str, Any]:
    """Compare ``n_samples`` model samples with held-out draws of the data distribution.

    Three rows, each scored against the same reference draws (``eval.repeats`` independent
    draws for toy sets, whose distribution can be sampled afresh; the test split otherwise):

    - ``model``: the trained model (EMA weights), sampled with ``sampler`` / ``steps``
      (defaults: the run's ``sample`` section; ``grid`` likewise), or by its exact inverse (flows);
    - ``raw_weights`` (runs with an EMA): the same from the raw, non-averaged weights and the same draws;
    - ``noise_floor``: a second, independent draw of the data (a fresh sample for
      toy sets, the training split for finite sets): the best score sampling noise allows;
    - ``matched_gaussian``: a Gaussian with the training data's mean and covariance.

    For images, the same three rows are also scored in a fixed feature extractor (Fréchet distance, kernel
    distance, precision / recall, classifier scores: :mod:`flowforge.jobs.image_eval`).
    The held-out likelihood scores the test split (``n_likelihood`` or ``eval.n_likelihood``: its first N
    examples; 0 = all). Writes ``eval.json``, a record in ``metrics.jsonl``, ``samples/eval.png`` and
    refreshes ``report.md``. Returns the record. ``device``: where the networks run (the distances: on the CPU).
    """
    where = resolve_device(device)
    run = load_run(run_dir, device=where)
    cfg, ec = run.config, run.config.eval
    n = n_samples or ec.n_samples
    if n < 2:
        raise UserError(f"n_samples must be at least 2 to compare samples, got {n}")
    check_sample_memory(n, tuple(run.data["shape"]))
    options = run.sample_options(n, device_generator(where, ec.seed), sampler=sampler, steps=steps, grid=grid,
                                 progress=progress)
    sampler, steps = options.get("sampler", run.sampler_name), options.get("steps")
    dataset = load_dataset(pixel_data(cfg.data))  # a latent model's samples are decoded: score pixels
    if dataset.test_context is not None:  # a conditional flow: x drawn for the held-out rows' contexts, cycled
        options["context"] = dataset.test_context[torch.arange(n) % len(dataset.test_context)].to(where)
    phase = phase_printer(time.perf_counter())
    phase(f"sampling {n} with {sampler}" + (f", {steps} steps" if steps else ""))
    samples, nfe, sample_seconds = timed_samples(run, n, options)
    baseline = matched_gaussian(dataset.train, n, seed=ec.seed + 3)
    if run.weights == "ema":
        phase(f"sampling {n} from the raw (non-EMA) weights")
    rows = {"model": samples, "raw_weights": raw_weight_samples(run_dir, run, n, options), "noise_floor": None,
            "matched_gaussian": baseline}
    phase(f"sample distances, exact W2 on {min(n, ec.n_exact)} points per row and draw (no steps to count)")
    distances, references = sample_scores(dataset, rows, ec)
    record: dict[str, Any] = {
        "kind": "eval", "step": run.step, "weights": run.weights, "sampler": sampler, "steps": steps,
        "n_samples": n, "n_reference": len(references[0]), "repeats": len(references),
        "sample_seconds": sample_seconds, "nfe": nfe, "parameters": sum(p.numel() for p in run.model.parameters()),
    }
    record.update(distances)
    latent = reconstructs(run.model)  # a latent model or an autoencoder: scored by its reconstructions
    record.update(reconstruction_held_out(run, dataset, n_likelihood, phase) if latent
                  else held_out_scores(run, dataset, references, n, n_likelihood, options, phase, progress))
    images = feature_scores(run, dataset, samples, baseline, options, phase)
    if images is not None:
        record["image"] = images
    write_eval(Path(run_dir), record, samples, dataset,
               title=f"{cfg.run.name}: {sampler}" + (f", {steps} steps" if steps else ""),
               tensorboard=cfg.train.tensorboard)
    return record


def feature_scores(run: Any, dataset: Dataset, samples: Tensor, baseline: Tensor, options: dict[str, Any],
                   phase: Callable[[str], None]) -> dict[str, Any] | None:
    """The image scores in the data set's pinned feature extractor (None where none serves it); for a latent model
    or an autoencoder with its own reconstructions' floor beside them."""
    ec = run.config.eval
    if image_extractor(dataset) is not None:
        phase("image scores in the pinned feature extractor")
    images = image_scores(dataset, samples, baseline, labels=options.get("labels"), seed=ec.seed,
                          cache_dir=run.config.data.cache_dir, device=next(run.model.parameters()).device)
    if images is not None and reconstructs(run.model):
        images["reconstruction_floor"] = reconstruction_floor(run.model, dataset, images["n_samples"], ec.seed)
    return images


def write_eval(run_dir: Path, record: dict[str, Any], samples: Tensor, dataset: Dataset, title: str,
               tensorboard: bool = False) -> None:
    """``eval.json``, a record in ``metrics.jsonl``, ``samples/eval.png`` and a refreshed ``report.md``."""
    atomic_write_text(run_dir / "eval.json", json.dumps(record, indent=1))
    log = MetricsLog(run_dir, tensorboard=tensorboard)  # the scores beside the training curves
    log.log(record)
    write_samples_picture(samples, dataset, run_dir / "samples" / "eval.png", title=title)
    log.add_picture("eval/samples", run_dir / "samples" / "eval.png", record["step"])
    log.close()
    write_report(run_dir)

