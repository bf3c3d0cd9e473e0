"""Invertible layers with exact log-Jacobian determinants, and the priors of normalizing flows.

Every transform maps (batch, *event) tensors, ``forward(x) -> (y, log|det dy/dx|)`` and
``inverse(y) -> (x, log|det dx/dy|)`` with log-dets of shape (batch,). Pure torch: nothing else of
flowforge is imported here; conditioner networks are passed in as modules.
"""

from .actnorm import ActNorm
from .additive_coupling import AdditiveCoupling
from .affine_coupling import AffineCoupling
from .autoregressive import Inverted, MaskedAutoregressive
from .base import Transform
from .compose import Compose
from .conv1x1 import InvertibleConv1x1
from .coupling import Coupling
from .elementwise import ElementwiseMap, MonotonicAffine, RationalQuadratic
from .factor_out import FactorOut
from .logit import Logit
from .masks import channel_mask, checkerboard_mask, half_mask
from .permutation import Permutation, Reverse
from .priors import StandardGaussian, StandardLogistic
from .scaling import Scaling
from .splines import SplineShape, rational_quadratic
from .squeeze import Squeeze, Unsqueeze

__all__ = [
    "ActNorm", "AdditiveCoupling", "AffineCoupling", "Compose", "Coupling", "ElementwiseMap", "FactorOut",
    "InvertibleConv1x1", "Inverted", "Logit", "MaskedAutoregressive", "MonotonicAffine", "Permutation",
    "RationalQuadratic", "Reverse", "Scaling", "SplineShape", "Squeeze", "StandardGaussian", "StandardLogistic",
    "Transform", "Unsqueeze", "channel_mask", "checkerboard_mask", "half_mask", "rational_quadratic",
]
