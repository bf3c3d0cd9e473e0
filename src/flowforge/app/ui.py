"""The Gradio page of ``flowforge app``: three tabs (Sample, Inpaint, Density) wired to :mod:`.logic`.

Only layout and wiring live here. Every handler goes through :func:`.logic.guarded`, which turns a refusal
(:class:`~.logic.AppError` and the library's other user errors) into a message on the page, and any other
failure into a one-line message (the traceback goes to the server's log, never to the page).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..solvers import SOLVERS
from . import logic
from .logic import Entry, guarded

if TYPE_CHECKING:
    import gradio as gr

DEFAULT = "the run's setting"
ALL_CLASSES = "all classes (cycling)"
UNCONDITIONAL = "no label"


def _opt_int(value: Any) -> int | None:
    """A number field where 0 (or empty) means the run's own setting."""
    return None if value in (None, "", 0) else value


def _opt_float(name: str, value: Any) -> float | None:
    """A text field holding a number, empty for the run's own setting."""
    text = str(value or "").strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        raise logic.AppError(f"{name}: expected a number such as 2.0, got {text!r}") from None


def _choice(value: str | None) -> str | None:
    return None if value in (None, DEFAULT) else value


def _label(value: str | None) -> int | None:
    return None if value in (None, ALL_CLASSES, UNCONDITIONAL) else int(value)


def describe(entries: dict[str, Entry]) -> str:
    lines = ["| model | family | data | trained | sampled by |", "|---|---|---|---|---|"]
    for name, e in entries.items():
        lines.append(f"| {name} | {e.family} | {e.run.config.data.name}, shape {e.shape} | step {e.run.step} "
                     f"| {e.run.sampler_name}{f', {e.run.config.sample.steps} steps' if e.takes_sampler else ''} |")
    return "\n".join(lines)


def build(entries: dict[str, Entry], *, n_reference: int | None = None) -> gr.Blocks:
    """The app's page over the loaded ``entries``: a header, then one function per tab."""
    import gradio as gr  # here, not at the top: collecting the package's doctests must not need the app extra

    with gr.Blocks(title="flowforge") as page:
        gr.Markdown("# flowforge\nSample, inpaint and score trained models. Loaded:\n\n" + describe(entries))
        sample_tab(entries)
        inpaint_tab(entries)
        density_tab(entries, n_reference)
    return page


def _samplers() -> list[str]:
    return [DEFAULT, *sorted(SOLVERS)]


def _max_classes(entries: dict[str, Entry]) -> int:
    return max((e.num_classes or 0) for e in entries.values())


def sample_tab(entries: dict[str, Entry]) -> None:
    """The Sample tab: one or several models side by side, the array to download."""
    import gradio as gr

    names = list(entries)
    max_classes = _max_classes(entries)
    texts = any(e.takes_prompts for e in entries.values())
    downloads = Path(tempfile.mkdtemp(prefix="flowforge-app-"))
    samplers = _samplers()

    def do_sample(chosen, n, sampler, steps, guidance, label, prompt, seed, progress=gr.Progress(track_tqdm=True)):
        if not chosen:
            raise logic.AppError("choose at least one model")
        results = {}
        for name in chosen:
            entry = entries[name]
            count = n or (64 if entry.kind == "image" else 2000)
            results[name] = logic.sample(entry, n=count, seed=seed, sampler=_choice(sampler),
                                         steps=_opt_int(steps), guidance=_opt_float("guidance", guidance),
                                         label=_label(label), prompt=prompt, progress=True)
        folder = Path(tempfile.mkdtemp(dir=downloads))
        path = logic.save_arrays(results, folder)
        gallery = [(r.picture, f"{name}: {r.how}" + ("" if "NFE" in r.how else f", {r.nfe} NFE") + f", {r.seconds:.2f} s")
                   for name, r in results.items()]
        rows = ["| model | sampler | NFE | seconds |", "|---|---|---:|---:|"]
        rows += [f"| {name} | {r.how} | {r.nfe} | {r.seconds:.2f} |" for name, r in results.items()]
        return gallery, str(path), "\n".join(rows)

    with gr.Tab("Sample", id="sample"):
        with gr.Row():
            with gr.Column(scale=1):
                chosen = gr.CheckboxGroup(names, value=names[:1], label="models (several: side by side)",
                                          elem_id="sample-models")
                n = gr.Number(0, precision=None, label="number of samples (0: 64 images, 2000 points)")
                sampler = gr.Dropdown(samplers, value=DEFAULT, label="sampler (continuous models)")
                steps = gr.Number(0, precision=None, label="steps (0: the run's)")
                guidance = gr.Textbox("", label="guidance (class-conditional models; empty: the run's)",
                                     visible=max_classes > 0)
                label = gr.Dropdown([ALL_CLASSES, *map(str, range(max_classes))], value=ALL_CLASSES,
                                    label="class", visible=max_classes > 0)
                prompt = gr.Textbox("", label="prompt (text models; empty: the labels' captions)",
                                    visible=texts, elem_id="sample-prompt")
                seed = gr.Number(0, precision=None, label="seed")
                go = gr.Button("Sample", variant="primary", elem_id="sample-button")
            with gr.Column(scale=2):
                gallery = gr.Gallery(label="samples", show_label=False, columns=2, height="auto",
                                     object_fit="contain", elem_id="sample-gallery")
                sample_status = gr.Markdown(elem_id="sample-status")
                download = gr.DownloadButton("Download the array (.npy / .npz)", elem_id="sample-download")
        go.click(guarded(do_sample, 2), [chosen, n, sampler, steps, guidance, label, prompt, seed],
                 [gallery, download, sample_status])


def _inpaint_handlers(entries: dict[str, Entry]) -> tuple[Callable[..., tuple], Callable[..., tuple]]:
    """The Inpaint tab's handlers: load an image into the editor, fill what is painted."""
    def load_image(name, source, index, upload):
        entry = entries[name]
        if source == "upload":
            if upload is None:
                raise logic.AppError("no file uploaded yet: choose an image file first")
            x = logic.read_upload(entry, upload)
        else:
            x = logic.test_image(entry, index)
        background = logic.editor_background(entry, x)
        editor = {"background": background, "layers": [], "composite": background}
        return editor, x, f"loaded a {entry.shape[2]}x{entry.shape[1]} image: paint what is missing"

    def do_inpaint(name, x, editor, preset, method, resample, sampler, steps, label, seed):
        entry = entries[name]
        if x is None:
            raise logic.AppError("load an image first (a test image or an upload)")
        missing = logic.missing_region(entry, preset, logic.painted_region(editor, entry.shape), seed)
        r = logic.inpaint(entry, x, missing, method=method, resample=resample, sampler=_choice(sampler),
                          steps=_opt_int(steps), label=_label(label), seed=seed)
        status = f"filled {int(missing.sum())} of {missing.numel()} pixels with {r.how} in {r.seconds:.2f} s"
        return r.original, r.masked, r.filled, status

    return load_image, do_inpaint


def inpaint_tab(entries: dict[str, Entry]) -> None:
    """The Inpaint tab: a test image or an upload, the missing region painted or preset, original / masked /
    filled."""
    import gradio as gr

    images = [n for n in entries if entries[n].kind == "image"]
    max_classes = _max_classes(entries)
    samplers = _samplers()
    load_image, do_inpaint = _inpaint_handlers(entries)
    with gr.Tab("Inpaint", id="inpaint"):
        if not images:
            gr.Markdown("Inpainting pictures needs an image model; none of the loaded runs models images.")
        with gr.Row(visible=bool(images)):
            with gr.Column(scale=1):
                inp_model = gr.Dropdown(images, value=images[0] if images else None, label="model",
                                        elem_id="inpaint-model")
                source = gr.Radio(["test image", "upload"], value="test image", label="image",
                                  elem_id="inpaint-source")
                index = gr.Number(0, precision=None, label="test image number")
                upload = gr.File(label="upload an image (the model's size)", type="filepath",
                                 elem_id="inpaint-upload")
                load = gr.Button("Load image", elem_id="inpaint-load")
                preset = gr.Dropdown(list(logic.PRESET_MASKS), value="none",
                                     label="preset mask (missing part), added to what you paint")
                # RePaint x2 beat replacement at the same network calls on NICE's masks (docs/inpainting.md);
                # a flow takes neither, so the default follows the model shown first
                repaint = bool(images) and "resample" in entries[images[0]].run.model.inpaint_settings
                method = gr.Radio(["replacement", "repaint"], value="repaint" if repaint else "replacement",
                                  label="method (continuous models)", elem_id="inpaint-method")
                resample = gr.Slider(1, 20, value=2, step=1, label="RePaint resampling per step")
                inp_sampler = gr.Dropdown(samplers, value=DEFAULT, label="sampler (continuous models)")
                inp_steps = gr.Number(0, precision=None, label="steps (0: the run's; flows: 100)")
                inp_label = gr.Dropdown([UNCONDITIONAL, *map(str, range(max_classes))], value=UNCONDITIONAL,
                                        label="class", visible=max_classes > 0)
                inp_seed = gr.Number(0, precision=None, label="seed")
                fill = gr.Button("Inpaint", variant="primary", elem_id="inpaint-button")
            with gr.Column(scale=2):
                editor = gr.ImageEditor(type="numpy", image_mode="RGBA", sources=(), transforms=(),
                                        layers=False, brush=gr.Brush(colors=["#ff3030"], color_mode="fixed"),
                                        label="paint over the missing region", elem_id="inpaint-editor",
                                        canvas_size=(logic.SHOW_PX, logic.SHOW_PX))
                image_state = gr.State(None)
                with gr.Row():
                    original = gr.Image(label="original", elem_id="inpaint-original")
                    masked = gr.Image(label="masked", elem_id="inpaint-masked")
                    filled = gr.Image(label="filled", elem_id="inpaint-filled")
                inpaint_status = gr.Markdown(elem_id="inpaint-status")
        load.click(guarded(load_image, 2), [inp_model, source, index, upload],
                   [editor, image_state, inpaint_status])
        fill.click(guarded(do_inpaint, 3), [inp_model, image_state, editor, preset, method, resample, inp_sampler,
                                            inp_steps, inp_label, inp_seed],
                   [original, masked, filled, inpaint_status])


def density_sources(entry: Entry) -> list[str]:
    """The Density tab's inputs for ``entry``: images from the test set, noise or an upload; points typed or
    uploaded (a 2-D model has no "test image" to offer)."""
    return ["test image", "uniform noise", "upload"] if entry.kind == "image" else ["typed points", "upload"]


def density_tab(entries: dict[str, Entry], n_reference: int | None) -> None:
    """The Density tab: the log-likelihood and bits/dim of an input beside the held-out distribution."""
    import gradio as gr

    names = list(entries)

    def do_density(name, source, index, upload, points, progress=gr.Progress()):
        entry = entries[name]
        if entry.kind == "points":
            x = logic.read_points(entry, text=points if source != "upload" else None,
                                  path=upload if source == "upload" else None)
        elif source == "upload":
            if upload is None:
                raise logic.AppError("no file uploaded yet: choose an image file first")
            x = logic.read_upload(entry, upload)[None]
        elif source == "typed points":
            raise logic.AppError(f"{name} models images: choose a test image, uniform noise or an upload")
        elif source == "uniform noise":
            x = logic.noise_image(entry, seed=int(index or 0))[None]
        else:
            x = logic.test_image(entry, index)[None]
        r = logic.density(entry, x, n_reference=n_reference, progress=lambda f, what: progress(f, desc=what))
        shown = logic.to_pil(logic.to_pixels(entry, x[0]), 96) if entry.kind == "image" else None
        return r.table, r.figure, shown, "scored"

    with gr.Tab("Density", id="density"):
        with gr.Row():
            with gr.Column(scale=1):
                den_model = gr.Dropdown(names, value=names[0], label="model", elem_id="density-model")
                den_source = gr.Radio(density_sources(entries[names[0]]),
                                      value=density_sources(entries[names[0]])[0],
                                      label="input (images: test image, noise or upload; points: typed or "
                                            "uploaded .npy / .csv)", elem_id="density-source")
                den_index = gr.Number(0, precision=None, label="test image number (noise: its seed)")
                den_upload = gr.File(label="upload an image, or points (.npy / .csv)", type="filepath",
                                     elem_id="density-upload")
                den_points = gr.Textbox("0.5, 0.25\n4.0, 4.0", lines=4, label="points, one per line",
                                        elem_id="density-points")
                score = gr.Button("Score", variant="primary", elem_id="density-button")
            with gr.Column(scale=2):
                table = gr.Markdown(elem_id="density-table")
                figure = gr.Image(label="held-out distribution (input in red)", elem_id="density-figure")
                shown = gr.Image(label="the scored image", elem_id="density-input")
                density_status = gr.Markdown(elem_id="density-status")
        den_model.change(lambda name: gr.update(choices=density_sources(entries[name]),
                                                value=density_sources(entries[name])[0]),
                         den_model, den_source)
        score.click(guarded(do_density, 3), [den_model, den_source, den_index, den_upload, den_points],
                    [table, figure, shown, density_status])


# The gallery draws each picture's caption over its bottom edge and its label over the top, which hid the bottom
# panels' axes and the figure's title: the caption goes below the picture (in the flow of the cell), each cell
# takes its picture's shape, and the label is off (gr.Gallery(show_label=False)).
PAGE_CSS = ("#sample-gallery .thumbnail-item { aspect-ratio: auto; height: auto; display: flex; "
            "flex-direction: column; } "
            "#sample-gallery .thumbnail-item img { object-fit: contain; height: auto; } "
            "#sample-gallery .caption-label { position: static; max-width: 100%; white-space: normal; }")


def launch(paths: list[str | Path], *, host: str = "127.0.0.1", port: int = 7860, share: bool = False,
           block: bool = True, n_reference: int | None = None, device: str = "auto") -> gr.Blocks:
    """Load ``paths`` onto ``device`` and serve the page on ``host:port``; ``block=False`` returns the running page
    (tests)."""
    entries = logic.open_entries(paths, device=device)
    page = build(entries, n_reference=n_reference)
    page.queue(default_concurrency_limit=1)  # one model call at a time: the CPU is the bottleneck
    try:
        page.launch(server_name=host, server_port=port, share=share, prevent_thread_lock=True, quiet=True,
                    max_file_size="20mb", show_error=False, css=PAGE_CSS)
    except OSError as err:  # Gradio's advice names an environment variable; the CLI has an option
        if "port" not in str(err).lower():
            raise
        raise logic.AppError(f"port {port} on {host} is busy (another app, or an earlier flowforge app still "
                             f"running); choose another with --port, e.g. --port {port + 1}") from None
    if block:  # the server answers now: say where, then serve until Ctrl-C
        print(f"serving {len(entries)} model(s) on {page.local_url} (Ctrl-C stops)", flush=True)
        page.block_thread()
    return page
