"""MMDiT, SD3's two-stream transformer: adaLN-Zero identity at init, padding masks, the null caption, gradient
checkpointing and several resolutions."""

import doctest

import pytest
import torch
from conftest import perturb_zero_layers

from flowforge.nets import mmdit
from flowforge.nets.mmdit import PAD, MMDiT
from flowforge.nets.positions import grid_positions

VOCAB = 20


def make(positions="sincos", **kwargs):
    torch.manual_seed(0)
    return MMDiT((1, 8, 8), vocab_size=VOCAB, size="tiny", patch=2, positions=positions, **kwargs)


def captions():
    """Three captions of 3, 1 and 0 (empty) words, right-padded to 4."""
    return torch.tensor([[3, 7, 2, PAD], [5, PAD, PAD, PAD], [PAD, PAD, PAD, PAD]])


def test_doctests():
    assert doctest.testmod(mmdit).failed == 0


@pytest.mark.parametrize("pos", ["sincos", "rope"])
def test_adaln_zero_every_block_is_the_identity_on_both_streams_and_the_output_is_zero(pos):
    net = make(pos)
    x, t, text = torch.randn(3, 1, 8, 8), torch.rand(3), captions()
    assert net(x, t, text).abs().max().item() == 0.0
    assert net(torch.randn(2, 1, 12, 6), torch.rand(2)).abs().max().item() == 0.0  # another size, no text
    words, valid, pooled = net.embed_text(text, 3, x.device)
    c = net.time_embed(t) + net.pooled_embed(pooled)
    tokens = torch.randn(3, 16, 64)
    rotation = net.rope(grid_positions(4, 4)) if net.rope is not None else None
    mask = torch.cat([torch.ones(3, 16, dtype=torch.bool), valid], 1)[:, None, None]
    for i, block in enumerate(net.blocks):
        out_x, out_c = block(tokens, words, c, rotation, mask)
        assert torch.equal(out_x, tokens)
        if i < len(net.blocks) - 1:
            assert torch.equal(out_c, words)
        else:
            assert out_c is None  # the last text stream gives keys and values only (SD3's context_pre_only)
    # not vacuous: with non-zero modulation both streams change, and the output depends on t and the caption
    perturb_zero_layers(net)
    with torch.no_grad():
        out_x, out_c = net.blocks[0](tokens, words, c, rotation, mask)
        assert (out_x - tokens).abs().mean() > 1e-2 and (out_c - words).abs().mean() > 1e-2
        out = net(x, t, text)
        assert (out - net(x, t.flip(0), text)).abs().mean() > 1e-3 * out.abs().mean()
        other = torch.tensor([[4, 7, 2, PAD], [6, PAD, PAD, PAD], [PAD, PAD, PAD, PAD]])
        assert (out[:2] - net(x, t, other)[:2]).abs().mean() > 1e-3 * out.abs().mean()


@pytest.mark.parametrize("pos", ["sincos", "rope"])
def test_a_padded_caption_gives_the_output_of_the_unpadded_one(pos):
    net = perturb_zero_layers(make(pos)).eval()
    x, t = torch.randn(3, 1, 8, 8), torch.rand(3)
    text = captions()
    with torch.no_grad():
        base = net(x, t, text)
        padded = net(x, t, torch.cat([text, torch.full((3, 9), PAD)], 1))  # 9 more pad tokens
        alone = net(x[:1], t[:1], text[:1, :3])  # the 3-word caption with no padding at all
    assert base.abs().max() > 0
    torch.testing.assert_close(padded, base, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(alone, base[:1], rtol=1e-5, atol=1e-6)
    # padded text queries see the image keys: their attention rows are never empty, nothing is NaN
    seen = []
    net.blocks[0].register_forward_hook(lambda m, args, out: seen.append(out[1]))
    with torch.no_grad():
        net(x, t, torch.cat([text, torch.full((3, 9), PAD)], 1))
    assert seen[0].shape == (3, 13, 64) and torch.isfinite(seen[0]).all()


@pytest.mark.parametrize("pos", ["sincos", "rope"])
def test_padding_does_not_move_the_output_when_the_pad_embedding_is_not_zero(pos):
    """The pad row starts at zero (padding_idx), but a trained or loaded one need not be: the pooled caption is
    the mean of the words alone (summing the pad tokens' rows moved the output by 0.26-0.43)."""
    net = perturb_zero_layers(make(pos)).eval()
    with torch.no_grad():
        net.embed_tokens.weight[PAD] = torch.randn(64, generator=torch.Generator().manual_seed(3))
    x, t, text = torch.randn(3, 1, 8, 8), torch.rand(3), captions()
    with torch.no_grad():
        base = net(x, t, text)
        padded = net(x, t, torch.cat([text, torch.full((3, 9), PAD)], 1))
        alone = net(x[:1], t[:1], text[:1, :3])
        null = net(x, t)
        _, _, pooled = net.embed_text(text, 3, x.device)
    torch.testing.assert_close(padded, base, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(alone, base[:1], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(base[2], null[2], rtol=1e-5, atol=1e-6)  # an all-pad row is still the empty caption
    torch.testing.assert_close(pooled[0], net.embed_tokens.weight[[3, 7, 2]].mean(0).detach())


def test_the_empty_caption_makes_the_output_independent_of_the_text():
    net = perturb_zero_layers(make("rope")).eval()
    x, t = torch.randn(3, 1, 8, 8), torch.rand(3)
    with torch.no_grad():
        null = net(x, t)  # text=None: the empty caption
        assert null.abs().max() > 0
        for length in (1, 4, 11):
            torch.testing.assert_close(net(x, t, torch.full((3, length), PAD)), null, rtol=1e-5, atol=1e-6)
        # within a batch: the empty row of a batch with real captions equals its own null output
        torch.testing.assert_close(net(x, t, captions())[2], null[2], rtol=1e-5, atol=1e-6)
        # and a real caption does change it
        assert (net(x, t, captions())[0] - null[0]).abs().mean() > 1e-3 * null.abs().mean()


def test_checkpointed_and_plain_mmdit_give_identical_outputs_and_gradients(monkeypatch):
    plain = perturb_zero_layers(make("rope", checkpoint=False)).train()
    ckpt = make("rope", checkpoint=True).train()
    ckpt.load_state_dict(plain.state_dict())
    forwards = []
    block_forward = mmdit.JointBlock.forward

    def counted(self, *args, **kwargs):
        forwards.append(self in ckpt.blocks)
        return block_forward(self, *args, **kwargs)

    monkeypatch.setattr(mmdit.JointBlock, "forward", counted)
    x, t, text = torch.randn(3, 1, 8, 8), torch.rand(3), captions()
    outs, grads = [], []
    for net in (plain, ckpt):
        out = net(x, t, text)
        (out * torch.linspace(-1, 1, out.numel()).reshape(out.shape)).sum().backward()
        outs.append(out.detach())
        grads.append({n: p.grad for n, p in net.named_parameters()})
    assert sum(forwards) == 2 * len(ckpt.blocks)  # recomputed in the backward pass
    assert torch.equal(outs[0], outs[1])
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        assert torch.equal(grads[0][name], grads[1][name]), name
    # every parameter takes part (none idle under data parallelism); the pad row of the embedding gets none
    missing = [n for n, g in grads[0].items() if g is None]
    assert not missing, missing
    emb = grads[0]["embed_tokens.weight"]
    assert emb[PAD].abs().max() == 0 and emb[[3, 5, 7]].abs().min(1).values.gt(0).all()


@pytest.mark.parametrize("pos", ["sincos", "rope"])
def test_shapes_at_two_resolutions_and_a_clear_error_on_a_bad_one(pos):
    net = perturb_zero_layers(MMDiT((1, 28, 28), vocab_size=VOCAB, size="tiny", patch=4, positions=pos)).eval()
    text = torch.tensor([[3, 4, PAD], [9, PAD, PAD]])
    with torch.no_grad():
        for shape in ((28, 28), (16, 20)):
            out = net(torch.randn(2, 1, *shape), torch.rand(2), text)
            assert out.shape == (2, 1, *shape) and torch.isfinite(out).all() and out.abs().max() > 0
    with pytest.raises(ValueError, match="patch size 4 needs a height and width divisible by 4, got 28x18"):
        net(torch.randn(2, 1, 28, 18), torch.rand(2), text)
    with pytest.raises(ValueError, match=r"text must be integer token ids of shape \(2, L\)"):
        net(torch.randn(2, 1, 28, 28), torch.rand(2), text.float())
    with pytest.raises(ValueError, match="vocabulary of at least 2 tokens"):
        MMDiT((1, 28, 28), vocab_size=1)
