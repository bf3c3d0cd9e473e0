"""Setting up a training run: the accelerator, the run directory, the data, the model and what resumes.

:func:`setup` returns one :class:`RunState`, which the loop's sections in
:mod:`flowforge.train.loop` read and update.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from torch import Tensor, nn

from ..config import Config, ConfigError, TrainConfig
from ..data import Dataset, load_dataset
from ..data.latents import check_same_autoencoder
from ..data.packing import PackSampler, check_resolutions, pack_batch
from ..errors import RunError, UserError
from ..models import NETS, GenerativeModel, Paired, build_model
from ..rng import BatchRandom, device_generator
from ..runs import (MetricsLog, RunLock, atomic_write_text, check_model_binding, latest_checkpoint, load_checkpoint,
                    load_weights, read_config, read_state, read_vocabulary, set_rng_state, write_vocabulary)
from ..runs.checkpoint import changes, load_adversary, read_optimizer_state
from ..runs.load import Run, load_run
from ..runs.pairs import PairSettings, Pairs, reflow_pairs_of
from . import sharding
from .batches import BatchOrder, step_seed
from .ema import EMA, make_ema
from .health import newest_healthy, reference_rms
from .precision import choose_precision, emulated_bf16_warning

# Settings that may change when a run is resumed; anything else would train a different model. train.lr and
# train.grad_clip are among them so that a diverged run can go on from its last good checkpoint more gently.
# train.distributed too: a sharded run's checkpoints hold the same full tensors as a DDP run's, and train.compile:
# a compiled network keeps the eager one's state-dict keys.
RESUMABLE_CHANGES = ("train.steps", "train.lr", "train.grad_clip", "train.log_every", "train.sample_every",
                     "train.ckpt_every", "train.eval_", "train.val_", "train.keep_last", "train.tensorboard", "train.cpu",
                     "train.precision", "train.distributed", "train.compile", "data.cache_dir", "data.download", "sample.", "eval.",
                     "run.dir")


class LossModule(nn.Module):
    """Routes ``forward`` to ``model.loss`` so DDP's gradient sync and Accelerate's autocast apply to it."""

    def __init__(self, model: GenerativeModel):
        super().__init__()
        self.model = model

    def forward(self, x: Tensor, rng: BatchRandom, labels: Tensor | None = None,
                noise: Tensor | None = None, context: Tensor | None = None) -> Tensor:
        # reflow's rows come with their noise: a coupling fixed in advance (flowforge.models.objectives.Paired)
        x = x if noise is None else Paired(x, noise)
        # a conditional flow's rows come with their context c (data.context_columns): p(x | c)
        if context is None:
            return self.model.loss(x, rng, labels)
        return self.model.loss(x, rng, labels, context=context)


@dataclass
class Adversary:
    """A second network trained beside the model with an optimiser of its own (an autoencoder's patch
    discriminator, :class:`~flowforge.models.objectives.autoencoder.PatchAdversary`); the model's EMA and optimiser
    never see it."""

    half: Any  # the model's PatchAdversary: the step it is at, the discriminator's loss, the logged losses
    net: nn.Module  # the discriminator as Accelerate prepared it (DDP-wrapped in several processes)
    optimizer: torch.optim.Optimizer


@dataclass
class RunState:
    """What one training run holds from setup to its last checkpoint."""

    config: Config
    accelerator: Any  # accelerate.Accelerator
    dataset: Dataset
    model: GenerativeModel
    ema: EMA | None  # the averaged copy, when train.ema_decay is set
    optimizer: torch.optim.Optimizer
    loss_module: nn.Module  # LossModule, wrapped for data parallelism
    data: Tensor  # the training split on the device (N, *shape), or reflow's ODE end points in model space
    labels: Tensor | None  # (N,) for class-conditional models
    noise: Tensor | None  # (N, *shape) reflow's noise, paired with each row of data; None: independent draws
    order: BatchOrder
    rows: slice  # this process's rows of each global batch
    val_x: Tensor  # held-out examples scored by train.eval_every
    start_step: int
    elapsed: float  # seconds trained before this process started (resume)
    log: MetricsLog | None  # on the main process only
    last_good: Path | None  # the newest checkpoint on disk
    lock: RunLock | None  # held by the main process for the run's lifetime
    packs: PackSampler | None = None  # data.resolutions: the pack of each step, instead of `order`
    context: Tensor | None = None  # (N, C) the context of each row, for a conditional flow p(x | c)
    sharded: bool = False  # train.distributed=fsdp: model, optimizer and EMA hold this process's shards
    build: Callable[[], GenerativeModel] | None = None  # a fresh unsharded model, for the gathered weights
    parent_weights: str | None = None  # reflow: the sha256 of the parent weights its pairs were drawn from
    last_healthy: Path | None = None  # the newest checkpoint with healthy weights (train/health.py)
    reference_rms: float | None = None  # the weights' RMS at the run's first checkpoint
    validation: Any = None  # train.val_every: the fixed held-out set of SD3's validation loss (train/validation.py)
    adversary: Adversary | None = None  # model.autoencoder.disc_weight > 0: the discriminator and its optimiser
    t0: float = field(default_factory=time.perf_counter)

    @property
    def run_dir(self) -> Path:
        return self.config.run.path

    @property
    def main(self) -> bool:
        return self.accelerator.is_main_process

    @property
    def world(self) -> int:
        return self.accelerator.num_processes

    def seconds(self) -> float:
        """Training time so far, over every resumed part of the run."""
        return self.elapsed + time.perf_counter() - self.t0

    def sampling_model(self) -> nn.Module:
        """The weights pictures and validation use: the EMA copy when there is one."""
        return self.ema.module if self.ema is not None else self.model


def on_main(accelerator, fn: Callable[[], Any]) -> Any:
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


def make_accelerator(config: Config):
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    tc = config.train
    # Accelerate keeps one process-wide state; a second run in the same process (a notebook, the tests) may
    # ask for another precision, so the per-run part is reset. The process group (PartialState) is kept.
    AcceleratorState._reset_state()
    # Accelerate sets up multi-process CPU training (gloo) only when told cpu=True, so say it when there is no GPU.
    use_cpu = tc.cpu or not (torch.cuda.is_available() or torch.backends.mps.is_available())
    device = torch.device("cpu" if use_cpu else "cuda" if torch.cuda.is_available() else "mps")
    choice = choose_precision(tc.precision, device)
    fsdp = tc.distributed == "fsdp"
    if fsdp:
        sharding.check_config(config)
    if fsdp and not sharding.accelerate_shards_on(device):  # before Accelerate sets ACCELERATE_USE_FSDP for the process
        raise sharding.refuse_on_cpu()
    plugin = sharding.fsdp_plugin(config, bf16=choice.precision == "bf16") if fsdp else None
    told = os.environ.get("ACCELERATE_USE_FSDP")
    accelerator = Accelerator(cpu=use_cpu, mixed_precision="bf16" if choice.precision == "bf16" else "no",
                              fsdp_plugin=plugin)
    if plugin is not None and told is None:  # given a plugin, Accelerate marks the whole process as FSDP; a later
        os.environ.pop("ACCELERATE_USE_FSDP", None)  # run in it (a notebook, the tests) may be ddp
    sharding.check_sharded(accelerator, fsdp)
    accelerator.precision_choice = choice  # the run report and the log say which precision ran
    if accelerator.is_main_process and choice.precision == "bf16" and not choice.native_bf16 \
            and device.type == "cpu":
        warnings.warn(emulated_bf16_warning(choice), stacklevel=3)
    if tc.batch_size % accelerator.num_processes:
        raise UserError(f"train.batch_size ({tc.batch_size}) must be divisible by the number of processes "
                        f"({accelerator.num_processes})")
    return accelerator


def make_optimizer(model: nn.Module, tc: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW with its fastest exact implementation on ``device``: the fused kernel (one pass over every
    parameter; CPU and CUDA), else the multi-tensor ``foreach`` one. torch's own default on CPU is the
    per-parameter loop (measured in benchmarks/results/engine_overhead.json)."""
    from torch.utils._foreach_utils import _get_fused_kernels_supported_devices

    kind = "fused" if device.type in _get_fused_kernels_supported_devices() else "foreach"
    if tc.distributed == "fsdp":  # the fused clipping of loop.clip_gradients would take each shard's norm for the
        kind = "foreach"          # global one; sharded gradients go through Accelerate's DTensor-aware clipping
    return torch.optim.AdamW(model.parameters(), lr=tc.lr, betas=tuple(tc.betas), weight_decay=tc.weight_decay,
                             **{kind: True})


@contextlib.contextmanager
def keeping_implementation(optimizer: torch.optim.Optimizer) -> Iterator[None]:
    """Around a load of an optimizer state dict, whose groups carry the ``fused`` / ``foreach`` flags of the run
    that saved it: ``optimizer`` keeps its own (the fastest on this device, :func:`make_optimizer`)."""
    group = optimizer.param_groups[0]
    flags = {k: group[k] for k in ("fused", "foreach") if k in group}
    yield
    for group in optimizer.param_groups:
        group.update(flags)


def check_resume_config(old: Config, new: Config, ckpt: Path | None = None) -> dict[str, list[Any]]:
    """The settings that changed since the run started, ``{key: [old, new]}``; raise if one changes the model.
    A latent run's ``data.latent`` must still be the autoencoder of checkpoint ``ckpt``'s latents (by the sha256
    of its weights: retrained in place, refused; the same one moved, accepted)."""
    changed = changes(old.to_dict(), new.to_dict())
    same_latents = ckpt is not None and bool(old.data.latent and new.data.latent) and \
        check_same_autoencoder(read_state(ckpt)["data"], new.data.latent, ckpt)
    forbidden = [k for k in changed
                 if not k.startswith(RESUMABLE_CHANGES) and not (k == "data.latent" and same_latents)]
    if forbidden:
        k = forbidden[0]
        old_value, new_value = changed[k]
        raise RunError(f"cannot resume: {k} was {old_value!r} and is now {new_value!r}; only "
                       f"{', '.join(RESUMABLE_CHANGES)} may change on --resume (start a new run.name otherwise)")
    if "train.steps" in changed and new.train.schedule == "cosine":
        warnings.warn(f"train.steps changed from {old.train.steps} to {new.train.steps} on a cosine schedule: "
                      f"the learning rate follows the new horizon from here on", stacklevel=3)
    elif "train.steps" in changed and old.train.warmup_steps > old.train.steps:
        warnings.warn(f"train.steps changed from {old.train.steps} to {new.train.steps} while the warmup "
                      f"({old.train.warmup_steps} steps) was clamped to the run's length: it now spans "
                      f"{min(new.train.warmup_steps, new.train.steps)} steps, so the learning rate drops and warms "
                      f"up again", stacklevel=3)
    return changed


def _check_run_dir(run_dir: Path, resume: bool) -> Path | None:
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


def _check_finite_data(x: Tensor, name: str) -> None:
    if not torch.isfinite(x).all():
        row = int((~torch.isfinite(x.reshape(x.shape[0], -1))).any(1).nonzero()[0])
        raise UserError(f"dataset {name!r}: row {row} contains NaN or inf; clean the data before training")


def _training_labels(config: Config, dataset: Dataset) -> Tensor | None:
    if config.model.num_classes is None:
        return None
    if dataset.train_labels is None:
        raise ConfigError(f"model.num_classes is set but data set {dataset.name!r} has no labels; "
                          f"unset model.num_classes or use labelled data")
    if int(dataset.train_labels.min()) < 0 or int(dataset.train_labels.max()) >= config.model.num_classes:
        raise ConfigError(f"model.num_classes: got {config.model.num_classes}, but the labels go up to "
                          f"{int(dataset.train_labels.max())}")
    return dataset.train_labels


def _open_run_dir(config: Config, dataset: Dataset, resume: bool, changed: dict[str, list[Any]],
                  start_step: int) -> MetricsLog:
    """Write the run's config and data spec (main process); open its metrics log."""
    run_dir = config.run.path
    if not resume:
        _clear_stale_outputs(run_dir)
    atomic_write_text(run_dir / "config.yaml", config.to_yaml())
    atomic_write_text(run_dir / "data.json", json.dumps(dataset.spec(), indent=1))
    log = MetricsLog(run_dir, config.train.tensorboard, truncate_after=start_step if resume else None)
    if changed:
        print(f"resuming with changed settings: {', '.join(changed)}", file=sys.stderr)
        log.log({"kind": "resume", "step": start_step, "changed": changed})
    return log


def _pack_sampler(config: Config, dataset: Dataset, world: int) -> PackSampler:
    """The packs of a run on ``data.resolutions``, after checking that the model and the run can train on them."""
    m = config.model
    if m.kind != "continuous" or not NETS[m.net.name].packs or m.precond != "none":
        packers = " or ".join(name for name, net in NETS.items() if net.packs)
        raise ConfigError(f"data.resolutions={config.data.resolutions} trains on packs of several resolutions, "
                          f"which needs model.kind=continuous, model.net.name={packers} and model.precond=none (got "
                          f"{m.kind}, {m.net.name}, {m.precond}); unset data.resolutions otherwise")
    if world > 1:
        raise UserError(f"data.resolutions: packed training runs in one process for now, not {world}; train "
                        f"without accelerate launch / torchrun, or unset data.resolutions")
    resolutions = check_resolutions(config.data.resolutions, dataset.shape, m.net.patch, config.train.pack_tokens)
    return PackSampler(len(dataset.train), resolutions, m.net.patch, config.train.pack_tokens, config.run.seed)


def _training_tensors(config: Config, dataset: Dataset, pairs: Pairs | None, device: torch.device
                      ) -> tuple[Tensor, Tensor | None, Tensor | None, Tensor | None]:
    """``(data, noise, labels, context)`` on ``device``: the data set's training rows, or a reflow run's pairs
    (their samples, their noise and the labels they were drawn with); labels only for a class-conditional model."""
    data = (pairs.x if pairs is not None else dataset.train).to(device)
    noise = pairs.noise.to(device) if pairs is not None else None
    labels = _training_labels(config, dataset) if pairs is None else pairs.labels
    labels = labels.to(device) if labels is not None and config.model.num_classes else None
    context = dataset.train_context.to(device) if dataset.train_context is not None else None
    return data, noise, labels, context


@torch.no_grad()
def _first_batch_init(model: GenerativeModel, order: BatchOrder, packs: PackSampler | None, data: Tensor,
                      labels: Tensor | None, noise: Tensor | None, context: Tensor | None, start_step: int,
                      seed: int) -> None:
    """Data-dependent initialisation (Glow's ActNorm) from the first step's global batch, alike on every process;
    with packs it also checks, before the first step, that the model takes them."""
    rows0 = None
    if packs is None:
        rows0 = order.indices(start_step + 1).to(data.device)
        first, first_labels = data[rows0], None
    else:
        first, first_labels = pack_batch(packs.pack(start_step + 1), data, labels)
    n_first = sum(len(x) for x in first) if packs is not None else len(first)
    where = first[0].device if packs is not None else first.device
    LossModule(model)(first, BatchRandom(device_generator(where, step_seed(seed, 0xA11)), n_first, 0, n_first),
                      first_labels, noise[rows0] if noise is not None else None,
                      context[rows0] if context is not None else None)


def _prepare(accelerator: Any, model: GenerativeModel, ema: Any, optimizer: torch.optim.Optimizer,
             resumed: Path | None, sharded: bool) -> tuple[Any, torch.optim.Optimizer]:
    """The loss module and optimizer wrapped by Accelerate, the EMA on the device; when sharded, the EMA sharded
    like the model and a resumed run's full optimizer moments loaded shard by shard."""
    loss_module, optimizer = accelerator.prepare(LossModule(model), optimizer)
    if ema is not None:
        ema.to(accelerator.device)
    if sharded:
        if ema is not None:  # averaged shard by shard, in the model's placements
            ema.module = sharding.shard_like_the_model(accelerator, ema.module)
        if resumed is not None:  # the checkpoint's full moments, each process keeping its shards
            with keeping_implementation(optimizer):
                sharding.load_sharded_optimizer(read_optimizer_state(resumed / "optimizer.safetensors"),
                                                loss_module, optimizer)
    return loss_module, optimizer


def _prepare_adversary(accelerator: Any, model: GenerativeModel, tc: TrainConfig,
                       resumed: Path | None) -> Adversary | None:
    """The model's second network (``model.adversary``) with an AdamW of its own (the train settings' lr schedule,
    betas and decay), a resumed run's weights and moments loaded, both prepared by Accelerate; None without one."""
    half = getattr(model, "adversary", None)
    if half is None:
        return None
    if tc.distributed == "fsdp":
        raise ConfigError("model.autoencoder.disc_weight > 0: the patch discriminator trains with "
                          "train.distributed=ddp, not fsdp")
    half.net.to(accelerator.device)
    optimizer = make_optimizer(half.net, tc, accelerator.device)
    if resumed is not None:
        with keeping_implementation(optimizer):
            load_adversary(resumed, half.net, optimizer)
    net, optimizer = accelerator.prepare(half.net, optimizer)
    return Adversary(half=half, net=net, optimizer=optimizer)


def setup(config: Config, resume: bool) -> RunState:
    """Everything a run needs before its first step: locked run directory, data, model, EMA, optimizer, and
    on ``resume`` the newest checkpoint's weights, moments and random state."""
    tc = config.train
    run_dir = config.run.path
    accelerator = make_accelerator(config)
    sharded = tc.distributed == "fsdp"  # make_accelerator checked that Accelerate shards
    if tc.warmup_steps > tc.steps and accelerator.is_main_process:  # e.g. a short train.steps override of a preset
        warnings.warn(f"train.warmup_steps ({tc.warmup_steps}) is more than train.steps ({tc.steps}); warming up "
                      f"over all {tc.steps} steps instead (train.schedule's lr_factor clamps it)", stacklevel=3)
    lock = on_main(accelerator, lambda: RunLock(run_dir).acquire())  # a second writer stops here
    try:
        ckpt = _check_run_dir(run_dir, resume)
        changed = check_resume_config(read_config(run_dir), config, ckpt) if resume else {}
        with accelerator.main_process_first():  # one process downloads, the others read the cache
            dataset = load_dataset(config.data)
        _check_finite_data(dataset.train, dataset.name)
        parent, pairs = None, None
        if config.reflow.parent is not None:
            with accelerator.main_process_first():  # the main process draws the pairs, the others read them
                parent, pairs = reflow_pairs(config, dataset.shape, ckpt if resume else None, accelerator.device)
        packs = _pack_sampler(config, dataset, accelerator.num_processes) if config.data.resolutions else None
        torch.manual_seed(config.run.seed)  # identical initial weights on every process
        # a text model's vocabulary: the run's own on resume, the parent's for reflow (the pairs keep its captions)
        vocabulary = (read_vocabulary(run_dir, read_state(ckpt).get("vocabulary_sha256")) if resume else
                      read_vocabulary(Path(config.reflow.parent)) if pairs is not None else None)
        build = functools.partial(build_model, config.model, dataset.spec(), vocabulary)
        model = build()
        if pairs is not None and config.reflow.init and not resume:
            init_from_parent(model, parent)  # before the EMA copy: the average starts at the parent's weights
        ema = make_ema(model, tc.ema_schedule, tc.ema_decay, tc.ema_sigma_rel) if tc.ema_decay is not None else None
        optimizer = make_optimizer(model, tc, accelerator.device)
        start_step, elapsed = (_restore(ckpt, config, model, ema, optimizer, accelerator.process_index,
                                        load_optimizer=not sharded) if resume else (0, 0.0))
        accelerator.wait_for_everyone()  # every process has read config.yaml before the main one rewrites it
        log = on_main(accelerator, lambda: _open_run_dir(config, dataset, resume, changed, start_step))
        on_main(accelerator, lambda: write_vocabulary(run_dir, model))  # a text model's caption vocabulary

        data, noise, labels, context = _training_tensors(config, dataset, pairs, accelerator.device)
        order = BatchOrder(len(data), tc.batch_size, config.run.seed)
        model.to(accelerator.device)
        _first_batch_init(model, order, packs, data, labels, noise, context, start_step, config.run.seed)
        if tc.compile:  # after the data-dependent initialisation; nn.Module.compile keeps the state dict's keys
            model.net.compile()
        loss_module, optimizer = _prepare(accelerator, model, ema, optimizer, ckpt if resume else None, sharded)
        adversary = _prepare_adversary(accelerator, model, tc, ckpt if resume else None)
        local = tc.batch_size // accelerator.num_processes  # this process's rows of each global batch
        rows = slice(accelerator.process_index * local, (accelerator.process_index + 1) * local)
        val_x = dataset.test if dataset.fresh is None else dataset.reference(tc.eval_examples, config.eval.seed + 1)
    except BaseException:
        if lock is not None:
            lock.release()
        raise
    return RunState(config=config, accelerator=accelerator, dataset=dataset, model=model, ema=ema,
                    optimizer=optimizer, loss_module=loss_module, data=data, labels=labels, noise=noise, order=order,
                    rows=rows,
                    val_x=val_x[:tc.eval_examples].to(accelerator.device), start_step=start_step, elapsed=elapsed,
                    log=log, last_good=ckpt, lock=lock, packs=packs, sharded=sharded, build=build, context=context,
                    parent_weights=pairs.weights if pairs is not None else None, adversary=adversary,
                    last_healthy=newest_healthy(run_dir) if resume else None, reference_rms=reference_rms(ckpt))


def reflow_pairs(config: Config, shape: tuple[int, ...], resumed: Path | None = None,
                 device: torch.device | str = "cpu") -> tuple[Run, Pairs]:
    """The parent run ``config.reflow.parent`` (loaded once, for its pairs and its weights) and its (noise, sample)
    pairs, drawn into its run directory if not there yet (:mod:`flowforge.runs.pairs`; resumable and
    checksummed). ``resumed``: the checkpoint a resumed run goes on from, whose record of the parent's weights
    keeps it on the pairs it began with (:func:`~flowforge.runs.pairs.reflow_pairs_of`)."""
    if config.data.resolutions:
        raise ConfigError("reflow trains on the parent's pairs at its one resolution; unset data.resolutions")
    recorded = read_state(resumed).get("reflow_parent_weights") if resumed is not None else None
    rc = config.reflow
    parent = Path(rc.parent)
    if not (parent / "config.yaml").is_file():
        raise ConfigError(f"reflow.parent: {parent} is not a trained run; train the parent first (e.g. "
                          f"`flowforge train configs/rf-checkerboard.yaml` for runs/rf-checkerboard)")
    if parent.resolve() == config.run.path.resolve():
        raise ConfigError("reflow.parent is this run itself; name the run the parent was trained as")
    run = load_run(parent, device=device)  # the parent integrates its pairs where this run trains
    if run.config.model.kind != "continuous" or config.model.kind != "continuous":
        raise ConfigError(f"reflow trains a continuous model on a continuous parent's pairs; {parent} is "
                          f"{run.config.model.kind} and this run {config.model.kind}")
    if tuple(run.data["shape"]) != tuple(shape):
        raise ConfigError(f"reflow.parent {parent} models data of shape {tuple(run.data['shape'])}, this run's "
                          f"data {config.data.name!r} has shape {tuple(shape)}: use the parent's data settings")
    if config.model.num_classes != run.config.model.num_classes:
        raise ConfigError(f"model.num_classes ({config.model.num_classes}) differs from the parent's "
                          f"({run.config.model.num_classes}): the pairs carry the parent's labels")
    settings = PairSettings(pairs=rc.pairs, shard_size=rc.shard_size, sampler=rc.sampler, steps=rc.steps,
                            rtol=rc.rtol, atol=rc.atol, guidance=rc.guidance, seed=rc.seed)
    if rc.pairs < config.train.batch_size:
        raise ConfigError(f"reflow.pairs ({rc.pairs}) is smaller than train.batch_size ({config.train.batch_size})")
    return run, reflow_pairs_of(run, settings, progress=True, recorded=recorded)


def init_from_parent(model: nn.Module, parent: Run) -> None:
    """Start from the parent's weights (its EMA copy where it kept one), as rectified flow's reflow does."""
    try:
        model.load_state_dict(parent.model.state_dict())
    except RuntimeError as err:
        raise ConfigError(f"reflow.init: the parent's weights ({parent.dir}) do not fit this model; keep "
                          f"the parent's model.net settings or set reflow.init=false ({str(err).splitlines()[0]})") from None


def _restore(ckpt: Path, config: Config, model: nn.Module, ema: nn.Module | None,
             optimizer: torch.optim.Optimizer, rank: int, load_optimizer: bool = True) -> tuple[int, float]:
    """Load the checkpoint to resume from; return its step and the seconds trained up to it. A sharded run
    (``load_optimizer=False``) loads the optimizer after sharding (:func:`sharding.load_sharded_optimizer`)."""
    # before any weights are read
    check_model_binding(read_state(ckpt), config.to_dict()["model"], ckpt, Config().to_dict()["model"])
    with keeping_implementation(optimizer):
        state = load_checkpoint(ckpt, model=model, optimizer=optimizer if load_optimizer else None)
    if ema is not None and (ckpt / "ema.safetensors").is_file():
        load_weights(ema.module, ckpt / "ema.safetensors")
        ema.n_averaged = state.get("ema_n_averaged", 0)
    step = state["step"]
    if step >= config.train.steps:
        raise RunError(f"{config.run.path} is already trained to step {step}; to continue, resume with "
                       f"train.steps larger than {step}")
    rngs = state.get("rng", [])
    if rank < len(rngs):
        set_rng_state(rngs[rank], ckpt)
    return step, state.get("seconds", 0.0)
