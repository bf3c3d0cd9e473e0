"""Render the documentation's benchmark tables from ``benchmarks/results/*.json``, so no figure is copied by hand.

Each table sits in README.md or one of the pages docs/*.md, exactly once across them, between
``<!-- table:NAME -->`` and ``<!-- /table:NAME -->`` lines; this script rewrites what is between them from the
results files named in ``TABLES`` and leaves every other line alone.

    .venv/bin/python benchmarks/render_tables.py            # rewrite the tables in README.md and docs/*.md
    .venv/bin/python benchmarks/render_tables.py --check    # exit 1 (and show the diff) if a page differs
    .venv/bin/python benchmarks/render_tables.py --print nfe_curve_digits

A table whose results file does not exist yet and that has no markers is skipped with a note (it waits for its
benchmark to be run); a table with markers whose file is missing, a file present without the table's markers
in any page, or a table marked on two pages (or twice on one), fails ``--check``. Only the standard library is
used, so the check runs anywhere.
"""

from __future__ import annotations

import argparse
import difflib
import json
import math
import re
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


# --------------------------------------------------------------------------- number formats


def sig(x: float, digits: int = 3) -> str:
    """``x`` to ``digits`` significant digits, trailing zeros kept, never in exponent notation:
    0.0000316, 0.0370, 1.68."""
    if x == 0 or not math.isfinite(x):
        return f"{x:g}"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(x))))
    return f"{x:.{decimals}f}"


def short(x: float) -> str:
    """At most 3 decimals and 3 significant digits: 0.048, 0.454, 3.41, 217."""
    return f"{x:.3f}" if abs(x) < 1 else f"{x:.3g}"


def bold_min(cells: list[str], values: list[float | None]) -> list[str]:
    """Bold the cells holding the smallest shown value (ties, as printed, all bold)."""
    shown = [float(c.split()[0]) if v is not None else math.inf for c, v in zip(cells, values)]
    best = min(shown)
    return [f"**{c}**" if v is not None and s == best else c for c, v, s in zip(cells, values, shown)]


def table(header: list[str], rows: list[list[str]], align: list[str]) -> str:
    """A markdown table; ``align`` holds ``---`` or ``---:`` per column."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _clean_table(text: str) -> str:
    """Empty cells written ``| |``, as in the rest of the README (``|  |`` twice over for runs of them)."""
    return "\n".join(re.sub(r"\|  (?=\|)", "| ", line) for line in text.splitlines())


# --------------------------------------------------------------------------- the tables


def _without_label(command: str) -> str:
    """A train_speed command without its ``--label`` (a name for the table, not a setting of the measurement)."""
    words = shlex.split(command)
    if "--label" in words:
        i = words.index("--label")
        del words[i:i + 2]
    return shlex.join(words)


def _rate(steps_per_sec: float) -> str:
    """Steps/s with one decimal, two significant digits below 1 (0.56, not 0.6)."""
    return f"{steps_per_sec:.1f}" if steps_per_sec >= 1 else sig(steps_per_sec, 2)


def train_speed(files: dict[str, dict]) -> str:
    """bf16 autocast against fp32: one row per (CPU capability, case); native-bf16 CPUs first."""
    by_capability = files["train_speed"]["by_capability"]
    order = sorted(by_capability, key=lambda c: not by_capability[c]["mkldnn_bf16_supported"])
    rows, prefixes = [], set()
    for capability in order:
        entry = by_capability[capability]
        kind = "native" if entry["mkldnn_bf16_supported"] else "emulated"
        for i, case in enumerate(entry["cases"].values()):
            cpu = f"{capability}, bf16 {kind}: {case['machine']['cpu']}, {case['date'][:10]}" if i == 0 else ""
            # later rows of the same prefix (env + interpreter + script) abbreviate it to "..."
            prefix, _, rest = _without_label(case["command"]).partition("train_speed.py")
            command = f"... {rest.strip()}" if prefix in prefixes and rest.strip() else prefix + "train_speed.py" + rest
            prefixes.add(prefix)
            rows.append([cpu, case["label"], f"`{command}`", _rate(case["fp32_steps_per_sec"]),
                         _rate(case["bf16_steps_per_sec"]), f"**{case['bf16_over_fp32']:.2f}x**"])
    return _clean_table(table(["CPU (torch capability)", "bf16 autocast vs fp32 training", "command",
                               "fp32 steps/s", "bf16 steps/s", "**bf16 / fp32**"], rows, ["---"] * 3 + ["---:"] * 3))


def engine_overhead(files: dict[str, dict]) -> str:
    """The engine's step against the bare loop and the step's matmuls alone: medians of interleaved rounds."""
    rows = []
    for m in files["engine_overhead"]["models"].values():
        ms = m["ms_per_step"]
        rows.append([m["label"], f"{m['parameters']:,}", f"{m['threads']}", f"{ms['engine']:.2f}", f"{ms['bare']:.2f}",
                     f"{ms['bare, fused AdamW']:.2f}",
                     f"{ms['matmul']:.2f} ({m['matmul_gflops_per_sec']:.0f} GFLOP/s)",
                     f"**{m['engine_over_bare']:.2f}x**", f"**{m['engine_over_bare_fused']:.2f}x**",
                     f"{m['bare_fused_over_matmul']:.2f}x"])
    return table(["model", "parameters", "threads", "engine ms / step", "bare loop", "bare, fused AdamW",
                  "matmuls alone", "**engine / bare**", "**engine / bare fused**", "bare fused / matmuls"], rows,
                 ["---"] + ["---:"] * 9)


def ema_run_length(files: dict[str, dict]) -> str:
    """Energy distance of the raw weights and of each EMA schedule after runs of several lengths; the best
    weights per run bold."""
    data = files["ema_run_length"]
    variants = ["raw weights", *data["variants"]]
    rows = []
    for case in data["cases"].values():
        r = case["rows"]
        values = [r[v]["energy_distance"] for v in variants]
        cells = [sig(v, 2) if v < 0.01 else f"{v:.3f}" for v in values]
        rows.append([f"{case['preset']}, {case['steps']} steps", *bold_min(cells, values),
                     sig(r["noise floor"]["energy_distance"], 2), sig(r["matched Gaussian"]["energy_distance"], 2)])
    return table(["run", *variants, "noise floor", "matched Gaussian"], rows, ["---"] + ["---:"] * (len(variants) + 2))


def heun_last_step(name: str) -> Callable[[dict[str, dict]], str]:
    """Energy distance of Heun with a Heun or an Euler last step to t = 0, per run and number of steps
    (``heun_last_step.py`` on several runs: ``by_run``)."""
    return lambda files: _heun_last_step(files[name]["by_run"])


def _heun_last_step(runs: dict[str, dict]) -> str:
    steps = sorted({r["steps"] for run in runs.values() for r in run["rows"]})
    rows = []
    for name, run in runs.items():
        for last in ("heun", "euler"):
            got = {r["steps"]: r for r in run["rows"] if r["last_step"] == last}
            cells = [f"{got[k]['energy_distance']:.4f} [{got[k]['nfe']}]" if k in got else "" for k in steps]
            rows.append([f"{name} ({run['n']} samples)" if last == "heun" else "", f"`{last}`", *cells])
    return _clean_table(table(["run", "last step", *(f"{k} steps [NFE]" for k in steps)], rows,
                              ["---", "---"] + ["---:"] * len(steps)))


def flows_vs_peers(files: dict[str, dict]) -> str:
    """RealNVP on moons against normflows and zuko: medians over repeats."""
    summary = files["flows_vs_peers"]["summary"]
    rows = []
    for name, s in summary.items():
        late = "" if s["reached_flowforge_time"] else "*"  # finished before flowforge's time: its final NLL
        rows.append([name, f"{s['params']:,}", f"{s['median_ms_per_step']:.1f}", f"{s['ratio_to_flowforge']:.2f}",
                     f"{s['final_test_nll']:.3f}", f"{s['nll_at_flowforge_time']:.3f}{late}"])
    return table(["library", "parameters", "ms / step", "step time vs flowforge",
                  "test NLL (nats, 5000 fresh points)", "NLL at flowforge's wall-clock"], rows,
                 ["---"] + ["---:"] * 5)


def _mean_std(values: list[float]) -> tuple[float, float]:
    mean = sum(values) / len(values)
    var = sum((v - mean) ** 2 for v in values) / (len(values) - 1) if len(values) > 1 else 0.0
    return mean, math.sqrt(var)


def fm_vs_peers(dataset: str) -> Callable[[dict[str, dict]], str]:
    """Flow matching on one toy set against torchcfm and flow_matching: means over repeats (± std at the top
    NFE), the noise floor and matched Gaussian in the last row."""

    def render(files: dict[str, dict]) -> str:
        record = files["fm_vs_peers"]
        nfes = [str(k) for k in record["args"]["nfe"]]
        top = nfes[-1]
        reps = record["results"][dataset]["repeats"]
        rows = []
        for lib in reps[0]["libs"]:
            r = [rep["libs"][lib] for rep in reps]
            ratio = f"{_mean_std([x['ratio_to_flowforge'] for x in r])[0]:.2f}"
            if lib == "flowforge":
                ratio += f" ({_mean_std([x['step_ms_median'] for x in r])[0]:.1f} ms)"
            cells = [sig(_mean_std([x["energy"][k] for x in r])[0]) for k in nfes[:-1]]
            m, s = _mean_std([x["energy"][top] for x in r])
            cells.append(f"{sig(m)} ± {sig(s, 2)}")
            rows.append([lib, ratio, *cells, sig(_mean_std([x["sliced_w2"][top] for x in r])[0])])
        yard = {key: {m: _mean_std([rep[key][m] for rep in reps])[0] for m in ("energy", "sliced_w2")}
                for key in ("noise_floor", "matched_gaussian")}
        rows.append(["noise floor / matched Gaussian", "", *[""] * (len(nfes) - 1),
                     f"{sig(yard['noise_floor']['energy'])} / {sig(yard['matched_gaussian']['energy'])}",
                     f"{sig(yard['noise_floor']['sliced_w2'])} / {sig(yard['matched_gaussian']['sliced_w2'])}"])
        header = [dataset, "step time vs flowforge", f"ED, NFE {nfes[0]}", *nfes[1:], f"sliced W2, NFE {top}"]
        return _clean_table(table(header, rows, ["---"] + ["---:"] * (len(header) - 1)))

    return render


class NfeNotes:
    """The ``[real NFE]`` note of a cell whose sampler spent another NFE than its column's: the table's first
    reads ``[NFE n]``, later ones ``[n]``."""

    def __init__(self):
        self.first = True

    def __call__(self, nfe: int) -> str:
        note, self.first = (f" [NFE {nfe}]" if self.first else f" [{nfe}]"), False
        return note


def snapped(rows: list[dict], targets: list[int]) -> list[dict | None]:
    """Per target NFE, ``{"value", "nfe"}``: the energy distance of samples on the data levels (``_snapped``;
    the ODE end points where a run has no snapped column), or None where the row is missing."""
    by_nfe = {r["target_nfe"]: r for r in rows}
    out = []
    for t in targets:
        r = by_nfe.get(t)
        value = None if r is None else r.get("energy_distance_snapped", r.get("energy_distance"))
        out.append(None if value is None else {"value": value, "nfe": r["nfe"], "target": t})
    return out


def nfe_row(points: list[dict | None], notes: NfeNotes) -> tuple[list[str], list[float | None]]:
    """Cells ``value [real NFE]`` and the values, for ``bold_min``."""
    cells = ["" if p is None else short(p["value"]) + (notes(p["nfe"]) if p["nfe"] != p["target"] else "")
             for p in points]
    return cells, [None if p is None else p["value"] for p in points]


def bold_columns(rows: list[list[str]], values: list[list[float | None]], columns: list[int]) -> None:
    """Bold the best cell of each column index in ``columns`` (over ``rows``, in place)."""
    for j in columns:
        for r, c in zip(rows, bold_min([r[j] for r in rows], [v[j] for v in values])):
            r[j] = c


GRID_NAMES = {"karras": "Karras"}


def nfe_curve_digits(files: dict[str, dict]) -> str:
    """Energy distance (snapped to the data levels) against NFE for each digits run and sampler.

    NFE 2 is left out; a sampler whose cells equal euler's everywhere (DDIM on the linear and EDM paths) is
    left out; the best sampler per column is bold up to NFE 16, beyond which every sampler sits between the noise
    floor and the matched Gaussian (the README's text)."""
    targets, bold_up_to = [4, 8, 16, 32, 64], 16
    rows, notes = [], NfeNotes()
    for run in files["nfe_curve"]["runs"]:
        by_sampler = {}
        for r in run["rows"]:
            by_sampler.setdefault(r["sampler"], []).append(r)
        points = {s: snapped(rs, targets) for s, rs in by_sampler.items()}
        shown = {s: [p and short(p["value"]) for p in ps] for s, ps in points.items()}
        keep = [s for s in points if s == "euler" or shown[s] != shown.get("euler")]
        block, values = [], []
        for s in keep:
            cells, vals = nfe_row(points[s], notes)
            block.append(["", s, *cells])
            values.append([None, None, *vals])
        bold_columns(block, values, [2 + i for i, t in enumerate(targets) if t <= bold_up_to])
        block[0][0] = f"{run['name']} ({GRID_NAMES.get(run['grid'], run['grid'])})"
        rows += block
    header = ["run (grid)", "sampler", f"NFE ≈ {targets[0]}", *map(str, targets[1:])]
    return _clean_table(table(header, rows, ["---", "---"] + ["---:"] * len(targets)))


def nfe_curve_mnist(files: dict[str, dict]) -> str:
    """Energy distance (snapped) against NFE on fm-mnist-cpu. Heun's rows name their last step to ``t = 0``
    (rows without ``last_step`` predate ``sample.last_step``, when it was Heun's); where that was Heun's, the
    Euler-last-step variant of ``heun_last_step.py`` follows, its ``k`` steps in the column of NFE ``2 k``. The
    best per column bold."""
    run = files["nfe_curve_mnist"]["runs"][0]
    targets = sorted({r["target_nfe"] for r in run["rows"]})
    rows, values, notes = [], [], NfeNotes()
    for s in dict.fromkeys(r["sampler"] for r in run["rows"]):
        mine = [r for r in run["rows"] if r["sampler"] == s]
        was = mine[0].get("last_step", "heun") if s == "heun" else None
        label = s if was is None else f"heun, {was.capitalize()} last step" + \
            (" (the default before `sample.last_step`)" if was == "heun" else "")
        labelled = [(label, snapped(mine, targets))]
        if was == "heun":
            last = [{"target_nfe": 2 * r["steps"], "nfe": r["nfe"], "energy_distance": r["energy_distance"]}
                    for r in files["heun_last_step"]["rows"] if r["euler_last_step"]]
            labelled.append(("heun, Euler last step (the default now; `benchmarks/heun_last_step.py`)",
                             snapped(last, targets)))
        for label, points in labelled:
            cells, vals = nfe_row(points, notes)
            rows.append([label, *cells])
            values.append([None, *vals])
    bold_columns(rows, values, list(range(1, len(targets) + 1)))
    header = ["sampler", f"NFE {targets[0]}", *map(str, targets[1:])]
    return _clean_table(table(header, rows, ["---"] + ["---:"] * len(targets)))


def guidance_mnist(files: dict[str, dict]) -> str:
    """Classifier-free guidance on MNIST: one row per guidance weight, then the training images' floor; the lowest
    feature FD bold."""
    record = files["guidance_mnist"]
    rows, fds = [], []
    for r in record["rows"]:
        w = r["weight"]
        label = ("unconditional (no label)" if w == 0 else "1 (conditional)" if w == 1
                 else f"{w:g} (the preset's)" if w == record.get("run_sample_guidance") else f"{w:g}")
        acc = "-" if r["accuracy"] is None else f"{r['accuracy']:.3f}"
        rows.append([label, acc, f"{r['confidence']:.3f}", f"{r['frechet_distance']:.1f}", f"{r['precision']:.3f}",
                     f"{r['recall']:.3f}", f"{r['class_spread']:.3f}"])
        fds.append(r["frechet_distance"])
    best = min(range(len(fds)), key=fds.__getitem__)
    rows[best][3] = f"**{rows[best][3]}**"
    f = record["floor"]
    n = f["n_samples"]
    rows.append([f"floor: {n} training images", f"{f['label_accuracy']:.3f}", f"{f['confidence']:.3f}",
                 f"{f['fd']:.1f}", f"{f['precision']:.3f}", f"{f['recall']:.3f}",
                 f"{max(f['class_histogram']) / n:.3f}"])
    return table(["guidance w", "label accuracy", "classifier confidence", "FD", "precision", "recall",
                  "largest class share"], rows, ["---:"] * 7)


def mmdit_text(files: dict[str, dict]) -> str:
    """Prompt following of the text MMDiT: label accuracy per template (rows) and per weights and guidance weight
    (columns, the training weights' file first, then the EMA's), the held-out template marked, and the training
    templates' mean."""
    records = [files["mmdit_text"], files["mmdit_text_ema"]]
    summaries = [s for record in records for s in record["summary"]]
    columns = [(s["weights"], s["guidance"]) for s in summaries]
    by = {(r["template"], r["weights"], r["guidance"]): r for record in records for r in record["rows"]}
    templates = list(dict.fromkeys(r["template"] for r in records[0]["rows"]))
    rows = []
    for t in templates:
        held = by[(t, *columns[0])]["heldout"]
        name = f"**`{t}` (held out)**" if held else f"`{t}`"
        rows.append([name] + [f"{by[(t, *c)]['accuracy']:.3f}" for c in columns])
    rows.append(["training templates: mean ± std"] + [f"{s['training_templates_mean']:.3f} ± "
                                                       f"{s['training_templates_std']:.3f}" for s in summaries])
    names = {"model": "training weights", "ema": "EMA weights"}
    return table(["prompt template"] + [f"{names[which]}, w = {w:g}" for which, w in columns], rows,
                 ["---"] + ["---:"] * len(columns))


def image_metric_floors(files: dict[str, dict]) -> str:
    """The image scores' yardsticks per data set and sample count: training images (the floor) and the matched
    Gaussian against the test split."""
    rows = []
    for name, res in files["image_metric_floors"]["results"].items():
        for n, by_row in res["rows"].items():
            for row, r in by_row.items():
                acc = f"{r['label_accuracy']:.3f}" if "label_accuracy" in r else "-"
                rows.append([f"{name} (`{res['extractor']}`, {res['n_reference']} test images)", n,
                             row.replace("_", " "), f"{r['fd']:.2f}", f"{r['kd']:.3g} ± {r['kd_stderr']:.1g}",
                             f"{r['precision']:.3f}", f"{r['recall']:.3f}", f"{r['confidence']:.3f}", acc,
                             f"{sum(r['seconds'].values()):.1f}"])
    return table(["data (extractor, reference)", "n", "row", "FD", "KD ± se", "precision", "recall",
                  "confidence", "label acc.", "seconds"], rows, ["---", "---:", "---"] + ["---:"] * 7)


def compare_table(name: str) -> Callable[[dict[str, dict]], str]:
    """A ``flowforge compare --out benchmarks/results/NAME`` table: each run's scores beside their floors."""
    def render(files: dict[str, dict]) -> str:
        records = files[name]["rows"]
        labelled = any(r.get("label_accuracy") is not None for r in records)   # a class-conditional run among them
        rows = []
        for r in records:
            def num(key: str, fmt: str) -> str:
                return "-" if r.get(key) is None else fmt.format(r[key])

            rows.append([f"`{r['run']}`", num("parameters", "{:,}"), num("train_seconds", "{:.0f}"),
                         f"{r['sampler']}", num("nfe", "{:d}"), num("bits_per_dim", "{:.3f}"),
                         f"{r['energy_distance'] / r['energy_floor']:.2f}", num("fd", "{:.1f}"),
                         num("fd_floor", "{:.1f}"), num("fd_gaussian", "{:.1f}"), num("precision", "{:.3f}"),
                         num("recall", "{:.3f}")] + ([num("label_accuracy", "{:.3f}")] if labelled else []))
        headers = ["run", "parameters", "train s", "sampler", "NFE", "bits/dim", "energy dist. / floor", "FD",
                   "FD floor", "FD Gaussian", "precision", "recall"] + (["label acc."] if labelled else [])
        return table(headers, rows, ["---"] + ["---:"] * (len(headers) - 1))

    return render


def few_step(name: str) -> Callable[[dict[str, dict]], str]:
    return lambda files: _few_step(files[name])


def _few_step(data: dict) -> str:
    """1-RF, 2-RF, distilled 2-RF, MeanFlow and 3-RF: energy distance (mean ± std over reference draws) per NFE and
    sampler, straightness, training and pair-drawing time, and the seconds to draw 10k samples per NFE; the best
    cell of each NFE column bold (two significant digits: the values sit near the noise floor)."""
    rows_in = data["rows"]
    nfes = sorted({r["nfe"] for r in rows_in if "nfe" in r})
    facts = {r["model"]: r for r in rows_in if "straightness" in r}
    order = list(dict.fromkeys(r["model"] for r in rows_in))
    rows, values = [], []
    for model in order:
        for sampler in dict.fromkeys(r["sampler"] for r in rows_in if r["model"] == model and "sampler" in r):
            by_nfe = {r["nfe"]: r for r in rows_in if r["model"] == model and r.get("sampler") == sampler}
            cells = [f"{sig(by_nfe[k]['energy_distance'], 2)} ± {sig(by_nfe[k]['energy_distance_std'], 1)}"
                     if k in by_nfe else "" for k in nfes]
            f = facts.get(model, {})
            pairs = f.get("pairs_seconds")
            timing = " / ".join(f"{by_nfe[k]['seconds_10k']:.1f}" for k in nfes if k in by_nfe)
            rows.append([model, f"`{sampler}`", *cells, sig(f.get("straightness", float("nan")), 2),
                         f"{f.get('steps', '')}", f"{f.get('train_seconds', float('nan')):.0f}",
                         f"{pairs:.0f}" if pairs is not None else "", timing])
            values.append([by_nfe[k]["energy_distance"] if k in by_nfe else None for k in nfes])
    columns = list(range(2, 2 + len(nfes)))
    bold_columns(rows, [[None, None, *v] for v in values], columns)
    floor = data["noise_floor"]
    rows.append(["noise floor (fresh draws)", "", *[f"{sig(floor['energy_distance'], 2)} ± "
                                                    f"{sig(floor['energy_distance_std'], 1)}"] * len(nfes),
                 "", "", "", "", ""])
    header = ["model", "sampler", *[f"ED at NFE {k}" for k in nfes], "straightness", "steps", "train s",
              "pairs s", f"s per {data.get('timing_n', 10000) // 1000}k samples at NFE {' / '.join(map(str, nfes))}"]
    return _clean_table(table(header, rows, ["---", "---"] + ["---:"] * (len(nfes) + 5)))


def packing(files: dict[str, dict]) -> str:
    """Packed, padded and equal-length training steps of a DiT on one mixed-resolution batch, per scenario."""
    record = files["packing"]
    names = {"segments": "packed (`segments`: SDPA per run of equal-length images)",
             "jagged": "packed (`jagged`: SDPA on nested jagged tensors)",
             "padded": "padded to the longest, key-padding mask", "equal": "equal-length batch, no padding"}
    rows = []
    for r in record["scenarios"].values():
        sc, pad, eq = r["scenario"], r["train_step"]["padded"], r["train_step"]["equal"]
        first = (f"{sc['dit']}, {' / '.join(map(str, sc['sizes_px']))} px x {' / '.join(map(str, sc['images']))} "
                 f"({r['real_tokens']} real tokens; padded, {100 * r['padding_fraction_avoided']:.0f}% would be "
                 f"padding)")
        forward = r["forward_only"]
        for i, (method, v) in enumerate(r["train_step"].items()):
            ratio_pad = v["real_tokens_per_s"] / pad["real_tokens_per_s"]
            ratio_eq = v["real_tokens_per_s"] / eq["real_tokens_per_s"]
            bold = method == "segments"
            fwd = f"{1000 * forward[method]['median_s']:.0f}" if method in forward else "-"
            rows.append([first if i == 0 else "", names.get(method, method), f"{1000 * v['median_s']:.0f}",
                         f"{v['real_tokens_per_s']:.0f}", f"**{ratio_pad:.2f}x**" if bold else f"{ratio_pad:.2f}x",
                         f"**{ratio_eq:.2f}x**" if bold else f"{ratio_eq:.2f}x", f"{v['peak_growth_mb']:.0f}", fwd])
        flex = f"{1000 * forward['flex']['median_s']:.0f}" if "flex" in forward else "compile error"
        rows.append(["", "packed (`flex`: FlexAttention block mask)", "no CPU backward", "", "", "", "", flex])
    return _clean_table(table(["batch (DiT, sizes x images)", "layout", "train step (ms)", "real tokens/s",
                               "vs padded", "vs equal-length", "peak memory growth (MB)", "forward only (ms)"], rows,
                              ["---", "---"] + ["---:"] * 6))


def packing_attention(files: dict[str, dict]) -> str:
    """The document-mask attention kernels alone on the same packs: forward + backward, forward, peak memory."""
    record = files["packing"]
    rows = []
    for name, a in record["attention"].items():
        sc = record["scenarios"][name]["scenario"]
        for i, method in enumerate(("segments", "jagged", "flex", "padded", "dense")):
            fb = a["forward_backward_ms"].get(method)
            fw = a["forward_ms"].get(method)
            mem = a["peak_growth_mb"].get(method)
            if method == "flex":
                fb_cell = "no CPU backward"
                fw_cell = f"{fw:.1f}" if fw is not None else "compile error"
            else:
                fb_cell, fw_cell = f"{fb:.1f}", f"{fw:.1f}"
            rows.append([f"{a['tokens']} tokens, {a['images']} images ({sc['dit']})" if i == 0 else "", method,
                         fb_cell, fw_cell, "-" if mem is None else f"{mem:.0f}"])
    return _clean_table(table(["pack (heads 4 x 32)", "kernel", "forward + backward (ms)", "forward (ms)",
                               "peak memory growth (MB)"], rows, ["---", "---", "---:", "---:", "---:"]))


def few_step_images(name: str) -> Callable[[dict[str, dict]], str]:
    """``benchmarks/few_step_images.py``'s table: Fréchet distance in the data set's CNN features per model (and
    sampler: Euler, or MeanFlow's own average-velocity steps) and NFE, beside the floor and the matched Gaussian at
    the same sample count; the best cell of each NFE column bold; straightness, training steps and cost (pairs
    included), and the sampling seconds per 1000 samples at each NFE (the ``--n`` samples' time, scaled)."""
    return lambda files: _few_step_images(files[name])


def per_1000(seconds: float) -> str:
    return f"{seconds:.0f}" if seconds >= 100 else f"{seconds:.1f}"


def _few_step_images(data: dict) -> str:
    rows_in = data["rows"]
    nfes = sorted({r["nfe"] for r in rows_in if "nfe" in r})
    facts = {r["model"]: r for r in rows_in if "straightness" in r}
    rows, values = [], []
    for model, sampler in dict.fromkeys((r["model"], r.get("sampler", "euler")) for r in rows_in if "nfe" in r):
        by_nfe = {r["nfe"]: r for r in rows_in
                  if r["model"] == model and "nfe" in r and r.get("sampler", "euler") == sampler}
        f = facts.get(model, {})
        first = sampler == next(r.get("sampler", "euler") for r in rows_in if r["model"] == model and "nfe" in r)
        cost = f.get("total_seconds") or f.get("train_seconds")
        label = model if sampler == "euler" and first else \
            f"{model}, {'instantaneous field, Euler' if sampler == 'euler' else sampler + ' steps'}"
        rows.append([label, *[sig(by_nfe[k]["scores"]["model"]["fd"], 3) if k in by_nfe else "" for k in nfes],
                     sig(f["straightness"], 2) if first and "straightness" in f else "",
                     f"{f.get('steps', '')}" if first else "", f"{cost:.0f}" if first and cost else "",
                     " / ".join(per_1000(by_nfe[k]["sample_seconds"] * 1000 / data["n"]) if k in by_nfe else "-"
                                for k in nfes)])
        values.append([None, *[by_nfe[k]["scores"]["model"]["fd"] if k in by_nfe else None for k in nfes]])
    bold_columns(rows, values, list(range(1, 1 + len(nfes))))
    first_row = next(r for r in rows_in if "nfe" in r)
    floor, gauss = first_row["scores"]["noise_floor"]["fd"], first_row["scores"]["matched_gaussian"]["fd"]
    rows.append([f"floor ({data['n']} training images)", *[sig(floor, 3)] * len(nfes), "", "", "", ""])
    rows.append(["matched Gaussian", *[sig(gauss, 3)] * len(nfes), "", "", "", ""])
    return _clean_table(table(["model", *[f"FD at NFE {k}" for k in nfes], "straightness", "steps",
                               "training seconds (pairs included)",
                               f"seconds per 1000 samples at NFE {' / '.join(map(str, nfes))}"],
                              rows, ["---"] + ["---:"] * (len(nfes) + 4)))


def checkpointing(files: dict[str, dict]) -> str:
    """Plain against checkpointed DiT blocks: one training step's time and activation memory."""
    record = files["checkpointing"]
    st, plain = record["setting"], record["rows"]["plain"]
    rows = []
    for label, r in record["rows"].items():
        ckpt = label == "checkpointed"
        time_ratio = r["median_step_s"] / plain["median_step_s"]
        mem_ratio = r["activation_mb"] / plain["activation_mb"]
        rows.append([f"DiT depth {st['depth']}, width {st['hidden']}, {st['batch']} x {st['tokens']} tokens"
                     if not ckpt else "", label, f"{1000 * r['median_step_s']:.0f}",
                     f"**{time_ratio:.2f}x**" if ckpt else "1x", f"{r['activation_mb']:.0f}",
                     f"**{mem_ratio:.2f}x**" if ckpt else "1x"])
    return _clean_table(table(["model, batch", "blocks", "train step (ms)", "time vs plain",
                               "activation memory (MB)", "memory vs plain"], rows, ["---", "---"] + ["---:"] * 4))


def attention_memory(files: dict[str, dict]) -> str:
    """SDPA (flowforge's attend) against naive softmax(QK^T)V: step time and peak memory growth per length."""
    data = files["attention_memory"]
    rows = []
    for r in data["rows"]:
        sd, nv = r["sdpa"], r.get("naive")
        rows.append([f"{r['length']:,}", f"{1000 * sd['median_s']:.0f}", f"{sd['peak_growth_mb']:.0f}",
                     f"{1000 * nv['median_s']:.0f}" if nv else "not run", f"{nv['peak_growth_mb']:.0f}" if nv else "",
                     f"**{nv['peak_growth_mb'] / max(sd['peak_growth_mb'], 1e-9):.1f}x**" if nv else ""])
    return _clean_table(table(["tokens", "SDPA ms", "SDPA MB", "naive ms", "naive MB", "naive / SDPA memory"],
                              rows, ["---:"] * 6))

@dataclass(frozen=True)
class Table:
    """A README table: the results files it reads (``benchmarks/results/<name>.json``) and its renderer."""

    sources: tuple[str, ...]
    render: Callable[[dict[str, dict]], str]


def time_to_quality(source: str) -> Callable[[dict[str, dict]], str]:
    """The time-to-quality table of one results file (2-D sets: energy distance; images: Fréchet distance)."""

    def render(files: dict[str, dict]) -> str:
        res = files[source]["results"]
        first = next(iter(res.values()))
        m = first.get("metric", "energy_distance")
        label = {"energy_distance": "ED", "fd": "FD"}[m]
        recipes = list(first["flowforge"])
        last_step = max(c["step"] for rec in first["flowforge"].values() for c in rec["mean_curve"])
        peer_steps = files[source]["args"]["steps"]
        header = ["set", f"target: best peer after {peer_steps} steps", "its seconds",
                  f"peers' {label} at {peer_steps} steps"]
        header += [f"flowforge `{r}`: seconds to target (x peer)" for r in recipes]
        header += [f"`{r}`, {label} at {last_step} steps" for r in recipes] + ["noise floor / matched Gaussian"]
        rows = []
        for name, r in res.items():
            t = r["target"]
            peers = ", ".join(f"{p} {sig(rec['mean_curve'][-1][m], 2)}" for p, rec in r["peers"].items())
            row = [name, f"{sig(t[m], 2)} ({t['peer']})", f"{t['seconds']:.1f}", peers]
            for rec in r["flowforge"].values():
                row.append("not reached" if rec["time_to_target"] is None
                           else f"{rec['time_to_target']:.1f} (**{rec['ratio_to_peer']:.2f}x**)")
            for rec in r["flowforge"].values():
                row.append(sig(rec["mean_curve"][-1][m], 2))
            row.append(f"{sig(r['noise_floor'], 2)} / {sig(r['matched_gaussian'], 2)}")
            rows.append(row)
        return table(header, rows, ["---"] * 2 + ["---:"] * (len(header) - 2))
    return render


def compile_speed(files: dict[str, dict]) -> str:
    d = files["compile_speed"]
    header = ["network", "compile: first training step / first sampling run (s)", "eager ms / step",
              "compiled ms / step", "**training, compiled / eager**", "eager s / sampling run",
              "compiled s / sampling run", "**sampling, compiled / eager**"]
    rows = []
    for r in d["models"].values():
        c = r["first"]["compiled"]
        rows.append([r["label"], f"{c['train_first_s']:.0f} / {c['sample_first_s']:.0f}",
                     f"{r['train_ms']['eager']:.0f}", f"{r['train_ms']['compiled']:.0f}",
                     f"**{r['train_ratio']:.2f}x**", f"{r['sample_s']['eager']:.1f}",
                     f"{r['sample_s']['compiled']:.1f}",
                     f"**{r['sample_ratio']:.2f}x**"])
    return table(header, rows, ["---"] + ["---:"] * (len(header) - 1))


def multires_grids(files: dict[str, dict]) -> str:
    """One multi-resolution model's samples per resolution, in the MNIST classifier's features after resizing to
    28 px, beside training images taken through the same resizing."""
    d = files["multires_grids"]
    header = ["resolution", "tokens per image", "FD (floor)", "KD", "precision", "recall", "label accuracy (floor)",
              f"seconds for {d['n']} samples"]
    rows = []
    for r in d["rows"]:
        m, f = r["model"], r["floor"]
        rows.append([f"{r['size']} x {r['size']} px", str(r["tokens"]), f"{sig(m['fd'], 3)} ({sig(f['fd'], 3)})",
                     sig(m["kd"], 2), f"{m['precision']:.3f}", f"{m['recall']:.3f}",
                     f"{m['label_accuracy']:.3f} ({f['label_accuracy']:.3f})", f"{r['sample_seconds']:.0f}"])
    return table(header, rows, ["---"] + ["---:"] * (len(header) - 1))


def nice_curve(files: dict[str, dict]) -> str:
    """Held-out LL by epoch: the run, the stored 20-epoch run of the same recipe (when the run is longer) and the
    stored zero-start run, every 1 2/3 epochs (500 steps); each run's training minutes under its LL."""
    d = files["nice_curve"]
    zero, cos20 = d["zero_start"], d.get("cosine_20_epochs")
    curve = {round(c["epoch"], 1): c for c in d["curve"]}
    longer = cos20 is not None and max(curve) > cos20["epochs"][-1] + 0.5
    epochs = sorted(set(curve) | set(zero["epochs"]))
    header = ["epoch"] + [f"{e:g}" for e in epochs]
    n_epochs = f"{d.get('epochs', max(curve)):g}"
    rows = [[f"scaling from the first batch, cosine over {n_epochs} epochs: held-out LL"]
            + [f"{curve[e]['held_out_ll']:.0f}" if e in curve else "" for e in epochs],
            ["  its training minutes"]
            + [f"{curve[e]['seconds'] / 60:.0f}" if e in curve and curve[e]["seconds"] else "" for e in epochs]]
    if longer:
        old = dict(zip(cos20["epochs"], cos20["held_out_ll"]))
        minutes = dict(zip(cos20["epochs"], cos20["training_minutes"]))
        rows += [[f"the same over 20 epochs (commit {cos20['commit']})"]
                 + [f"{old[e]:.0f}" if e in old else "" for e in epochs],
                 ["  its training minutes"] + [f"{minutes[e]:.0f}" if e in minutes else "" for e in epochs]]
    by_epoch = dict(zip(zero["epochs"], zero["held_out_ll"]))
    rows.append([f"scaling from zero (commit {zero['commit']})"]
                + [f"{by_epoch[e]:g}" if e in by_epoch else "" for e in epochs])
    return table(header, rows, ["---"] + ["---:"] * len(epochs))


def bf16_dit(files: dict[str, dict]) -> str:
    d = files["bf16_dit"]
    rows = [[f"DiT `{size}` ({r['parameters']:,} parameters), batch {r['batch']} at {r['pixels']} px",
             f"{r['fp32_median_step_s']:.2f}", f"{r['bf16_median_step_s']:.2f}",
             f"**{r['bf16_speed_over_fp32']:.2f}x**"] for size, r in d["rows"].items()]
    return table([f"model ({d['hardware']}, 1 thread)", "fp32 s / step", "bf16 autocast s / step",
                  "bf16 speed / fp32"], rows, ["---", "---:", "---:", "---:"])


TABLES: dict[str, Table] = {
    "flows_vs_peers": Table(("flows_vs_peers",), flows_vs_peers),
    "fm_vs_peers_moons": Table(("fm_vs_peers",), fm_vs_peers("moons")),
    "fm_vs_peers_checkerboard": Table(("fm_vs_peers",), fm_vs_peers("checkerboard")),
    "nfe_curve_digits": Table(("nfe_curve",), nfe_curve_digits),
    "nfe_curve_mnist": Table(("nfe_curve_mnist", "heun_last_step"), nfe_curve_mnist),
    "guidance_mnist": Table(("guidance_mnist",), guidance_mnist),
    "mmdit_text": Table(("mmdit_text", "mmdit_text_ema"), mmdit_text),
    "train_speed": Table(("train_speed",), train_speed),
    "engine_overhead": Table(("engine_overhead",), engine_overhead),
    "ema_run_length": Table(("ema_run_length",), ema_run_length),
    "heun_last_step_demo_digits": Table(("heun_last_step_demo_digits",), heun_last_step("heun_last_step_demo_digits")),
    "image_metric_floors": Table(("image_metric_floors",), image_metric_floors),
    "compare_digits": Table(("compare_digits",), compare_table("compare_digits")),
    "compare_mnist": Table(("compare_mnist",), compare_table("compare_mnist")),
    "few_step": Table(("few_step",), few_step("few_step")),
    "few_step_moons": Table(("few_step_moons",), few_step("few_step_moons")),
    "few_step_8gaussians": Table(("few_step_8gaussians",), few_step("few_step_8gaussians")),
    "few_step_pinwheel": Table(("few_step_pinwheel",), few_step("few_step_pinwheel")),
    "few_step_digits": Table(("few_step_digits",), few_step_images("few_step_digits")),
    "few_step_mnist": Table(("few_step_mnist",), few_step_images("few_step_mnist")),
    "packing": Table(("packing",), packing),
    "packing_attention": Table(("packing",), packing_attention),
    "checkpointing": Table(("checkpointing",), checkpointing),
    "attention_memory": Table(("attention_memory",), attention_memory),
    "time_to_quality": Table(("time_to_quality",), time_to_quality("time_to_quality")),
    "compile_speed": Table(("compile_speed",), compile_speed),
    "multires_grids": Table(("multires_grids",), multires_grids),
    "dit_vs_unet_mnist": Table(("dit_vs_unet_mnist",), compare_table("dit_vs_unet_mnist")),
    "time_to_quality_digits": Table(("time_to_quality_digits",), time_to_quality("time_to_quality_digits")),
    "nice_curve": Table(("nice_curve",), nice_curve),
    "bf16_dit": Table(("bf16_dit",), bf16_dit),
}


# --------------------------------------------------------------------------- README and docs/*.md


def block(name: str) -> re.Pattern:
    """The lines between a table's two markers (markers kept)."""
    return re.compile(rf"(^<!-- table:{re.escape(name)} -->\n)(.*?\n)(<!-- /table:{re.escape(name)} -->$)",
                      re.MULTILINE | re.DOTALL)


def pages(root: Path) -> list[Path]:
    """The pages that may hold tables: ``root/README.md`` and ``root/docs/*.md``."""
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def render_pages(texts: dict[str, str], results: Path) -> tuple[dict[str, str], list[str], list[str]]:
    """``(new texts, problems, notes)``: every marked table re-rendered from ``results``, in the one page (of
    ``texts``, page name -> text) that marks it."""
    problems, notes, texts = [], [], dict(texts)
    for page, text in texts.items():
        for name in re.findall(r"^<!-- table:([\w-]+) -->$", text, re.MULTILINE):
            if name not in TABLES:
                problems.append(f"{page} marks a table {name!r} that render_tables.py does not know")
    for name, spec in TABLES.items():
        missing = [s for s in spec.sources if not (results / f"{s}.json").exists()]
        marked = [page for page, text in texts.items() for _ in block(name).finditer(text)]
        if len(marked) > 1:
            problems.append(f"{name}: marked {len(marked)} times ({', '.join(marked)}); a table lives on one page")
            continue
        if missing:
            files = ", ".join(f"{s}.json" for s in missing)
            (problems if marked else notes).append(f"{name}: no {files} in {results}")
            continue
        if not marked:
            problems.append(f"{name}: its results exist but no page has <!-- table:{name} --> markers")
            continue
        files = {s: json.loads((results / f"{s}.json").read_text()) for s in spec.sources}
        rendered = spec.render(files)
        page = marked[0]
        texts[page] = block(name).sub(lambda m, r=rendered: m.group(1) + r + "\n" + m.group(3), texts[page], count=1)
    return texts, problems, notes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a page is stale")
    parser.add_argument("--print", dest="show", metavar="NAME", choices=sorted(TABLES), help="print one table")
    parser.add_argument("--root", type=Path, default=ROOT, help="the directory of README.md and docs/")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    if args.show:
        spec = TABLES[args.show]
        print(spec.render({s: json.loads((args.results / f"{s}.json").read_text()) for s in spec.sources}))
        return 0
    files = {str(p.relative_to(args.root)): p for p in pages(args.root) if p.exists()}
    old = {page: path.read_text() for page, path in files.items()}
    new, problems, notes = render_pages(old, args.results)
    for note in notes:
        print(f"skipped {note}")
    for problem in problems:
        print(f"error: {problem}")
    stale = [page for page in files if new[page] != old[page]]
    if args.check:
        for page in stale:
            sys.stdout.writelines(difflib.unified_diff(old[page].splitlines(True), new[page].splitlines(True),
                                                       f"{page} (now)", "rendered from the results files"))
            print(f"{page}: tables differ from {args.results}; run benchmarks/render_tables.py")
        return 1 if stale or problems else 0
    for page in stale:
        files[page].write_text(new[page])
        print(f"rewrote the tables of {page}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
