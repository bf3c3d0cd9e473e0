"""The training loop: one function for every model family, on HF Accelerate.

The same config runs in one process or many (``accelerate launch`` / ``torchrun``),
on CPU or GPU, in float32 or bf16 autocast. Data order, per-example noise and
the learning rate are functions of ``(seed, step)``, so a run resumed from a
checkpoint continues exactly as if it had never stopped, and a run split over
``k`` processes computes the same global batches as a single process.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor, nn

from ..config import Config, ConfigError
from ..data import Dataset, load_dataset
from ..errors import RunError, TrainingDiverged, UserError
from ..metrics import heldout_likelihood
from ..models import GenerativeModel, build_model
from ..rng import BatchRandom
from .batches import BatchOrder, step_seed
from .checkpoint import (atomic_write_text, checkpoint_dirs, latest_checkpoint, load_checkpoint, load_weights,
                         rng_state, save_checkpoint, set_rng_state)
from .ema import make_ema
from .logging import MetricsLog
from .pictures import write_samples_picture
from .schedule import lr_factor

# Settings that may change when a run is resumed; anything else would train a different model.
RESUMABLE_CHANGES = ("train.steps", "train.log_every", "train.sample_every", "train.ckpt_every", "train.eval_",
                     "train.keep_last", "train.tensorboard", "train.cpu", "data.cache_dir", "data.download",
                     "sample.", "eval.", "run.dir")


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    model: GenerativeModel  # the trained (non-EMA) model, unwrapped
    ema: nn.Module | None  # the EMA copy, when enabled
    seconds: float


class _LossModule(nn.Module):
    """Routes ``forward`` to ``model.loss`` so DDP's gradient sync and Accelerate's autocast apply to it."""

    def __init__(self, model: GenerativeModel):
        super().__init__()
        self.model = model

    def forward(self, x: Tensor, rng: BatchRandom, labels: Tensor | None = None) -> Tensor:
        return self.model.loss(x, rng) if labels is None else self.model.loss(x, rng, labels=labels)


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        out.update(_flatten(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def _check_resume_config(old: Config, new: Config) -> list[str]:
    """The settings that changed since the run started; raise if one of them changes the model."""
    a, b = _flatten(old.to_dict()), _flatten(new.to_dict())
    changed = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
    forbidden = [k for k in changed if not k.startswith(RESUMABLE_CHANGES)]
    if forbidden:
        k = forbidden[0]
        raise RunError(f"cannot resume: {k} was {a.get(k)!r} and is now {b.get(k)!r}; only "
                       f"{', '.join(RESUMABLE_CHANGES)} may change on --resume (start a new run.name otherwise)")
    if "train.steps" in changed and new.train.schedule == "cosine":
        warnings.warn(f"train.steps changed from {a['train.steps']} to {b['train.steps']} on a cosine schedule: "
                      f"the learning rate follows the new horizon from here on", stacklevel=3)
    return changed


def data_info(dataset: Dataset) -> dict[str, Any]:
    """What loading a trained model needs to know of its data, without loading the data."""
    return {"name": dataset.name, "kind": dataset.kind, "shape": list(dataset.shape),
            "value_range": list(dataset.value_range) if dataset.value_range else None, "levels": dataset.levels}


def _check_finite_data(x: Tensor, name: str) -> None:
    if not torch.isfinite(x).all():
        row = int((~torch.isfinite(x.reshape(x.shape[0], -1))).any(1).nonzero()[0])
        raise UserError(f"dataset {name!r}: row {row} contains NaN or inf; clean the data before training")


def _cpu_has_bf16() -> bool:
    """Whether oneDNN has native bf16 kernels here (AVX512-BF16 or AMX); without them autocast emulates bf16."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return True  # cannot tell: stay quiet


def _make_accelerator(config: Config):
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    tc = config.train
    # Accelerate keeps one process-wide state; a second run in the same process (a notebook, the tests) may
    # ask for another precision, so the per-run part is reset. The process group (PartialState) is kept.
    AcceleratorState._reset_state()
    # Accelerate sets up multi-process CPU training (gloo) only when told cpu=True, so say it when there is no GPU.
    use_cpu = tc.cpu or not (torch.cuda.is_available() or torch.backends.mps.is_available())
    accelerator = Accelerator(cpu=use_cpu, mixed_precision="bf16" if tc.precision == "bf16" else "no")
    if accelerator.is_main_process and tc.precision == "bf16" and accelerator.device.type == "cpu" \
            and not _cpu_has_bf16():
        warnings.warn(f"train.precision=bf16 on a CPU without native bf16 ({torch.backends.cpu.get_cpu_capability()}):"
                      " autocast emulates it, measured ~20x slower than fp32 (benchmarks/train_speed.py); "
                      "train.precision=fp32 is faster here", stacklevel=3)
    if tc.batch_size % accelerator.num_processes:
        raise UserError(f"train.batch_size ({tc.batch_size}) must be divisible by the number of processes "
                        f"({accelerator.num_processes})")
    return accelerator


def _on_main(accelerator, fn: Callable[[], Any]) -> Any:
    """Run ``fn`` on the main process only; if it fails there, raise on every process instead of leaving the
    others waiting at the next collective."""
    from accelerate.utils import broadcast_object_list

    result, error = None, None
    if accelerator.is_main_process:
        try:
            result = fn()
        except Exception as err:  # re-raised below, on the main process with its traceback
            error = err
    if accelerator.num_processes > 1:
        flag = [None if error is None else f"{type(error).__name__}: {error}"]
        broadcast_object_list(flag, from_process=0)
        if flag[0] is not None and error is None:
            raise RunError(f"the main process failed: {flag[0]}")
    if error is not None:
        raise error
    return result


def _start_run_dir(run_dir: Path, resume: bool) -> Path | None:
    """Check that ``run_dir`` fits the request; return the checkpoint to resume from."""
    ckpt = latest_checkpoint(run_dir)
    if resume and ckpt is None:
        raise RunError(f"--resume: no checkpoint in {run_dir}/checkpoints; start without --resume")
    if not resume and ckpt is not None:
        raise RunError(f"{run_dir} already holds a trained run; pass --resume to continue it, "
                       f"or choose another run.name / run.dir")
    return ckpt


def _clear_stale_outputs(run_dir: Path) -> None:
    """A fresh run in a directory left by a run that died before its first checkpoint: drop its outputs."""
    for name in ("metrics.jsonl", "eval.json", "report.md", "curves.png"):
        (run_dir / name).unlink(missing_ok=True)
    for name in ("tb", "samples"):
        shutil.rmtree(run_dir / name, ignore_errors=True)


def train(config: Config, *, resume: bool = False, progress: bool | None = None) -> TrainResult:
    """Train the model described by ``config`` and write the run directory.

    Arguments:
        config: the full run configuration.
        resume: continue from the newest checkpoint of ``config.run.path``.
        progress: draw a progress bar (default: when stderr is a terminal); ``False`` also silences log lines.

    Raises:
        TrainingDiverged: the loss or gradient became non-finite; checkpoints on disk are untouched.
        RunError: the run directory is in the way (exists without ``resume``) or cannot be resumed.
    """
    from ..runs import read_config, sample_options

    tc = config.train
    run_dir = config.run.path
    accelerator = _make_accelerator(config)
    world, rank, main = accelerator.num_processes, accelerator.process_index, accelerator.is_main_process

    ckpt = _start_run_dir(run_dir, resume)
    changed = _check_resume_config(read_config(run_dir), config) if resume else []
    with accelerator.main_process_first():  # one process downloads, the others read the cache
        dataset = load_dataset(config.data)
    _check_finite_data(dataset.train, dataset.name)
    torch.manual_seed(config.run.seed)  # identical initial weights on every process
    model = build_model(config.model, data_info(dataset))
    ema = make_ema(model, tc.ema_decay) if tc.ema_decay is not None else None
    optimizer = torch.optim.AdamW(model.parameters(), lr=tc.lr, betas=tuple(tc.betas), weight_decay=tc.weight_decay)

    start_step, elapsed = 0, 0.0
    if resume:
        state = load_checkpoint(ckpt, model=model, optimizer=optimizer)
        if ema is not None and (ckpt / "ema.safetensors").is_file():
            load_weights(ema.module, ckpt / "ema.safetensors")
            ema.n_averaged.fill_(state.get("ema_n_averaged", 0))
        start_step, elapsed = state["step"], state.get("seconds", 0.0)
        if start_step >= tc.steps:
            raise RunError(f"{run_dir} is already trained to step {start_step}; to continue, resume with "
                           f"train.steps larger than {start_step}")
        rngs = state.get("rng", [])
        if rank < len(rngs):
            set_rng_state(rngs[rank])

    accelerator.wait_for_everyone()  # every process has read config.yaml before the main one rewrites it

    def write_run_files() -> MetricsLog:
        run_dir.mkdir(parents=True, exist_ok=True)
        if not resume:
            _clear_stale_outputs(run_dir)
        atomic_write_text(run_dir / "config.yaml", config.to_yaml())
        atomic_write_text(run_dir / "data.json", json.dumps(data_info(dataset), indent=1))
        if changed:
            print(f"resuming with changed settings: {', '.join(changed)}", file=sys.stderr)
        return MetricsLog(run_dir, tc.tensorboard, truncate_after=start_step if resume else None)

    log = _on_main(accelerator, write_run_files)

    data = dataset.train.to(accelerator.device)
    labels = None
    if config.model.num_classes is not None:
        if dataset.train_labels is None:
            raise ConfigError(f"model.num_classes is set but data set {dataset.name!r} has no labels; "
                              f"unset model.num_classes or use labelled data")
        if int(dataset.train_labels.max()) >= config.model.num_classes:
            raise ConfigError(f"model.num_classes: got {config.model.num_classes}, but the labels go up to "
                              f"{int(dataset.train_labels.max())}")
        labels = dataset.train_labels.to(accelerator.device)
    order = BatchOrder(len(data), tc.batch_size, config.run.seed)
    model.to(accelerator.device)
    with torch.no_grad():  # data-dependent initialisation (Glow's ActNorm) from one global batch, alike everywhere
        first = data[order.indices(start_step + 1).to(data.device)]
        model.loss(first, BatchRandom(torch.Generator().manual_seed(step_seed(config.run.seed, 0xA11)),
                                      len(first), 0, len(first)))
    loss_module, optimizer = accelerator.prepare(_LossModule(model), optimizer)
    if ema is not None:
        ema.to(accelerator.device)
    local = tc.batch_size // world
    rows = slice(rank * local, (rank + 1) * local)
    t0 = time.perf_counter()

    def save(step: int) -> Path:
        from accelerate.utils import gather_object

        # every process's RNG state, and a fingerprint of its weights: processes that drift apart are a bug
        mine = {"rng": rng_state(), "weights_sum": float(sum(p.detach().double().sum() for p in model.parameters()))}
        everyone = gather_object([mine]) if world > 1 else [mine]
        sums = [e["weights_sum"] for e in everyone]
        if main and len(set(sums)) > 1:
            warnings.warn(f"step {step}: the processes hold different weights (sums {sums}); "
                          f"data-parallel training is out of sync", stacklevel=2)
        state = {"step": step, "seconds": elapsed + (time.perf_counter() - t0), "rng": [e["rng"] for e in everyone],
                 "weights_sum": sums, "world_size": world, "data": data_info(dataset),
                 "ema_n_averaged": int(ema.n_averaged) if ema is not None else 0}
        _on_main(accelerator, lambda: save_checkpoint(
            run_dir, step, model=model, optimizer=optimizer, ema=ema.module if ema is not None else None,
            state=state, keep_last=tc.keep_last))
        return checkpoint_dirs(run_dir)[-1]

    def picture(step: int) -> None:
        def draw() -> None:
            sampler_model = ema.module if ema is not None else model
            sampler_model.eval()
            gen = torch.Generator().manual_seed(config.eval.seed)
            n = 2000 if dataset.kind == "points" else 64
            samples = sampler_model.sample(n, **sample_options(config, n, gen))
            write_samples_picture(samples, dataset, run_dir / "samples" / f"step-{step:07d}.png",
                                  title=f"{config.run.name}, step {step}")
            sampler_model.train()

        _on_main(accelerator, draw)

    val_x = (dataset.test if dataset.fresh is None else dataset.reference(tc.eval_examples, config.eval.seed + 1))
    val_x = val_x[:tc.eval_examples].to(accelerator.device)

    def validate(step: int) -> None:
        def score() -> None:
            scored = ema.module if ema is not None else model
            scored.eval()
            lk = heldout_likelihood(scored, val_x, seed=config.eval.seed)
            scored.train()
            if lk is not None:
                log.log({"kind": "val", "step": step, **lk})

        _on_main(accelerator, score)

    bar = None
    if main and (progress if progress is not None else sys.stderr.isatty()):
        from tqdm.auto import tqdm

        bar = tqdm(total=tc.steps, initial=start_step, desc=config.run.name, dynamic_ncols=True)

    window_loss, window_n, window_t = torch.zeros((), device=accelerator.device), 0, time.perf_counter()
    last_good = ckpt
    model.train()
    try:
        for step in range(start_step + 1, tc.steps + 1):
            lr = tc.lr * lr_factor(step, tc)
            for group in optimizer.param_groups:
                group["lr"] = lr
            idx = order.indices(step)[rows]
            rng = BatchRandom(torch.Generator().manual_seed(step_seed(config.run.seed, step)), tc.batch_size,
                              rows.start, rows.stop)
            idx = idx.to(data.device)
            loss = loss_module(data[idx], rng, labels[idx] if labels is not None else None)
            accelerator.backward(loss)
            grad_norm = accelerator.clip_grad_norm_(model.parameters(), tc.grad_clip or math.inf)
            # every process must take the same decision, so the flags are reduced (max) over processes
            bad = torch.stack([~torch.isfinite(loss.detach()), ~torch.isfinite(grad_norm)]).float()
            if world > 1:
                bad = accelerator.reduce(bad, "max")
            if bool(bad.any()):
                what = ("the loss is not finite (NaN or inf)" if bool(bad[0])
                        else f"the gradient norm is {float(grad_norm)}")
                where = (f"the last good checkpoint, {last_good}, is intact; resume from it with --resume"
                         if last_good else "no checkpoint was written before it")
                raise TrainingDiverged(f"training stopped at step {step}: {what}. Nothing was saved after the "
                                       f"failure; {where}. Lower train.lr, set train.grad_clip, or check the data.")
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if ema is not None:
                ema.update_parameters(model)

            window_loss += loss.detach().float()
            window_n += 1
            if bar is not None:
                bar.update(1)
            if step % tc.log_every == 0 or step == tc.steps:
                mean_loss = window_loss / window_n
                if world > 1:
                    mean_loss = accelerator.reduce(mean_loss, "mean")
                now = time.perf_counter()
                record = {"step": step, "loss": float(mean_loss), "lr": lr, "grad_norm": float(grad_norm),
                          "steps_per_sec": window_n / (now - window_t), "seconds": elapsed + now - t0}
                window_loss, window_n, window_t = torch.zeros_like(window_loss), 0, now
                if log is not None:
                    log.log(record)
                if bar is not None:
                    bar.set_postfix(loss=f"{record['loss']:.4f}", lr=f"{lr:.2e}")
                elif main and progress is not False:
                    print(f"step {step}/{tc.steps}  loss {record['loss']:.5f}  lr {lr:.2e}  "
                          f"{record['steps_per_sec']:.1f} it/s", file=sys.stderr, flush=True)
            if tc.sample_every and step % tc.sample_every == 0:
                picture(step)
            if tc.eval_every and step % tc.eval_every == 0:
                validate(step)
            if step % tc.ckpt_every == 0 or step == tc.steps:
                last_good = save(step)
    finally:
        if bar is not None:
            bar.close()
        if log is not None:
            log.close()

    seconds = elapsed + time.perf_counter() - t0
    if not (tc.sample_every and tc.steps % tc.sample_every == 0):
        picture(tc.steps)

    def report() -> None:
        from ..report import write_report

        write_report(run_dir)

    _on_main(accelerator, report)
    # The last collective must be one whose tensors Python does not own. Gloo's worker thread frees a finished
    # collective's tensors a moment after the caller's wait returns; freeing a Python-owned one (the broadcast
    # above) needs the GIL, and if the interpreter is shutting down by then the process aborts ("terminate called
    # without an active exception": 1 in 5 two-process runs here). DDP keeps the process group alive past
    # destroy_process_group (torch 2.13), so the group's threads are never joined before exit. A barrier's
    # waiting hands the GIL to that thread first, and the barrier itself holds no Python tensor: measured 1 abort
    # in 70 runs with it. `flowforge train` then exits without interpreter shutdown, which closes the rest.
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return TrainResult(run_dir=run_dir, step=tc.steps, model=model, ema=ema.module if ema is not None else None,
                       seconds=seconds)
