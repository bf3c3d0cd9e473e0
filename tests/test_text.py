"""Text conditioning: captions of class names by templates, the word-level tokenizer, caption dropout and
guidance with the empty caption, a text model through the engine (exact resume, saved vocabulary) and
`flowforge sample --prompt`."""

import doctest
import json

import pytest
import torch
from conftest import perturb_zero_layers
from test_train import assert_two_processes_match_one, needs_torchrun
from safetensors.torch import load_file

from flowforge import load_config
from flowforge.cli.main import main
from flowforge.config import ConfigError
from flowforge.errors import RunError
from flowforge.models import ContinuousFlow, captions
from flowforge.models.captions import CLASS_NAMES, TEMPLATES, UNK, Captions, WordTokenizer, words
from flowforge.nets.mmdit import PAD, MMDiT
from flowforge.paths import LinearPath
from flowforge.rng import BatchRandom
from flowforge.runs import latest_checkpoint, load_run
from flowforge.train import train

FASHION = CLASS_NAMES["fashion-mnist"]


def test_doctests():
    assert doctest.testmod(captions).failed == 0


def test_words_and_the_tokenizer():
    assert words("T-shirt/top, centred") == ["t-shirt", "top", "centred"]
    assert words("A photo of an Ankle  boot.") == ["a", "photo", "of", "an", "ankle", "boot"]
    tok = Captions(FASHION).tokenizer
    # "shirt" and "t-shirt" stay two words: classes 6 and 0 are told apart
    assert {"shirt", "t-shirt", "top", "ankle", "boot"} <= set(tok.vocabulary)
    ids = tok.encode(["ankle boot", "a photo of a sneaker", ""])
    assert ids.shape == (3, 5) and (ids[2] == PAD).all() and (ids[0, 2:] == PAD).all()
    assert tok.encode(["a fluffy sneaker"])[0, 1] == UNK  # an unknown word among known ones
    assert tok.encode(["a zebra"])[0].tolist() == [tok.ids["a"], UNK]
    with pytest.raises(ValueError, match=r"prompt 'zebra': none of its words.*which is a, an, ankle, bag, boot"):
        tok.encode(["zebra"])


def test_the_heldout_template_is_never_drawn_in_training_and_every_other_one_is():
    caps = Captions(FASHION)  # held out: the last template, "a centred picture of a {name}"
    assert caps.heldout == len(TEMPLATES) - 1 and caps.caption(9, caps.heldout) == "a centred picture of a ankle boot"
    # every word of the held-out captions is known: the phrasing is new, the words are not
    assert set(words(caps.templates[caps.heldout])) <= set(caps.tokenizer.vocabulary) | {"name"}
    labels = torch.arange(10).repeat(200)  # (2000,)
    tokens = caps.training_tokens(labels, BatchRandom(torch.Generator().manual_seed(0), 2000, 0, 2000))
    drawn = {(int(k), j) for k, row in zip(labels, tokens)
             for j in range(len(TEMPLATES)) if torch.equal(row, caps.table[k, j])}
    assert {j for _, j in drawn} == set(range(len(TEMPLATES) - 1))  # all training templates, never the held-out one
    # deterministic and split-invariant: the rows of a process are those rows of the single-process draw
    again = caps.training_tokens(labels[500:1000], BatchRandom(torch.Generator().manual_seed(0), 2000, 500, 1000))
    assert torch.equal(again, tokens[500:1000])
    # "no label" (10) is the empty caption; label_tokens uses one template
    assert (caps.training_tokens(torch.full((4,), 10), BatchRandom.local(4)) == PAD).all()
    assert torch.equal(caps.label_tokens(torch.tensor([7]), 2)[0, :5], caps.tokenizer.encode(["a photo of a sneaker"])[0])
    with pytest.raises(ValueError, match="heldout template 8 is not an index of the 8 templates"):
        Captions(FASHION, heldout=8)
    with pytest.raises(ValueError, match=r"must contain \{name\} exactly once"):
        Captions(FASHION, templates=["a photo"])


class Spy(torch.nn.Module):
    """A text 'network' that records what it is given and answers with a function of (x, t, text)."""

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(()))
        self.seen = []

    def forward(self, x, t, text):
        self.seen.append(text)
        return self.scale * (x + t[:, None, None, None] + text.float().sum(1)[:, None, None, None])


def test_caption_dropout_gives_the_empty_caption_and_guidance_mixes_it_in():
    caps = Captions(FASHION)
    model = ContinuousFlow(LinearPath(), Spy(), (1, 4, 4), num_classes=10, label_dropout=0.5, captions=caps)
    labels = torch.arange(10).repeat(40)
    model.loss(torch.randn(400, 1, 4, 4), BatchRandom(torch.Generator().manual_seed(1), 400, 0, 400), labels)
    text = model.net.seen[-1]
    empty = (text == PAD).all(1)
    assert 0.4 < empty.float().mean() < 0.6  # dropped with probability 0.5
    assert all(any(torch.equal(row, caps.table[k, j]) for j in caps.train_templates)
               for k, row in zip(labels[~empty], text[~empty]))
    # guidance: uncond + w (cond - uncond), the unconditional pass on the empty caption
    x, t = torch.randn(3, 1, 4, 4), torch.rand(3)
    cond = model.conditioning(None, 3, x.device, guidance=3.0, prompts="a photo of a sneaker")
    guided = model.guided_output(x, t, cond)
    c_out = model.net_output(x, t, cond.text)
    u_out = model.net_output(x, t, torch.full_like(cond.text, PAD))
    torch.testing.assert_close(guided, u_out + 3.0 * (c_out - u_out))
    assert (c_out - u_out).abs().min() > 0
    # no prompt and no labels: the empty caption, and guidance has nothing to do (one pass)
    cond = model.conditioning(None, 3, x.device, guidance=3.0)
    assert cond.guidance == 1.0 and (cond.text == PAD).all()
    with pytest.raises(ValueError, match="labels or prompts, not both"):
        model.conditioning(torch.arange(3), 3, x.device, prompts="bag")
    plain = ContinuousFlow(LinearPath(), Spy(), (1, 4, 4), num_classes=10)
    with pytest.raises(ValueError, match="prompts need a text-conditioned model"):
        plain.conditioning(None, 3, x.device, prompts="bag")


def test_mmdit_flow_samples_from_prompts_and_its_null_caption_ignores_the_label():
    net = perturb_zero_layers(MMDiT((1, 8, 8), vocab_size=Captions(FASHION).tokenizer.size, size="tiny", patch=2))
    model = ContinuousFlow(LinearPath(), net, (1, 8, 8), num_classes=10, label_dropout=0.1,
                           captions=Captions(FASHION)).eval()
    def gen():
        return torch.Generator().manual_seed(0)

    a = model.sample(4, steps=3, prompts="ankle boot", guidance=2.0, generator=gen())
    b = model.sample(4, steps=3, prompts=["ankle boot", "a ankle boot  ", "ankle boot", "ANKLE BOOT"],
                     guidance=2.0, generator=gen())
    torch.testing.assert_close(a[[0, 2, 3]], b[[0, 2, 3]])
    c = model.sample(4, steps=3, prompts="bag", guidance=2.0, generator=gen())
    assert (a - c).abs().mean() > 1e-3 and torch.isfinite(a).all()
    # the unconditional model: the same whatever label would have been dropped
    x, t = torch.randn(4, 1, 8, 8), torch.rand(4)
    null = model.guided_output(x, t, model.conditioning(None, 4, x.device))
    torch.testing.assert_close(null, model.net_output(x, t, torch.full((4, 6), PAD)))


def text_overrides(tiny, run_dir, **extra):
    over = {"data.name": "digits", "model.net.name": "mmdit", "model.net.size": "tiny", "model.net.patch": 2,
            "model.num_classes": 10, "model.text.captions": "class-names", "train.batch_size": 32,
            "train.warmup_steps": 0, "train.ema_decay": 0.9, "train.schedule": "constant", "sample.steps": 2, **extra}
    return tiny(run_dir, **over)


def test_a_text_model_trains_through_the_engine_resumes_exactly_and_keeps_its_vocabulary(tmp_path, tiny):
    extra = {"model.net.positions": "rope", "train.ckpt_every": 4, "train.log_every": 2}
    full = train(load_config("configs/fm-digits.yaml", text_overrides(tiny, tmp_path / "full", **extra,
                                                                       **{"train.steps": 8})), progress=False)
    train(load_config("configs/fm-digits.yaml", text_overrides(tiny, tmp_path / "split", **extra,
                                                                **{"train.steps": 4})), progress=False)
    train(load_config("configs/fm-digits.yaml", text_overrides(tiny, tmp_path / "split", **extra,
                                                                **{"train.steps": 8})), resume=True, progress=False)
    assert isinstance(full.model.net, MMDiT) and full.model.captions is not None
    for part in ("model", "ema", "optimizer"):
        a = load_file(latest_checkpoint(tmp_path / "full") / f"{part}.safetensors")
        b = load_file(latest_checkpoint(tmp_path / "split") / f"{part}.safetensors")
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), part
    saved = json.loads((tmp_path / "full/vocabulary.json").read_text())
    assert saved["vocabulary"] == list(full.model.captions.tokenizer.vocabulary) and "seven" in saved["vocabulary"]
    # loading uses the saved word list, bound to the checkpoint: a reordered list is refused, not read with the
    # wrong embeddings
    saved["vocabulary"] = saved["vocabulary"][::-1]
    (tmp_path / "full/vocabulary.json").write_text(json.dumps(saved))
    with pytest.raises(RunError, match="not the vocabulary the weights were trained with"):
        load_run(tmp_path / "full")


def test_cli_samples_a_text_run_from_a_prompt_and_refuses_one_elsewhere(tmp_path, tiny, capsys):
    import numpy as np

    train(load_config("configs/fm-digits.yaml", text_overrides(tiny, tmp_path / "text", **{"train.steps": 2})),
          progress=False)
    base = ["sample", str(tmp_path / "text"), "--n", "4", "--steps", "2"]
    assert main(base + ["--out", str(tmp_path / "a.npy"), "--prompt", "seven", "--guidance", "2"]) == 0
    assert main(base + ["--out", str(tmp_path / "b.png"), "--prompt", "a photo of a seven"]) == 0
    assert np.load(tmp_path / "a.npy").shape == (4, 1, 8, 8) and (tmp_path / "b.png").is_file()
    capsys.readouterr()
    assert main(base + ["--out", str(tmp_path / "c.npy"), "--prompt", "zebra"]) == 2
    err = capsys.readouterr().err
    assert "prompt 'zebra': none of its words" in err and "Traceback" not in err and len(err.splitlines()) == 1
    train(load_config("configs/fm-digits.yaml", tiny(tmp_path / "plain", **{"data.name": "digits", "train.warmup_steps": 0,
                                                                           "train.steps": 2})), progress=False)
    assert main(["sample", str(tmp_path / "plain"), "--n", "2", "--out", str(tmp_path / "d.npy"),
                 "--prompt", "ankle boot"]) == 2
    err = capsys.readouterr().err
    assert "--prompt 'ankle boot'" in err and "has no text input" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("over, message", [
    ({"model.text.captions": "none"}, "model.net.name=mmdit reads captions: set model.text.captions=class-names"),
    ({"model.net.name": "dit"}, "model.text.captions needs a backbone that reads text"),
    ({"model.num_classes": "null"}, "makes captions of the data set's labels: set model.num_classes"),
    ({"model.text.class_names": "[a, b]"}, "has 2 names for model.num_classes=10"),
    ({"data.name": "moons", "model.num_classes": 2}, "data set 'moons' has no built-in class names"),
])
def test_text_settings_that_do_not_fit_are_config_errors(tmp_path, tiny, over, message):
    with pytest.raises(ConfigError, match=message):
        train(load_config("configs/fm-digits.yaml", text_overrides(tiny, tmp_path / "run", **over)), progress=False)


def test_unknown_vocabulary_words_are_refused_when_building():
    with pytest.raises(ValueError, match="distinct words"):
        WordTokenizer(["a", "a"])


@pytest.mark.slow
@needs_torchrun
def test_two_processes_train_the_text_model_as_one(tmp_path, tiny):
    # Each rank draws its rows' templates from the global batch's stream, and every MMDiT weight takes part in
    # the loss (the last text stream keeps no unused output layers), so DDP runs and matches one process.
    extra = {"train.steps": 6, "train.ckpt_every": 6}
    assert_two_processes_match_one("configs/fm-digits.yaml", lambda run: text_overrides(tiny, run, **extra),
                                   tmp_path)


def test_the_ema_copy_leaves_the_caption_ids_alone():
    """The EMA averages buffers too; integer token ids averaged at decay 0.9 would truncate (11 of 30 changed in
    50 updates when they were buffers), so the caption table is kept out of the module's buffers."""
    from flowforge.train.ema import make_ema

    caps = Captions(FASHION)
    model = ContinuousFlow(LinearPath(), Spy(), (1, 4, 4), num_classes=10, captions=caps)
    ema = make_ema(model, "constant", 0.9)
    for step in range(1, 51):
        ema.update(model, step)
    assert torch.equal(ema.module.captions.table, caps.table)
    assert not any(b.dtype == torch.long for b in model.buffers())
