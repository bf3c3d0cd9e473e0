"""2-D toy distributions, the standard benchmarks of flow and diffusion papers.

Every sampler is ``sample(n, rng, noise) -> (n, 2)`` float64 drawn from the
numpy Generator ``rng``. Shapes follow FFJORD's ``toy_data.py`` (Grathwohl et al.
2019, https://arxiv.org/abs/1810.01367) where the brief asks for it; the code
is written from the definitions, not copied.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import sklearn.datasets

Sampler = Callable[[int, np.random.Generator, float], np.ndarray]


def _sklearn_seed(rng: np.random.Generator) -> int:
    """An int seed for scikit-learn's ``random_state``, drawn from ``rng``."""
    return int(rng.integers(2**31 - 1))


def moons(n: int, rng: np.random.Generator, noise: float) -> np.ndarray:
    """Two interleaving half circles, at scikit-learn's own scale (x in [-1, 2], y in [-0.5, 1])."""
    x, _ = sklearn.datasets.make_moons(n_samples=n, noise=noise, random_state=_sklearn_seed(rng))
    return x


def circles(n: int, rng: np.random.Generator, noise: float) -> np.ndarray:
    """Two concentric circles of radii 3 and 1.5 (scikit-learn's, factor 0.5, times 3)."""
    x, _ = sklearn.datasets.make_circles(n_samples=n, factor=0.5, noise=noise, random_state=_sklearn_seed(rng))
    return 3.0 * x


def eight_gaussians(n: int, rng: np.random.Generator, noise: float) -> np.ndarray:
    """Mixture of 8 Gaussians centred on a circle of radius 4, all divided by 1.414 (FFJORD)."""
    angles = np.arange(8) * (np.pi / 4)
    centres = 4.0 * np.stack([np.cos(angles), np.sin(angles)], axis=1)  # (8, 2)
    which = rng.integers(8, size=n)
    return (centres[which] + noise * rng.standard_normal((n, 2))) / 1.414


def checkerboard(n: int, rng: np.random.Generator, noise: float) -> np.ndarray:
    """Uniform on the 8 black squares of a 4x4 board covering [-4, 4]^2 (FFJORD). ``noise`` is unused."""
    x1 = rng.uniform(-2.0, 2.0, n)
    x2 = rng.uniform(0.0, 1.0, n) - 2.0 * rng.integers(0, 2, n) + np.floor(x1) % 2
    return 2.0 * np.stack([x1, x2], axis=1)


def pinwheel(n: int, rng: np.random.Generator, noise: float) -> np.ndarray:
    """Five curved arms (FFJORD): radial std 0.3 (``noise``), tangential std 0.1, twist rate 0.25, times 2."""
    arms, tangential_std, rate = 5, 0.1, 0.25
    arm = np.arange(n) % arms
    radial = 1.0 + noise * rng.standard_normal(n)  # distance along the arm
    tangential = tangential_std * rng.standard_normal(n)
    angle = 2 * np.pi * arm / arms + rate * np.exp(radial)
    cos, sin = np.cos(angle), np.sin(angle)
    # row vector (radial, tangential) times the rotation [[cos, -sin], [sin, cos]]
    x = np.stack([radial * cos + tangential * sin, -radial * sin + tangential * cos], axis=1)
    return 2.0 * x[rng.permutation(n)]


def spirals(n: int, rng: np.random.Generator, noise: float) -> np.ndarray:
    """Two interleaved spirals of 1.5 turns (FFJORD's ``2spirals``), Gaussian jitter std ``noise``."""
    turn = np.sqrt(rng.uniform(size=n)) * (540.0 * 2 * np.pi / 360)  # angle, denser at the centre
    x = -np.cos(turn) * turn + 0.5 * rng.uniform(size=n)
    y = np.sin(turn) * turn + 0.5 * rng.uniform(size=n)
    sign = np.where(np.arange(n) % 2 == 0, 1.0, -1.0)  # alternate points between the two arms
    points = sign[:, None] * np.stack([x, y], axis=1) / 3.0
    return points + noise * rng.standard_normal((n, 2))


def swissroll(n: int, rng: np.random.Generator, noise: float) -> np.ndarray:
    """scikit-learn's 3-D swiss roll seen from above (columns 0 and 2), divided by 5."""
    x, _ = sklearn.datasets.make_swiss_roll(n_samples=n, noise=noise, random_state=_sklearn_seed(rng))
    return x[:, [0, 2]] / 5.0


@dataclass(frozen=True)
class ToySet:
    """A sampler and its customary noise level (``None``: the set has no noise parameter)."""

    sample: Sampler
    noise: float | None


TOY_SETS: dict[str, ToySet] = {
    "moons": ToySet(moons, 0.05),
    "circles": ToySet(circles, 0.08),
    "8gaussians": ToySet(eight_gaussians, 0.5),
    "checkerboard": ToySet(checkerboard, None),
    "pinwheel": ToySet(pinwheel, 0.3),
    "spirals": ToySet(spirals, 0.1),
    "swissroll": ToySet(swissroll, 1.0),
}
