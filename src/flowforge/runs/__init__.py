"""Everything that reads or writes a run directory: its config, checkpoints (bound to the model config that
made them), metrics log, pictures, report, lock, and the run-level jobs built on them (evaluate, inpaint).

It knows models and files but no training loop; :mod:`flowforge.train` writes through it.
"""

from .checkpoint import (atomic_write_text, check_model_binding, checkpoint_dirs, latest_checkpoint, load_checkpoint,
                         load_weights, read_state, rng_state, save_checkpoint, set_rng_state)
from .compare import compare_runs
from .evaluate import evaluate
from .export import export_run
from .inpaint import inpaint_run
from .load import Run, check_finite_samples, check_sample_memory, draw_samples, load, load_run, read_config, sample_options
from .lock import RunLock
from .metrics_log import MetricsLog, read_metrics
from .pictures import write_samples_picture
from .pretrained import from_pretrained, load_folder, load_pretrained
from .report import write_report
from .vocabulary import read_vocabulary, write_vocabulary

__all__ = ["MetricsLog", "Run", "RunLock", "atomic_write_text", "check_finite_samples", "check_model_binding", "check_sample_memory",
           "checkpoint_dirs", "compare_runs", "draw_samples", "evaluate", "export_run", "from_pretrained", "inpaint_run",
           "latest_checkpoint", "load", "load_checkpoint", "load_folder", "load_pretrained", "load_run",
           "load_weights", "read_config", "read_metrics", "read_state", "read_vocabulary", "rng_state", "sample_options",
           "save_checkpoint", "set_rng_state", "write_report", "write_samples_picture",
           "write_vocabulary"]
