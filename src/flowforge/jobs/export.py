"""``flowforge export``: a trained run as a shareable model folder (:mod:`.pretrained` reads it back).

The folder holds ``config.json``, ``model.safetensors`` (the EMA weights, or the trained ones when the run kept
no EMA), ``README.md``, a model card in the Hub's format (YAML front matter, then what the model is, its data,
training budget, scores beside the noise floor, a sample picture and how to load it), and ``samples.png``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_model

from ..config import Config, SampleConfig
from ..data import Dataset, load_dataset
from ..errors import RunError, UserError
from ..data.latents import pixel_data
from ..models import describe_model
from ..models.latent import VAE_FOLDER, save_vae, unwrap_latent
from ..runs import Run, atomic_write_text, check_finite_samples, load_run, read_state, write_samples_picture
from ..runs.report import eval_tables
from ..runs.vocabulary import LEGACY_FILE, VOCABULARY_FILE, model_vocabulary, vocabulary_digest, vocabulary_path
from ..version import __version__
from .pretrained import CARD_FILE, CONFIG_FILE, FORMAT, MODEL_KEY, VOCABULARY_KEY, WEIGHTS_FILE

PICTURE_FILE = "samples.png"
PICTURE_SEED = 0
FAMILY_TAGS = {"continuous": "flow-matching", "nice": "normalizing-flow", "realnvp": "normalizing-flow",
               "glow": "normalizing-flow"}


def shareable_config(config: Config) -> dict[str, Any]:
    """The run's config without this machine's paths: no ``run.dir`` or ``data.cache_dir``, and a data file
    by its name only."""
    out = config.to_dict()
    out["run"]["dir"] = ""
    out["data"]["cache_dir"] = None
    if out["data"].get("path"):
        out["data"]["path"] = Path(out["data"]["path"]).name
    return out


def picture_count(run: Run) -> int:
    """Samples in the card's picture: a grid of 64 images, or 2000 points."""
    return 64 if run.data["kind"] == "image" else 2000


def _sample_picture(run: Run, dataset: Dataset, path: Path) -> dict[str, Any]:
    """Draw the card's samples from the exported weights (seed :data:`PICTURE_SEED`, the run's sample settings)
    and write their picture; returns how they were drawn."""
    n = picture_count(run)
    options = run.sample_options(n, torch.Generator().manual_seed(PICTURE_SEED))
    with torch.no_grad():
        samples = run.model.sample(n, **options)
    check_finite_samples(samples)
    write_samples_picture(samples, dataset, path, title=run.config.run.name)
    how = {"n": n, "seed": PICTURE_SEED, "sampler": run.sampler_name}
    if run.model.takes_sampler:
        how.update(steps=options["steps"], guidance=options.get("guidance", 1.0))
    return how


def _budget_lines(run: Run, dataset: Dataset, seconds: float | None) -> list[str]:
    tc = run.config.train
    examples = run.step * tc.batch_size
    epochs = f" ({examples / len(dataset.train):.1f} epochs of the {len(dataset.train):,} training examples)"
    lines = [f"- {run.step:,} steps of batch {tc.batch_size} = {examples:,} examples{epochs}",
             f"- AdamW, lr {tc.lr} ({tc.schedule} schedule, {tc.warmup_steps} warmup steps), weight decay "
             f"{tc.weight_decay}, grad clip {tc.grad_clip}, precision {tc.precision}; "
             + (f"EMA {tc.ema_decay}, whose weights these are" if run.weights == "ema"
                else "no EMA: the trained weights")]
    if seconds is not None:
        lines.append(f"- {seconds / 60:.1f} min of training (wall clock, the machine it ran on)")
    lines.append(f"- {sum(p.numel() for p in run.model.parameters()):,} parameters")
    return lines


def _score_lines(run: Run) -> list[str]:
    path = run.dir / "eval.json"
    if not path.is_file():
        return [f"Not scored: `flowforge eval {run.dir}` before exporting puts the scores here."]
    try:
        record = json.loads(path.read_text())
        lines = eval_tables(record)
    except (ValueError, KeyError, TypeError) as err:
        return [f"Not scored: the run's eval.json is unreadable ({type(err).__name__}: {err})."]
    note = [("Lower is better for every distance. The **noise floor** row scores a second draw of the data itself "
            "against the same references (the best any model can do at this sample size); the **matched "
            "Gaussian** has the training data's mean and covariance (what a trivial model does)."), ""]
    if record.get("step") != run.step:
        note += [(f"These scores are of step {record.get('step')}; the weights here are of step {run.step} "
                 f"(`flowforge eval` the run again to score them)."), ""]
    return note + lines


# Hub dataset ids of the data sets that have one; pipeline tags the Hub lists for what these models do
HUB_DATASETS = {"mnist": "ylecun/mnist", "fashion-mnist": "zalando-datasets/fashion_mnist", "cifar10": "uoft-cs/cifar10"}
IMAGE_TASK, TEXT_TASK = "unconditional-image-generation", "text-to-image"
CARD_SCORES = (("energy_distance", "energy distance"), ("sliced_w2", "sliced W2"), ("w2", "W2"))


def _eval_results(run: Run, task: str) -> list[Any]:
    """The run's eval.json scores as the Hub's ``model-index`` results (none when it was not scored)."""
    from huggingface_hub import EvalResult

    try:
        record = json.loads((run.dir / "eval.json").read_text())
        model = record["model"]
        found = [(key, name, model[key]) for key, name in CARD_SCORES if isinstance(model.get(key), (int, float))]
        bits = record.get("likelihood", {}).get("bits_per_dim")
        found += [("bits_per_dim", "bits/dim (held-out)", bits)] if isinstance(bits, (int, float)) else []
        image = record.get("image") or {}
        fd = image.get("model", {}).get("fd") if "skipped" not in image else None
        found += [("fd", f"FD ({image.get('extractor')})", fd)] if isinstance(fd, (int, float)) else []
    except (OSError, ValueError, KeyError, TypeError, AttributeError):  # not scored, or unreadable: no results
        return []
    data = run.config.data.name
    return [EvalResult(task_type=task, dataset_type=HUB_DATASETS.get(data, data), dataset_name=data,
                       metric_type=key, metric_name=name, metric_value=float(value)) for key, name, value in found]


def card_metadata(run: Run, family: str) -> str:
    """The model card's YAML front matter: ``huggingface_hub``'s ``ModelCardData`` (license, pipeline tag, data
    set, the scores as ``model-index`` results) where it is installed, the same fields but the results by hand
    otherwise."""
    cfg = run.config
    text = cfg.model.text.captions != "none"
    task = TEXT_TASK if text else IMAGE_TASK if run.data["kind"] == "image" else None
    fields = {"library_name": "flowforge", "license": "mit", "pipeline_tag": task,
              "tags": ["flowforge", family, "generative-model", cfg.model.kind],
              "datasets": [HUB_DATASETS[cfg.data.name]] if cfg.data.name in HUB_DATASETS else None}
    try:
        from huggingface_hub import ModelCardData
    except ImportError:  # the app extra is not installed: the plain fields, no model-index
        lines = [f"{k}: {v}" for k, v in fields.items() if isinstance(v, str)]
        for key in ("tags", "datasets"):
            lines += [f"{key}:", *(f"- {v}" for v in fields[key])] if fields[key] else []
        return "\n".join(lines)
    results = _eval_results(run, task or "unconditional-generation")
    return ModelCardData(**fields, model_name=cfg.run.name if results else None,
                         eval_results=results or None).to_yaml()


def sample_arguments(run: Run, n: int) -> list[str]:
    """The keyword arguments (as Python source) that make ``model.sample(n, ...)`` draw what the run's sample
    settings draw: sampler, steps, and whichever of the grid, its options, the sampler's own options, labels and
    guidance differ from ``sample``'s defaults."""
    options = run.sample_options(n)
    default = SampleConfig()
    args = [f"sampler={options['sampler']!r}", f"steps={options['steps']}"]
    if options.get("grid") is not None:
        args.append(f"grid={options['grid']!r}")
    if options["grid_options"] != {"rho": default.rho, "shift": default.shift}:
        args.append(f"grid_options={options['grid_options']!r}")
    shared = {"sampler", "steps", "grid", "grid_options", "guidance", "labels", "generator", "progress"}
    args += [f"{k}={v!r}" for k, v in options.items() if k not in shared and v != getattr(default, k.lower())]
    if "labels" in options:
        args.append(f"labels=torch.arange({n}) % {run.config.model.num_classes}")
    if options.get("guidance", 1.0) != 1.0:
        args.append(f"guidance={options['guidance']!r}")
    return args


def model_card(run: Run, dataset: Dataset, picture: dict[str, Any], seconds: float | None) -> str:
    """The ``README.md`` of an exported model folder."""
    cfg = run.config
    name = cfg.run.name
    shape = tuple(run.data["shape"])
    family = FAMILY_TAGS.get(cfg.model.kind, cfg.model.kind)
    front = ["---", card_metadata(run, family).strip(), "---", ""]
    data = [(f"`{cfg.data.name}`: {dataset.kind}, example shape {shape}, {len(dataset.train):,} training and "
            f"{len(dataset.test):,} held-out examples")]
    if run.data.get("levels"):
        data.append(f", {run.data['levels']} intensity levels, dequantized uniformly, in model space "
                    f"{tuple(run.data['value_range'])}")
    if cfg.model.num_classes:
        data.append(f"; class-conditional on {cfg.model.num_classes} classes")
    how = f"{picture['n']} samples, seed {picture['seed']}, {picture['sampler']}"
    if "steps" in picture:
        how += f", {picture['steps']} steps" + (f", guidance {picture['guidance']}" if picture["guidance"] != 1 else "")
    seed = f"generator=torch.Generator().manual_seed({picture['seed']})"
    if run.model.takes_sampler:
        call = f"x = model.sample({picture['n']}, {', '.join(sample_arguments(run, picture['n']))}, {seed})"
    else:
        call = f"x = model.sample({picture['n']}, {seed})   # the exact inverse of the flow"
    shape_text = ", ".join(map(str, shape))
    use = ["```python", "import torch", "import flowforge", "",
           f"model = flowforge.from_pretrained(\"path/to/{name}\")   # this folder, or a Hub repo id \"user/{name}\"",
           call + f"   # ({picture['n']}, {shape_text})", "log_p = model.log_prob(x[:8])   # nats per example",
           "```", ""]
    if cfg.model.text.captions != "none":
        use += [("A text model: `model.sample(16, prompts=\"...\", guidance=2.0)` draws from a caption instead of the "
                "labels' captions (its words are in `{VOCABULARY_FILE}`)."), ""]
    use += ["Or in the browser: `flowforge app path/to/this/folder`."]
    how_it_works = ("It samples by integrating its ODE with any of flowforge's samplers and scores ODE "
                    "likelihoods." if run.model.takes_sampler else
                    "It samples by its exact inverse and scores exact likelihoods.")
    lines = front + [
        f"# {name}", "",
        f"A generative model trained with flowforge {__version__}. {how_it_works}", "",
        f"**Model**: {describe_model(cfg.model)}.",
        "", "## Data", "", "".join(data), "", "## Training budget", "", *_budget_lines(run, dataset, seconds),
        "", "## Scores", "", *_score_lines(run), "", "## Samples", "", f"![samples]({PICTURE_FILE})", "",
        f"*{how}; the code below draws exactly these samples.*", "",
        "## How to load it", "", *use, "",
        "## Files", "", f"- `{CONFIG_FILE}`: the flowforge config it was trained with and its data's shape",
        f"- `{WEIGHTS_FILE}`: the weights ({run.weights} of step {run.step})", f"- `{PICTURE_FILE}`: the picture above",
        *([f"- `{VOCABULARY_FILE}`: the caption vocabulary (the words of the text embeddings' rows)"]
          if vocabulary_path(run.dir) is not None else []),
        "", "## Training config", "", "```json", json.dumps(shareable_config(cfg), indent=1), "```", ""]
    return "\n".join(lines)


def write_weights(run: Run, path: Path) -> None:
    """The weights file of a model folder, readable by everyone (0644: safetensors writes 0600), with the model
    section and vocabulary it was trained as in its metadata (:func:`.pretrained.load_folder` checks
    ``config.json`` against them, as a run's checkpoint binds its ``config.yaml``)."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    binding = {"format": "pt", "flowforge_step": str(run.step),
               MODEL_KEY: json.dumps(run.config.to_dict()["model"], sort_keys=True)}
    words = model_vocabulary(run.model)
    if words is not None:
        binding[VOCABULARY_KEY] = vocabulary_digest(words)
    save_model(unwrap_latent(run.model), str(tmp), metadata=binding)  # a latent model: the flow's (vae/ apart)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def push_to_hub(source: str | Path, repo_id: str, *, private: bool = False, api: Any = None,
                commit_message: str | None = None) -> str:
    """Upload a model folder (or a run, exported first into a temporary folder) to Hub repository ``repo_id``,
    creating it if needed: ``HfApi.create_repo`` and ``HfApi.upload_folder`` (``api``: an ``HfApi``, the
    default one, logged in by ``hf auth login``). Returns the repository's URL."""
    import tempfile

    from .pretrained import read_folder_config

    if api is None:
        try:
            from huggingface_hub import HfApi
        except ImportError:
            raise UserError("uploading to the Hugging Face Hub needs huggingface_hub: pip install huggingface_hub")
        api = HfApi()
    source = Path(source)
    with tempfile.TemporaryDirectory(prefix="flowforge-push-") as tmp:
        folder = source if (source / CONFIG_FILE).is_file() else export_run(source, Path(tmp) / "folder")
        meta = read_folder_config(folder)  # a folder that would not load is not uploaded
        url = api.create_repo(repo_id, private=private, exist_ok=True)
        api.upload_folder(folder_path=str(folder), repo_id=repo_id,
                          commit_message=commit_message or f"flowforge {__version__}: {meta['name']}, step "
                                                           f"{meta['step']}")
    return str(url)


def save_pretrained(source: str | Path, out: str | Path) -> Path:
    """The model folder of a run (:func:`export_run`) at ``out``: the name Hugging Face libraries give it."""
    return export_run(source, out)


def export_run(run_dir: str | Path, out: str | Path) -> Path:
    """Write the model folder of ``run_dir``'s newest checkpoint to ``out``; returns ``out``.

    ``out`` may be new, empty, or an earlier export (which is replaced file by file); a folder holding anything
    else is refused rather than mixed with.
    """
    run = load_run(run_dir)
    out = Path(out)
    ours = {CONFIG_FILE, WEIGHTS_FILE, CARD_FILE, PICTURE_FILE, VOCABULARY_FILE, LEGACY_FILE, VAE_FOLDER}
    if out.exists():
        if not out.is_dir():
            raise RunError(f"--out {out}: a file is in the way; give a new or empty directory")
        foreign = sorted(p.name for p in out.iterdir() if p.name not in ours)
        if foreign:
            raise RunError(f"--out {out}: holds other files ({', '.join(foreign[:3])}); give a new or empty "
                           f"directory, or an earlier export")
    out.mkdir(parents=True, exist_ok=True)
    dataset = load_dataset(pixel_data(run.config.data))  # a latent model samples decoded images
    write_weights(run, out / WEIGHTS_FILE)
    save_vae(run.model, out)  # a latent model's autoencoder: vae/, a diffusers folder, as pipelines keep it
    meta = {"library": "flowforge", "format": FORMAT, "flowforge_version": __version__, "name": run.config.run.name,
            "step": run.step, "weights": run.weights, "data": run.data, "config": shareable_config(run.config)}
    atomic_write_text(out / CONFIG_FILE, json.dumps(meta, indent=1))
    vocabulary = vocabulary_path(run.dir)
    (out / LEGACY_FILE).unlink(missing_ok=True)  # an earlier export's, under the name Hugging Face tools claim
    if vocabulary is not None:  # a text model's caption words: its embeddings' rows in this order
        atomic_write_text(out / VOCABULARY_FILE, vocabulary.read_text())
    elif (out / VOCABULARY_FILE).exists():
        (out / VOCABULARY_FILE).unlink()  # an earlier export of another model
    picture = _sample_picture(run, dataset, out / PICTURE_FILE)
    seconds = read_state(run.checkpoint).get("seconds")
    atomic_write_text(out / CARD_FILE, model_card(run, dataset, picture, seconds))
    return out
