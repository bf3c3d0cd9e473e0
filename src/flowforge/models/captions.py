"""Captions from class names: templates, a word-level tokenizer, and the label -> caption table of a text model.

A data set with class labels becomes a captioned one by templates: label 9 of Fashion-MNIST reads
"a photo of a ankle boot", "ankle boot", "a ankle boot, centred", ... The data set itself still yields labels;
the model draws a template per example from the training batch's random stream (:class:`~flowforge.rng.BatchRandom`),
so which caption an example gets is a function of ``(seed, step)``: training stays deterministic, splits over
processes the same way and resumes exactly. One template is held out of training, to measure whether the model
follows a phrasing it never saw (``benchmarks/mmdit_text.py``).

Unknown words: a prompt's words that are not in the vocabulary become ``<unk>`` (a token training never shows,
so a word the model cannot know adds nothing it was taught), instead of failing, because a prompt is free text and
its class name is what matters ("a sneaker, please" works); a prompt with *no* known word is an error that lists
the vocabulary, since the model would then draw from its unconditional distribution while seeming to obey.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch
from torch import Tensor

from ..nets.mmdit import PAD
from ..rng import BatchRandom

UNK = 1  # token id of a word outside the vocabulary
SPECIAL = ("<pad>", "<unk>")  # ids 0 and 1

# Class names of the labelled data sets, in label order.
CLASS_NAMES: dict[str, tuple[str, ...]] = {
    # Xiao, Rasul, Vollgraf (2017), arXiv:1708.07747, Table 1
    "fashion-mnist": ("t-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag",
                      "ankle boot"),
    "mnist": ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"),
    "digits": ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"),
    "cifar10": ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
}

# The built-in templates. The last is held out of training by default: every word of it is in the others, in an
# order none of them has, and it puts the class name after five words as only one training template does.
TEMPLATES: tuple[str, ...] = (
    "{name}",
    "a {name}",
    "a photo of a {name}",
    "a picture of a {name}",
    "an image of a {name}",
    "a {name}, centred",
    "a grey photo of a {name}",
    "a centred picture of a {name}",
)

WORD = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")  # lower-case words; hyphens join ("t-shirt"), other marks split


def words(text: str) -> list[str]:
    """The words of ``text``, lower-cased: ``"T-shirt/top, centred"`` -> ``['t-shirt', 'top', 'centred']``."""
    return WORD.findall(text.lower())


class WordTokenizer:
    """Words <-> token ids: ``<pad>`` = 0, ``<unk>`` = 1, then the vocabulary in sorted order.

    Example:
        >>> tok = WordTokenizer.build(["a photo of a bag", "a bag"])
        >>> tok.vocabulary
        ('a', 'bag', 'of', 'photo')
        >>> tok.encode(["a bag", "a red bag"]).tolist()  # right-padded; 'red' is unknown
        [[2, 3, 0], [2, 1, 3]]
    """

    def __init__(self, vocabulary: Sequence[str]):
        vocabulary = tuple(vocabulary)
        if len(set(vocabulary)) != len(vocabulary) or set(vocabulary) & set(SPECIAL) or not vocabulary:
            raise ValueError(f"a vocabulary needs distinct words other than {SPECIAL}, got {vocabulary[:8]}")
        self.vocabulary = vocabulary
        self.ids = {w: i + len(SPECIAL) for i, w in enumerate(vocabulary)}

    @classmethod
    def build(cls, captions: Sequence[str]) -> WordTokenizer:
        """The tokenizer of every word of ``captions``."""
        return cls(sorted({w for caption in captions for w in words(caption)}))

    @property
    def size(self) -> int:
        """Number of token ids, the two special ones included."""
        return len(self.vocabulary) + len(SPECIAL)

    def encode(self, texts: Sequence[str], length: int | None = None) -> Tensor:
        """Token ids (len(texts), L), right-padded with ``<pad>`` to the longest text (or to ``length``).

        An empty text is the empty caption (all padding); a text whose words are all unknown, or that has no
        word at all (``"?!"``), is an error.
        """
        rows = []
        for text in texts:
            ids = [self.ids.get(w, UNK) for w in words(text)]
            if all(i == UNK for i in ids) and (ids or text.strip()):  # '?!' has no word at all: the same case
                raise ValueError(f"prompt {text!r}: none of its words is in this model's vocabulary, which is "
                                 f"{', '.join(self.vocabulary)}; e.g. --prompt \"{self.vocabulary[-1]}\"")
            rows.append(ids)
        width = max([len(r) for r in rows] + [1]) if length is None else length
        if any(len(r) > width for r in rows):
            raise ValueError(f"a caption is longer than {width} tokens")
        out = torch.full((len(rows), width), PAD, dtype=torch.long)
        for i, ids in enumerate(rows):
            out[i, :len(ids)] = torch.tensor(ids, dtype=torch.long)
        return out  # (B, L)


class Captions:
    """The captions of a text-conditioned model: label -> caption by template, tokenized.

    Holds the table ``tokens[label, template]`` (K + 1, T, L) of every caption's token ids; row ``K`` ("no
    label") is the empty caption, the null condition of classifier-free guidance. It is rebuilt from the class
    names, the templates and the saved vocabulary, and is deliberately not a module buffer: the EMA copy
    averages buffers (``use_buffers=True``), and an average of integer ids truncates them (measured: at decay
    0.9, 11 of 30 ids changed in 50 updates).

    Arguments:
        class_names: the name of each label, in label order.
        templates: caption templates with a ``{name}`` field.
        heldout: index of the template kept out of training (negative counts from the end), or None.
        tokenizer: the run's saved tokenizer; None builds it from the training captions.
    """

    def __init__(self, class_names: Sequence[str], templates: Sequence[str] = TEMPLATES, heldout: int | None = -1,
                 tokenizer: WordTokenizer | None = None):
        if not class_names or not templates:
            raise ValueError("captions need class names and at least one template")
        for template in templates:
            if template.count("{name}") != 1 or template.replace("{name}", "").count("{") != 0:
                raise ValueError(f"template {template!r} must contain {{name}} exactly once and no other field")
        self.class_names, self.templates = tuple(class_names), tuple(templates)
        if heldout is not None and not -len(templates) <= heldout < len(templates):
            raise ValueError(f"heldout template {heldout} is not an index of the {len(templates)} templates")
        self.heldout = None if heldout is None else heldout % len(templates)
        self.train_templates = tuple(i for i in range(len(templates)) if i != self.heldout)
        if not self.train_templates:
            raise ValueError("holding out the only template leaves none to train on; add templates or set heldout "
                             "to null")
        captions = [self.caption(k, j) for k in range(len(class_names)) for j in range(len(templates))]
        self.tokenizer = tokenizer or WordTokenizer.build(
            [self.caption(k, j) for k in range(len(class_names)) for j in self.train_templates])
        flat = self.tokenizer.encode(captions)  # (K T, L)
        table = torch.cat([flat.reshape(len(class_names), len(templates), -1),
                           torch.full((1, len(templates), flat.shape[1]), PAD, dtype=torch.long)])  # (K + 1, T, L)
        self.table, self.train_index = table, torch.tensor(self.train_templates)  # (K + 1, T, L), (T_train,)
        self._on: dict[torch.device, tuple[Tensor, Tensor]] = {}

    def _tables(self, device: torch.device) -> tuple[Tensor, Tensor]:
        """The table and the training templates' indices on ``device`` (copied once per device)."""
        if device not in self._on:
            self._on[device] = (self.table.to(device), self.train_index.to(device))
        return self._on[device]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def caption(self, label: int, template: int) -> str:
        """The caption of class ``label`` by template number ``template``."""
        return self.templates[template].format(name=self.class_names[label])

    def training_tokens(self, labels: Tensor, rng: BatchRandom) -> Tensor:
        """Token ids (B, L) of ``labels`` (B,), each by a training template drawn uniformly from ``rng``."""
        table, train_index = self._tables(labels.device)
        u = rng.rand((), like=None).to(labels.device)  # (B,) float32 in [0, 1)
        pick = (u * len(self.train_templates)).long().clamp(max=len(self.train_templates) - 1)  # (B,)
        return table[labels, train_index[pick]]  # (B, L)

    def label_tokens(self, labels: Tensor, template: int = 0) -> Tensor:
        """Token ids (B, L) of ``labels`` (B,) by template number ``template`` (label K: the empty caption)."""
        return self._tables(labels.device)[0][labels, template]  # (B, L)

    def encode(self, prompts: str | Sequence[str], batch: int, device: torch.device) -> Tensor:
        """Token ids (batch, L) of one prompt repeated, or of ``batch`` prompts."""
        prompts = [prompts] * batch if isinstance(prompts, str) else list(prompts)
        if len(prompts) != batch:
            raise ValueError(f"expected one prompt or {batch}, got {len(prompts)}")
        return self.tokenizer.encode(prompts).to(device)


__all__ = ["CLASS_NAMES", "SPECIAL", "TEMPLATES", "UNK", "Captions", "WordTokenizer", "words"]
