"""Where a job runs: ``--device auto|cpu|cuda|cuda:N``, resolved in one place for ``sample``, ``eval`` and
``reflow`` (and anything else that asks a user for a device).

``auto`` is the first GPU when PyTorch sees one and the CPU otherwise. A job's random generator lives on the same
device (:func:`flowforge.rng.device_generator`, which training's steps use too), so noise is drawn where the
network runs and no sampling step copies noise from the host; the price is that one seed gives other samples on a
GPU than on the CPU (each is reproducible where it was drawn).
"""

from __future__ import annotations

import re

import torch

from ..errors import UserError
from ..rng import device_generator

DEVICE_CHOICES = "auto, cpu, cuda or cuda:N"
_FORM = re.compile(r"^(auto|cpu|cuda)(?::(\d+))?$")


def resolve_device(text: str | torch.device | None = "auto") -> torch.device:
    """``text`` (``auto``, ``cpu``, ``cuda``, ``cuda:N``; None = ``auto``) as a ``torch.device`` this machine has.

    Raises:
        UserError: a form other than those four, or a GPU asked for where PyTorch sees none (or not that many).

    Example:
        >>> resolve_device("cpu")
        device(type='cpu')
    """
    if isinstance(text, torch.device):
        text = str(text)
    text = "auto" if text is None else text.strip().lower()
    match = _FORM.match(text)
    if match is None or (match.group(2) is not None and match.group(1) != "cuda"):
        raise UserError(f"--device {text}: expected {DEVICE_CHOICES} (e.g. --device cuda:0)")
    kind, index = match.group(1), match.group(2)
    if kind == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if kind == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise UserError(f"--device {text}: PyTorch sees no CUDA GPU on this machine (torch {torch.__version__}, "
                        f"built with CUDA {torch.version.cuda or 'none'}); use --device cpu (or auto), or install "
                        f"a CUDA build of PyTorch on a machine with an NVIDIA GPU")
    count = torch.cuda.device_count()
    if index is not None and int(index) >= count:
        raise UserError(f"--device {text}: this machine has {count} CUDA GPU(s), cuda:0 to cuda:{count - 1}")
    return torch.device("cuda", int(index)) if index is not None else torch.device("cuda")


__all__ = ["DEVICE_CHOICES", "device_generator", "resolve_device"]
