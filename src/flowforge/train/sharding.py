"""Sharded data parallelism, ``train.distributed: fsdp``: FSDP2 (``fully_shard``) through Accelerate's plugin.

For a transformer that does not fit one GPU: each of N processes keeps 1/N of every parameter, gradient and AdamW
moment, and gathers one block's parameters at a time for its forward and backward (each block of the class the backbone
declares as its ``shard_unit``: ``DiTBlock`` for a DiT, ``JointBlock`` for an MMDiT; the rest of the model is the
root unit). The EMA copy is sharded the
same way and averages its shards. A checkpoint is the same as a DDP run's: the full state dicts are gathered to
the main process and written there as safetensors, so a sharded run resumes, samples, evaluates and exports
like any other, and can be resumed with ``train.distributed`` changed.

Where it runs: Accelerate 1.15 turns FSDP on only for GPUs and other accelerators (``AcceleratorState`` sets
``DistributedType.FSDP`` in its accelerator branch); on CPU it ignores the plugin and wraps the model in DDP,
every process holding the whole model. torch's ``fully_shard`` itself runs on CPU over gloo, so the engine's
sharded path is tested on CPU by doing for the CPU what Accelerate does for a GPU (``tests/test_fsdp.py``),
but a CPU run with ``train.distributed=fsdp`` is refused rather than silently unsharded.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from ..config import Config, ConfigError
from ..errors import UserError
from ..models import NETS


def shard_unit(config: Config) -> type[nn.Module] | None:
    """The block class that FSDP shards as one unit in ``config``'s model (its backbone's ``shard_unit``), or
    ``None`` for a model that is not sharded."""
    return NETS[config.model.net.name].shard_unit if config.model.kind == "continuous" else None


def check_config(config: Config) -> None:
    """Raise unless ``config`` trains a model that ``train.distributed=fsdp`` shards."""
    m = config.model
    if shard_unit(config) is None:
        sharded = " or ".join(name for name, net in NETS.items() if net.shard_unit is not None)
        raise ConfigError(f"train.distributed=fsdp shards the transformer backbones (model.net.name {sharded}), "
                          f"not model.kind={m.kind} with model.net.name={m.net.name}; use train.distributed=ddp")
    if config.data.resolutions:
        raise ConfigError("train.distributed=fsdp: packed multi-resolution training (data.resolutions) runs in "
                          "one process; unset one of them")


def fsdp_plugin(config: Config, bf16: bool):
    """Accelerate's FSDP2 plugin for ``config``'s transformer: one unit per block; with bf16, blocks compute
    on bf16 copies of the gathered parameters and gradients are reduced in float32."""
    from accelerate.utils import FullyShardedDataParallelPlugin
    from torch.distributed.fsdp import MixedPrecisionPolicy

    check_config(config)
    policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32) if bf16 else None
    return FullyShardedDataParallelPlugin(
        fsdp_version=2, auto_wrap_policy="transformer_based_wrap",
        transformer_cls_names_to_wrap=[shard_unit(config).__name__],
        reshard_after_forward=True, mixed_precision_policy=policy, cpu_ram_efficient_loading=False,
        state_dict_type="FULL_STATE_DICT")


def accelerate_shards_on(device: torch.device) -> bool:
    """Whether Accelerate turns its FSDP plugin on for ``device`` (not on CPU: see the module docstring)."""
    return device.type != "cpu"


def refuse_on_cpu() -> UserError:
    import accelerate

    return UserError(f"train.distributed=fsdp: Accelerate {accelerate.__version__} shards only on GPUs and other "
                     f"accelerators; on CPU it ignores its FSDP plugin and trains with DDP, each process holding the "
                     f"whole model. Train on CPU with train.distributed=ddp (the default)")


def check_sharded(accelerator, requested: bool) -> None:
    """Raise unless the accelerator shards exactly when ``train.distributed=fsdp`` asked for it."""
    from accelerate.utils import DistributedType

    sharded = accelerator.distributed_type == DistributedType.FSDP
    if requested and not sharded:
        raise UserError(f"train.distributed=fsdp needs several processes (accelerate launch --num_processes N, or "
                        f"torchrun); this run has {accelerator.num_processes} ({accelerator.distributed_type})")
    if sharded and not requested:
        raise UserError("Accelerate was told to use FSDP (accelerate launch's FSDP options or ACCELERATE_USE_FSDP) "
                        "but train.distributed is ddp; set train.distributed=fsdp instead, which configures it")
    if sharded and not accelerator.is_fsdp2:
        raise UserError("train.distributed=fsdp runs FSDP2; unset accelerate launch's --fsdp_version 1")


def shard_like_the_model(accelerator, module: nn.Module) -> nn.Module:
    """``module`` (the EMA copy) sharded in the same units and placements as the prepared model."""
    from accelerate.utils.fsdp_utils import fsdp2_prepare_model

    return fsdp2_prepare_model(accelerator, module)


def gathered(module: nn.Module, build: Callable[[], nn.Module], main: bool, prefix: str = "") -> nn.Module | None:
    """A plain copy, from ``build()``, of sharded ``module`` (or of its submodule whose names start with
    ``prefix``) with the full weights, on the main process; ``None`` elsewhere. Collective: every process calls it."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    full = get_model_state_dict(module, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if not main:
        return None
    plain = build()
    plain.load_state_dict({name[len(prefix):]: value for name, value in full.items() if name.startswith(prefix)})
    return plain


def inner_optimizer(optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
    """The torch optimizer itself, under Accelerate's ``AcceleratedOptimizer`` if it is wrapped in one."""
    return getattr(optimizer, "optimizer", optimizer)


def gathered_optimizer(loss_module: nn.Module, optimizer: torch.optim.Optimizer, plain: nn.Module | None,
                       make: Callable[[nn.Module], torch.optim.Optimizer]) -> torch.optim.Optimizer | None:
    """An optimizer over ``plain``'s parameters (main process) holding the full state of the sharded
    ``optimizer`` (moments and step of every parameter, in the order of ``plain.parameters()``, as an unsharded
    run's optimizer holds them). Collective: every process calls it."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    full = get_optimizer_state_dict(loss_module, inner_optimizer(optimizer),
                                    options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if plain is None:
        return None
    names = [f"model.{name}" for name, _ in plain.named_parameters()]  # LossModule's names of them
    index = {name: i for i, name in enumerate(names)}
    state = {index[name]: value for name, value in full["state"].items()}
    groups = [{**group, "params": [index[name] for name in group["params"]]} for group in full["param_groups"]]
    plain_optimizer = make(plain)
    plain_optimizer.load_state_dict({"state": state, "param_groups": groups})
    return plain_optimizer


def load_sharded_optimizer(state: dict[str, Any], loss_module: nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """Load an unsharded optimizer state dict (parameter ids in ``model.parameters()`` order, as checkpoints
    hold it) into the sharded ``optimizer``: every process reads the whole file and keeps its shards."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    names = [name for name, _ in loss_module.named_parameters()]
    by_name = {"state": {names[int(i)]: value for i, value in state["state"].items()},
               "param_groups": [{**group, "params": [names[int(i)] for i in group["params"]]}
                                for group in state["param_groups"]]}
    set_optimizer_state_dict(loss_module, inner_optimizer(optimizer), by_name, options=StateDictOptions(full_state_dict=True))


__all__ = ["accelerate_shards_on", "check_config", "check_sharded", "fsdp_plugin", "gathered", "gathered_optimizer",
           "inner_optimizer", "load_sharded_optimizer", "refuse_on_cpu", "shard_like_the_model", "shard_unit"]
