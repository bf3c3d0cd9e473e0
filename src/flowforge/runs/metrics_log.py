"""Where training numbers go: ``metrics.jsonl`` (one JSON object per record) and TensorBoard."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any


# the numbers each kind of record must hold for its readers (curves, report, info, compare)
REQUIRED = {"train": ("loss", "seconds"), "val": ("nll",), "val_loss": ("loss",)}


def _is_record(record: Any) -> bool:
    if not isinstance(record, dict):
        return False
    step = record.get("step")
    if not isinstance(step, int) or isinstance(step, bool):
        return False
    kind = record.get("kind", "train")
    return all(isinstance(record.get(k), (int, float)) and not isinstance(record.get(k), bool)
               and math.isfinite(record[k]) for k in REQUIRED.get(kind, ()))


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """All records of ``run_dir/metrics.jsonl``: JSON objects with an integer ``step`` and, for training and
    validation records, the numbers they hold; anything else (a torn last line from a crash, a hand-edited
    line) is skipped."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if _is_record(record):
            out.append(record)
    return out


def _scalars(values: dict[str, Any], prefix: str) -> list[tuple[str, float]]:
    """The finite numbers of a record, nested ones included (an eval record's ``model.energy_distance`` becomes
    ``eval/model/energy_distance``), as TensorBoard tags."""
    out: list[tuple[str, float]] = []
    for key, value in values.items():
        if isinstance(value, dict):
            out += _scalars(value, f"{prefix}/{key}")
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            out.append((f"{prefix}/{key}", float(value)))
    return out


class MetricsLog:
    """Append-only metrics log of one run, optionally mirrored to TensorBoard (``run_dir/tb``).

    ``truncate_after`` drops records of steps later than a resumed checkpoint,
    so a resumed run's log reads as if it had never been interrupted.
    """

    def __init__(self, run_dir: Path, tensorboard: bool = True, truncate_after: int | None = None):
        self.path = Path(run_dir) / "metrics.jsonl"
        if truncate_after is not None:
            kept = [r for r in read_metrics(run_dir) if r.get("step", 0) <= truncate_after]
            self.path.write_text("".join(json.dumps(r) + "\n" for r in kept))
        self.writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(Path(run_dir) / "tb"))

    def log(self, record: dict[str, Any]) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self.writer is not None:
            step = record.get("step", 0)
            for tag, value in _scalars({k: v for k, v in record.items() if k not in ("step", "kind")},
                                       record.get("kind", "train")):
                self.writer.add_scalar(tag, value, step)

    def add_picture(self, tag: str, path: Path, step: int) -> None:
        """A picture file (a sample grid or scatter plot) on TensorBoard's Images tab at ``step``."""
        if self.writer is not None:
            import numpy as np
            from PIL import Image

            with Image.open(path) as image:
                self.writer.add_image(tag, np.asarray(image.convert("RGB")), step, dataformats="HWC")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
