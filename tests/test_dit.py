"""The DiT backbone and its parts: adaLN-Zero, 2-D positions (sin-cos, RoPE), QK-norm, fused attention,
gradient checkpointing, input checks, and a tiny DiT through the training engine with exact resume."""

import doctest
import json
import math

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from flowforge import load_config
from flowforge.config import ConfigError
from flowforge.nets import attention, dit, positions, rope
from flowforge.nets.attention import Attention
from flowforge.nets.dit import DIT_SIZES, DiT
from flowforge.nets.positions import grid_positions, sincos_2d
from flowforge.nets.rope import RotaryEmbedding2d
from flowforge.runs import latest_checkpoint
from flowforge.train import train
from conftest import perturb_zero_layers
from test_train import assert_two_processes_match_one, needs_torchrun


def rotation_for(net, height, width):
    return net.rope(grid_positions(height // net.patch, width // net.patch, net.reference)) if net.rope else None


def test_doctests():
    for module in (attention, dit, positions, rope):
        assert doctest.testmod(module).failed == 0, module.__name__


def test_sizes_registry_has_the_papers_shapes():
    # Peebles & Xie (2023), Table 1: (layers, hidden size, heads)
    assert {k: (s.depth, s.hidden, s.heads) for k, s in DIT_SIZES.items() if k in ("S", "B", "L", "XL")} == {
        "S": (12, 384, 6), "B": (12, 768, 12), "L": (24, 1024, 16), "XL": (28, 1152, 16)}
    params = {k: sum(p.numel() for p in DiT((1, 28, 28), size=k, time_embed_dim=128, num_classes=10).parameters())
              for k in ("tiny", "small")}
    assert params == {"tiny": 320_900, "small": 1_849_988}  # small: the 1.76M-parameter U-Net of fm-mnist-cpu


@pytest.mark.parametrize("pos", ["sincos", "rope"])
@pytest.mark.parametrize("qk_norm", [False, True])
def test_adaln_zero_every_block_is_the_identity_and_the_output_is_zero(pos, qk_norm):
    torch.manual_seed(0)
    net = DiT((1, 8, 8), size="tiny", patch=2, qk_norm=qk_norm, positions=pos, num_classes=10)
    x, t, y = torch.randn(3, 1, 8, 8), torch.rand(3), torch.tensor([0, 4, 10])
    assert net(x, t, y).abs().max().item() == 0.0
    assert net(torch.randn(2, 1, 12, 6), torch.rand(2)).abs().max().item() == 0.0  # at another resolution too
    tokens, c = torch.randn(3, 16, 64), net.embed(t, y)
    rotation = rotation_for(net, 8, 8)
    for block in net.blocks:
        assert torch.equal(block(tokens, c, rotation), tokens)
    # not vacuous: the same blocks with non-zero modulation change the tokens, and the output depends on t and y
    perturb_zero_layers(net)
    with torch.no_grad():
        assert (net.blocks[0](tokens, c, rotation) - tokens).abs().mean() > 1e-2
        out = net(x, t, y)
        assert (out - net(x, t.flip(0), y)).abs().mean() > 1e-3 * out.abs().mean()
        assert (out - net(x, t)).abs().mean() > 1e-3 * out.abs().mean()
        assert torch.equal(net(x, t), net(x, t, torch.full((3,), 10)))  # y=None is the null label


def test_examples_are_independent_within_a_batch_at_any_resolution():
    torch.manual_seed(1)
    for pos in ("sincos", "rope"):
        net = perturb_zero_layers(DiT((1, 8, 8), size="tiny", patch=2, positions=pos, num_classes=10)).eval()
        for shape in ((8, 8), (12, 6), (4, 16)):
            x, t, y = torch.randn(4, 1, *shape), torch.rand(4), torch.tensor([1, 10, 4, 4])
            with torch.no_grad():
                batch = net(x, t, y)
                single = torch.cat([net(x[i:i + 1], t[i:i + 1], y[i:i + 1]) for i in range(4)])
            assert batch.shape == x.shape and batch.abs().max() > 0
            torch.testing.assert_close(batch, single, rtol=1e-4, atol=1e-5)


def test_rope_scores_depend_only_on_relative_position():
    torch.manual_seed(2)
    rope_ = RotaryEmbedding2d(16)
    q, k = torch.randn(40, 16), torch.randn(40, 16)
    pos = 10 * torch.rand(40, 2)

    def scores(pq, pk):
        return rope_(pq)(q) @ rope_(pk)(k).T  # (L, L), |entries| up to ~|q||k| = 16

    base = scores(pos, pos)
    for offset in ([3.0, -7.0], [2.5, 11.25], [-20.0, 0.0]):
        shifted = pos + torch.tensor(offset)
        assert (scores(shifted, shifted) - base).abs().max() < 2e-5  # float32 angles: measured <= 8e-6 of scores up to 14
    # not vacuous: shifting the queries alone, or along one axis only, changes the scores
    assert (scores(pos + torch.tensor([3.0, -7.0]), pos) - base).abs().max() > 1.0
    assert (scores(pos + torch.tensor([0.0, 1.0]), pos) - base).abs().max() > 0.1
    assert (scores(pos + torch.tensor([1.0, 0.0]), pos) - base).abs().max() > 0.1
    # and in the attention layer, QK-norm included
    attn = Attention(64, heads=4, qk_norm=True)
    x = torch.randn(2, 40, 64)
    with torch.no_grad():
        moved = attn.scores(x, rope_(pos + torch.tensor([5.0, -3.5])))
        assert (moved - attn.scores(x, rope_(pos))).abs().max() < 2e-5


def test_rope_is_the_complex_rotation_of_each_axis():
    """Pair k of the row half is (x_k, x_{k+d/4}) multiplied by exp(i row theta_k); the column half likewise."""
    torch.manual_seed(3)
    d, base = 16, 10000.0
    x, pos = torch.randn(7, d, dtype=torch.float64), 5 * torch.rand(7, 2)
    out = RotaryEmbedding2d(d, base)(pos)(x.float()).double()
    theta = base ** (-torch.arange(d // 4, dtype=torch.float64) / (d // 4))
    for axis in (0, 1):
        half = x[:, axis * d // 2:(axis + 1) * d // 2]
        z = torch.complex(half[:, :d // 4], half[:, d // 4:]) * torch.exp(1j * pos[:, axis:axis + 1].double() * theta)
        expected = torch.cat([z.real, z.imag], dim=1)
        torch.testing.assert_close(out[:, axis * d // 2:(axis + 1) * d // 2], expected, rtol=0, atol=1e-5)
    assert torch.allclose(out.norm(dim=1), x.norm(dim=1), atol=1e-5)  # a rotation keeps norms


def dit_sincos_reference(embed_dim, grid_size):
    """facebookresearch/DiT models.py get_2d_sincos_pos_embed, verbatim in numpy."""
    def one_d(dim, pos):
        omega = 1.0 / 10000 ** (np.arange(dim // 2, dtype=np.float64) / (dim / 2.0))
        out = np.einsum("m,d->md", pos.reshape(-1), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)

    grid = np.meshgrid(np.arange(grid_size, dtype=np.float32), np.arange(grid_size, dtype=np.float32))
    return np.concatenate([one_d(embed_dim // 2, grid[0]), one_d(embed_dim // 2, grid[1])], axis=1)


def test_sincos_tables_at_two_resolutions_agree_where_they_should():
    """Positions are measured in patches of the reference grid (the training resolution), so the table at an
    h x w grid is the reference-positions table sampled at (i H0 / h, j W0 / w): where a coarser grid divides the
    finer one, it *is* the finer table at every (H / h)-th row and (W / w)-th column, exactly."""
    dim, ref = 64, (14, 14)  # DiT-tiny/2 on 28x28 MNIST
    full = sincos_2d(grid_positions(14, 14, ref), dim).reshape(14, 14, dim)
    # at the reference resolution: DiT's table, with the row and column halves in the other order
    theirs = torch.from_numpy(dit_sincos_reference(dim, 14)).float()
    torch.testing.assert_close(full.reshape(196, dim), torch.cat([theirs[:, dim // 2:], theirs[:, :dim // 2]], 1),
                               rtol=0, atol=1e-6)
    half = sincos_2d(grid_positions(7, 7, ref), dim).reshape(7, 7, dim)  # 14x14 px images
    assert torch.equal(half, full[::2, ::2])
    double = sincos_2d(grid_positions(28, 28, ref), dim).reshape(28, 28, dim)  # 56x56 px images
    assert torch.equal(double[::2, ::2], full)
    wide = sincos_2d(grid_positions(7, 14, ref), dim).reshape(7, 14, dim)  # 14x28 px: halved rows only
    assert torch.equal(wide, full[::2, :])
    # the row code depends on the row alone, the column code on the column alone
    assert torch.equal(full[3, :, :dim // 2], full[3, :1, :dim // 2].expand(14, -1))
    assert torch.equal(full[:, 5, dim // 2:], full[:1, 5, dim // 2:].expand(14, -1))
    # and the net adds exactly this table: at init with zero patch embeddings the tokens are the table
    net = DiT((1, 28, 28), size="tiny", patch=2)
    torch.nn.init.zeros_(net.embed_patches.bias), torch.nn.init.zeros_(net.embed_patches.weight)
    seen = {}
    net.blocks[0].register_forward_pre_hook(lambda m, args: seen.update(tokens=args[0]))
    net(torch.randn(1, 1, 14, 14), torch.rand(1))
    assert torch.equal(seen["tokens"][0].reshape(7, 7, dim), half)


def test_qk_norm_bounds_the_attention_logits():
    """With QK-norm every logit obeys |q.k| / sqrt(d) <= |g_q|_max |g_k|_max sqrt(d) (= 4 here, gains at 1) for
    inputs of any scale; without it the logits grow as the square of the input scale."""
    torch.manual_seed(4)
    x = torch.randn(2, 32, 64)
    with torch.no_grad():
        normed, plain = Attention(64, heads=4, qk_norm=True), Attention(64, heads=4, qk_norm=False)
        plain.load_state_dict(normed.state_dict(), strict=False)  # the same projections
        rot = RotaryEmbedding2d(16)(10 * torch.rand(32, 2))
        for r in (None, rot):
            small, large = normed.scores(x, r), normed.scores(1e3 * x, r)
            assert small.abs().max() <= 4.0 and large.abs().max() <= 4.0
            # the same up to the projections' biases, which tilt q and k at scale 1 and not at 1e3 (measured 1.02)
            assert large.abs().max() / small.abs().max() < 1.1
            p_small, p_large = plain.scores(x, r).abs().max(), plain.scores(1e3 * x, r).abs().max()
            assert p_large > 1e5 * p_small and p_large > 1e5  # measured ratio ~1e6: quadratic in the scale
        # the bound scales with trained gains, and still holds at 1e3
        normed.q_norm.weight.mul_(3.0), normed.k_norm.weight.mul_(0.5)
        assert normed.scores(1e3 * x).abs().max() <= 3.0 * 0.5 * 4.0


def naive_attention(q, k, v, mask=None):
    s = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])  # (B, nh, L, L)
    if mask is not None:
        s = s.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else s + mask
    return torch.softmax(s, dim=-1) @ v  # (B, nh, L, d)


@pytest.mark.parametrize("qk_norm, with_rope", [(False, False), (True, True)])
def test_fused_attention_equals_the_naive_softmax(qk_norm, with_rope, monkeypatch):
    torch.manual_seed(5)
    attn = Attention(64, heads=4, qk_norm=qk_norm)
    x = torch.randn(2, 12, 64)
    rot = RotaryEmbedding2d(16)(grid_positions(3, 4)) if with_rope else None
    segment = torch.tensor([0] * 5 + [1] * 7)  # two packed sequences of 5 and 7 tokens
    block_diagonal = segment[:, None] == segment[None, :]  # (L, L) True inside a sequence
    additive = torch.randn(2, 1, 12, 12).masked_fill(~block_diagonal, float("-inf"))
    calls = []
    real = torch.nn.functional.scaled_dot_product_attention
    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", lambda *a, **k: calls.append(1) or real(*a, **k))
    with torch.no_grad():
        q, k, v = attn.project(x, rot)
        for mask in (None, block_diagonal, additive):
            expected = attn.proj(naive_attention(q, k, v, mask).transpose(1, 2).reshape(2, 12, 64))
            assert (attn(x, rot, mask) - expected).abs().max() < 1e-5  # measured <= 2e-7
    assert len(calls) == 3  # the forward went through the fused kernel, once per call
    # a block-diagonal mask keeps the packed sequences apart: each equals its own unpacked run
    with torch.no_grad():
        packed = attn(x, None, block_diagonal)
        apart = torch.cat([attn(x[:, :5]), attn(x[:, 5:])], dim=1)
    assert (packed - apart).abs().max() < 1e-5


def test_attention_rejects_an_integer_mask():
    attn = Attention(16, heads=2)
    with pytest.raises(ValueError, match="boolean or floating point, got torch.int64"):
        attn(torch.randn(1, 4, 16), mask=torch.ones(4, 4, dtype=torch.long))


def test_checkpointed_and_plain_blocks_give_identical_outputs_and_gradients(monkeypatch):
    torch.manual_seed(6)
    kwargs = {"shape": (1, 8, 8), "size": "tiny", "patch": 2, "positions": "rope", "num_classes": 10}
    plain = perturb_zero_layers(DiT(**kwargs, checkpoint=False)).train()
    ckpt = DiT(**kwargs, checkpoint=True).train()
    ckpt.load_state_dict(plain.state_dict())
    forwards = []
    block_forward = dit.DiTBlock.forward

    def counted(self, *args, **kwargs):  # module hooks do not fire in checkpoint's recomputation; count calls
        forwards.append(self in ckpt.blocks)
        return block_forward(self, *args, **kwargs)

    monkeypatch.setattr(dit.DiTBlock, "forward", counted)
    x, t, y = torch.randn(4, 1, 8, 8), torch.rand(4), torch.tensor([0, 3, 10, 9])
    outs, grads = [], []
    for net in (plain, ckpt):
        out = net(x, t, y)
        (out * torch.linspace(-1, 1, out.numel()).reshape(out.shape)).sum().backward()
        outs.append(out.detach())
        grads.append({n: p.grad for n, p in net.named_parameters()})
    assert sum(forwards) == 2 * len(ckpt.blocks)  # each block ran again in the backward pass: recomputed, not stored
    assert torch.equal(outs[0], outs[1])
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        assert torch.equal(grads[0][name], grads[1][name]), name
    assert all(g.abs().max() > 0 for g in grads[0].values())  # every parameter gets a gradient
    forwards.clear()
    with torch.no_grad():
        ckpt(x, t, y)
    ckpt.eval()(x, t, y).sum().backward()
    assert sum(forwards) == 2 * len(ckpt.blocks)  # no recomputation without grad or in eval mode


def test_a_resolution_not_divisible_by_the_patch_is_a_clear_error(tmp_path, tiny):
    with pytest.raises(ValueError, match="patch size 4 needs a height and width divisible by 4, got 30x28"):
        DiT((1, 30, 28), patch=4)
    net = DiT((1, 28, 28), patch=4)
    with pytest.raises(ValueError, match="patch size 4 needs a height and width divisible by 4, got 28x18"):
        net(torch.randn(1, 1, 28, 18), torch.rand(1))
    with pytest.raises(ValueError, match=r"DiT on 1 channels needs x \(B, 1, H, W\)"):
        net(torch.randn(1, 3, 28, 28), torch.rand(1))
    with pytest.raises(ValueError, match="size 'M' is not one of tiny, mini, small, S, B, L, XL"):
        DiT((1, 28, 28), size="M")
    with pytest.raises(ValueError, match="head dimension divisible by 4, got 6"):
        DiT((1, 8, 8), size=dit.DiTSize(depth=1, hidden=12, heads=2), positions="rope")
    # through the config: the digits are 8x8
    over = tiny(tmp_path / "run", **{"data.name": "digits", "model.net.name": "dit", "model.net.patch": 3})
    with pytest.raises(ConfigError, match="model: DiT with patch size 3 needs a height and width divisible by 3, "
                                          "got 8x8"):
        train(load_config("configs/fm-digits.yaml", over), progress=False)
    with pytest.raises(ConfigError, match="model.net.size: got 'M'"):
        load_config("configs/fm-digits.yaml", ["model.net.name=dit", "model.net.size=M"])


def engine_overrides(tiny, run_dir, **extra):
    over = {"data.name": "digits", "model.net.name": "dit", "model.net.size": "tiny", "model.net.patch": 2,
            "model.num_classes": 10, "train.batch_size": 32, "train.warmup_steps": 0, "train.ema_decay": 0.9,
            "train.schedule": "constant", **extra}
    return tiny(run_dir, **over)


def test_tiny_dit_trains_through_the_engine_and_resumes_exactly(tmp_path, tiny):
    # 2N steps in one go == N steps, then resume for N more: model, EMA and optimizer, bit for bit (with
    # rotary positions and checkpointed blocks, the least default of the switches)
    extra = {"model.net.positions": "rope", "model.net.checkpoint": "true", "train.ckpt_every": 4,
             "train.log_every": 2}
    full = train(load_config("configs/fm-digits.yaml", engine_overrides(tiny, tmp_path / "full", **extra,
                                                                         **{"train.steps": 8})), progress=False)
    train(load_config("configs/fm-digits.yaml", engine_overrides(tiny, tmp_path / "split", **extra,
                                                                  **{"train.steps": 4})), progress=False)
    resumed = train(load_config("configs/fm-digits.yaml", engine_overrides(tiny, tmp_path / "split", **extra,
                                                                            **{"train.steps": 8})),
                    resume=True, progress=False)
    assert resumed.step == full.step == 8 and isinstance(full.model.net, DiT) and full.model.net.checkpoint
    for part in ("model", "ema", "optimizer"):
        a = load_file(latest_checkpoint(tmp_path / "full") / f"{part}.safetensors")
        b = load_file(latest_checkpoint(tmp_path / "split") / f"{part}.safetensors")
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), part


def test_tiny_dit_learns_on_digits(tmp_path, tiny):
    # the loss falls from its zero-net value (E|eps - x0|^2 = 1 + E x0^2 on the velocity target)
    result = train(load_config("configs/fm-digits.yaml", engine_overrides(
        tiny, tmp_path / "run", **{"train.steps": 40, "train.lr": 2e-3, "train.log_every": 10,
                                   "model.num_classes": "null"})), progress=False)
    records = [json.loads(line) for line in (tmp_path / "run/metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if r.get("kind", "train") == "train"]
    assert len(losses) == 4 and losses[-1] < 0.8 * losses[0], losses  # measured 1.48, 1.26, 0.99, 0.86
    x = result.model.sample(4, steps=2)
    assert x.shape == (4, 1, 8, 8) and torch.isfinite(x).all()


def test_sampling_at_another_resolution_shifts_the_time_grid(monkeypatch):
    """A DiT flow trained at 8x8 samples at 16x16; the grid is SD3's shift sqrt(256 / 64) = 2 of the uniform one."""
    from flowforge.models import ContinuousFlow
    from flowforge.paths import LinearPath
    from flowforge.solvers import Euler, shift_times, uniform_grid

    net = perturb_zero_layers(DiT((1, 8, 8), size="tiny", patch=2, positions="rope"))
    model = ContinuousFlow(LinearPath(), net, (1, 8, 8)).eval()
    grids = []
    real = Euler.solve

    def spy(self, field, x, times, **kw):
        grids.append(times)
        return real(self, field, x, times, **kw)

    monkeypatch.setattr(Euler, "solve", spy)
    big = model.sample(3, steps=4, shape=(1, 16, 16), generator=torch.Generator().manual_seed(0))
    same = model.sample(3, steps=4, generator=torch.Generator().manual_seed(0))
    assert big.shape == (3, 1, 16, 16) and same.shape == (3, 1, 8, 8) and torch.isfinite(big).all()
    assert torch.allclose(grids[0], shift_times(uniform_grid(4), 2.0)) and torch.equal(grids[1], uniform_grid(4))
    assert grids[0][1] > grids[1][1]  # more pixels: the first step stays nearer the noise
    with pytest.raises(ValueError, match=r"same 1 channel"):
        model.sample(2, steps=2, shape=(3, 8, 8))


def test_cli_samples_a_dit_run_at_another_size(tmp_path, tiny):
    import subprocess
    import sys

    import numpy as np

    train(load_config("configs/fm-digits.yaml", engine_overrides(
        tiny, tmp_path / "run", **{"train.steps": 2, "model.net.positions": "rope", "sample.steps": 2})),
        progress=False)
    cli = [sys.executable, "-m", "flowforge.cli", "sample", str(tmp_path / "run"), "--n", "4"]
    proc = subprocess.run(cli + ["--out", str(tmp_path / "x.npy"), "--size", "12x16"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert np.load(tmp_path / "x.npy").shape == (4, 1, 12, 16)
    proc = subprocess.run(cli + ["--out", str(tmp_path / "y.npy"), "--size", "13x16"], capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "13" in proc.stderr, proc.stderr


def text_engine_overrides(tiny, run_dir, **extra):
    from test_text import text_overrides

    return text_overrides(tiny, run_dir, **extra)


@pytest.mark.filterwarnings("ignore:train.precision=bf16 on a CPU without native bf16")  # emulated here (AVX2)
@pytest.mark.parametrize("overrides", [engine_overrides, text_engine_overrides], ids=["dit", "mmdit"])
def test_bf16_autocast_trains_the_transformers_and_resumes_exactly(tmp_path, tiny, monkeypatch, overrides):
    # train.precision=bf16: attention and the linear layers run in bf16 under the engine's autocast, the weights,
    # EMA and AdamW moments stay float32, and 2N steps equal N steps + resume for N, bit for bit
    import torch.nn.functional as F

    seen = set()
    real = F.scaled_dot_product_attention

    def spy(q, k, v, *args, **kwargs):
        if torch.is_grad_enabled():  # training steps, not the no-grad init pass
            seen.add(q.dtype)
        return real(q, k, v, *args, **kwargs)

    monkeypatch.setattr(F, "scaled_dot_product_attention", spy)
    extra = {"train.precision": "bf16", "train.ckpt_every": 3, "train.log_every": 3, "model.net.positions": "rope"}
    full = train(load_config("configs/fm-digits.yaml", overrides(tiny, tmp_path / "full", **extra,
                                                                 **{"train.steps": 6})), progress=False)
    assert seen == {torch.bfloat16}
    train(load_config("configs/fm-digits.yaml", overrides(tiny, tmp_path / "split", **extra, **{"train.steps": 3})),
          progress=False)
    train(load_config("configs/fm-digits.yaml", overrides(tiny, tmp_path / "split", **extra, **{"train.steps": 6})),
          resume=True, progress=False)
    assert full.ema is not None and next(full.model.parameters()).dtype == torch.float32
    a, b = latest_checkpoint(tmp_path / "full"), latest_checkpoint(tmp_path / "split")
    for part in ("model", "ema", "optimizer"):
        x, y = load_file(a / f"{part}.safetensors"), load_file(b / f"{part}.safetensors")
        assert x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x), part
        assert {t.dtype for t in x.values() if t.is_floating_point()} == {torch.float32}, part
    assert json.loads((a / "state.json").read_text())["engine"]["precision"].startswith("bf16 autocast")
    records = [json.loads(line) for line in (tmp_path / "full/metrics.jsonl").read_text().splitlines()]
    assert all(math.isfinite(r["loss"]) for r in records if "loss" in r)


@pytest.mark.slow
@needs_torchrun
def test_two_processes_train_the_dit_as_one(tmp_path, tiny):
    # DDP over 2 gloo processes with rotary positions and checkpointed blocks (non-reentrant recomputation inside
    # DDP's backward): identical weights on both ranks, equal to one process on the same global batch (to float
    # tolerance: the all-reduce sums in another order), EMA and AdamW moments included
    extra = {"model.net.positions": "rope", "model.net.checkpoint": "true", "train.steps": 6, "train.ckpt_every": 6}
    assert_two_processes_match_one("configs/fm-digits.yaml", lambda run: engine_overrides(tiny, run, **extra),
                                   tmp_path)
