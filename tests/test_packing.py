"""Packing without padding: document-masked attention, the packed DiT forward and backward against per-image
runs, the pack sampler, multi-resolution data and the loss on packs through the training engine."""

import doctest
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from conftest import perturb_zero_layers
from safetensors.torch import load_file

from flowforge import load_config
from flowforge.config import ConfigError
from flowforge.data import DataError
from flowforge.data import packing as data_packing
from flowforge.data.packing import PackSampler, check_resolutions, patch_sizes, resize_images
from flowforge.models import build_model
from flowforge.models.continuous import ContinuousFlow
from flowforge.models.objectives import Regression
from flowforge.nets import packing
from flowforge.nets.attention import attend
from flowforge.nets.dit import DiT
from flowforge.nets.packing import DocumentMask
from flowforge.paths import LinearPath
from flowforge.rng import BatchRandom
from flowforge.runs import latest_checkpoint
from flowforge.train import train

SHAPES = ((14, 14), (21, 21), (28, 28))  # three resolutions at patch 7: 4, 9 and 16 tokens


def test_doctests():
    for module in (packing, data_packing):
        assert doctest.testmod(module).failed == 0, module.__name__


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


# --------------------------------------------------------------------------- data: resizing and the pack sampler


def test_resize_antialiases_when_shrinking_and_keeps_the_range():
    gen = torch.Generator().manual_seed(0)
    stripes = torch.zeros(1, 1, 28, 28)
    stripes[..., ::2] = 1.0  # one-pixel stripes: finer than a 14 px image can show
    small = resize_images(stripes, 12)
    assert small.shape == (1, 1, 12, 12)
    assert (small - 0.5).abs().max() < 0.08  # averaged to grey (measured 0.07, at the border)
    aliased = F.interpolate(stripes, size=(12, 12), mode="bilinear", antialias=False)
    assert (aliased - 0.5).abs().max() == 0.5  # moire: black and white columns, what antialiasing avoids
    x = torch.rand(3, 1, 28, 28, generator=gen) * 2 - 1
    for size in (14, 21, 56):
        y = resize_images(x, size)
        assert y.shape == (3, 1, size, size) and y.min() >= -1 and y.max() <= 1
    assert resize_images(x, 28) is x


def test_resolutions_are_checked_with_clear_errors():
    assert patch_sizes([14, 21, 28]) == [1, 7]
    assert check_resolutions([28, 14, 21], (1, 28, 28), 7, 64) == [14, 21, 28]
    with pytest.raises(DataError, match=r"\[14, 21, 28\]: 14, 28 px is not divisible by model.net.patch=7|"
                                        r"21 px is not divisible by model.net.patch=2; patch sizes that divide "
                                        r"every resolution: 1, 7"):
        check_resolutions([14, 21, 28], (1, 28, 28), 2, 4096)
    with pytest.raises(DataError, match=r"train.pack_tokens=10 is smaller than one 28x28 image at patch 7 "
                                        r"\(16 tokens\); raise train.pack_tokens to at least 16"):
        check_resolutions([14, 28], (1, 28, 28), 7, 10)
    with pytest.raises(DataError, match="resizes images; this data set holds points"):
        check_resolutions([14], (2,), 1, 100)


def test_pack_sampler_fills_packs_to_the_budget_and_covers_each_epoch_once():
    sampler = PackSampler(500, [14, 21, 28], patch=7, budget=100, seed=3)
    seen, totals = [], []
    for step in range(1, sampler.packs_in_epoch(0) + 1):
        pack = sampler.pack(step)
        tokens = sum(len(g.indices) * (g.resolution // 7) ** 2 for g in pack)
        totals.append(tokens)
        assert tokens <= 100 and [g.resolution for g in pack] == sorted(g.resolution for g in pack)
        seen += [int(i) for g in pack for i in g.indices]
    assert len(seen) == len(set(seen)) and len(seen) > 480  # each image at most once; only the last pack dropped
    assert min(totals) > 100 - 16  # greedy: a pack is closed only when the next image does not fit
    # a function of (seed, step): a new sampler (a resumed run) gives the same packs, also in a later epoch
    later = sampler.packs_in_epoch(0) + 2
    again = PackSampler(500, [14, 21, 28], patch=7, budget=100, seed=3)
    for s in (later, 5):
        assert [(g.resolution, g.indices.tolist()) for g in sampler.pack(s)] == \
               [(g.resolution, g.indices.tolist()) for g in again.pack(s)]
    other = PackSampler(500, [14, 21, 28], patch=7, budget=100, seed=4)
    assert [g.indices.tolist() for g in other.pack(1)] != [g.indices.tolist() for g in sampler.pack(1)]


# --------------------------------------------------------------------------- the loss on packs and the engine


def packed_model(**kwargs):
    torch.manual_seed(0)
    net = perturb_zero_layers(DiT((1, 28, 28), size="tiny", patch=7, positions="rope", num_classes=10))
    return ContinuousFlow(LinearPath(), net, (1, 28, 28), num_classes=10, **kwargs)


def test_packed_loss_equals_the_per_image_losses_with_the_same_draws():
    model = packed_model()
    gen = torch.Generator().manual_seed(1)
    xs = [torch.rand(n, 1, r, r, generator=gen) * 2 - 1 for n, r in ((2, 14), (1, 21), (3, 28))]
    ys = [torch.randint(0, 10, (len(x),), generator=gen) for x in xs]
    loss = model.loss(xs, BatchRandom(torch.Generator().manual_seed(5), 6, 0, 6), ys)
    # the same times, labels and noise, by hand: the mean over images of each image's own regression error
    draws = BatchRandom(torch.Generator().manual_seed(5), 6, 0, 6)
    t = model.objective.time_sampler.sample(draws, model.path, like=xs[0])
    drop = draws.rand((), like=xs[0]) < model.label_dropout
    labels = torch.where(drop, 10, torch.cat(ys))
    errs = []
    for x, t_g, y_g in zip(xs, t.split([2, 1, 3]), labels.split([2, 1, 3])):
        noise = BatchRandom(draws.generator, len(x), 0, len(x)).randn(x.shape[1:])
        xt = model.path.sample(x, noise, t_g)
        target = noise - x  # the linear path's velocity
        errs.append((model.net(xt.x_t, t_g, y_g) - target).square().flatten(1).mean(1))
    torch.testing.assert_close(loss, torch.cat(errs).mean(), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="packs of several resolutions needs a backbone that packs"):
        ContinuousFlow(LinearPath(), model.net, (1, 28, 28), precond=0.5).loss(xs)


def test_single_resolution_loss_is_unchanged_by_packing():
    # the tensor path of loss() does not go through packing: the same value as before this feature, by hand
    model = packed_model()
    x, y = torch.rand(4, 1, 28, 28) * 2 - 1, torch.tensor([1, 2, 3, 4])
    loss = model.loss(x, BatchRandom(torch.Generator().manual_seed(2), 4, 0, 4), y)
    draws = BatchRandom(torch.Generator().manual_seed(2), 4, 0, 4)
    noise = draws.randn((1, 28, 28))
    t = model.objective.time_sampler.sample(draws, model.path, like=x)
    labels = torch.where(draws.rand(()) < model.label_dropout, 10, y)
    pred = model.net(model.path.sample(x, noise, t).x_t, t, labels)
    torch.testing.assert_close(loss, (pred - (noise - x)).square().mean(), rtol=1e-5, atol=1e-6)


def multires_overrides(tiny, run_dir, **extra):
    over = {"data.name": "digits", "data.resolutions": "[4, 6, 8]", "model.net.name": "dit",
            "model.net.size": "tiny", "model.net.patch": 2, "model.num_classes": 10, "train.pack_tokens": 96,
            "train.warmup_steps": 0, "train.ema_decay": 0.9, "train.schedule": "constant", **extra}
    return tiny(run_dir, **over)


def test_packed_training_through_the_engine_learns_and_resumes_exactly(tmp_path, tiny):
    extra = {"train.ckpt_every": 5, "train.log_every": 5, "train.lr": 2e-3}
    full = train(load_config("configs/fm-digits.yaml", multires_overrides(tiny, tmp_path / "full", **extra,
                                                                           **{"train.steps": 30})), progress=False)
    train(load_config("configs/fm-digits.yaml", multires_overrides(tiny, tmp_path / "split", **extra,
                                                                    **{"train.steps": 15})), progress=False)
    train(load_config("configs/fm-digits.yaml", multires_overrides(tiny, tmp_path / "split", **extra,
                                                                    **{"train.steps": 30})),
          resume=True, progress=False)
    for part in ("model", "ema", "optimizer"):
        a = load_file(latest_checkpoint(tmp_path / "full") / f"{part}.safetensors")
        b = load_file(latest_checkpoint(tmp_path / "split") / f"{part}.safetensors")
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), part
    records = [json.loads(line) for line in (tmp_path / "full/metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if r.get("kind", "train") == "train"]
    assert len(losses) == 6 and losses[-1] < 0.8 * losses[0], losses
    for size in ((1, 4, 4), (1, 6, 6), (1, 8, 8)):
        assert full.model.sample(2, steps=2, shape=size).shape == (2, *size)


def test_packed_training_rejects_what_it_cannot_run(tmp_path, tiny):
    with pytest.raises(DataError, match=r"\[4, 6, 8\]: 6 px is not divisible by model.net.patch=4"):
        train(load_config("configs/fm-digits.yaml", multires_overrides(tiny, tmp_path / "a",
                                                                        **{"model.net.patch": 4})), progress=False)
    with pytest.raises(ConfigError, match="needs model.kind=continuous, model.net.name=dit and model.precond=none"):
        train(load_config("configs/fm-digits.yaml", multires_overrides(tiny, tmp_path / "b",
                                                                        **{"model.net.name": "unet"})),
              progress=False)


def test_multires_preset_builds_and_takes_a_pack():
    cfg = load_config("configs/dit-mnist-multires.yaml")
    data = {"shape": [1, 28, 28], "value_range": [-1.0, 1.0], "levels": 256}
    resolutions = check_resolutions(cfg.data.resolutions, (1, 28, 28), cfg.model.net.patch, cfg.train.pack_tokens)
    assert resolutions == [14, 21, 28]
    sampler = PackSampler(1000, resolutions, cfg.model.net.patch, cfg.train.pack_tokens, seed=0)
    images = torch.rand(1000, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    xs, ys = data_packing.pack_batch(sampler.pack(1), images, torch.randint(0, 10, (1000,)))
    assert [x.shape[-1] for x in xs] == [14, 21, 28]
    assert 1024 - 16 < sum(x.shape[0] * (x.shape[-1] // 7) ** 2 for x in xs) <= 1024
    model = build_model(cfg.model, data)
    assert torch.isfinite(model.loss(xs, None, ys))


@pytest.mark.slow
def test_packing_and_checkpointing_benchmarks_quick_runs(tmp_path):
    # benchmarks.packing checks that packed, padded and jagged layouts compute the same function before timing
    root = Path(__file__).resolve().parents[1]
    for module, out in (("benchmarks.packing", tmp_path / "p.json"), ("benchmarks.checkpointing", tmp_path / "c.json")):
        proc = subprocess.run([sys.executable, "-m", module, "--quick", "--out", str(out)], capture_output=True,
                              text=True, timeout=600, check=False, cwd=root)
        assert proc.returncode == 0, proc.stderr[-3000:]
    packed = json.loads((tmp_path / "p.json").read_text())["scenarios"]["mnist-multires"]
    assert set(packed["train_step"]) == {"segments", "jagged", "padded", "equal"}
    assert packed["padding_fraction_avoided"] > 0.3 and packed["packed_over_padded_throughput"] > 0
    ckpt = json.loads((tmp_path / "c.json").read_text())
    assert set(ckpt["rows"]) == {"plain", "checkpointed"} and ckpt["time_ratio"] > 0


def test_packed_pseudo_huber_loss_scales_c_with_each_image():
    torch.manual_seed(0)
    net = perturb_zero_layers(DiT((1, 28, 28), size="tiny", patch=7, positions="rope"))
    model = ContinuousFlow(LinearPath(), net, (1, 28, 28), objective=Regression(loss="pseudo-huber"))
    xs = [torch.rand(2, 1, 14, 14) * 2 - 1, torch.rand(1, 1, 28, 28) * 2 - 1]
    loss = model.loss(xs, BatchRandom(torch.Generator().manual_seed(5), 3, 0, 3))
    draws = BatchRandom(torch.Generator().manual_seed(5), 3, 0, 3)
    t = model.objective.time_sampler.sample(draws, model.path, like=xs[0])
    errs = []
    for x, t_g in zip(xs, t.split([2, 1])):
        noise = BatchRandom(draws.generator, len(x), 0, len(x)).randn(x.shape[1:])
        sq = (model.net(model.path.sample(x, noise, t_g).x_t, t_g) - (noise - x)).square().flatten(1).sum(1)
        c = 0.00054 * x[0].numel() ** 0.5  # the default c of a model of this image's size
        errs.append((sq + c * c).sqrt() - c)
    torch.testing.assert_close(loss, torch.cat(errs).mean(), rtol=1e-5, atol=1e-7)
