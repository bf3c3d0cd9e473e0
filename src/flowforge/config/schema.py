"""The typed run configuration: what a user reads to know every setting and its default.

A run is described by one :class:`Config` of six sections. Each field is typed;
choices are ``Literal`` types (those of samplers, grids and paths come from their
registries, so a new sampler or path is one registry line) and numeric bounds
live in the field's metadata, checked by :mod:`flowforge.config.parse`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from ..nets import DIT_SIZES, POSITION_ENCODINGS
from ..paths import PATHS, PREDICTIONS
from ..solvers import GRIDS, SOLVERS

# Choices that come from a registry below the config: one line in the registry adds the choice here.
PathName = Literal[tuple(PATHS)]  # type: ignore[valid-type]
SamplerName = Literal[tuple(SOLVERS)]  # type: ignore[valid-type]
GridName = Literal[tuple(GRIDS)]  # type: ignore[valid-type]
PredictionName = Literal[tuple(PREDICTIONS)]  # type: ignore[valid-type]
TargetName = PredictionName
# Choices whose registry sits above the config (in models/, which imports the config): tests/test_registries.py
# checks that each Literal and its registry agree, and the registry's constructor is the one that validates.
KindName = Literal["continuous", "nice", "realnvp", "glow", "nsf", "maf", "autoencoder"]  # flowforge.models.MODELS
NetName = Literal["mlp", "unet", "dit", "mmdit"]  # flowforge.models.NETS
TimeSamplerName = Literal["uniform", "logit-normal", "mode", "cosmap", "log-normal", "grid"]  # flowforge.models.TIME_SAMPLERS
ObjectiveName = Literal["regression", "mean-flow"]  # flowforge.models.objectives.OBJECTIVES
WeightingName = Literal["none", "edm", "min-snr"]  # flowforge.models.objectives.WEIGHTINGS
LossName = Literal["l2", "pseudo-huber"]  # flowforge.models.objectives.LOSSES
DiTSizeName = Literal[tuple(DIT_SIZES)]  # type: ignore[valid-type]
PositionEncoding = Literal[POSITION_ENCODINGS]  # type: ignore[valid-type]


def _bounded(default: Any, lo: float | None = None, hi: float | None = None, *, lo_open: bool = False,
             hi_open: bool = False) -> Any:
    return field(default=default, metadata={"min": lo, "max": hi, "min_open": lo_open, "max_open": hi_open})


MAX_SEED = 2**63 - 1_000_000  # torch seeds are 64-bit; evaluation adds small offsets to its seed


FILE_DATASETS = ("array", "image-folder")  # data sets read from data.path

DatasetName = Literal[
    "moons", "circles", "8gaussians", "checkerboard", "pinwheel", "spirals", "swissroll",
    "digits", "mnist", "fashion-mnist", "cifar10", "array", "image-folder", "tabular",
    "power", "gas", "hepmass", "miniboone", "bsds300",
]


@dataclass
class RunConfig:
    name: str = "run"
    dir: str = ""  # where the run writes; empty means runs/<name>
    seed: int = _bounded(0, 0, MAX_SEED)

    @property
    def path(self) -> Path:
        return Path(self.dir or f"runs/{self.name}")


@dataclass
class DataConfig:
    name: DatasetName = "checkerboard"
    n_train: int = _bounded(10000, 1)  # toy sets: points drawn for training
    n_test: int = _bounded(5000, 1)  # toy sets: held-out points
    noise: float | None = _bounded(None, 0.0)  # toy sets: noise level; None = the set's customary value
    seed: int = _bounded(0, 0, MAX_SEED)  # seed of the data draw (toy sets) or of the split (digits)
    path: str | None = None  # array / image-folder: file or folder to read
    key: str | None = None  # array: array name inside an .npz file
    image_shape: list[int] | None = None  # array: reshape each row to (C, H, W)
    image_size: int | None = _bounded(None, 1)  # image-folder: resize to this square size
    channels: Literal[1, 3] = 1  # image-folder: 1 = grayscale, 3 = RGB
    image_range: Literal["symmetric", "unit"] = "symmetric"  # images in [-1, 1] or [0, 1]
    resolutions: list[int] | None = None  # images: train on each at a size drawn from these (px), in packs (dit)
    cache_dir: str | None = None  # downloads; None = $FLOWFORGE_CACHE or ~/.cache/flowforge
    download: bool = True  # fetch from the canonical source when no local copy exists
    # tabular: CSV columns (header names) that are the context c of a conditional flow p(x | c), not data
    context_columns: list[str] | None = None
    # train on the latents of an autoencoder (flowforge.data.latents): a model.kind=autoencoder run directory, a
    # diffusers AutoencoderKL folder, or a hub id; encoded once into a checksummed cache under data.cache_dir
    latent: str | None = None


@dataclass
class NetConfig:
    name: NetName = "mlp"  # mmdit: DiT's settings below, and model.text
    width: int = _bounded(256, 1)  # mlp: hidden units
    depth: int = _bounded(3, 1)  # mlp: hidden layers
    time_embed_dim: int = _bounded(64, 2)
    activation: Literal["silu", "relu", "gelu"] = "silu"  # mlp
    channels: int = _bounded(32, 1)  # unet: channels at full resolution
    channel_mult: list[int] = field(default_factory=lambda: [1, 2, 2])  # unet: channels per level (x channels)
    num_res_blocks: int = _bounded(2, 1)  # unet: residual blocks per level
    attention_levels: list[int] = field(default_factory=lambda: [2])  # unet: levels with self-attention
    heads: int = _bounded(4, 1)  # unet: attention heads
    dropout: float = _bounded(0.0, 0.0, 1.0, hi_open=True)  # unet
    size: DiTSizeName = "tiny"  # dit: depth, width and heads (flowforge.nets.DIT_SIZES; S/B/L/XL are the paper's)
    patch: int = _bounded(2, 1)  # dit: patch size; image height and width must be divisible by it
    qk_norm: bool = True  # dit: RMSNorm on queries and keys (SD3)
    positions: PositionEncoding = "sincos"  # dit: 2-D sin-cos added to the tokens, or 2-D rotary in attention
    checkpoint: bool = False  # dit: recompute each block's activations in the backward pass (less memory)


@dataclass
class FlowConfig:
    """Architecture of the discrete normalizing flows (model.kind nice / realnvp / glow / nsf / maf)."""

    couplings: int = _bounded(4, 1)  # coupling layers on vectors (NICE: 4); per level on images (RealNVP: 3)
    hidden: int = _bounded(1000, 1)  # conditioner width: MLP units, or conv channels on images
    hidden_layers: int = _bounded(5, 1)  # MLP conditioner hidden layers (NICE: 5)
    blocks: int = _bounded(4, 1)  # residual blocks per RealNVP conv conditioner
    levels: int = _bounded(2, 1)  # multi-scale levels on images (each squeezes 2x and factors out half)
    steps_per_level: int = _bounded(8, 1)  # Glow: flow steps K per level; also Glow's steps on vectors
    prior: Literal["gaussian", "logistic"] = "gaussian"  # NICE uses the logistic
    # NICE's scaling layer: data = set from the first batch to the prior's std per dimension; zero = the paper's
    scaling_init: Literal["data", "zero"] = "data"
    scale_fn: Literal["tanh", "sigmoid"] = "tanh"  # stabilised affine scale: RealNVP tanh, Glow sigmoid
    logit_alpha: float | None = _bounded(0.05, 0.0, 0.5, lo_open=True, hi_open=True)  # RealNVP/Glow image pre-processing; None = off
    # NSF / MAF (flowforge.flows.density): `couplings` layers, each conditioner `hidden_layers` x `hidden`
    conditioner: Literal["autoregressive", "coupling"] = "autoregressive"  # nsf: RQ-NSF (AR) or RQ-NSF (C)
    elementwise: Literal["affine", "spline"] = "affine"  # maf: MAF's affine map, or the spline
    direction: Literal["maf", "iaf"] = "maf"  # iaf: inverse autoregressive, one-pass sampling, D-pass density
    order: Literal["reversed", "random"] = "reversed"  # autoregressive order of each layer after the first
    bins: int = _bounded(8, 1)  # spline bins K
    tail_bound: float = _bounded(3.0, 0.0, lo_open=True)  # splines act on [-B, B], the identity outside


@dataclass
class TextConfig:
    """Text conditioning (model.net.name mmdit): captions made from the data set's class names by templates."""

    captions: Literal["none", "class-names"] = "none"  # class-names: "a photo of a {name}"... of each label
    class_names: list[str] | None = None  # the name of each label; None: the data set's own (models.captions)
    templates: list[str] | None = None  # with one {name} each; None: flowforge.models.captions.TEMPLATES
    heldout: int | None = -1  # index of the template kept out of training (-1: the last); None: none


@dataclass
class MeanFlowConfig:
    """MeanFlow's training (model.objective mean-flow; flowforge.models.objectives.MeanFlow, Geng et al., 2025)."""

    ratio: float = _bounded(0.25, 0.0, 1.0)  # fraction of training pairs with r != t
    p: float = _bounded(1.0, 0.0)  # adaptive weight 1 / (|err|^2 + c)^p; 0 = plain L2
    c: float = _bounded(1e-3, 0.0, lo_open=True)  # the weight's constant c
    guidance: float = _bounded(1.0, 0.0, lo_open=True)  # CFG omega built into training; 1 = none
    kappa: float = _bounded(0.0, 0.0, 1.0, hi_open=True)  # CFG kappa (the paper's appendix)
    # where the weight applies: per example (paper), r != t pairs only, or one weight per group (minimiser unmoved)
    weighting: Literal["example", "apart", "group"] = "example"
    flow_matching_times: bool = True  # r = t pairs: one draw of the time law (false: the larger of two, the paper's)


@dataclass
class AutoencoderConfig:
    """A KL autoencoder in the diffusers AutoencoderKL format (model.kind autoencoder; flowforge.nets.autoencoder)."""

    latent_channels: int = _bounded(4, 1)  # channels of the latent (SD: 4, SD3: 16)
    downsampling: int = _bounded(4, 1)  # the latent's height and width are the image's / this (a power of 2)
    width: int = _bounded(32, 1)  # channels of the first level (then 2 x width)
    layers_per_block: int = _bounded(1, 1)  # residual blocks per level
    groups: int = _bounded(8, 1)  # GroupNorm groups (divides width)
    attention: bool = False  # SD's mid-block self-attention
    loss: Literal["l1", "l2"] = "l1"  # pixel reconstruction loss (LDM: l1)
    perceptual: float = _bounded(0.1, 0.0)  # weight of the feature distance in the data set's pinned extractor
    kl: float = _bounded(1e-6, 0.0)  # weight of the KL of the posterior to N(0, I), per pixel (LDM: 1e-6)
    # LDM's patch discriminator (hinge loss, adaptive weight on the decoder's last layer): 0 = none (default)
    disc_weight: float = _bounded(0.0, 0.0)  # its weight beside the adaptive one (LDM: 0.5)
    disc_start: int = _bounded(0, 0)  # steps trained without it before it and its optimiser start (LDM: 50001)
    disc_layers: int = _bounded(2, 1)  # stride-2 conv layers of the PatchGAN (LDM: 3; 28 px images: 2)
    disc_width: int = _bounded(64, 1)  # channels of its first layer (LDM: 64)


@dataclass
class ModelConfig:
    # continuous = flow matching / rectified flow / diffusion (path + net + target)
    kind: KindName = "continuous"
    path: PathName = "linear"  # continuous: the noising path (flowforge.paths.PATHS)
    sigma_min: float = _bounded(0.0, 0.0, 1.0, hi_open=True)  # linear path: flow matching's sigma_min
    sigma_max: float = _bounded(80.0, 0.0, lo_open=True)  # ve / edm paths: largest noise level
    target: TargetName = "velocity"  # what the net predicts (without precond; mean-flow: the average velocity)
    # how the network is trained: regression of the target (flow matching, diffusion) or MeanFlow (model.meanflow)
    objective: ObjectiveName = "regression"
    precond: Literal["none", "edm"] = "none"  # edm: wrap the net in EDM's c_skip/c_out/c_in/c_noise, predict x0
    sigma_data: float = _bounded(0.5, 0.0, lo_open=True)  # EDM's data std: 0.5 for images in [-1, 1]
    # training t (log-normal: EDM's sigma; grid: only the k-step Euler grid's times, for distillation)
    time_sampler: TimeSamplerName = "uniform"
    grid_steps: int = _bounded(1, 1)  # grid: k, training at t = t_max * i / k, i = 1..k
    logit_mean: float = 0.0  # logit-normal m (SD3: 0)
    logit_std: float = _bounded(1.0, 0.0, lo_open=True)  # logit-normal s (SD3: 1)
    mode_scale: float = _bounded(1.29, -1.0, 2 / (math.pi - 2))  # mode: SD3's s (eq. 20; 0 = uniform)
    p_mean: float = -1.2  # log-normal: EDM's P_mean
    p_std: float = _bounded(1.2, 0.0, lo_open=True)  # log-normal: EDM's P_std
    time_shift: float = _bounded(1.0, 0.0, lo_open=True)  # SD3's resolution shift of uniform / logit-normal t
    weighting: WeightingName = "none"  # loss weight, given on the x0 error
    loss: LossName = "l2"  # pseudo-huber: sqrt(|err|^2 + c^2) - c (improved rectified flow)
    huber_c: float | None = _bounded(None, 0.0, lo_open=True)  # pseudo-huber c; None = 0.00054 sqrt(dims)
    num_classes: int | None = _bounded(None, 1)  # class-conditional model on the data set's labels
    label_dropout: float = _bounded(0.1, 0.0, 1.0, hi_open=True)  # class-conditional: P(no label), for guidance
    ot_coupling: bool = False  # pair noise and data by minibatch optimal transport (OT-CFM)
    dequantize: bool = True  # discrete data: uniform dequantization in training and likelihood, as for the flows
    net: NetConfig = field(default_factory=NetConfig)  # continuous: the backbone
    text: TextConfig = field(default_factory=TextConfig)  # continuous with net mmdit: captions from the labels
    meanflow: MeanFlowConfig = field(default_factory=MeanFlowConfig)  # objective mean-flow: its training
    flow: FlowConfig = field(default_factory=FlowConfig)  # nice / realnvp / glow: the flow architecture
    autoencoder: AutoencoderConfig = field(default_factory=AutoencoderConfig)  # kind autoencoder: the network, loss


@dataclass
class SampleConfig:
    sampler: SamplerName = "euler"  # flowforge.solvers.SOLVERS
    steps: int = _bounded(100, 1)  # grid intervals (NFE per step depends on the sampler)
    grid: GridName | None = None  # None: karras if the path's sigma_max is finite or the sampler needs it
    rho: float = _bounded(7.0, 0.0, lo_open=True)  # karras grid
    shift: float = _bounded(3.0, 0.0, lo_open=True)  # shifted grid
    guidance: float = _bounded(1.0, 0.0)  # classifier-free guidance weight (class-conditional models)
    eta: float = _bounded(0.0, 0.0)  # ddim
    s_churn: float = _bounded(0.0, 0.0)  # edm-stochastic
    s_tmin: float = _bounded(0.0, 0.0)  # edm-stochastic
    s_tmax: float = _bounded(1e9, 0.0)  # edm-stochastic
    s_noise: float = _bounded(1.0, 0.0)  # edm-stochastic
    last_step: Literal["euler", "heun"] = "euler"  # heun: the step to t = 0 (EDM: Euler; flowforge.solvers.heun)
    rtol: float = _bounded(1e-5, 0.0, lo_open=True)  # dopri5
    atol: float = _bounded(1e-5, 0.0, lo_open=True)  # dopri5

    def options(self) -> dict[str, Any]:
        """Keyword arguments of a continuous model's ``sample`` for this sampler: the shared ones, and the
        options the sampler declares (its constructor's arguments; the field of each is its lower-case name)."""
        own = {name: getattr(self, name.lower()) for name in SOLVERS[self.sampler].option_names()}
        return {"sampler": self.sampler, "steps": self.steps, "grid": self.grid, "guidance": self.guidance,
                "grid_options": {"rho": self.rho, "shift": self.shift}, **own}


@dataclass
class TrainConfig:
    steps: int = _bounded(2000, 1)
    batch_size: int = _bounded(256, 1)  # global batch, split over processes
    pack_tokens: int = _bounded(4096, 1)  # with data.resolutions: tokens per pack, the batch (batch_size unused)
    lr: float = _bounded(1e-3, 0.0, lo_open=True)
    weight_decay: float = _bounded(0.0, 0.0)
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    schedule: Literal["constant", "cosine"] = "cosine"
    warmup_steps: int = _bounded(100, 0)
    min_lr_ratio: float = _bounded(0.0, 0.0, 1.0)  # cosine decays to lr * min_lr_ratio
    grad_clip: float | None = _bounded(1.0, 0.0, lo_open=True)  # max global grad norm; None disables
    ema_decay: float | None = _bounded(0.999, 0.0, 1.0, hi_open=True)  # None disables the EMA copy; warmup's cap
    ema_schedule: Literal["warmup", "power", "constant"] = "warmup"  # the EMA's decay by step (flowforge.train.ema)
    ema_sigma_rel: float = _bounded(0.05, 0.0, 0.28, lo_open=True, hi_open=True)  # power: EDM2's relative width
    # bf16 = bf16 autocast (weights and optimizer stay fp32); auto = bf16 where the CPU / GPU has native bf16
    # (AVX512-BF16 or AMX, CUDA compute capability >= 8), fp32 elsewhere (flowforge.train.precision)
    precision: Literal["fp32", "bf16", "auto"] = "fp32"
    cpu: bool = False  # force CPU even when a GPU is present
    # several processes: ddp = each holds the whole model, gradients all-reduced; fsdp = FSDP2 through Accelerate,
    # each holds 1/N of every parameter, gradient, AdamW moment and EMA weight, one transformer block gathered at a
    # time (dit / mmdit; GPUs only: Accelerate 1.15 does not shard on CPU); checkpoints alike (train/sharding.py)
    distributed: Literal["ddp", "fsdp"] = "ddp"
    # continuous models: torch.compile the network (TorchInductor) for training; the first step compiles (about
    # 2 min for the MNIST U-Net on one CPU thread), later steps may be faster (benchmarks/compile_speed.py on an
    # AVX2 CPU: 0.94x for that U-Net, no steady gain for the digits U-Net); weights and checkpoints are unchanged
    compile: bool = False
    log_every: int = _bounded(50, 1)
    sample_every: int = _bounded(1000, 0)  # 0 disables periodic sample pictures
    eval_every: int = _bounded(0, 0)  # held-out NLL every this many steps (models with likelihoods); 0 = off
    eval_examples: int = _bounded(1000, 1)  # held-out examples scored by eval_every
    # SD3's validation loss (continuous models; flowforge.train.validation): the objective on val_examples fixed
    # held-out examples with fixed noise at each of val_times (unit times in (0, 1)), every val_every steps; 0 = off
    val_every: int = _bounded(0, 0)
    val_examples: int = _bounded(256, 1)
    val_times: list[float] = field(default_factory=lambda: [(k + 0.5) / 8 for k in range(8)])
    ckpt_every: int = _bounded(1000, 1)
    keep_last: int = _bounded(2, 1)  # checkpoints kept on disk
    tensorboard: bool = True


@dataclass
class EvalConfig:
    n_samples: int = _bounded(5000, 2)  # model samples compared with the reference
    n_exact: int = _bounded(2000, 2)  # points used by the exact (POT) Wasserstein-2
    n_projections: int = _bounded(1000, 1)  # sliced Wasserstein-2 directions
    n_likelihood: int = _bounded(0, 0)  # held-out examples scored by the likelihood (the first N); 0 = all
    repeats: int = _bounded(3, 1)  # independent reference draws (toy sets); scores are mean and std over them
    straightness_steps: int = _bounded(25, 0)  # continuous models: RK4 steps of the straightness estimate; 0 = off
    # paths averaged by the straightness estimate (each costs 4 x straightness_steps + 1 network passes); None = 1000
    # for vectors, 200 for images, where 1000 paths would cost twice the sampling (its standard error is reported)
    straightness_samples: int | None = _bounded(None, 1)
    seed: int = _bounded(12345, 0, MAX_SEED)


@dataclass
class ReflowConfig:
    """Train on a trained continuous model's own (noise, sample) pairs instead of independent draws: the
    (k+1)-rectified flow of its parent (Liu et al., 2023, arXiv:2209.03003), or with model.time_sampler=grid a
    k-step distillation. The pairs are drawn once into checksummed shards under the parent's run directory."""

    parent: str | None = None  # run directory of the parent model; None = ordinary training on the data
    pairs: int = _bounded(50000, 1)  # (noise, sample) pairs drawn from the parent
    # pairs per shard: the unit of resuming and checksumming, and one ODE batch (an adaptive solver steps the whole
    # batch at the pace of its worst point: dopri5 on the demo model took 278 evaluations for 2000 points)
    shard_size: int = _bounded(2000, 1)
    sampler: SamplerName = "dopri5"  # how the parent's ODE is integrated
    steps: int = _bounded(100, 1)  # grid intervals of a fixed-step sampler
    rtol: float = _bounded(1e-5, 0.0, lo_open=True)  # dopri5
    atol: float = _bounded(1e-5, 0.0, lo_open=True)  # dopri5
    guidance: float = _bounded(1.0, 0.0)  # class-conditional parent: guidance of its samples
    seed: int = _bounded(0, 0, MAX_SEED)  # seed of the noise draws
    init: bool = True  # start from the parent's (EMA) weights rather than from scratch


@dataclass
class Config:
    run: RunConfig = field(default_factory=RunConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    reflow: ReflowConfig = field(default_factory=ReflowConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)
