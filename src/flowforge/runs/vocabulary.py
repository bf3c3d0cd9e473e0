"""A text model's caption vocabulary, saved beside its config (``vocabulary.json``).

The token ids index the rows of the model's learnt embeddings, so they must be the ones it was trained with:
the run keeps its word list, and loading builds the tokenizer from it rather than from the config again (a
later flowforge that tokenized differently would otherwise read every caption with the wrong embeddings). Each
checkpoint records the list's sha256, and loading refuses a file whose words or order changed since.

The file is flowforge's own word list, not a Hugging Face ``tokenizers`` file, so it is not called
``tokenizer.json`` (the name Hugging Face tools read as theirs); runs written before the rename are still read.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ..errors import RunError
from .checkpoint import atomic_write_text

VOCABULARY_FILE = "vocabulary.json"
LEGACY_FILE = "tokenizer.json"  # the same content, as runs before the rename named it


def vocabulary_digest(words: list[str] | tuple[str, ...] | None) -> str | None:
    """The sha256 of a word list in its order (None for none), the binding a checkpoint records."""
    return None if words is None else hashlib.sha256(json.dumps(list(words)).encode()).hexdigest()


def model_vocabulary(model) -> tuple[str, ...] | None:
    """``model``'s caption words in token order, or None for a model without captions."""
    captions = getattr(model, "captions", None)
    return None if captions is None else tuple(captions.tokenizer.vocabulary)


def write_vocabulary(run_dir: Path, model) -> None:
    """Save ``model``'s caption vocabulary in ``run_dir`` (nothing for a model without captions)."""
    words = model_vocabulary(model)
    if words is not None:
        special = ["<pad>", "<unk>"]
        atomic_write_text(Path(run_dir) / VOCABULARY_FILE, json.dumps(
            {"kind": "word", "special": special, "vocabulary": list(words)}, indent=1))
        (Path(run_dir) / LEGACY_FILE).unlink(missing_ok=True)


def vocabulary_path(run_dir: Path) -> Path | None:
    """The vocabulary file of ``run_dir`` (the legacy name for older runs), or None when it has none."""
    for name in (VOCABULARY_FILE, LEGACY_FILE):
        if (Path(run_dir) / name).is_file():
            return Path(run_dir) / name
    return None


def read_vocabulary(run_dir: Path, expected: str | None = None) -> list[str] | None:
    """The vocabulary saved in ``run_dir``, or None when it has none (a model without captions).

    ``expected``: the :func:`vocabulary_digest` the checkpoint recorded; a file whose words or order differ is
    refused, since every word would then read another word's embedding.
    """
    path = vocabulary_path(run_dir)
    if path is None:
        return None
    try:
        words = json.loads(path.read_text())["vocabulary"]
    except (ValueError, KeyError, TypeError) as err:
        raise RunError(f"{path} is unreadable ({err}); it holds the caption vocabulary the model was trained "
                       f"with, so restore it from a copy of the run") from None
    if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
        raise RunError(f"{path}: 'vocabulary' must be a list of words")
    if expected is not None and vocabulary_digest(words) != expected:
        raise RunError(f"{path} is not the vocabulary the weights were trained with (its words or their order "
                       f"changed: sha256 {vocabulary_digest(words)[:12]}..., the checkpoint recorded "
                       f"{expected[:12]}...); each word's position picks its embedding, so restore the file from a "
                       f"copy of the run")
    return words


__all__ = ["LEGACY_FILE", "VOCABULARY_FILE", "model_vocabulary", "read_vocabulary", "vocabulary_digest",
           "vocabulary_path", "write_vocabulary"]
