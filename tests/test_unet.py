"""The image U-Net: shapes, exact zero at init, conditioning, gradients, a fit, input checks, size."""

import doctest
import math

import pytest
import torch

from flowforge.nets import UNet, unet
from conftest import perturb_zero_layers

DIGITS = dict(shape=(1, 8, 8), channels=16, channel_mult=(1, 2), num_res_blocks=1, attention_levels=(1,))


@pytest.mark.parametrize("kwargs", [
    DIGITS,
    dict(shape=(1, 28, 28), channels=16, channel_mult=(1, 2, 2)),  # 28 -> 14 -> 7, attention at 7x7
    dict(shape=(3, 12, 16), channels=16, channel_mult=(1, 2, 2), heads=2),  # 3 channels, not square, 3x4 last
], ids=["digits", "mnist", "rgb-12x16"])
def test_output_shape_equals_input_shape(kwargs):
    torch.manual_seed(0)
    net = perturb_zero_layers(UNet(**kwargs))
    x = torch.randn(3, *kwargs["shape"])
    out = net(x, torch.rand(3))
    assert out.shape == x.shape
    assert out.abs().max() > 0


def test_exactly_zero_at_init_then_depends_on_t_and_y():
    torch.manual_seed(0)
    net = UNet(**DIGITS, num_classes=10)
    x, t, y = torch.randn(4, 1, 8, 8), torch.full((4,), 0.3), torch.tensor([0, 3, 7, 9])
    assert net(x, t, y).abs().max().item() == 0.0
    assert net(x, t).abs().max().item() == 0.0

    perturb_zero_layers(net)
    with torch.no_grad():
        out = net(x, t, y)
        other_t = net(x, torch.full((4,), 0.8), y)
        null = net(x, t)
        null_explicit = net(x, t, torch.full((4,), 10))
    scale = out.abs().mean().item()
    assert scale > 1e-3
    assert (out - other_t).abs().mean().item() > 0.05 * scale
    assert (out - null).abs().mean().item() > 0.05 * scale
    assert torch.equal(null, null_explicit)  # y=None is the null label, index num_classes


def test_examples_are_independent_within_a_batch():
    """Batch-of-4 output equals the four single-example outputs: no norm or attention reshape mixes examples."""
    torch.manual_seed(1)
    net = perturb_zero_layers(UNet(**DIGITS, num_classes=10)).eval()
    x, t, y = torch.randn(4, 1, 8, 8), torch.rand(4), torch.tensor([1, 10, 4, 4])
    with torch.no_grad():
        batch = net(x, t, y)
        single = torch.cat([net(x[i:i + 1], t[i:i + 1], y[i:i + 1]) for i in range(4)])
    torch.testing.assert_close(batch, single, rtol=1e-4, atol=1e-5)


def test_attention_matches_explicit_softmax():
    torch.manual_seed(2)
    attn = perturb_zero_layers(unet.SelfAttention(channels=16, heads=4))
    x = torch.randn(2, 16, 3, 5)
    with torch.no_grad():
        q, k, v = attn.qkv(attn.norm(x)).reshape(2, 3, 4, 4, 15).unbind(1)  # (B, nh, d, HW) each
        w = torch.softmax(torch.einsum("bhdq,bhdk->bhqk", q, k) / math.sqrt(4), dim=-1)  # (B, nh, HW, HW)
        a = torch.einsum("bhqk,bhdk->bhdq", w, v).reshape(2, 16, 3, 5)
        expected = x + attn.proj(a)
        torch.testing.assert_close(attn(x), expected, rtol=1e-4, atol=1e-5)


def test_gradient_reaches_every_parameter():
    torch.manual_seed(3)
    net = perturb_zero_layers(UNet(**DIGITS, num_classes=10, dropout=0.1))
    x, t, y = torch.randn(8, 1, 8, 8), torch.rand(8), torch.randint(0, 11, (8,))
    net(x, t, y).square().mean().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().max() > 0, name


def test_adam_fits_minus_x():
    """Learn f(x, t=0.5) = -x on 16 fixed images in 40 Adam steps; from zero output the loss starts at mean(x^2)."""
    torch.manual_seed(4)
    net = UNet(**DIGITS)
    x, t = torch.randn(16, 1, 8, 8), torch.full((16,), 0.5)
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    losses = []
    for _ in range(40):
        loss = (net(x, t) + x).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[0] == pytest.approx(x.square().mean().item())  # the output starts at exactly zero
    assert losses[-1] < 0.1 * losses[0], (losses[0], losses[-1])


def test_bad_labels_raise():
    # label values are checked once per run by the model (flowforge.models.conditioning), which reads them
    # back to the host; the network itself checks only what it can without a host read
    net = UNet(**DIGITS, num_classes=10)
    x, t = torch.randn(2, 1, 8, 8), torch.rand(2)
    with pytest.raises(ValueError, match="integer labels"):
        net(x, t, torch.tensor([1.0, 2.0]))
    with pytest.raises(ValueError, match="num_classes=None"):
        UNet(**DIGITS)(x, t, torch.tensor([0, 1]))


def test_bad_shapes_and_levels_raise():
    with pytest.raises(ValueError, match=r"\(1, 28, 28\).*level 2 has resolution 7x7.*\(1, 2, 2\)"):
        UNet((1, 28, 28), channel_mult=(1, 2, 2, 2))
    with pytest.raises(ValueError, match="level 0 has resolution 5x5"):
        UNet((1, 5, 5), channel_mult=(1, 2), attention_levels=())
    with pytest.raises(ValueError, match="attention_levels"):
        UNet((1, 8, 8), channel_mult=(1, 2))  # default attention_levels=(2,) needs three levels
    with pytest.raises(ValueError, match="heads"):
        UNet((1, 8, 8), channels=12, channel_mult=(1, 2), attention_levels=(1,), heads=5)
    with pytest.raises(ValueError, match=r"needs x \(B, \*\(1, 8, 8\)\)"):
        UNet(**DIGITS)(torch.randn(2, 1, 10, 10), torch.rand(2))
    UNet((1, 8, 8), channels=16, channel_mult=(1, 1, 1, 1), attention_levels=())  # 8 -> 4 -> 2 -> 1 is fine


def test_mnist_default_size():
    n = sum(p.numel() for p in UNet((1, 28, 28)).parameters())
    assert 0.5e6 < n < 5e6, f"{n:,} parameters"


def test_docstring_examples():
    assert doctest.testmod(unet).failed == 0
