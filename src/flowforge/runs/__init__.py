"""Everything that reads or writes a run directory: its config, checkpoints (bound to the model config that
made them), lock, metrics log, pictures, report, vocabulary, reflow's stored pairs, and loading a run.

It knows models and files but no training loop; :mod:`flowforge.train` writes through it, and the user jobs
(:mod:`flowforge.jobs`: evaluate, inpaint, compare, export, reflow) read and write through it.
"""

from .checkpoint import (atomic_write_text, check_model_binding, checkpoint_dirs, latest_checkpoint, load_checkpoint,
                         load_weights, read_state, rng_state, save_checkpoint, set_rng_state)
from .load import Run, check_finite_samples, check_sample_memory, draw_samples, load, load_run, read_config, sample_options
from .lock import RunLock
from .metrics_log import MetricsLog, read_metrics
from .pictures import write_samples_picture
from .report import write_report
from .vocabulary import read_vocabulary, write_vocabulary

__all__ = ["MetricsLog", "Run", "RunLock", "atomic_write_text", "check_finite_samples", "check_model_binding",
           "check_sample_memory", "checkpoint_dirs", "draw_samples", "latest_checkpoint", "load", "load_checkpoint",
           "load_run", "load_weights", "read_config", "read_metrics", "read_state", "read_vocabulary", "rng_state",
           "sample_options", "save_checkpoint", "set_rng_state", "write_report", "write_samples_picture",
           "write_vocabulary"]
