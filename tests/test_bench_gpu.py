"""benchmarks/gpu.py on a machine without a GPU: its FLOP count against torch's counter and the DiT paper, its
refusal without CUDA, and its --smoke mode (every section at tiny sizes on the CPU)."""

import json

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from benchmarks import gpu
from flowforge.nets import DiT, DiTSize


@pytest.mark.parametrize("size, shape, patch, mlp_ratio", [
    (DiTSize(depth=2, hidden=32, heads=2), (4, 8, 8), 2, 4.0),
    (DiTSize(depth=3, hidden=48, heads=4), (3, 12, 8), 4, 2.0),
    ("tiny", (1, 16, 16), 2, 4.0)])
def test_flop_count_equals_torch_flop_counter(size, shape, patch, mlp_ratio):
    """The hand count of a DiT forward equals FlopCounterMode's count of every matrix product (attention through
    the math backend, whose two batched products the counter sees; the CPU's fused kernel it does not count)."""
    net = DiT(shape, size=size, patch=patch, num_classes=10, mlp_ratio=mlp_ratio)
    batch = 3
    x, t, y = torch.randn(batch, *shape), torch.rand(batch), torch.randint(0, 10, (batch,))
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter, torch.no_grad():
        net(x, t, y)
    tokens = (shape[1] // patch) * (shape[2] // patch)
    counted = gpu.dit_forward_flops(net.size, tokens, shape[0] * patch * patch, mlp_ratio=mlp_ratio)
    assert counted * batch == counter.get_total_flops()


def test_dit_xl2_count_matches_the_paper():
    """DiT-XL/2 at 256 tokens: the paper's 118.6 GFLOPs (Table 4) are multiply-adds (2 FLOPs each here), less its
    learned-variance output channels, which flowforge's DiT does not predict."""
    counted_macs = gpu.dit_forward_flops("XL", 256, 4 * 2 * 2) / 2
    assert counted_macs / 1e9 == pytest.approx(gpu.DIT_PAPER_GFLOPS["XL"], rel=0.005)


@pytest.mark.parametrize("name, expected", [
    ("NVIDIA H100 80GB HBM3", 989.4), ("NVIDIA H100 PCIe", 756.0), ("NVIDIA H100 NVL", 835.0),
    ("NVIDIA A100-SXM4-80GB", 312.0), ("NVIDIA GeForce GTX 1080", None)])
def test_peak_of_the_card(monkeypatch, name, expected):
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)
    peak, source = gpu.peak_tflops(torch.device("cuda"), None)
    assert peak == expected
    assert (name in source) and (("--peak-tflops" in source) == (expected is None))
    assert gpu.peak_tflops(torch.device("cuda"), 500.0) == (500.0, "--peak-tflops")


def test_refuses_without_cuda(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit, match="PyTorch sees none here") as exit_:
        gpu.main(["--out", str(tmp_path / "gpu.json")])
    assert "--smoke" in str(exit_.value.code)
    assert not (tmp_path / "gpu.json").exists()


def test_cpu_reference_is_the_compare_mnist_row():
    ref = gpu.cpu_reference("fm-mnist-class-cpu")
    row = next(r for r in json.loads((gpu.RESULTS / "compare_mnist.json").read_text())["rows"]
               if r["run"] == "fm-mnist-class-cpu")
    assert ref["fd"] == row["fd"] and ref["train_seconds"] == row["train_seconds"] and ref["steps"] == row["steps"]
    assert gpu.cpu_reference("no-such-run") is None


def _check_rows(rows):
    for r in rows:
        assert "error" not in r, r
        if "skipped" not in r:
            assert r["median_seconds"] > 0 and len(r["seconds"]) >= 1, r


def test_smoke_sections_on_cpu(tmp_path):
    """--smoke of the DiT training, packing and sampling sections: every row measured or skipped with its
    reason, FLOPs and throughput consistent, one results file."""
    out = gpu.main(["--smoke", "--only", "dit_train", "packing", "sampling", "--out", str(tmp_path / "gpu.json")])
    record = json.loads(out.read_text())
    assert record["smoke"] is True and record["device"] == "cpu" and record["peak_bf16_tflops"] is None
    train = record["dit_train"]
    _check_rows(train["rows"])
    measured = [r for r in train["rows"] if "skipped" not in r]
    assert len(measured) == 4 and {r["checkpoint"] for r in measured} == {False, True}
    for r in measured:
        assert r["images_per_s"] == pytest.approx(4 / r["median_seconds"])
        assert r["achieved_tflops"] == pytest.approx(r["tflops_per_step"] / r["median_seconds"])
    assert any("torch.compile" in r.get("skipped", "") for r in train["rows"])
    assert train["profile"]["top_ops"] and sum(op["share"] for op in train["profile"]["top_ops"]) <= 1.0 + 1e-9
    packing = record["packing"]["rows"]
    _check_rows(packing)
    padded = next(r for r in packing if r["row"] == "16x4+64x1 padded")
    assert padded["tokens_computed"] == 5 * 64 and padded["real_tokens"] == 4 * 16 + 64
    sampling = record["sampling"]["rows"]
    _check_rows(sampling)
    assert {r["row"] for r in sampling if "skipped" not in r} == {"unet eager", "dit eager"}


@pytest.mark.slow
def test_smoke_mnist_section_on_cpu(tmp_path):
    """The MNIST section's --smoke: trains the preset's U-Net (tiny) two steps and scores it as the CPU run was
    (minutes on a busy 2-core CPU: the pinned extractor's features of the 10 000 test images)."""
    out = gpu.main(["--smoke", "--only", "mnist_unet", "--out", str(tmp_path / "gpu.json")])
    section = json.loads(out.read_text())["mnist_unet"]
    assert "error" not in section, section
    assert section["steps"] == 2 and section["fd"] > section["fd_floor"] > 0
    assert section["cpu"]["source"] == "benchmarks/results/compare_mnist.json"
