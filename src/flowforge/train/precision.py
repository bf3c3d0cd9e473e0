"""Which precision a run trains in: bf16 autocast where the hardware has native bf16, float32 elsewhere.

``train.precision: auto`` chooses bf16 autocast on a CUDA GPU of compute capability 8.0 or more (Ampere on) and
on a CPU with AVX512-BF16 or AMX, whose oneDNN kernels do bf16 matmuls natively; float32 everywhere else. On a
CPU without them autocast *emulates* bf16, far slower than float32: ``python -m benchmarks.train_speed``
measures by how much per CPU capability (``benchmarks/results/train_speed.json``) and ``make library-data``
(``tools/bf16_speed_table.py``) publishes the figure in ``bf16_speed.json`` beside this file, which the warning for
an explicit ``bf16`` on such a CPU quotes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

MEASURED = Path(__file__).with_name("bf16_speed.json")


@dataclass(frozen=True)
class PrecisionChoice:
    precision: str  # "fp32" or "bf16": what the run trains in
    requested: str  # train.precision: "fp32", "bf16" or "auto"
    native_bf16: bool
    hardware: str  # what was looked at, e.g. "CPU capability AVX2, no AVX512-BF16 / AMX"

    def describe(self) -> str:
        """One line for the run report: ``bf16 autocast (train.precision=auto; CPU capability AVX512, AMX)``."""
        what = "bf16 autocast" if self.precision == "bf16" else "fp32"
        return f"{what} (train.precision={self.requested}; {self.hardware})"


def _cpu_flag(name: str) -> bool:
    fn = getattr(torch.cpu, name, None)
    try:
        return bool(fn()) if fn is not None else False
    except RuntimeError:
        return False


def native_bf16(device: torch.device) -> tuple[bool, str]:
    """Whether ``device`` multiplies bf16 matrices natively, and what that was read from."""
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        return major >= 8, f"CUDA compute capability {major}.{minor}"
    if device.type == "cpu":
        capability = torch.backends.cpu.get_cpu_capability()
        found = [name for name, flag in (("AVX512-BF16", "_is_avx512_bf16_supported"),
                                         ("AMX", "_is_amx_tile_supported")) if _cpu_flag(flag)]
        return bool(found), f"CPU capability {capability}, " + (", ".join(found) if found else "no AVX512-BF16 / AMX")
    return False, f"{device.type} device, bf16 not assumed"


def choose_precision(requested: str, device: torch.device) -> PrecisionChoice:
    """``train.precision`` resolved on ``device``: ``auto`` becomes bf16 only where bf16 is native."""
    native, hardware = native_bf16(device)
    precision = ("bf16" if native else "fp32") if requested == "auto" else requested
    return PrecisionChoice(precision=precision, requested=requested, native_bf16=native, hardware=hardware)


def measured_emulation_speed(capability: str | None = None) -> dict | None:
    """The stored bf16 / fp32 training speed of a CPU without native bf16: this capability's measurement, else
    any such CPU's; ``None`` when nothing was measured. Keys: ``bf16_over_fp32``, ``case``, ``cpu``, ``date``."""
    try:
        by_capability = json.loads(MEASURED.read_text())["by_capability"]
    except (OSError, ValueError, KeyError):
        return None
    capability = capability or torch.backends.cpu.get_cpu_capability()
    emulated = {k: v for k, v in by_capability.items() if not v.get("native_bf16")}
    entry = emulated.get(capability) or next(iter(emulated.values()), None)
    return entry


def emulated_bf16_warning(choice: PrecisionChoice) -> str:
    """The warning for bf16 asked for explicitly on a CPU that emulates it, with the measured slow-down."""
    m = measured_emulation_speed()
    figure = (f"the {m['case']} trained at {m['bf16_over_fp32']:.2f}x the speed of fp32 on an {m['capability']} "
              f"CPU ({m['cpu']}, {m['date'][:10]}; python -m benchmarks.train_speed)" if m else
              "python -m benchmarks.train_speed measures by how much it is slower than fp32 here")
    return (f"train.precision=bf16 on a CPU without native bf16 ({choice.hardware}): autocast emulates it; {figure}; "
            f"train.precision=fp32 or auto is faster here")
