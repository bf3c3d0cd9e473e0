"""NICE on MNIST: held-out log-likelihood by epoch (``benchmarks.nice_curve``)."""

from __future__ import annotations

from benchmarks.tables.format import table


def render(files: dict[str, dict]) -> str:
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
