"""SD3's training-time distributions at a small budget (``benchmarks.sd3_time_sampling``)."""

from __future__ import annotations

from benchmarks.tables.format import bold_columns, mean_std, sig, table


def _cell(values: list[float], digits: int = 3) -> tuple[str, float]:
    mean, std = mean_std(values)
    return sig(mean, digits) + (f" ± {sig(std, 2)}" if len(values) > 1 else ""), mean


def render(files: dict[str, dict]) -> str:
    """Per training-time law: FD at each Euler step count and the final validation loss, mean ± std over seeds
    (best bold), then the noise floor's FD."""
    record = files["sd3_time_sampling"]
    rows = record["rows"]
    grids = [str(k) for k in record["grids"]]
    laws = list(dict.fromkeys(r["law"] for r in rows))
    out, values = [], []
    for law in laws:
        mine = [r for r in rows if r["law"] == law]
        cells = [_cell([r["fd"][k] for r in mine]) for k in grids]
        cells.append(_cell([r["val_loss"] for r in mine], 4))
        seconds = sum(r["train_seconds"] for r in mine) / len(mine)
        out.append([law, str(len(mine)), *[c for c, _ in cells], f"{seconds:.0f}"])
        values.append([None, None, *[v for _, v in cells], None])
    bold_columns(out, values, list(range(2, 3 + len(grids))))
    header = ["training t", "seeds", *[f"FD, {k} Euler steps" for k in grids], "val loss", "train s (wall)"]
    text = table(header, out, ["---", "---:"] + ["---:"] * (len(grids) + 2))
    return (text + f"\n\nNoise floor (FD of {record['n']} training digits): {record['noise_floor_fd']:.1f}. "
            f"{record['steps']} steps of batch {record['batch_size']} per run; {record['model']}; FD of "
            f"{record['n']} samples ({record['sampler']}) against the 297 test digits.")
