"""benchmarks.sd3_scaling's FLOP count of a training step, against torch's FlopCounterMode."""

from pathlib import Path

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from flowforge.data import load_dataset
from flowforge.models import build_model

from benchmarks import sd3_scaling
from benchmarks.tables.sd3_scaling import pearson, ranks


@pytest.mark.parametrize("model", ["DiT-tiny", "DiT-mini"])
def test_dit_step_flops_agree_with_flop_counter(model):
    """The DiT's hand count (3 x gpu.py's forward) is within 1% of FlopCounterMode's count of one forward and
    backward of the benchmark's own model (the backward skips the input gradient of the first layers, so the
    counter sees slightly less than 3x)."""
    counted = sd3_scaling.counted_step_flops(sd3_scaling.config(model, 0, 1, Path("unused")))
    assert sd3_scaling.step_flops(model) == pytest.approx(counted, rel=0.01)


def test_unet_step_flops_count_the_backward():
    """The U-Net's count is of a forward and a backward: between 2.5 and 3 times the counter's forward alone
    (the backward of a product costs two products, less the first layers' input gradients)."""
    cfg = sd3_scaling.config("U-Net", 0, 1, Path("unused"))
    dataset = load_dataset(cfg.data)
    model = build_model(cfg.model, dataset.spec())
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model.loss(dataset.train[:cfg.train.batch_size])
    assert 2.5 * counter.get_total_flops() < sd3_scaling.step_flops("U-Net") <= 3 * counter.get_total_flops()


def test_rank_correlation_of_a_monotone_pair_is_one():
    xs, ys = [0.5, 0.1, 0.3, 0.3], [50.0, 2.0, 7.0, 7.0]
    assert ranks(xs) == [3.0, 0.0, 1.5, 1.5]
    assert pearson(ranks(xs), ranks(ys)) == pytest.approx(1.0)
    assert pearson(xs, [1 - 2 * x for x in xs]) == pytest.approx(-1.0)  # linear and falling
