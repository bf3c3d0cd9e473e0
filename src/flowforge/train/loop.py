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
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import Tensor, nn

from ..config import Config, from_dict
from ..data import Dataset, load_dataset
from ..errors import RunError, TrainingDiverged, UserError
from ..models import GenerativeModel, build_model
from ..rng import BatchRandom
from .batches import BatchOrder, step_seed
from .checkpoint import latest_checkpoint, load_checkpoint, load_weights, rng_state, save_checkpoint, set_rng_state
from .ema import make_ema
from .logging import MetricsLog
from .pictures import write_samples_picture
from .schedule import lr_factor

# Config sections that may change when a run is resumed; anything else would train a different model.
RESUMABLE_CHANGES = ("train.steps", "train.log_every", "train.sample_every", "train.ckpt_every",
                     "train.keep_last", "train.tensorboard", "sample.", "eval.", "run.dir")


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

    def forward(self, x: Tensor, rng: BatchRandom) -> Tensor:
        return self.model.loss(x, rng)


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        out.update(_flatten(v, key + ".") if isinstance(v, dict) else {key: v})
    return out


def _check_resume_config(old: Config, new: Config) -> list[str]:
    a, b = _flatten(old.to_dict()), _flatten(new.to_dict())
    changed = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
    forbidden = [k for k in changed if not k.startswith(RESUMABLE_CHANGES)]
    if forbidden:
        k = forbidden[0]
        raise RunError(f"cannot resume: {k} was {a.get(k)!r} and is now {b.get(k)!r}; only "
                       f"{', '.join(RESUMABLE_CHANGES)} may change on --resume (start a new run.name otherwise)")
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


def train(config: Config, *, resume: bool = False, progress: bool | None = None) -> TrainResult:
    """Train the model described by ``config`` and write the run directory.

    Arguments:
        config: the full run configuration.
        resume: continue from the newest checkpoint of ``config.run.path``.
        progress: draw a progress bar (default: when stderr is a terminal).

    Raises:
        TrainingDiverged: the loss or gradient became non-finite; checkpoints on disk are untouched.
        RunError: the run directory is in the way (exists without ``resume``) or cannot be resumed.
    """
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    tc = config.train
    run_dir = config.run.path
    # Accelerate keeps one process-wide state; a second run in the same process (a notebook, the tests) may
    # ask for another precision, so the per-run part is reset. The process group (PartialState) is kept.
    AcceleratorState._reset_state()
    # Accelerate sets up multi-process CPU training (gloo) only when told cpu=True, so say it when there is no GPU.
    use_cpu = tc.cpu or not (torch.cuda.is_available() or torch.backends.mps.is_available())
    accelerator = Accelerator(cpu=use_cpu, mixed_precision="bf16" if tc.precision == "bf16" else "no")
    world, rank, main = accelerator.num_processes, accelerator.process_index, accelerator.is_main_process
    if main and tc.precision == "bf16" and accelerator.device.type == "cpu" and not _cpu_has_bf16():
        warnings.warn(f"train.precision=bf16 on a CPU without native bf16 ({torch.backends.cpu.get_cpu_capability()}):"
                      " autocast emulates it, measured ~20x slower than fp32 (benchmarks/train_speed.py); "
                      "train.precision=fp32 is faster here", stacklevel=2)
    if tc.batch_size % world:
        raise UserError(f"train.batch_size ({tc.batch_size}) must be divisible by the number of processes ({world})")

    ckpt = latest_checkpoint(run_dir)
    if resume and ckpt is None:
        raise RunError(f"--resume: no checkpoint in {run_dir}/checkpoints; start without --resume")
    if not resume and ckpt is not None:
        raise RunError(f"{run_dir} already holds a trained run; pass --resume to continue it, "
                       f"or choose another run.name / run.dir")
    changed: list[str] = []
    if resume:
        old = from_dict(yaml.safe_load((run_dir / "config.yaml").read_text()))
        changed = _check_resume_config(old, config)

    dataset = load_dataset(config.data)
    _check_finite_data(dataset.train, dataset.name)
    torch.manual_seed(config.run.seed)  # identical initial weights on every process
    model = build_model(config.model, dataset.shape)
    ema = make_ema(model, tc.ema_decay) if tc.ema_decay is not None else None
    optimizer = torch.optim.AdamW(model.parameters(), lr=tc.lr, betas=tuple(tc.betas), weight_decay=tc.weight_decay)

    start_step, elapsed = 0, 0.0
    if resume:
        state = load_checkpoint(ckpt, model=model, optimizer=optimizer)
        if ema is not None:
            if (ckpt / "ema.safetensors").is_file():
                load_weights(ema.module, ckpt / "ema.safetensors")
                ema.n_averaged.fill_(state.get("ema_n_averaged", 0))
        start_step, elapsed = state["step"], state.get("seconds", 0.0)
        rngs = state.get("rng", [])
        if rank < len(rngs):
            set_rng_state(rngs[rank])

    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(config.to_yaml())
        (run_dir / "data.json").write_text(json.dumps(data_info(dataset), indent=1))
    log = MetricsLog(run_dir, tc.tensorboard, truncate_after=start_step if resume else None) if main else None
    if main and changed:
        print(f"resuming with changed settings: {', '.join(changed)}", file=sys.stderr)

    loss_module, optimizer = accelerator.prepare(_LossModule(model), optimizer)
    if ema is not None:
        ema.to(accelerator.device)
    data = dataset.train.to(accelerator.device)
    order = BatchOrder(len(data), tc.batch_size, config.run.seed)
    local = tc.batch_size // world
    rows = slice(rank * local, (rank + 1) * local)

    def save(step: int) -> Path:
        # every process's RNG state, and a fingerprint of its weights: processes that drifted apart are a bug
        mine = {"rng": rng_state(), "weights_sum": float(sum(p.detach().double().sum() for p in model.parameters()))}
        everyone = accelerator.gather_for_metrics([mine], use_gather_object=True) if world > 1 else [mine]
        path = None
        if main:
            state = {"step": step, "seconds": elapsed + (time.perf_counter() - t0),
                     "rng": [e["rng"] for e in everyone], "weights_sum": [e["weights_sum"] for e in everyone],
                     "world_size": world, "data": data_info(dataset),
                     "ema_n_averaged": int(ema.n_averaged) if ema is not None else 0}
            path = save_checkpoint(run_dir, step, model=model, optimizer=optimizer,
                                   ema=ema.module if ema is not None else None, state=state, keep_last=tc.keep_last)
        accelerator.wait_for_everyone()
        return path

    def picture(step: int) -> None:
        if main:
            sampler_model = ema.module if ema is not None else model
            sampler_model.eval()
            gen = torch.Generator().manual_seed(config.eval.seed)
            samples = sampler_model.sample(2000 if dataset.kind == "points" else 64, sampler=config.sample.sampler,
                                           steps=config.sample.steps, generator=gen)
            write_samples_picture(samples, dataset, run_dir / "samples" / f"step-{step:07d}.png",
                                  title=f"{config.run.name}, step {step}")
            sampler_model.train()
        accelerator.wait_for_everyone()

    show_bar = main and (progress if progress is not None else sys.stderr.isatty())
    bar = None
    if show_bar:
        from tqdm.auto import tqdm

        bar = tqdm(total=tc.steps, initial=start_step, desc=config.run.name, dynamic_ncols=True)

    t0 = time.perf_counter()
    window_loss, window_n, window_t = torch.zeros((), device=accelerator.device), 0, time.perf_counter()
    last_good = ckpt
    model.train()
    for step in range(start_step + 1, tc.steps + 1):
        lr = tc.lr * lr_factor(step, tc)
        for group in optimizer.param_groups:
            group["lr"] = lr
        idx = order.indices(step)[rows]
        rng = BatchRandom(torch.Generator().manual_seed(step_seed(config.run.seed, step)), tc.batch_size,
                          rows.start, rows.stop)
        loss = loss_module(data[idx.to(data.device)], rng)
        accelerator.backward(loss)
        grad_norm = accelerator.clip_grad_norm_(model.parameters(), tc.grad_clip or math.inf)
        loss_ok = torch.isfinite(loss.detach()).float()
        if world > 1:
            loss_ok = accelerator.reduce(loss_ok, "min")  # every process must take the same decision
        if not bool(loss_ok) or not bool(torch.isfinite(grad_norm)):
            if bar is not None:
                bar.close()
            if log is not None:
                log.close()
            what = f"the loss is {loss.item()}" if not bool(loss_ok) else f"the gradient norm is {float(grad_norm)}"
            where = (f"the last good checkpoint, {last_good}, is intact; resume from it with --resume"
                     if last_good else "no checkpoint was written before it")
            raise TrainingDiverged(f"training stopped at step {step}: {what}. Nothing was saved after the failure; "
                                   f"{where}. Lower train.lr, set train.grad_clip, or check the data.")
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
        if step % tc.ckpt_every == 0 or step == tc.steps:
            last_good = save(step)

    if bar is not None:
        bar.close()
    seconds = elapsed + time.perf_counter() - t0
    if not (tc.sample_every and tc.steps % tc.sample_every == 0):
        picture(tc.steps)
    if main:
        log.close()
        from ..report import write_report

        write_report(run_dir)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return TrainResult(run_dir=run_dir, step=tc.steps, model=model, ema=ema.module if ema is not None else None,
                       seconds=seconds)

