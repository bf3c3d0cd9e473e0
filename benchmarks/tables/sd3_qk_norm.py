"""SD3's QK-norm over a learning-rate sweep (``benchmarks.sd3_qk_norm``)."""

from __future__ import annotations

from benchmarks.tables.format import clean_table, mean_std, sig, table


def _number(x: float, digits: int) -> str:
    """``sig``, or ``1.1e6`` style from 10^4 on (the logits without QK-norm reach millions)."""
    return sig(x, digits) if abs(x) < 1e4 else f"{x:.{digits - 1}e}".replace("e+0", "e").replace("e+", "e")


def _cell(values: list[float | None], digits: int = 3) -> str:
    """Mean ± std over seeds (one seed: the value); '-' where a run has none (it stopped on a non-finite loss)."""
    got = [v for v in values if v is not None]
    if not got:
        return "-"
    mean, std = mean_std(got)
    return _number(mean, digits) + (f" ± {_number(std, 2)}" if len(got) > 1 else "")


def stable(row: dict, rows: list[dict], ratio: float) -> bool:
    """Finite to the end, and the last 50 steps' loss at most ``ratio`` times the best final loss of the sweep
    (both arms, every learning rate) of the same seed."""
    if row["diverged_step"] is not None or row["final_loss"] is None:
        return False
    best = min(r["final_loss"] for r in rows if r["seed"] == row["seed"] and r["final_loss"] is not None)
    return row["final_loss"] <= ratio * best


def _arm(arm: list[dict], rows: list[dict], ratio: float) -> list[str]:
    kept = sum(stable(r, rows, ratio) for r in arm)
    diverged = [r["diverged_step"] for r in arm if r["diverged_step"] is not None]
    verdict = f"{kept}/{len(arm)} stable" + (f", NaN at step {min(diverged)}" if diverged else "")
    return [_cell([r["max_logit"] for r in arm]), _cell([r["peak_loss"] for r in arm]),
            _cell([r["final_loss"] for r in arm]), _cell([r["val_loss"] for r in arm]), verdict]


def render(files: dict[str, dict]) -> str:
    """Per learning rate, with and without QK-norm: the largest attention logit of the run, the peak and final
    training loss, the validation loss at the end, and how many seeds stayed stable; then the highest stable lr."""
    record = files["sd3_qk_norm"]
    rows, ratio = record["rows"], record["diverged_ratio"]
    lrs = sorted({r["lr"] for r in rows})

    def arm(lr: float, qk: bool) -> list[dict]:
        return [r for r in rows if r["lr"] == lr and r["qk_norm"] == qk]

    out = [[f"{lr:g}" if qk else "", "QK-norm" if qk else "none", *_arm(arm(lr, qk), rows, ratio)]
           for lr in lrs for qk in (True, False) if arm(lr, qk)]
    header = ["lr", "attention", "largest logit", "peak loss", "final loss", "val loss", "stable"]
    text = clean_table(table(header, out, ["---:", "---"] + ["---:"] * 4 + ["---"]))
    def all_stable(lr: float, qk: bool) -> bool:
        return bool(arm(lr, qk)) and all(stable(r, rows, ratio) for r in arm(lr, qk))

    best = {qk: max((lr for lr in lrs if all_stable(lr, qk)), default=None) for qk in (True, False)}
    seeds = len({r["seed"] for r in rows})
    return (text + f"\n\nHighest learning rate stable for every seed ({seeds} seed{'s' if seeds > 1 else ''}, "
            f"{record['steps']} steps, {record['precision']}): **{best[True]:g}** with QK-norm, "
            f"**{best[False]:g}** without. Stable: finite to the end, and the last 50 steps' loss at most "
            f"{ratio:g}x the best of the sweep for the same seed." if None not in best.values() else text)
