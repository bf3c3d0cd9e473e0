"""Few-step generation on the 2-D sets (``benchmarks.few_step``)."""

from __future__ import annotations

from collections.abc import Callable

from benchmarks.tables.format import bold_columns, clean_table, sig, table


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
    return clean_table(table(header, rows, ["---", "---"] + ["---:"] * (len(nfes) + 5)))
