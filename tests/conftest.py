import os

import pytest

# Keep the two cores for the test processes themselves (torch would otherwise spawn a thread per core each).
os.environ.setdefault("OMP_NUM_THREADS", "1")


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
