"""Inpainting on NICE's masks, every family (``benchmarks.inpaint``), and the flow's log-density landscape
(``benchmarks.inpaint_landscape``)."""

from __future__ import annotations

from collections.abc import Callable

from benchmarks.tables.format import short, table

SOURCES = ("inpaint_nice", "inpaint_nice_paper", "inpaint_nice_search", "inpaint_nice_mean", "inpaint_nice_full",
           "inpaint_realnvp", "inpaint_glow", "inpaint_fm")
SHORT = {"top": "top", "bottom": "bottom", "odd": "odd", "even": "even", "left": "left", "right": "right",
         "middle-vertical": "mid. vert.", "middle-horizontal": "mid. hor.", "random:0.75": "75%", "random:0.9": "90%"}
METRICS = {"accuracy": ("label accuracy", lambda v: f"{v:.2f}"), "rmse": ("rmse", lambda v: f"{v:.3f}"),
           "fd": ("FD", lambda v: f"{v:.1f}")}


def _floor_rows(res: dict, metric: str, fmt: Callable[[float], str]) -> list[list[str]]:
    floors, n = res["floors"], f"{res['n']} test images"
    mean = [floors[f"mean fill: {m}"][metric] for m in res["masks"]]
    original = floors["original"][metric]
    return [["floor", "missing part = training mean", n, *map(fmt, mean), fmt(sum(mean) / len(mean)), "-"],
            ["floor", "original images", n, *([fmt(original)] * len(mean)), fmt(original), "-"]]


def _method_rows(res: dict, metric: str, fmt: Callable[[float], str]) -> list[list[str]]:
    rows = []
    for method in dict.fromkeys(r["method"] for r in res["rows"]):
        by_mask = {r["mask"]: r for r in res["rows"] if r["method"] == method}
        if set(by_mask) != set(res["masks"]):
            continue  # a method not yet scored on every mask
        values = [by_mask[m][metric] for m in res["masks"]]
        seconds = sum(r["seconds_per_image"] for r in by_mask.values()) / len(by_mask)
        rows.append([res["label"], method, f"{res['kind']}, step {res['step']}, {res['n']} images", *map(fmt, values),
                     fmt(sum(values) / len(values)), short(seconds)])
    return rows


def scores(metric: str) -> Callable[[dict[str, dict]], str]:
    """One score (``accuracy``, ``rmse`` or ``fd``) per model, method and mask, beside the floors."""
    name, fmt = METRICS[metric]

    def render(files: dict[str, dict]) -> str:
        present = [files[s] for s in SOURCES if s in files]
        masks = present[0]["masks"]
        rows = [row for n in sorted({r["n"] for r in present})
                for row in _floor_rows(next(r for r in present if r["n"] == n), metric, fmt)]
        for res in present:
            rows += _method_rows(res, metric, fmt)
        header = ["model", "method", "run", *(SHORT.get(m, m) for m in masks), f"mean {name}", "s / image"]
        return table(header, rows, ["---"] * 3 + ["---:"] * (len(masks) + 2))

    return render


def log_p(files: dict[str, dict]) -> str:
    """The flows' fills against the originals under the same model: mean log p (nats per image, at the bins'
    centres) of the filled images per mask, and of the originals."""
    rows = []
    for res in (files[s] for s in SOURCES if s in files and files[s]["family"] == "flow"):
        for method in dict.fromkeys(r["method"] for r in res["rows"]):
            by_mask = {r["mask"]: r for r in res["rows"] if r["method"] == method}
            if set(by_mask) != set(res["masks"]) or any("log_p_fill" not in r for r in by_mask.values()):
                continue
            values = [by_mask[m]["log_p_fill"] for m in res["masks"]]
            original = next(iter(by_mask.values()))["log_p_original"]
            rows.append([res["label"], method, f"{res['kind']}, step {res['step']}, {res['n']} images",
                         *(f"{v:.0f}" for v in values), f"{sum(values) / len(values):.0f}", f"{original:.0f}"])
    masks = next(files[s] for s in SOURCES if s in files)["masks"]
    header = ["model", "method", "run", *(SHORT.get(m, m) for m in masks), "mean, fills", "originals"]
    return table(header, rows, ["---"] * 3 + ["---:"] * (len(masks) + 2))


def landscape(files: dict[str, dict]) -> str:
    """The flow's log-density around the originals: gradients, and where ascent from the originals goes."""
    res = next(iter(files.values()))  # inpaint_landscape (the 600-step NICE) or inpaint_landscape_full
    rows = [[mask, f"{r['grad_rms_background']:.3g}", f"{r['grad_rms_ink']:.3g}", f"{r['log_p_original']:.1f}",
             f"{r['log_p_from_original']:.1f}", f"{r['log_p_search_from_original']:.1f}",
             f"{r['saturated_original']:.2f}", f"{r['saturated_from_original']:.2f}", f"{r['rmse_from_original']:.3f}",
             f"{r['rmse_search_from_original']:.3f}"]
            for mask, r in res["rows"].items()]
    return table(["mask", "rms grad, background", "rms grad, ink", "log p, originals",
                  f"log p, {res['steps']} paper steps from them (lr {res['lr']})",
                  f"log p, {res['steps']} line-search steps from them", "at the range's ends: originals",
                  "after paper steps", "rmse moved: paper", "line search"], rows, ["---"] + ["---:"] * 9)
