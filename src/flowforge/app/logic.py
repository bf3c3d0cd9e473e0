"""What the browser app does, as plain functions over loaded runs: sample, inpaint, score.

Nothing here imports Gradio (:mod:`.ui` is the thin layer over these); every function takes and returns
tensors, NumPy arrays, PIL images and text, and refuses bad input with an :class:`AppError` whose message the
page shows as is.
"""

from __future__ import annotations

import inspect
import math
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from ..data import Dataset, load_dataset
from ..data.latents import pixel_data
from ..data.masks import make_mask
from ..errors import UserError
from ..jobs import load_pretrained
from ..jobs.device import device_generator, resolve_device
from ..jobs.inpaint import inpaint_options, start_values
from ..runs import Run, check_finite_samples, load_run
from ..solvers import SOLVERS
from ..viz import plot_points, plot_scores

Progress = Callable[[float, str], None]  # (fraction done, what) -> None

MAX_UPLOAD_BYTES = 2 * 2**20  # an upload above this is refused before it is decoded
MAX_POINTS = 20_000  # samples per request: points
MAX_IMAGES = 256  # samples per request: images
MAX_STEPS = 1000
MAX_INPAINT_STEPS = 5000  # a flow's gradient ascent takes 500 by default
SHOW_PX = 192  # images are shown this many pixels across (nearest-neighbour upscaling)
# NICE's list (data.masks.PAPER_MASKS) and two more
PRESET_MASKS = ("none", "left", "right", "top", "bottom", "odd", "even", "middle-vertical", "middle-horizontal",
                "center", "random:0.5", "random:0.75", "random:0.9")


class AppError(UserError):
    """Bad input to the app: the page shows the message instead of a result."""


def error_message(err: BaseException) -> str:
    """What the page shows for ``err``: its message for a refusal (the library's user errors, and the
    ValueErrors it raises for options it does not take), one line for anything else, whose traceback goes to
    the server's log."""
    if isinstance(err, (UserError, ValueError)):
        return f"**Error:** {err}"
    traceback.print_exception(err, file=sys.stderr)
    return f"**Error:** the app failed ({type(err).__name__}: {err}); the server's log has the details"


def guarded(fn: Callable[..., tuple], n_outputs: int) -> Callable[..., tuple]:
    """``fn`` (a page handler returning its ``n_outputs`` outputs and a status line), returning empty outputs
    and the message of any failure instead of raising it."""
    def run(*args: Any, **kwargs: Any) -> tuple:
        try:
            return fn(*args, **kwargs)
        except Exception as err:  # every failure becomes a message on the page
            return (None,) * n_outputs + (error_message(err),)

    run.__name__, run.__doc__ = fn.__name__, fn.__doc__
    run.__signature__ = inspect.signature(fn)  # Gradio reads the handler's parameters (progress)
    return run


@dataclass
class Entry:
    """A run (or exported model folder) loaded into the app: the model, its sample settings, and its data
    (loaded on first use) with the held-out scores the Density tab compares against (computed on first use)."""

    name: str
    run: Run
    _dataset: Dataset | None = None
    _reference: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return self.run.data["kind"]

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.run.data["shape"])

    @property
    def device(self) -> torch.device:
        """Where the model's weights are (``flowforge app --device``); its inputs go there, its outputs come back."""
        return next(iter(self.run.model.parameters()), torch.empty(0)).device

    def generator(self, seed: int) -> torch.Generator:
        """The page's noise for ``seed``, drawn where the model runs (as ``flowforge sample --device`` draws it)."""
        return device_generator(self.device, seed)

    @property
    def takes_sampler(self) -> bool:
        return self.run.model.takes_sampler

    @property
    def num_classes(self) -> int | None:
        return self.run.config.model.num_classes

    @property
    def takes_prompts(self) -> bool:
        return self.run.config.model.text.captions != "none"

    @property
    def family(self) -> str:
        return self.run.config.model.kind

    def dataset(self) -> Dataset:
        if self._dataset is None:
            try:
                self._dataset = load_dataset(pixel_data(self.run.config.data))  # latent models: images
            except UserError as err:
                raise AppError(f"{self.name}: its data set is not available here ({err})") from None
        return self._dataset


def open_entries(paths: list[str | Path], device: str | torch.device = "auto") -> dict[str, Entry]:
    """Load run directories and model folders (``flowforge export``), keyed by a unique display name, onto
    ``device`` (``auto``, ``cpu``, ``cuda``, ``cuda:N``: :func:`flowforge.jobs.device.resolve_device`)."""
    device = resolve_device(device)
    entries: dict[str, Entry] = {}
    for path in paths:
        path = Path(path)
        run = (load_run(path, device=str(device)) if (path / "config.yaml").is_file()
               else load_pretrained(path, device=str(device)))
        name = f"{run.config.run.name} ({run.config.model.kind})"
        k = 2
        while name in entries:
            name = f"{run.config.run.name} ({run.config.model.kind}, {k})"
            k += 1
        entries[name] = Entry(name, run)
    if not entries:
        raise AppError("no runs given: flowforge app RUN_DIR [RUN_DIR...]")
    return entries


# ------------------------------------------------------------------------------------------------- pictures


def to_pixels(entry: Entry, x: Tensor) -> Tensor:
    """Model-space images (..., C, H, W) as [0, 1] floats."""
    lo, hi = entry.run.data.get("value_range") or (0.0, 1.0)
    return ((x.float() - lo) / (hi - lo)).clamp(0, 1)


def to_pil(pixels: Tensor, px: int = SHOW_PX) -> Image.Image:
    """One image (C, H, W) in [0, 1] as a PIL image about ``px`` pixels across (nearest-neighbour)."""
    arr = (pixels.detach().cpu().float().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    img = Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr, mode="L" if arr.shape[-1] == 1 else "RGB")
    scale = max(1, px // img.width)
    return img.resize((img.width * scale, img.height * scale), Image.NEAREST)


def grid(pixels: Tensor, px: int = 512) -> Image.Image:
    """Images (n, C, H, W) in [0, 1] as one grid about ``px`` pixels across."""
    n, c, h, w = pixels.shape
    ncol = math.ceil(math.sqrt(n))
    nrow = math.ceil(n / ncol)
    canvas = torch.ones(c, nrow * (h + 1) + 1, ncol * (w + 1) + 1)
    for i in range(n):
        r, q = divmod(i, ncol)
        canvas[:, 1 + r * (h + 1):1 + r * (h + 1) + h, 1 + q * (w + 1):1 + q * (w + 1) + w] = pixels[i]
    return to_pil(canvas, px)


def _figure(draw: Callable[[Path], Path]) -> Image.Image:
    with tempfile.TemporaryDirectory() as tmp:
        path = draw(Path(tmp) / "figure.png")
        with Image.open(path) as img:
            return img.convert("RGB")


# ------------------------------------------------------------------------------------------------- sample


@dataclass
class SampleResult:
    picture: Image.Image
    samples: np.ndarray  # (n, *shape) float32, model space
    seconds: float
    nfe: int
    how: str  # sampler and steps, or "exact inverse"


def check_int(name: str, value: Any, lo: int, hi: int) -> int:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise AppError(f"{name}: expected a whole number, got {value!r}") from None
    if not number.is_integer() or not lo <= number <= hi:
        raise AppError(f"{name}: expected a whole number from {lo} to {hi}, got {value!r}")
    return int(number)


def _sample_options(entry: Entry, n: int, generator: torch.Generator, *, label: int | None, prompt: str | None,
                    progress: bool, **controls: Any) -> dict[str, Any]:
    """Keyword arguments of ``entry``'s ``sample``: the run's settings, and on top the page's ``controls``
    (sampler, steps, guidance) that the model takes (:attr:`~flowforge.protocol.GenerativeModel.sample_settings`;
    the controls serve every loaded model at once, so a flow's exact inverse leaves them unused), the class
    ``label`` of every sample, or a text model's ``prompt``."""
    chosen = {k: v for k, v in controls.items() if k in entry.run.model.sample_settings and v is not None}
    if "steps" in chosen:
        chosen["steps"] = check_int("steps", chosen["steps"], 1, MAX_STEPS)
    if entry.num_classes is None:
        chosen.pop("guidance", None)  # the control is there for other loaded models; this one has no classes
    if label is not None:
        if entry.num_classes is None:
            raise AppError(f"{entry.name} is not class-conditional; choose 'all classes'")
        label = check_int("class", label, 0, entry.num_classes - 1)
    options = entry.run.sample_options(n, generator, progress=progress, **chosen)
    if isinstance(options.get("labels"), Tensor):
        options["labels"] = options["labels"].to(entry.device)
    if label is not None:
        options["labels"] = torch.full((n,), label, dtype=torch.long, device=entry.device)
    if prompt is not None:
        if not entry.takes_prompts:
            raise AppError(f"{entry.name} has no text input; clear the prompt (or sample a text model alone)")
        options.pop("labels", None)  # the prompt replaces the labels' captions
        options["prompts"] = prompt
    return options


def describe_sampling(entry: Entry, options: dict[str, Any], nfe: int) -> str:
    """How samples were drawn, for the page: the sampler and its steps, or for an adaptive sampler (dopri5, which
    takes no steps) the model evaluations it spent."""
    if not entry.takes_sampler:
        return "exact inverse"
    if not SOLVERS[options["sampler"]].fixed_grid:
        return f"{options['sampler']}, adaptive: {nfe} NFE"
    return f"{options['sampler']}, {options['steps']} steps"


def sample(entry: Entry, *, n: int, seed: int = 0, sampler: str | None = None, steps: int | None = None,
           guidance: float | None = None, label: int | None = None, prompt: str | None = None,
           progress: bool = False) -> SampleResult:
    """``n`` samples of ``entry`` with the run's sample settings, ``sampler`` / ``steps`` / ``guidance`` on top
    (continuous models only; a normalizing flow samples by its exact inverse), ``label`` for every sample of
    a class-conditional model (None: the labels cycle through the classes), or a text model's ``prompt``."""
    n = check_int("number of samples", n, 1, MAX_IMAGES if entry.kind == "image" else MAX_POINTS)
    seed = check_int("seed", seed, 0, 2**31 - 1)
    prompt = (prompt or "").strip() or None
    options = _sample_options(entry, n, entry.generator(seed), label=label, prompt=prompt,
                              progress=progress, sampler=sampler, steps=steps, guidance=guidance)
    t0 = time.perf_counter()
    with torch.no_grad():
        try:
            samples, nfe = entry.run.model.sample_with_nfe(n, **options)
        except ValueError as err:  # a sampler / grid combination the library refuses
            raise AppError(str(err)) from None
    samples = samples.cpu()
    seconds = time.perf_counter() - t0
    try:
        check_finite_samples(samples)
    except UserError as err:
        raise AppError(str(err)) from None
    how = describe_sampling(entry, options, int(nfe))
    if prompt is not None:
        how += f", prompt {prompt!r}"
    if entry.kind == "image":
        picture = grid(to_pixels(entry, samples[:MAX_IMAGES]))
    else:
        reference = entry.dataset().reference(n, seed=1)
        picture = _figure(lambda p: plot_points(samples, reference, p, title=f"{entry.name}: {how}"))
    return SampleResult(picture, samples.cpu().numpy().astype(np.float32), seconds, int(nfe), how)


def save_arrays(results: dict[str, SampleResult], folder: Path) -> Path:
    """The samples as ``samples.npy`` (one model) or ``samples.npz`` (one array per model name)."""
    folder.mkdir(parents=True, exist_ok=True)
    if len(results) == 1:
        path = folder / "samples.npy"
        np.save(path, next(iter(results.values())).samples)
    else:
        path = folder / "samples.npz"
        np.savez(path, **{name: r.samples for name, r in results.items()})
    return path


# ------------------------------------------------------------------------------------------------- images in


def _check_image_model(entry: Entry) -> None:
    if entry.kind != "image":
        raise AppError(f"{entry.name} models {entry.kind}, not images; choose an image model")


def test_image(entry: Entry, index: int) -> Tensor:
    """Held-out image ``index`` (C, H, W), model space."""
    _check_image_model(entry)
    test = entry.dataset().test
    index = check_int("test image", index, 0, len(test) - 1)
    return test[index]


def noise_image(entry: Entry, seed: int = 0) -> Tensor:
    """Uniform noise on the data's levels (C, H, W): an image no model of the data should find likely."""
    _check_image_model(entry)
    u = torch.rand(entry.shape, generator=torch.Generator().manual_seed(seed))
    return from_unit(entry, u)


def from_unit(entry: Entry, u: Tensor) -> Tensor:
    """[0, 1] intensities to model space, snapped to the data's levels (discrete data)."""
    levels = entry.run.data.get("levels")
    if levels:
        u = torch.round(u * (levels - 1)) / (levels - 1)
    lo, hi = entry.run.data.get("value_range") or (0.0, 1.0)
    return (lo + (hi - lo) * u).float()


def read_upload(entry: Entry, path: str | Path) -> Tensor:
    """An uploaded image file as one example (C, H, W) of the model's data; refuses files that are too large,
    not images, or not the model's size."""
    _check_image_model(entry)
    path = Path(path)
    size = path.stat().st_size
    if size > MAX_UPLOAD_BYTES:
        raise AppError(f"{path.name}: {size / 2**20:.1f} MB is too large; upload an image under "
                       f"{MAX_UPLOAD_BYTES // 2**20} MB")
    try:
        with Image.open(path) as img:
            img.load()
            c, h, w = entry.shape
            img = img.convert("L" if c == 1 else "RGB")
    except (UnidentifiedImageError, OSError, ValueError):
        raise AppError(f"{path.name}: not an image file PIL can read (PNG, JPEG, ...)") from None
    if img.size != (w, h):
        raise AppError(f"{path.name}: {img.width}x{img.height} pixels, but {entry.name} models {w}x{h} "
                       f"{'grayscale' if c == 1 else 'RGB'} images; resize it to {w}x{h} first")
    arr = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0)
    return from_unit(entry, arr[None] if c == 1 else arr.permute(2, 0, 1))


def editor_background(entry: Entry, x: Tensor) -> np.ndarray:
    """(S, S, 3) uint8 upscaled picture of ``x`` for the paint canvas."""
    return np.asarray(to_pil(to_pixels(entry, x)).convert("RGB"))


def painted_region(editor: dict[str, Any] | None, shape: tuple[int, ...]) -> Tensor:
    """Pixels painted in the editor's layers, at the model's size: (H, W) bool, True = painted (missing).

    A model pixel counts as painted when at least a third of the canvas pixels over it are."""
    _, h, w = shape
    region = torch.zeros(h, w, dtype=torch.bool)
    if not editor:
        return region
    for layer in editor.get("layers") or []:
        arr = np.asarray(layer)
        if arr.ndim != 3 or arr.shape[-1] != 4:
            continue
        alpha = torch.from_numpy((arr[..., 3] > 0).astype(np.float32))[None, None]
        region |= torch.nn.functional.adaptive_avg_pool2d(alpha, (h, w))[0, 0] > 1 / 3
    return region


def missing_region(entry: Entry, preset: str, painted: Tensor, seed: int = 0) -> Tensor:
    """(H, W) bool, True where missing: the preset mask's missing part and the painted pixels."""
    missing = painted.clone()
    if preset and preset != "none":
        known = make_mask(preset, entry.shape, torch.Generator().manual_seed(seed))[0]
        missing |= ~known
    return missing


@dataclass
class InpaintResult:
    original: Image.Image
    masked: Image.Image
    filled: Image.Image
    seconds: float
    how: str


def inpaint(entry: Entry, x: Tensor, missing: Tensor, *, method: str = "replacement", resample: int = 5,
            sampler: str | None = None, steps: int | None = None, label: int | None = None,
            seed: int = 0) -> InpaintResult:
    """Fill image ``x`` (C, H, W) where ``missing`` (H, W) is True. Continuous models sample along their path
    with the known part imposed: ``method`` ``"replacement"``, or ``"repaint"`` with ``resample`` resampling
    steps (RePaint); a normalizing flow ascends its log-density (NICE's inpainting) from the training set's mean
    image, the start that scored best on NICE's masks (docs/inpainting.md). The options go through
    :func:`flowforge.jobs.inpaint.inpaint_options`, as ``flowforge inpaint``'s do: a control that does not
    apply to the model (RePaint or a sampler for a flow) is refused with the same message."""
    _check_image_model(entry)
    if not bool(missing.any()):
        raise AppError("nothing is missing: paint over part of the image, or choose a preset mask")
    if bool(missing.all()):
        raise AppError("everything is missing: leave part of the image known (that is what inpainting keeps)")
    if method not in ("replacement", "repaint"):
        raise AppError(f"method {method!r}: choose replacement or repaint")
    seed = check_int("seed", seed, 0, 2**31 - 1)
    chosen = {"sampler": sampler, "steps": None if steps is None else check_int("steps", steps, 1, MAX_INPAINT_STEPS),
              "resample": check_int("RePaint resampling", resample, 1, 50) if method == "repaint" else None}
    try:
        options = inpaint_options(entry.run, 1, entry.generator(seed), **chosen)
    except UserError as err:
        raise AppError(str(err)) from None
    start = flow_start(entry)
    if start is not None:
        options["start"] = start
    if "labels" in options:  # the class chosen, or none: unconditional
        options.pop("labels")
        if label is not None:
            options["labels"] = torch.tensor([check_int("class", label, 0, (entry.num_classes or 1) - 1)],
                                             device=entry.device)
    t0 = time.perf_counter()
    try:
        known = (~missing).expand(entry.shape)[None].to(entry.device)
        filled = entry.run.model.inpaint(x[None].to(entry.device), known, **options).cpu()
    except ValueError as err:
        raise AppError(str(err)) from None
    seconds = time.perf_counter() - t0
    try:
        check_finite_samples(filled)
    except UserError as err:
        raise AppError(str(err)) from None
    pixels = to_pixels(entry, x)
    masked = torch.where(missing, torch.full_like(pixels, 0.5), pixels)  # missing pixels shown grey
    return InpaintResult(to_pil(pixels), to_pil(masked), to_pil(to_pixels(entry, filled[0])), seconds,
                         describe_inpainting(options, method))


def flow_start(entry: Entry) -> Tensor | None:
    """Where a flow's inpainting starts: the training set's mean image, the start that scored best on NICE's masks
    (docs/inpainting.md); None (uniform noise, the paper's start) for a flow on latents, a model that is not a
    flow, or where the data set is not at hand (a model folder opened without it)."""
    if "start" not in entry.run.model.inpaint_settings or entry.run.config.data.latent:
        return None
    try:
        return start_values("mean", entry.dataset()).to(entry.device)
    except AppError:
        return None


def describe_inpainting(options: dict[str, Any], method: str) -> str:
    """How an image was filled, from the options its model's ``inpaint`` was given."""
    if "sampler" in options:  # along the path
        return f"{options['sampler']}, {options['steps']} steps, " + (
            f"RePaint x{options['resample']}" if method == "repaint" else "replacement")
    search = "with a line search" if options.get("line_search", True) else "on NICE's fixed schedule"
    start = "the training set's mean image" if options.get("start") is not None else "uniform noise"
    return f"projected gradient ascent on log p {search} from {start}, {options.get('steps', 'the default')} steps"


# ------------------------------------------------------------------------------------------------- density


def read_points(entry: Entry, text: str | None = None, path: str | Path | None = None) -> Tensor:
    """Points (N, D) from text (one point per line, numbers separated by commas or spaces) or an uploaded
    .npy / .csv / .txt file."""
    if entry.kind != "points":
        raise AppError(f"{entry.name} models images; give it an image")
    d = entry.shape[0]
    if path is not None:
        path = Path(path)
        if path.stat().st_size > MAX_UPLOAD_BYTES:
            raise AppError(f"{path.name}: too large; upload at most {MAX_UPLOAD_BYTES // 2**20} MB of points")
        if path.suffix == ".npy":
            try:
                arr = np.load(path, allow_pickle=False)
            except (ValueError, OSError):
                raise AppError(f"{path.name}: not a NumPy array file") from None
        else:
            try:
                text = path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                raise AppError(f"{path.name}: not text; upload a .npy array or a .csv of numbers") from None
    if path is None or path.suffix != ".npy":
        rows = [line.replace(",", " ").split() for line in (text or "").splitlines() if line.strip()]
        rows = [r for r in rows if not (r and r[0].startswith("#"))]
        if not rows:
            raise AppError(f"no points given: type one point per line, {d} numbers each (e.g. 0.5, -0.25)")
        try:
            arr = np.array([[float(v) for v in r] for r in rows])
        except ValueError:
            try:  # a CSV header
                arr = np.array([[float(v) for v in r] for r in rows[1:]])
            except ValueError:
                raise AppError("points: every line must hold numbers only (one point per line)") from None
    arr = np.asarray(arr)
    if arr.dtype.kind not in "fiu" or arr.ndim != 2 or arr.shape[1] != d or len(arr) == 0:
        raise AppError(f"points: expected rows of {d} numbers, got an array of shape {arr.shape}")
    if len(arr) > MAX_POINTS:
        raise AppError(f"points: {len(arr)} rows; score at most {MAX_POINTS} at once")
    x = torch.from_numpy(arr.astype(np.float32))
    if not torch.isfinite(x).all():
        raise AppError("points: NaN or inf values; give finite numbers")
    return x


def score(entry: Entry, x: Tensor, seed: int = 0, batch: int = 250,
          progress: Progress | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Log-likelihood (nats) and bits/dim of the examples ``x`` (N, *shape), each (N,); dequantization noise
    and Hutchinson probes come from ``seed``, so a repeated call gives the same numbers."""
    gen = entry.generator(seed)
    parts = []
    for start in range(0, len(x), batch):
        if progress is not None:
            progress(start / len(x), f"scoring {start}/{len(x)}")
        parts.append(entry.run.model.log_prob(x[start:start + batch].to(entry.device), generator=gen).detach().cpu())
    log_p = torch.cat(parts)
    bpd = entry.run.model.log_prob_to_bits_per_dim(log_p)
    return log_p.double().numpy(), bpd.double().numpy()


def default_reference_size(entry: Entry) -> int:
    """Held-out examples the Density tab compares with: 500 where the likelihood is one pass (flows) or cheap
    (points); 50 for an ODE likelihood of images (about 2 s per 8x8 digit on one AVX2 core)."""
    return 50 if entry.takes_sampler and entry.kind == "image" else 500


def reference_scores(entry: Entry, n: int | None = None, progress: Progress | None = None) -> dict[str, np.ndarray]:
    """The held-out split's scores (its first ``n`` examples; default :func:`default_reference_size`), computed
    once per entry."""
    n = n or default_reference_size(entry)
    if entry._reference.get("n") is None or int(entry._reference["n"]) != n:
        held_out = entry.dataset().test[:n]
        batch = 10 if entry.takes_sampler and entry.kind == "image" else 250
        log_p, bpd = score(entry, held_out, seed=12345, batch=batch, progress=progress)
        entry._reference = {"n": np.array(len(held_out)), "log_p": log_p, "bits_per_dim": bpd}
    return entry._reference


@dataclass
class DensityResult:
    table: str  # markdown: one row per scored example
    figure: Image.Image  # the held-out distribution with the scored examples marked
    log_p: np.ndarray
    bits_per_dim: np.ndarray
    percentile: np.ndarray  # the share of held-out examples scoring lower log-likelihood, in %


def density(entry: Entry, x: Tensor, *, n_reference: int | None = None, progress: Progress | None = None,
            max_rows: int = 20) -> DensityResult:
    """Score ``x`` (N, *shape) and place each example in the held-out split's distribution of the same score."""
    try:
        entry.run.model.check_batch(x)
    except ValueError as err:
        raise AppError(str(err)) from None
    ref = reference_scores(entry, n_reference, progress)
    log_p, bpd = score(entry, x, seed=0)
    percentile = 100.0 * (ref["log_p"][None, :] < log_p[:, None]).mean(1)
    low = np.percentile(ref["log_p"], 1)
    rows = ["| example | log-likelihood (nats) | bits/dim | held-out examples scoring lower | verdict |",
            "|---:|---:|---:|---:|---|"]
    for i in range(min(len(x), max_rows)):
        verdict = "**outlier** (below the held-out 1st percentile)" if log_p[i] < low else "typical"
        rows.append(f"| {i} | {log_p[i]:.2f} | {bpd[i]:.4f} | {percentile[i]:.1f} % | {verdict} |")
    if len(x) > max_rows:
        rows.append(f"| ... {len(x) - max_rows} more | mean {log_p.mean():.2f} | mean {bpd.mean():.4f} | | |")
    rows += ["", (f"Held-out reference: the first {int(ref['n'])} test examples, bits/dim "
                  f"{ref['bits_per_dim'].mean():.4f} on average (1st percentile of log-likelihood {low:.2f} nats).")]
    unit_bpd = entry.run.data.get("levels") is not None or entry.kind == "image"
    values, marks = (ref["bits_per_dim"], bpd) if unit_bpd else (ref["log_p"], log_p)
    xlabel = "bits/dim (lower = more likely)" if unit_bpd else "log-likelihood, nats (higher = more likely)"
    figure = _figure(lambda p: plot_scores(values, marks[:max_rows], p, xlabel=xlabel,
                                           title=f"{entry.name}: held-out distribution and the input"))
    return DensityResult("\n".join(rows), figure, log_p, bpd, percentile)
