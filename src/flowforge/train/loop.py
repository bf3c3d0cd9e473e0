"""The training loop: one function for every model family, on HF Accelerate.

The same config runs in one process or many (``accelerate launch`` / ``torchrun``),
on CPU or GPU, in float32 or bf16 autocast. Data order, per-example noise and
the learning rate are functions of ``(seed, step)`` (the noise also of the device
kind: it is drawn where the model runs), so a run resumed from a checkpoint
continues exactly as if it had never stopped, and a run split over ``k``
processes computes the same global batches as a single process.
"""

from __future__ import annotations

import math
import sys
import time
import warnings
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import torch
from torch import Tensor, nn
from torch.distributed.tensor import DTensor

from ..config import Config
from ..data.packing import pack_batch
from ..errors import TrainingDiverged
from ..metrics import heldout_likelihood
from ..models import GenerativeModel
from ..rng import BatchRandom, device_generator
from ..runs import checkpoint_dirs, rng_state, sample_options, save_checkpoint, write_report, write_samples_picture
from ..runs.vocabulary import model_vocabulary, vocabulary_digest
from . import sharding
from .batches import step_seed
from .health import GROWTH, set_aside_unhealthy, weights_health
from .schedule import lr_factor
from .setup import RunState, make_optimizer, on_main, setup
from .validation import check_validation_settings, validation_loss, validation_set


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    model: GenerativeModel  # the trained (non-EMA) model, unwrapped (train.distributed=fsdp: this process's shards)
    ema: nn.Module | None  # the EMA copy, when enabled
    seconds: float


StepCallback = Callable[[nn.Module, int], None]


def train(config: Config, *, resume: bool = False, progress: bool | None = None,
          on_step: StepCallback | None = None) -> TrainResult:
    """Train the model described by ``config`` and write the run directory.

    Arguments:
        config: the full run configuration.
        resume: continue from the newest checkpoint of ``config.run.path``.
        progress: draw a progress bar (default: when stderr is a terminal); ``False`` also silences log lines.
        on_step: ``on_step(model, step)`` after each optimizer step and EMA update (1-based ``step``, every
            process); it may read the weights, never change them or the random state (``benchmarks.ema_run_length``
            follows one training with an :class:`~flowforge.train.ema.EMA` per schedule).

    Raises:
        TrainingDiverged: the loss or gradient became non-finite; checkpoints on disk are untouched.
        RunError: the run directory is in the way (exists without ``resume``, or another process trains in it)
            or cannot be resumed.
    """
    check_validation_settings(config)  # before the run directory is touched
    state = setup(config, resume)
    tc, acc, model = config.train, state.accelerator, state.model
    bar = None
    try:
        if tc.val_every:  # SD3's validation loss: fixed held-out examples, noise and times (train/validation.py)
            state.validation = validation_set(config, model, state.dataset, acc.device)
        bar = _progress_bar(state, progress)
        window = _Window(acc.device, tc.log_every)
        params = list(model.parameters())  # listed once: parameters() walks every submodule
        model.train()
        for step in range(state.start_step + 1, tc.steps + 1):
            lr = optimisation_step(state, step, params, window)
            if on_step is not None:
                on_step(model, step)
            if bar is not None:
                bar.update(1)
            bookkeeping(state, window, step, lr, bar, progress)
    except BaseException:
        if state.lock is not None:
            state.lock.release()
        raise
    finally:
        if bar is not None:
            bar.close()
        if state.log is not None:
            state.log.close()

    # -- the end: last picture, report, a clean shutdown of the process group
    seconds = state.seconds()
    try:
        if not (tc.sample_every and tc.steps % tc.sample_every == 0):
            picture(state, tc.steps)
        on_main(acc, lambda: write_report(state.run_dir))
    finally:
        if state.lock is not None:
            state.lock.release()
    _shut_down(acc)
    return TrainResult(run_dir=state.run_dir, step=tc.steps, model=model,
                       ema=state.ema.module if state.ema is not None else None, seconds=seconds)


def _shut_down(acc) -> None:
    """A clean end of the process group.

    The last collective must be one whose tensors Python does not own. Gloo's worker thread frees a finished
    collective's tensors a moment after the caller's wait returns; freeing a Python-owned one (the report's
    broadcast) needs the GIL, and if the interpreter is shutting down by then the process aborts ("terminate
    called without an active exception": 1 in 5 two-process runs here). DDP keeps the process group alive past
    destroy_process_group (torch 2.13), so the group's threads are never joined before exit. A barrier's waiting
    hands the GIL to that thread first, and the barrier itself holds no Python tensor: measured 1 abort in 70 runs
    with it. `flowforge train` then exits without interpreter shutdown, which closes the rest.
    """
    acc.wait_for_everyone()
    acc.end_training()


# --------------------------------------------------------------------------- the loop's sections


def optimisation_step(state: RunState, step: int, params: list[nn.Parameter], window: _Window) -> float:
    """One optimisation step on this process's rows of global batch ``step``, then the EMA's update; returns the
    step's learning rate. The loss and gradient norm stay on the device (``window``), read at the next log line."""
    config, acc, model = state.config, state.accelerator, state.model
    tc = config.train
    lr = tc.lr * lr_factor(step, tc)
    for group in state.optimizer.param_groups:
        group["lr"] = lr
    if state.adversary is not None:  # the model's loss has an adversarial term from the discriminator's start on
        state.adversary.half.at(step)
    if state.packs is None:
        idx = state.order.indices(step)[state.rows].to(state.data.device)
        rng = BatchRandom(device_generator(acc.device, step_seed(config.run.seed, step)), tc.batch_size,
                          state.rows.start, state.rows.stop)
        # Accelerate wraps a DDP model's forward in its autocast; it leaves an FSDP2 model's as it is
        with acc.autocast() if state.sharded else nullcontext():
            loss = state.loss_module(state.data[idx], rng,
                                     state.labels[idx] if state.labels is not None else None,
                                     state.noise[idx] if state.noise is not None else None,
                                     state.context[idx] if state.context is not None else None)
    else:  # data.resolutions: one pack of images at several resolutions (one process)
        xs, ys = pack_batch(state.packs.pack(step), state.data, state.labels)
        n = sum(len(x) for x in xs)
        rng = BatchRandom(device_generator(acc.device, step_seed(config.run.seed, step)), n, 0, n)
        loss = state.loss_module(xs, rng, ys)
    acc.backward(loss)
    grad_norm = clip_gradients(state.optimizer, params, tc.grad_clip, acc)
    window.add(loss, grad_norm)  # on the device: read at the next log line or checkpoint, not here
    state.optimizer.step()
    state.optimizer.zero_grad(set_to_none=True)
    if state.adversary is not None and state.adversary.half.active:
        adversary_step(state, lr)
    if state.ema is not None:
        state.ema.update(model, step)
    return lr


def adversary_step(state: RunState, lr: float) -> None:
    """The discriminator's step on the batch the model's loss just judged (LDM's second optimiser), at the same
    learning rate and gradient clip as the model's."""
    adversary, acc = state.adversary, state.accelerator
    for group in adversary.optimizer.param_groups:
        group["lr"] = lr
    loss = adversary.half.discriminator_loss(adversary.net)
    acc.backward(loss)
    clip_gradients(adversary.optimizer, list(adversary.half.net.parameters()), state.config.train.grad_clip, acc)
    adversary.optimizer.step()
    adversary.optimizer.zero_grad(set_to_none=True)


def bookkeeping(state: RunState, window: _Window, step: int, lr: float, bar, progress: bool | None) -> None:
    """Log, pictures, validation and checkpoints due after ``step``, each after the divergence check."""
    tc = state.config.train
    log_now = step % tc.log_every == 0 or step == tc.steps
    picture_now = bool(tc.sample_every) and step % tc.sample_every == 0
    validate_now = bool(tc.eval_every) and step % tc.eval_every == 0
    val_loss_now = bool(tc.val_every) and step % tc.val_every == 0
    save_now = step % tc.ckpt_every == 0 or step == tc.steps
    if log_now or picture_now or validate_now or val_loss_now or save_now:
        check_divergence(state, window, step)  # nothing diverged is logged, drawn, scored or saved
    if log_now:
        log_window(state, window, step, lr, bar, progress)
    if picture_now:
        picture(state, step)
    if validate_now:
        validate(state, step)
    if val_loss_now:
        log_validation_loss(state, step)
    if save_now:
        state.last_good = save(state, step)


def clip_gradients(optimizer: torch.optim.Optimizer, parameters, max_norm: float | None, accelerator=None) -> Tensor:
    """The global L2 norm of the gradients (a device tensor), which are scaled down to ``max_norm`` if above it.

    For a fused optimizer the scaling rides in its kernel instead of a pass of its own: the kernel divides
    every gradient by its ``grad_scale`` input (the one ``torch.amp.GradScaler`` unscales with), here
    ``max(1, (norm + 1e-6) / max_norm)``, the inverse of ``clip_grad_norm_``'s factor; its ``found_inf`` input
    skips the update of a step whose gradient is not finite, so the weights in memory stay good until the
    divergence check stops the run. Other optimizers get ``clip_grad_norm_`` itself.
    """
    inner = sharding.inner_optimizer(optimizer)
    if not inner.param_groups[0].get("fused"):
        clip = accelerator.clip_grad_norm_ if accelerator is not None else torch.nn.utils.clip_grad_norm_
        norm = clip(parameters, max_norm or math.inf)
        return norm.full_tensor() if isinstance(norm, DTensor) else norm  # sharded: the replicated global norm
    grads = [p.grad for p in parameters if p.grad is not None]
    norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))  # as clip_grad_norm_ computes it
    inner.found_inf = (~torch.isfinite(norm)).float()
    inner.grad_scale = ((norm + 1e-6) / max_norm).clamp(min=1.0) if max_norm else None
    return norm


def optimizer_description(optimizer: torch.optim.Optimizer) -> str:
    """``AdamW (fused)``: the optimizer's class and implementation."""
    inner = sharding.inner_optimizer(optimizer)
    group = inner.param_groups[0]
    kind = "fused" if group.get("fused") else "foreach" if group.get("foreach") else "for-loop"
    return f"{type(inner).__name__} ({kind})"


class _Window:
    """The loss and gradient norm of every step since the last log line, kept on the device.

    Nothing is read on the host per step: :func:`check_divergence` reads the steps not yet checked before each
    log line, picture, validation and checkpoint, and :func:`log_window` their mean.
    """

    def __init__(self, device: torch.device, size: int):
        self.values = torch.zeros((size, 2), device=device)  # (log_every, [loss, grad norm])
        self.n, self.checked = 0, 0
        self.started = time.perf_counter()

    def add(self, loss: Tensor, grad_norm: Tensor) -> None:
        torch.stack([loss.detach().float(), grad_norm.detach().float()], out=self.values[self.n])
        self.n += 1

    def reset(self) -> None:
        self.n, self.checked, self.started = 0, 0, time.perf_counter()


def _progress_bar(state: RunState, progress: bool | None):
    if not (state.main and (progress if progress is not None else sys.stderr.isatty())):
        return None
    from tqdm.auto import tqdm

    return tqdm(total=state.config.train.steps, initial=state.start_step, desc=state.config.run.name,
                dynamic_ncols=True)


def check_divergence(state: RunState, window: _Window, step: int) -> None:
    """Stop when the loss or the gradient of a step since the last check was not finite on any process.

    Called before anything is logged, drawn, scored or checkpointed, so the last checkpoint stays the last good
    one (the weights in memory may have taken the bad steps; they are never written). One host read per check
    instead of one per step; the message names the first bad step and how to go on from that checkpoint.
    """
    new = window.values[window.checked:window.n]  # (k, 2): the steps not checked yet
    window.checked = window.n
    bad = (~torch.isfinite(new)).float()  # (k, 2)
    if state.world > 1:  # every process must take the same decision
        bad = state.accelerator.reduce(bad, "max")
    if not bool(bad.any()):
        return
    row = int(bad.any(1).nonzero()[0])
    first = step - len(new) + 1 + row
    what = ("the loss is not finite (NaN or inf)" if bool(bad[row, 0])
            else f"the gradient norm is {float(new[row, 1])}")
    set_aside = ""
    if state.last_good is not None and state.last_good != state.last_healthy:  # weights blew up before the NaN
        moved = on_main(state.accelerator, lambda: set_aside_unhealthy(state.run_dir, state.last_healthy)) or []
        set_aside = (f"The checkpoints after it ({', '.join(p.name for p in moved)}) hold weights grown more than "
                     f"{GROWTH:g}x and were set aside, so --resume starts from it. ")
        state.last_good = state.last_healthy
    if state.last_good is None:
        where = ("no checkpoint was written before it with healthy weights; start again with a lower train.lr or a "
                 "train.grad_clip (and check the data)")
    else:
        clip = state.config.train.grad_clip
        where = (f"the last good checkpoint, {state.last_good}, is intact. {set_aside}Resuming it unchanged would "
                 f"diverge at "
                 f"the same step (resume is exact); resume with a lower learning rate or a tighter gradient clip, "
                 f"which may change on --resume: flowforge train CONFIG --resume "
                 f"train.lr={state.config.train.lr / 4:g} train.grad_clip={clip / 2 if clip else 1.0:g} "
                 f"(and check the data)")
    raise TrainingDiverged(f"training stopped at step {first}: {what}. Nothing was saved after the failure; {where}.")


def log_window(state: RunState, window: _Window, step: int, lr: float, bar, progress: bool | None) -> None:
    """One ``metrics.jsonl`` record (and log line) of the mean loss since the last one and the last step's
    gradient norm: one host read per log line."""
    mean_loss = window.values[:window.n, 0].mean()
    if state.world > 1:
        mean_loss = state.accelerator.reduce(mean_loss, "mean")
    loss, grad_norm = (float(v) for v in torch.stack([mean_loss, window.values[window.n - 1, 1]]).cpu())
    now = time.perf_counter()
    record = {"step": step, "loss": loss, "lr": lr, "grad_norm": grad_norm,
              "steps_per_sec": window.n / (now - window.started), "seconds": state.seconds()}
    if state.adversary is not None:  # the discriminator's and the generator's adversarial losses, once started
        record.update(state.adversary.half.logged())
    window.reset()
    if state.log is not None:
        state.log.log(record)
    if bar is not None:
        bar.set_postfix(loss=f"{record['loss']:.4f}", lr=f"{lr:.2e}")
    elif state.main and progress is not False:
        print(f"step {step}/{state.config.train.steps}  loss {record['loss']:.5f}  lr {lr:.2e}  "
              f"{record['steps_per_sec']:.1f} it/s", file=sys.stderr, flush=True)


@contextmanager
def evaluation_mode(module: nn.Module) -> Iterator[nn.Module]:
    """``module`` in eval mode for the block, back in the mode it was in afterwards, also on an error."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


def save(state: RunState, step: int) -> Path:
    """Checkpoint ``step`` (main process), with every process's RNG state and a fingerprint of its weights."""
    from accelerate.utils import gather_object

    model, optimizer, ema = state.model, state.optimizer, state.ema.module if state.ema is not None else None
    if state.sharded:  # the full weights, EMA and moments, gathered to the main process (None elsewhere)
        model = sharding.gathered(state.loss_module, state.build, state.main, prefix="model.")
        optimizer = sharding.gathered_optimizer(
            state.loss_module, state.optimizer, model,
            lambda plain: make_optimizer(plain, state.config.train, torch.device("cpu")))
        ema = sharding.gathered(ema, state.build, state.main) if ema is not None else None
    # processes whose weights drift apart are a bug of data parallelism: keep each one's weight sum (sharded:
    # one sum of the gathered weights, there being one copy)
    def total() -> float:
        return float(sum(p.detach().double().sum() for p in model.parameters()))

    mine = {"rng": rng_state(), "weights_sum": None if state.sharded else total()}
    everyone = gather_object([mine]) if state.world > 1 else [mine]
    sums = [total() if state.main else None] if state.sharded else [e["weights_sum"] for e in everyone]
    if state.main and len(set(sums)) > 1:
        warnings.warn(f"step {step}: the processes hold different weights (sums {sums}); "
                      f"data-parallel training is out of sync", stacklevel=2)
    record = {"step": step, "seconds": state.seconds(), "rng": [e["rng"] for e in everyone], "weights_sum": sums,
              "world_size": state.world, "data": state.dataset.spec(), "model": state.config.to_dict()["model"],
              "ema_n_averaged": int(state.ema.n_averaged) if state.ema is not None else 0,
              "distributed": state.config.train.distributed if state.world > 1 else None,
              "reflow_parent_weights": state.parent_weights,  # a resumed reflow run keeps to these pairs
              "vocabulary_sha256": vocabulary_digest(model_vocabulary(state.model)),  # binds vocabulary.json
              # what the engine chose on this hardware, for the report
              "engine": {"precision": state.accelerator.precision_choice.describe(),
                         "optimizer": optimizer_description(state.optimizer)}}
    health = weights_health(model, state.reference_rms) if model is not None else None
    record["health"] = health
    on_main(state.accelerator, lambda: save_checkpoint(
        state.run_dir, step, model=model, optimizer=optimizer, ema=ema, state=record,
        keep_last=state.config.train.keep_last, keep=state.last_healthy,
        adversary=(state.adversary.half.net, state.adversary.optimizer) if state.adversary is not None else None))
    saved = checkpoint_dirs(state.run_dir)[-1]
    if health is None or health["healthy"]:
        state.last_healthy = saved
        state.reference_rms = health["reference_rms"] if health is not None else state.reference_rms
    return saved


def sampling_copy(state: RunState) -> nn.Module | None:
    """The weights pictures and validation use (:meth:`RunState.sampling_model`); sharded, a plain copy of them
    gathered to the main process (``None`` elsewhere), since the main process draws alone. Every process calls it."""
    if not state.sharded:
        return state.sampling_model()
    if state.ema is not None:
        plain = sharding.gathered(state.ema.module, state.build, state.main)
    else:
        plain = sharding.gathered(state.loss_module, state.build, state.main, prefix="model.")
    return plain.to(state.accelerator.device) if plain is not None else None


def picture(state: RunState, step: int) -> None:
    """A picture of samples of the EMA weights at ``step`` (main process)."""
    config = state.config
    sampling = sampling_copy(state)

    def draw() -> None:
        with evaluation_mode(sampling) as model:
            gen = torch.Generator().manual_seed(config.eval.seed)
            n = 2000 if state.dataset.kind == "points" else 64
            options = sample_options(config, n, gen, model=model)
            if state.dataset.test_context is not None:  # a conditional flow: x drawn for the test rows' contexts
                contexts = state.dataset.test_context
                options["context"] = contexts[torch.arange(n) % len(contexts)].to(state.accelerator.device)
            samples = model.sample(n, **options)
        path = state.run_dir / "samples" / f"step-{step:07d}.png"
        write_samples_picture(samples, state.dataset, path, title=f"{config.run.name}, step {step}")
        if state.log is not None:  # TensorBoard's Images tab, at train.sample_every
            state.log.add_picture("samples", path, step)

    on_main(state.accelerator, draw)


def validate(state: RunState, step: int) -> None:
    """Held-out likelihood of the EMA weights at ``step``, logged as a ``val`` record (main process)."""
    sampling = sampling_copy(state)

    def score() -> None:
        with evaluation_mode(sampling) as model:
            context = state.dataset.test_context  # a conditional flow's: the rows of val_x, the test split's first
            lk = heldout_likelihood(model, state.val_x, seed=state.config.eval.seed,
                                    context=context[:len(state.val_x)].to(state.val_x.device) if context is not None
                                    else None)
        state.log.log({"kind": "val", "step": step, **lk})

    on_main(state.accelerator, score)


def log_validation_loss(state: RunState, step: int) -> None:
    """SD3's validation loss of the EMA weights at ``step`` (:mod:`flowforge.train.validation`), logged as a
    ``val_loss`` record: its mean and its value at each fixed time (main process)."""
    sampling = sampling_copy(state)
    on_main(state.accelerator, lambda: state.log.log(
        {"kind": "val_loss", "step": step, **validation_loss(sampling, state.validation)}))
