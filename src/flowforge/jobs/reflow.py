"""``flowforge reflow``: the config of a run trained on a parent's (noise, sample) pairs.

The pairs themselves live in the parent's run directory (:mod:`flowforge.runs.pairs`), where training draws and
reads them; this job only writes down what the child run is.
"""

from __future__ import annotations

from pathlib import Path

from ..config import Config, apply_overrides, from_dict
from ..errors import RunError, UserError
from ..runs import read_config
from .device import resolve_device


def reflow_config(parent: str | Path, *, pairs: int, name: str | None = None, distill: int = 0,
                  loss: str | None = None, overrides: list[str] | tuple[str, ...] = (), device: str = "auto") -> Config:
    """The config of a run trained on ``parent``'s pairs: the parent's own config (same data, model and
    network, so its weights initialise the child) with ``reflow.parent`` set, renamed, and for ``distill = k``
    the grid time sampler and a ``k``-step Euler sampler; ``overrides`` (dotted ``key=value``) go last.
    ``device`` (``auto``, ``cpu``, ``cuda``): ``cpu`` sets ``train.cpu``, ``cuda`` unsets it once a GPU is found."""
    parent = Path(parent)
    base = read_config(parent)
    data = base.to_dict()
    if distill < 0:
        raise RunError(f"--distill must be a number of steps >= 1 (or 0 for reflow), got {distill}")
    suffix = f"distill{distill}" if distill else "reflow"
    data["run"].update(name=name or f"{base.run.name}-{suffix}", dir="")
    data["reflow"].update(parent=str(parent), pairs=pairs)
    if distill:
        data["model"].update(time_sampler="grid", grid_steps=distill)
        data["sample"].update(sampler="euler", steps=distill, grid="uniform")
    if loss is not None:
        data["model"]["loss"] = loss
    if device != "auto":  # auto: the parent's train.cpu, as Accelerate chooses (a GPU when there is one)
        data["train"]["cpu"] = training_on_cpu(device)
    return from_dict(apply_overrides(data, list(overrides)))


def training_on_cpu(device: str) -> bool:
    """``train.cpu`` for ``--device``: training goes through Accelerate, which takes the first visible GPU, so a
    GPU other than ``cuda:0`` is chosen with ``CUDA_VISIBLE_DEVICES``, as for ``flowforge train``."""
    chosen = resolve_device(device)
    if chosen.type == "cuda" and (chosen.index or 0) > 0:
        raise UserError(f"--device {device}: training (Accelerate) runs on the first visible GPU; choose GPU "
                        f"{chosen.index} with CUDA_VISIBLE_DEVICES={chosen.index} and --device cuda")
    return chosen.type == "cpu"
