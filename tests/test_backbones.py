"""Every backbone: one forward signature, declared capabilities that the layers above ask instead of naming a net,
the shared conditioning of nets/conditioning.py, and state-dict keys that saved checkpoints still load by."""

import doctest
import inspect

import pytest
import torch
from torch import nn

from flowforge.config import ModelConfig, NetConfig
from flowforge.config.schema import Config
from flowforge.models import NETS, build_model
from flowforge.nets import MLP, Backbone, DiT, MMDiT, UNet, conditioning
from flowforge.nets.dit import DiTBlock
from flowforge.nets.mmdit import JointBlock
from flowforge.train import sharding


def small(name, **kwargs):
    torch.manual_seed(0)
    return {"mlp": lambda: MLP((1, 4, 4), width=16, depth=2, time_embed_dim=8, **kwargs),
            "unet": lambda: UNet((1, 8, 8), channels=8, channel_mult=(1, 2), attention_levels=(), **kwargs),
            "dit": lambda: DiT((1, 8, 8), size="tiny", patch=2, **kwargs),
            "mmdit": lambda: MMDiT((1, 8, 8), vocab_size=10, size="tiny", patch=2, **kwargs)}[name]()


def test_doctests():
    assert doctest.testmod(conditioning).failed == 0


@pytest.mark.parametrize("name", sorted(NETS))
def test_every_registered_net_is_a_backbone_with_the_one_signature_and_its_capabilities(name):
    cls = NETS[name]
    assert issubclass(cls, Backbone)
    assert list(inspect.signature(cls.forward).parameters) == ["self", "x", "t", "cond", "interval"]
    assert cls.shard_unit is None or issubclass(cls.shard_unit, nn.Module)
    assert cls.packs == hasattr(cls, "forward_packed")  # a capability is declared exactly where it is implemented
    assert cls.can_checkpoint == ("checkpoint" in inspect.signature(cls.__init__).parameters)
    assert cls.from_config is not Backbone.from_config and cls.describe is not Backbone.describe


def test_the_declarations_of_the_four_nets():
    assert (DiT.shard_unit, MMDiT.shard_unit, MLP.shard_unit, UNet.shard_unit) == (DiTBlock, JointBlock, None, None)
    assert [c.packs for c in (MLP, UNet, DiT, MMDiT)] == [False, False, True, False]
    assert [c.reads_text for c in (MLP, UNet, DiT, MMDiT)] == [False, False, False, True]
    for name in ("mlp", "unet", "dit"):
        assert not small(name).takes_interval and small(name, interval=True).takes_interval
    assert not small("mmdit").takes_interval


@pytest.mark.parametrize("name", ["mlp", "unet", "dit", "mmdit"])
def test_a_net_refuses_an_input_it_does_not_take(name):
    net = small(name)
    x, t = torch.randn(2, 1, *((4, 4) if name == "mlp" else (8, 8))), torch.rand(2)
    with pytest.raises(ValueError, match="interval"):
        net(x, t, interval=torch.rand(2))
    if name != "mmdit":
        with pytest.raises(ValueError, match="num_classes=None|no class input"):
            net(x, t, torch.tensor([0, 1]))
    if name in ("unet", "dit"):
        labelled = small(name, num_classes=3)
        for wrong in (torch.tensor([0.0, 1.0]), torch.tensor([[0, 1]]), torch.tensor([True, False])):
            with pytest.raises(ValueError, match="integer labels of shape"):
                labelled(x, t, wrong)
        assert labelled(x, t, cond=torch.tensor([0, 3])).shape == x.shape  # 3: the null label


def test_the_null_label_is_the_missing_label():
    net = small("dit", num_classes=3)
    c = net.embed(torch.rand(2), None)
    t = torch.rand(2)
    torch.testing.assert_close(net.embed(t, None), net.embed(t, torch.tensor([3, 3])), rtol=0, atol=0)
    assert c.shape == (2, 64)


def test_conditioning_keeps_the_state_dict_keys_of_saved_checkpoints():
    """Checkpoints written before nets/conditioning.py load by these names (the modules keep their layouts)."""
    keys = set(small("dit", num_classes=3, interval=True).state_dict())
    assert {"time_embed.1.weight", "time_embed.3.bias", "label_embed.weight", "interval_embed.1.weight",
            "interval_embed.3.weight"} <= keys
    assert not any(k.startswith(("time_embed.0", "time_embed.2", "interval_embed.0")) for k in keys)  # no weights
    keys = set(small("unet", num_classes=3, interval=True).state_dict())
    assert {"time_embed.1.weight", "time_embed.3.weight", "label_embed.weight", "interval_embed.3.bias"} <= keys
    keys = set(small("mlp", interval=True).state_dict())
    assert {"time_embed.1.weight", "interval_embed.1.weight"} <= keys and "time_embed.3.weight" not in keys
    assert {"time_embed.1.weight", "time_embed.3.weight", "null_pooled", "embed_tokens.weight"} <= set(
        small("mmdit").state_dict())


@pytest.mark.parametrize("shallow", [False, True])
def test_the_interval_embedding_starts_at_zero_after_the_activation(shallow):
    embed = conditioning.IntervalEmbedding(8, 16, scale=1.0, activation=nn.Tanh, shallow=shallow)
    assert embed(torch.rand(5)).abs().max() == 0  # tanh(0) = 0; with SiLU also 0


class Toy(Backbone):
    """A backbone written only in a test: one file, one registry line."""

    shard_unit = nn.Linear

    def __init__(self, shape, interval=False):
        super().__init__()
        self.shape, self.takes_interval = tuple(shape), interval
        self.lin = nn.Linear(2, 2)

    @classmethod
    def from_config(cls, cfg, shape, time_scale, cond_size, interval=False):
        return cls(shape, interval)

    @staticmethod
    def describe(cfg):
        return "a toy"

    def forward(self, x, t, cond=None, interval=None):
        return self.lin(x)


def test_a_new_backbone_is_one_class_and_one_registry_line(monkeypatch):
    monkeypatch.setitem(NETS, "toy", Toy)
    model = build_model(ModelConfig(net=NetConfig(name="toy")), {"shape": [2], "value_range": [-1, 1]})
    assert isinstance(model.net, Toy) and model.net(torch.randn(3, 2), torch.rand(3)).shape == (3, 2)
    config = Config(model=ModelConfig(net=NetConfig(name="toy")))
    assert sharding.shard_unit(config) is nn.Linear  # train/ asks the net, it names none
    sharding.check_config(config)
    monkeypatch.setattr(Toy, "shard_unit", None)
    with pytest.raises(Exception, match=r"shards the transformer backbones \(model.net.name dit or mmdit\)"):
        sharding.check_config(config)
