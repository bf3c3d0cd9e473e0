"""Packing without padding: document-masked attention, the packed DiT forward and backward against per-image
runs, the pack sampler, multi-resolution data and the loss on packs through the training engine."""

import doctest

import pytest
import torch
import torch.nn.functional as F
from conftest import perturb_zero_layers

from flowforge.nets import packing
from flowforge.nets.attention import attend
from flowforge.nets.dit import DiT
from flowforge.nets.packing import DocumentMask

SHAPES = ((14, 14), (21, 21), (28, 28))  # three resolutions at patch 7: 4, 9 and 16 tokens


def test_doctests():
    assert doctest.testmod(packing).failed == 0


def dense_reference(q, k, v, lengths):
    """Attention with the explicit L x L block-diagonal mask: the definition, for tests only."""
    ids = torch.repeat_interleave(torch.arange(len(lengths)), torch.tensor(lengths))
    return F.scaled_dot_product_attention(q, k, v, attn_mask=ids[:, None] == ids[None])


@pytest.mark.parametrize("kernel", ["segments", "jagged"])
def test_document_mask_equals_the_block_diagonal_mask(kernel):
    torch.manual_seed(0)
    lengths = [3, 3, 5, 2, 2, 2, 7]  # runs of equal lengths, and single images between them
    mask = DocumentMask.build(lengths, kernel)
    assert mask.runs == ((0, 2, 3), (6, 1, 5), (11, 3, 2), (17, 1, 7))
    q, k, v = (torch.randn(1, 2, sum(lengths), 8) for _ in range(3))
    torch.testing.assert_close(attend(q, k, v, mask), dense_reference(q, k, v, lengths), rtol=1e-5, atol=1e-6)


def test_document_mask_rejects_bad_input():
    with pytest.raises(ValueError, match="kernel 'dense' is not one of segments, jagged, flex"):
        DocumentMask.build([4], "dense")
    with pytest.raises(ValueError, match="at least one token"):
        DocumentMask.build([4, 0])
    with pytest.raises(ValueError, match=r"needs \(1, heads, 8, d\)"):
        DocumentMask.build([4, 4]).attend(*(torch.randn(2, 1, 4, 8) for _ in range(3)))


def packed_and_separate(net, xs, t, y, kernel="segments"):
    packed = net.forward_packed(xs, t, y, kernel=kernel)
    sizes = [len(x) for x in xs]
    separate = [net(x, tt, yy) for x, tt, yy in zip(xs, t.split(sizes), y.split(sizes))]
    return packed, separate


def images(seed=0, counts=(1, 1, 1)):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(n, 1, h, w, generator=gen, requires_grad=True) for n, (h, w) in zip(counts, SHAPES)]


@pytest.mark.parametrize("kernel", ["segments", "jagged"])
@pytest.mark.parametrize("pos", ["sincos", "rope"])
def test_packed_forward_and_gradients_equal_the_separate_forwards(pos, kernel):
    torch.manual_seed(0)
    net = perturb_zero_layers(DiT((1, 28, 28), size="tiny", patch=7, positions=pos, num_classes=10))
    xs, t, y = images(), torch.tensor([0.1, 0.5, 0.9]), torch.tensor([3, 10, 7])
    packed, separate = packed_and_separate(net, xs, t, y, kernel)
    for p, s, x in zip(packed, separate, xs):
        assert p.shape == x.shape and p.abs().mean() > 1e-2  # not trivially zero
        torch.testing.assert_close(p, s, rtol=1e-5, atol=1e-5)
    # gradients of a loss that weighs every output element differently, w.r.t. the weights and the inputs
    weights = [torch.randn(p.shape, generator=torch.Generator().manual_seed(9)) for p in packed]
    grads = []
    for outs in (packed, separate):
        loss = sum((w * o).sum() for w, o in zip(weights, outs))
        grads.append(torch.autograd.grad(loss, [*net.parameters(), *xs]))
    names = [n for n, _ in net.named_parameters()] + ["x14", "x21", "x28"]
    for name, gp, gs in zip(names, *grads):
        torch.testing.assert_close(gp, gs, rtol=1e-5, atol=1e-5, msg=lambda m, name=name: f"{name}: {m}")
    assert sum(g.abs().sum() for g in grads[0]) > 0


def test_no_token_attends_across_images():
    torch.manual_seed(1)
    for pos in ("sincos", "rope"):
        net = perturb_zero_layers(DiT((1, 28, 28), size="tiny", patch=7, positions=pos, num_classes=10))
        xs, t, y = images(1, counts=(2, 2, 1)), torch.rand(5), torch.tensor([1, 2, 3, 4, 5])
        out = net.forward_packed(xs, t, y)
        # the first 21 px image (B) alone drives nothing else: zero gradient to every other image's input
        grad = torch.autograd.grad(out[1][0].sum(), xs)
        assert grad[1][0].abs().sum() > 0
        assert grad[1][1].abs().max() == 0 and grad[0].abs().max() == 0 and grad[2].abs().max() == 0
        # perturbing B (input, time and label) leaves every other image's output as it was
        with torch.no_grad():
            xs2 = [x.detach().clone() for x in xs]
            xs2[1][0] += 5 * torch.randn_like(xs2[1][0])
            t2, y2 = t.clone(), y.clone()
            t2[2], y2[2] = 0.99, 10
            out2 = net.forward_packed(xs2, t2, y2)
        assert (out2[1][0] - out[1][0]).abs().mean() > 1e-2
        for a, b in ((out[0], out2[0]), (out[1][1], out2[1][1]), (out[2], out2[2])):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_packed_checkpointed_blocks_match_plain_blocks():
    torch.manual_seed(2)
    plain = perturb_zero_layers(DiT((1, 28, 28), size="tiny", patch=7, positions="rope", num_classes=10))
    ckpt = DiT((1, 28, 28), size="tiny", patch=7, positions="rope", num_classes=10, checkpoint=True)
    ckpt.load_state_dict(plain.state_dict())
    xs, t, y = images(2), torch.rand(3), torch.tensor([0, 1, 2])
    outs, grads = [], []
    for net in (plain, ckpt):
        out = net.train().forward_packed(xs, t, y)
        outs.append(out)
        grads.append(torch.autograd.grad(sum(o.square().sum() for o in out), list(net.parameters())))
    for a, b in zip(*outs):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


def test_packed_forward_rejects_bad_input():
    net = DiT((1, 28, 28), size="tiny", patch=7)
    with pytest.raises(ValueError, match="patch size 7 needs a height and width divisible by 7, got 16x16"):
        net.forward_packed([torch.randn(1, 1, 16, 16)], torch.rand(1))
    with pytest.raises(ValueError, match=r"on 3 images needs t of shape \(3,\)"):
        net.forward_packed([torch.randn(1, 1, 14, 14), torch.randn(2, 1, 28, 28)], torch.rand(2))
    with pytest.raises(ValueError, match=r"packs groups \(B, 1, H, W\)"):
        net.forward_packed([torch.randn(1, 3, 14, 14)], torch.rand(1))
    with pytest.raises(ValueError, match="at least one group"):
        net.forward_packed([], torch.rand(0))


@pytest.mark.slow
def test_flex_attention_kernel_matches_and_has_no_cpu_backward():
    # FlexAttention on CPU is compiled on first use (tens of seconds) and has no backward in torch 2.13
    torch.manual_seed(3)
    net = perturb_zero_layers(DiT((1, 28, 28), size="tiny", patch=7, positions="rope", num_classes=10)).eval()
    xs, t, y = [x.detach() for x in images(3)], torch.rand(3), torch.tensor([0, 1, 2])
    with torch.no_grad():
        packed, separate = packed_and_separate(net, xs, t, y, kernel="flex")
    for p, s in zip(packed, separate):
        torch.testing.assert_close(p, s, rtol=1e-5, atol=1e-5)
