"""What a user does with a trained run, one module per CLI verb: ``sample``, ``eval`` (:mod:`.evaluate`, image
scores in :mod:`.image_eval`), ``inpaint``, ``compare``, ``export`` (and its reader, :mod:`.pretrained`:
``from_pretrained``), ``reflow``.

Jobs sit above :mod:`flowforge.train` and read and write run directories through :mod:`flowforge.runs`; the
command line (:mod:`flowforge.cli`) and the app (:mod:`flowforge.app`) are faces over them and keep no policy
of their own. Which options a model family takes is the model's to say (:mod:`flowforge.protocol`).
"""

from .compare import compare_runs
from .device import resolve_device
from .evaluate import evaluate
from .export import export_run, push_to_hub, save_pretrained
from .inpaint import inpaint_run
from .pretrained import from_pretrained, load_folder, load_pretrained
from .reflow import reflow_config
from .sample import sample_run

__all__ = ["compare_runs", "evaluate", "export_run", "from_pretrained", "inpaint_run", "load_folder", "load_pretrained",
           "push_to_hub", "reflow_config", "resolve_device", "sample_run", "save_pretrained"]
