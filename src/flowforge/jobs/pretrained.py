"""Model folders, the layout the Hugging Face ecosystem shares models in: ``config.json`` (what to build),
``model.safetensors`` (the weights, with the model section they were trained as in their metadata),
``README.md`` (the model card), and for a text model ``vocabulary.json`` (its caption vocabulary). :func:`from_pretrained` reads one from a
local folder or, through ``huggingface_hub``, from a repository on the Hub; :mod:`.export` writes them.

``config.json``::

    {"library": "flowforge", "format": 1, "flowforge_version": "0.1.0", "name": "rf-moons",
     "step": 2000, "weights": "ema", "data": {"kind": ..., "shape": [...], ...}, "config": {...}}

``config`` is the run's full config (run, data, model, train, sample, eval sections), ``data`` the spec of the
data the model was built for (a run's ``data.json``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from safetensors import safe_open

from ..config import Config, ConfigError, from_dict
from ..errors import RunError, UserError
from ..models import GenerativeModel, build_model
from ..models.latent import VAE_FOLDER, wrap_latent
from ..runs import Run, check_model_binding, load_weights, read_vocabulary
from ..runs.vocabulary import LEGACY_FILE, VOCABULARY_FILE

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "README.md"
FORMAT = 1  # the version of config.json's layout
HUB_FILES = [CONFIG_FILE, WEIGHTS_FILE, CARD_FILE, VOCABULARY_FILE, LEGACY_FILE, "*.png", "vae/*"]
MODEL_KEY = "flowforge_model"  # the weights' metadata: the model section they were trained as (JSON)
VOCABULARY_KEY = "flowforge_vocabulary"  # and a text model's vocabulary_digest
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def read_folder_config(folder: Path) -> dict[str, Any]:
    """The checked content of ``folder/config.json``; a RunError naming the file otherwise."""
    path = Path(folder) / CONFIG_FILE
    if not path.is_file():
        raise RunError(f"{path}: missing; a flowforge model folder holds {CONFIG_FILE} and {WEIGHTS_FILE} "
                       f"(write one with `flowforge export RUN_DIR --out DIR`)")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RunError(f"{path}: unreadable ({err})") from None
    if not isinstance(meta, dict) or meta.get("library") != "flowforge":
        raise RunError(f"{path}: not a flowforge model config (its \"library\" is "
                       f"{meta.get('library') if isinstance(meta, dict) else None!r}, expected \"flowforge\")")
    if meta.get("format") != FORMAT:
        raise RunError(f"{path}: format {meta.get('format')!r}, this flowforge reads format {FORMAT}; "
                       f"export the model again with this version")
    for key, kind in (("config", dict), ("data", dict), ("step", int)):
        if not isinstance(meta.get(key), kind):
            raise RunError(f"{path}: \"{key}\" is {meta.get(key)!r}, expected a JSON {kind.__name__}")
    shape = meta["data"].get("shape")
    if not (isinstance(shape, list) and shape and all(isinstance(s, int) and s > 0 for s in shape)):
        raise RunError(f"{path}: data.shape is {shape!r}, expected a list of positive integers")
    if meta["data"].get("kind") not in ("points", "image"):
        raise RunError(f"{path}: data.kind is {meta['data'].get('kind')!r}, expected \"points\" or \"image\"")
    return meta


def weights_binding(path: Path) -> dict[str, Any]:
    """What the weights' metadata says they were trained as: ``{MODEL_KEY: model section, VOCABULARY_KEY:
    digest}``, each where recorded."""
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        out: dict[str, Any] = {k: meta[k] for k in (VOCABULARY_KEY,) if k in meta}
        if MODEL_KEY in meta:
            out[MODEL_KEY] = json.loads(meta[MODEL_KEY])
    except Exception as err:  # safetensors raises several types for a damaged header
        raise RunError(f"cannot read weights from {path}: {err}") from None
    return out


def load_folder(folder: str | Path, *, device: str = "cpu") -> Run:
    """A model folder as a :class:`Run` (config, model in eval mode, data spec), so that everything that takes
    a loaded run (sample options, the app) takes a model folder too."""
    folder = Path(folder)
    meta = read_folder_config(folder)
    try:
        config = from_dict(meta["config"])
    except ConfigError as err:
        raise RunError(f"{folder / CONFIG_FILE}: its \"config\" is not a valid flowforge config: {err}") from None
    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        raise RunError(f"{weights}: missing; the folder's config.json describes the model, this file holds its "
                       f"weights")
    binding = weights_binding(weights)
    if MODEL_KEY in binding:  # written by an export that bound them (older folders load as before)
        check_model_binding({"model": binding[MODEL_KEY]}, config.to_dict()["model"], weights,
                            Config().to_dict()["model"], described_by=f"{folder / CONFIG_FILE}")
    # a text model's words, in the order of its embeddings' rows
    vocabulary = read_vocabulary(folder, binding.get(VOCABULARY_KEY))
    if config.model.text.captions != "none" and vocabulary is None:
        raise RunError(f"{folder / VOCABULARY_FILE}: missing; {folder / CONFIG_FILE} describes a text model, whose "
                       f"caption vocabulary this file holds")
    try:
        model = build_model(config.model, meta["data"], vocabulary)
    except (ConfigError, KeyError, TypeError, ValueError) as err:
        raise RunError(f"{folder / CONFIG_FILE}: cannot build its model for data {meta['data']} ({err})") from None
    load_weights(model, weights)
    model = wrap_latent(model, meta["data"], folder / VAE_FOLDER)  # a latent model decodes with its vae/
    model.to(device).eval()
    return Run(dir=folder, config=config, model=model, checkpoint=weights, step=meta["step"], data=meta["data"],
               weights=str(meta.get("weights", "ema")))


def download(repo_id: str, *, revision: str | None = None, cache_dir: str | Path | None = None,
             local_files_only: bool = False) -> Path:
    """The local copy of Hub repository ``repo_id`` (``huggingface_hub.snapshot_download``, cached)."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise UserError(f"{repo_id!r} is not a local folder, and loading it from the Hugging Face Hub needs "
                        f"huggingface_hub: pip install huggingface_hub (or pass the path of a model folder)") from None
    try:
        path = snapshot_download(repo_id, revision=revision, cache_dir=cache_dir, allow_patterns=HUB_FILES,
                                 local_files_only=local_files_only)
    except Exception as err:  # offline, unknown repository, gated, bad revision: many types across versions
        name = type(err).__name__
        hint = ("no network, and no copy in the cache" if "LocalEntryNotFound" in name or "Connect" in name
                or "Offline" in name else "check the repository id and your access")
        raise UserError(f"cannot download {repo_id!r} from the Hugging Face Hub ({name}: "
                        f"{str(err).splitlines()[0] if str(err) else ''}); {hint}. A model folder on disk loads "
                        f"offline: flowforge.from_pretrained('path/to/folder')") from None
    return Path(path)


def resolve(name_or_path: str | Path, **hub: Any) -> Path:
    """A local model folder for ``name_or_path``: the folder itself, or a Hub repository downloaded."""
    path = Path(name_or_path)
    if path.is_dir():
        return path
    text = str(name_or_path)
    if _REPO_ID.match(text) and not text.startswith((".", "/")) and path.parent.is_dir():
        # "runs/nope": a typo of a local path (its folder is here), not a Hub id to download
        raise RunError(f"{text}: no such run folder ({path.parent}/ is here, but holds no {path.name!r}); a run "
                       f"directory or a model folder (flowforge export) is expected")
    if path.exists() or not _REPO_ID.match(text) or text.startswith((".", "/")):
        raise RunError(f"{text}: no such model folder (a directory holding {CONFIG_FILE} and {WEIGHTS_FILE}), "
                       f"and not a Hugging Face Hub repository id such as 'user/flowforge-moons'")
    return download(text, **hub)


def load_pretrained(name_or_path: str | Path, *, device: str = "cpu", revision: str | None = None,
                    cache_dir: str | Path | None = None, local_files_only: bool = False) -> Run:
    """:func:`from_pretrained`, returning the whole :class:`Run` (config and sample settings with the model)."""
    folder = resolve(name_or_path, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only)
    return load_folder(folder, device=device)


def from_pretrained(name_or_path: str | Path, *, device: str = "cpu", revision: str | None = None,
                    cache_dir: str | Path | None = None, local_files_only: bool = False) -> GenerativeModel:
    """The model of a model folder written by ``flowforge export``, in eval mode.

    Arguments:
        name_or_path: a local folder (loads offline), or a Hugging Face Hub repository id (``"user/name"``),
            fetched with ``huggingface_hub.snapshot_download`` into its cache (``pip install huggingface_hub``).
        device: where to put the model.
        revision, cache_dir, local_files_only: passed to ``snapshot_download`` for a repository id.

    Raises:
        RunError: the folder lacks ``config.json`` or ``model.safetensors``, or they do not fit each other
            (the message names the file).
        UserError: a repository id without ``huggingface_hub``, or one that cannot be downloaded.

    Example::

        model = flowforge.from_pretrained("exported/rf-moons")
        x = model.sample(1000, sampler="heun", steps=20)
    """
    return load_pretrained(name_or_path, device=device, revision=revision, cache_dir=cache_dir,
                           local_files_only=local_files_only).model
