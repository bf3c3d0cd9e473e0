"""A text model's caption vocabulary, saved beside its config (``tokenizer.json``).

The token ids index the rows of the model's learnt embeddings, so they must be the ones it was trained with:
the run keeps its word list, and loading builds the tokenizer from it rather than from the config again (a
later flowforge that tokenized differently would otherwise read every caption with the wrong embeddings).
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import RunError
from .checkpoint import atomic_write_text

VOCABULARY_FILE = "tokenizer.json"


def write_vocabulary(run_dir: Path, model) -> None:
    """Save ``model``'s caption vocabulary in ``run_dir`` (nothing for a model without captions)."""
    captions = getattr(model, "captions", None)
    if captions is not None:
        special = ["<pad>", "<unk>"]
        atomic_write_text(Path(run_dir) / VOCABULARY_FILE, json.dumps(
            {"kind": "word", "special": special, "vocabulary": list(captions.tokenizer.vocabulary)}, indent=1))


def read_vocabulary(run_dir: Path) -> list[str] | None:
    """The vocabulary saved in ``run_dir``, or None when it has none (a model without captions)."""
    path = Path(run_dir) / VOCABULARY_FILE
    if not path.is_file():
        return None
    try:
        words = json.loads(path.read_text())["vocabulary"]
    except (ValueError, KeyError, TypeError) as err:
        raise RunError(f"{path} is unreadable ({err}); it holds the caption vocabulary the model was trained "
                       f"with, so restore it from a copy of the run") from None
    if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
        raise RunError(f"{path}: 'vocabulary' must be a list of words")
    return words


__all__ = ["VOCABULARY_FILE", "read_vocabulary", "write_vocabulary"]
