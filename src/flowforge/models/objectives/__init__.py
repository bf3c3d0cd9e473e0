"""Training objectives: one small class per objective, ``objective(model, x, rng, labels) -> loss``.

In the manner of EDM's ``training/loss.py`` (Karras et al., 2022), an objective holds its settings and is
called on a batch; :meth:`flowforge.models.ContinuousFlow.loss` delegates to the model's objective, so the
training engine sees one protocol. Beside them: the training-time laws (:mod:`.time_sampling`) and the
couplings of noise and data (:mod:`.coupling`).

Adding an objective (consistency, shortcut, a latent objective) is one file with a subclass of
:class:`Objective` (``__call__``, ``from_config``, and ``check`` / ``packed`` where it needs them) and one line
in :data:`OBJECTIVES`, whose keys are the choices of ``model.objective`` (``ObjectiveName`` in
``config/schema.py``: tests/test_registries.py fails until the two agree); settings of its own nest under
``model.<name>`` as ``model.meanflow.*`` do.
"""

from .base import Objective, training_labels
from .coupling import Coupling, Independent, MinibatchOT, Paired
from .mean_flow import MeanFlow, adaptive_loss, draw_interval
from .ot import ot_permutation
from .regression import LOSSES, WEIGHTINGS, PackedRegression, Regression, x0_error_scale
from .time_sampling import (CosMap, GridTimes, LogitNormal, LogNormalSigma, ModeSampling, TimeSampler, Uniform,
                            resolution_shift)

# model.objective -> the objective's class (its from_config reads the run's model settings)
OBJECTIVES: dict[str, type[Objective]] = {
    "regression": Regression,  # on a pack of several resolutions: Regression.packed(), a PackedRegression
    "mean-flow": MeanFlow,
}

__all__ = ["LOSSES", "OBJECTIVES", "WEIGHTINGS", "CosMap", "Coupling", "GridTimes", "Independent", "LogNormalSigma",
           "LogitNormal", "MeanFlow", "MinibatchOT", "ModeSampling", "Objective", "PackedRegression", "Paired",
           "Regression",
           "TimeSampler", "Uniform", "adaptive_loss", "draw_interval", "ot_permutation", "resolution_shift",
           "training_labels", "x0_error_scale"]
