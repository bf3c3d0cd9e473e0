"""Sharded training (train.distributed=fsdp, FSDP2 through Accelerate): refused on CPU, where Accelerate 1.15 does
not shard, and -- with Accelerate told to shard on CPU as it does on a GPU -- two gloo processes train a DiT to
the weights of one process and of DDP, checkpoint the gathered full state, and resume exactly."""

import json
import os
import subprocess

import pytest
import torch
from safetensors.torch import load_file
from test_dit import engine_overrides
from test_train import TORCHRUN, assert_same, free_port, needs_torchrun, train_two_processes, weights

from flowforge import load, load_config
from flowforge.config import ConfigError
from flowforge.errors import UserError
from flowforge.runs import latest_checkpoint
from flowforge.train import train


def test_fsdp_is_refused_on_cpu_and_for_a_model_without_transformer_blocks(tmp_path, tiny):
    with pytest.raises(UserError, match=r"train.distributed=fsdp: Accelerate \S+ shards only on GPUs .* on CPU it "
                                        r"ignores its FSDP plugin and trains with DDP"):
        train(load_config("configs/fm-digits.yaml", engine_overrides(tiny, tmp_path / "run", **{
            "train.distributed": "fsdp"})), progress=False)
    with pytest.raises(ConfigError, match="shards the transformer backbones .* model.net.name=mlp"):
        train(load_config("configs/rf-moons.yaml", tiny(tmp_path / "mlp", **{"train.distributed": "fsdp"})),
              progress=False)
    assert os.environ.get("ACCELERATE_USE_FSDP") is None  # refused before Accelerate could set it for the process


# Accelerate 1.15 sets DistributedType.FSDP in AcceleratorState's GPU branch only; on CPU (MULTI_CPU) it ignores the
# plugin. This does for MULTI_CPU what that branch does (state.py: distributed_type, the plugin's mixed precision,
# fsdp_plugin), so the engine's sharded path runs here as it would on GPUs: fully_shard itself supports gloo.
CPU_FSDP = """
import sys
import accelerate.state
from accelerate.utils import DistributedType
import flowforge.train.sharding as sharding

real_init = accelerate.state.AcceleratorState.__init__

def init(self, *args, fsdp_plugin=None, **kwargs):
    real_init(self, *args, fsdp_plugin=fsdp_plugin, **kwargs)
    if fsdp_plugin is not None and self.distributed_type == DistributedType.MULTI_CPU:
        self.distributed_type = DistributedType.FSDP
        if self._mixed_precision != "no":
            fsdp_plugin.set_mixed_precision(self._mixed_precision)
        self.fsdp_plugin = fsdp_plugin

accelerate.state.AcceleratorState.__init__ = init
sharding.accelerate_shards_on = lambda device: True
from flowforge.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def train_sharded(tmp_path, overrides: list[str], resume: bool = False) -> None:
    script = tmp_path / "cpu_fsdp.py"
    script.write_text(CPU_FSDP)
    proc = subprocess.run([TORCHRUN, "--nproc_per_node", "2", "--master_port", str(free_port()), str(script), "train",
                           "configs/fm-digits.yaml", *overrides, "train.distributed=fsdp",
                           *(["--resume"] if resume else [])],
                          capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]


def updates(run_dir) -> dict[str, torch.Tensor]:
    """Each model weight's change between the run's last two checkpoints (float64)."""
    before, after = (load_file(d / "model.safetensors") for d in sorted((run_dir / "checkpoints").glob("step-*"))[-2:])
    return {key: after[key].double() - before[key].double() for key in after}


def assert_same_updates(sharded, one, rel: float, per_tensor: bool = True) -> None:
    """The sharded run moved the weights as one process did, to ``rel`` of the move's size: all weights together,
    and each tensor alone with ``per_tensor``. Weights themselves agree even when neither run trained (a few AdamW
    steps move a weight ~1e-3); their updates do not."""
    assert sharded.keys() == one.keys()
    moved = {key: float(d.norm()) for key, d in one.items()}
    assert sum(size > 0 for size in moved.values()) > 0.9 * len(moved), moved  # the steps moved the weights
    together = torch.cat([d.flatten() for d in one.values()])
    err = float((torch.cat([sharded[key].flatten() for key in one]) - together).norm())
    assert err <= rel * float(together.norm()), (err, float(together.norm()))
    for key, d in one.items() if per_tensor else ():
        err = float((sharded[key] - d).norm())
        assert err <= rel * moved[key] if moved[key] > 0 else err == 0, (key, err, moved[key])


def logged(run_dir) -> list[float]:
    """Every train record's loss and gradient norm, in order."""
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r[key] for r in records if r.get("kind", "train") == "train" for key in ("loss", "grad_norm")]


@pytest.mark.slow
@needs_torchrun
def test_fsdp_on_two_processes_matches_one_process_and_ddp_and_resumes_exactly(tmp_path, tiny):
    # rotary positions and checkpointed blocks: FSDP gathers a block's weights again for its recomputation
    extra = {"model.net.positions": "rope", "model.net.checkpoint": "true", "train.steps": 4, "train.ckpt_every": 2,
             "train.log_every": 2}
    train_sharded(tmp_path, engine_overrides(tiny, tmp_path / "fsdp", **extra))
    train_two_processes("configs/fm-digits.yaml", engine_overrides(tiny, tmp_path / "ddp", **extra))
    train(load_config("configs/fm-digits.yaml", engine_overrides(tiny, tmp_path / "one", **extra)), progress=False)
    fsdp = latest_checkpoint(tmp_path / "fsdp")
    state = json.loads((fsdp / "state.json").read_text())
    assert state["world_size"] == 2 and state["distributed"] == "fsdp" and len(state["rng"]) == 2
    assert state["engine"]["optimizer"] == "AdamW (foreach)"  # clipped by the DTensor-aware clip_grad_norm_
    # the gathered checkpoint holds every full tensor: the same keys and shapes as one process's
    assert_same(weights(latest_checkpoint(tmp_path / "one")), weights(fsdp), exact=False)
    assert_same(weights(latest_checkpoint(tmp_path / "ddp")), weights(fsdp), exact=False)
    # and each weight moved as it did in one process and in DDP over the last two steps
    assert_same_updates(updates(tmp_path / "fsdp"), updates(tmp_path / "one"), rel=1e-3)
    assert_same_updates(updates(tmp_path / "fsdp"), updates(tmp_path / "ddp"), rel=1e-3)
    # 2 sharded steps, then 2 more resumed from the gathered checkpoint: the uninterrupted run, bit for bit
    train_sharded(tmp_path, engine_overrides(tiny, tmp_path / "split", **{**extra, "train.steps": 2}))
    train_sharded(tmp_path, engine_overrides(tiny, tmp_path / "split", **extra), resume=True)
    assert_same(weights(fsdp), weights(latest_checkpoint(tmp_path / "split")))
    # Adam hides a constant factor on the gradients; the logged loss and global gradient norm do not
    assert logged(tmp_path / "fsdp") == pytest.approx(logged(tmp_path / "one"), rel=1e-5)
    # the end-of-run picture was drawn from the gathered EMA, and the run loads like any other
    assert (tmp_path / "fsdp/samples/step-0000004.png").is_file()
    assert load(tmp_path / "fsdp").sample(2, steps=2).shape == (2, 1, 8, 8)


@pytest.mark.slow
@needs_torchrun
@pytest.mark.filterwarnings("ignore:train.precision=bf16 on a CPU without native bf16")  # emulated here (AVX2)
def test_fsdp_trains_the_mmdit_in_bf16_as_one_process_does(tmp_path, tiny):
    # MMDiT's joint blocks as the units, bf16: blocks compute on bf16 copies of the gathered weights under autocast,
    # gradients are reduced in float32, and the checkpoint keeps float32 weights, EMA and moments. bf16 rounds
    # differently than one process's autocast does, so the agreement is bf16's, not float32's
    from test_text import text_overrides

    extra = {"train.steps": 4, "train.ckpt_every": 2, "train.log_every": 2, "train.precision": "bf16"}
    train_sharded(tmp_path, text_overrides(tiny, tmp_path / "fsdp", **extra))
    train(load_config("configs/fm-digits.yaml", text_overrides(tiny, tmp_path / "one", **extra)), progress=False)
    fsdp, one = weights(latest_checkpoint(tmp_path / "fsdp")), weights(latest_checkpoint(tmp_path / "one"))
    for part in fsdp:
        assert {t.dtype for t in fsdp[part].values() if t.is_floating_point()} == {torch.float32}, part
        assert fsdp[part].keys() == one[part].keys()
    # bf16 rounds differently in the two: their updates (steps 3 and 4, ~2e-3 a weight at lr 1e-3) agree to bf16's
    # precision, not to float32's; a sharded run that did not train fails, where a weight tolerance would not
    # measured: 0.036 of the update over all weights (the time embedding's the least alike, 0.48 of its own)
    assert_same_updates(updates(tmp_path / "fsdp"), updates(tmp_path / "one"), rel=0.1, per_tensor=False)
    assert logged(tmp_path / "fsdp") == pytest.approx(logged(tmp_path / "one"), rel=1e-2)
