"""Few-step generation on an image data set (``benchmarks.few_step_images``)."""

from __future__ import annotations

from collections.abc import Callable

from benchmarks.tables.format import bold_columns, clean_table, sig, table


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
    return clean_table(table(["model", *[f"FD at NFE {k}" for k in nfes], "straightness", "steps",
                              "training seconds (pairs included)",
                              f"seconds per 1000 samples at NFE {' / '.join(map(str, nfes))}"],
                             rows, ["---"] + ["---:"] * (len(nfes) + 4)))
