"""The engine's ``on_step`` hook (flowforge.train.train): called once per optimizer step with the model being
trained, after the EMA's update, so an average kept by the hook equals the engine's own."""

import torch

from flowforge import load_config
from flowforge.train import make_ema, train


def test_on_step_sees_every_step_and_an_outside_ema_matches_the_engines(tmp_path, tiny):
    seen, outside = [], {}

    def on_step(model, step):
        seen.append(step)
        if "ema" not in outside:  # made at the first step and copying the weights then, as the engine's is
            outside["ema"] = make_ema(model, "power", 0.999, 0.10)
        outside["ema"].update(model, step)

    cfg = load_config("configs/rf-moons.yaml", tiny(tmp_path / "run", **{"train.ema_schedule": "power",
                                                                         "train.ema_sigma_rel": 0.10}))
    result = train(cfg, progress=False, on_step=on_step)
    assert seen == list(range(1, cfg.train.steps + 1))
    mine, engines = outside["ema"].module.state_dict(), result.ema.state_dict()
    assert mine.keys() == engines.keys()
    for key in mine:
        assert torch.equal(mine[key], engines[key]), key


def test_without_on_step_the_run_is_unchanged(tmp_path, tiny):
    plain = train(load_config("configs/rf-moons.yaml", tiny(tmp_path / "a")), progress=False)
    hooked = train(load_config("configs/rf-moons.yaml", tiny(tmp_path / "b")), progress=False,
                   on_step=lambda model, step: None)
    for (name, a), b in zip(plain.model.state_dict().items(), hooked.model.state_dict().values()):
        assert torch.equal(a, b), name
