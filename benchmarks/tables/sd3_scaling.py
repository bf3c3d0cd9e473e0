"""SD3's scaling study at a small budget (``benchmarks.sd3_scaling``)."""

from __future__ import annotations

import math

from benchmarks.tables.format import bold_columns, mean_std, sig, table


def _cell(values: list[float], digits: int = 3) -> tuple[str, float]:
    mean, std = mean_std(values)
    return sig(mean, digits) + (f" ± {sig(std, 2)}" if len(values) > 1 else ""), mean


def pearson(xs: list[float], ys: list[float]) -> float:
    """Pearson's correlation of two equally long lists."""
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    cov = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    return cov / math.sqrt(sum((x - mx) ** 2 for x in xs) * sum((y - my) ** 2 for y in ys))


def ranks(xs: list[float]) -> list[float]:
    """The rank of each value (0 for the smallest; ties get their mean rank)."""
    order = sorted(range(len(xs)), key=lambda i: xs[i])
    out = [0.0] * len(xs)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and xs[order[j + 1]] == xs[order[i]]:
            j += 1
        for k in range(i, j + 1):
            out[order[k]] = (i + j) / 2
        i = j + 1
    return out


def _correlation(rows: list[dict], which: str) -> str:
    """Pearson's and Spearman's correlation of the validation loss and FD of ``rows``, in words."""
    vals, fds = [r["val_loss"] for r in rows], [r["fd"] for r in rows]
    return (f"over {which.format(len(rows))} Pearson r = {pearson(vals, fds):.2f}, Spearman rho = "
            f"{pearson(ranks(vals), ranks(fds)):.2f}")


def render(files: dict[str, dict]) -> str:
    """Per budget and model: parameters, steps, training FLOPs, final validation loss and FD, mean ± std over
    seeds (best per budget bold), then the correlation of validation loss and FD over every run."""
    record = files["sd3_scaling"]
    rows = record["rows"]
    out = []
    for budget in sorted({r["train_flops"] for r in rows if r["model"] == "DiT-tiny"}):
        group, values = [], []
        for model in dict.fromkeys(r["model"] for r in rows):
            mine = [r for r in rows if r["model"] == model
                    and abs(r["train_flops"] - budget) <= r["step_flops"]]  # steps are rounded to whole
            if not mine:
                continue
            val, fd = _cell([r["val_loss"] for r in mine], 4), _cell([r["fd"] for r in mine])
            seconds = sum(r["train_seconds"] for r in mine) / len(mine)
            group.append([f"{budget / 1e12:.2f}", model, f"{mine[0]['params'] / 1e6:.2f} M", str(mine[0]["steps"]),
                          f"{mine[0]['train_flops'] / 1e12:.2f}", str(len(mine)), val[0], fd[0], f"{seconds:.0f}"])
            values.append([None] * 6 + [val[1], fd[1], None])
        bold_columns(group, values, [6, 7])
        out += group
    header = ["budget (TFLOP)", "model", "params", "steps", "train TFLOP", "seeds", "val loss",
              f"FD, {record['grid']} Euler steps", "train s (wall)"]
    dits = [r for r in rows if r["model"].startswith("DiT")]
    text = table(header, out, ["---:", "---", "---:", "---:", "---:", "---:", "---:", "---:", "---:"])
    return (text + f"\n\nValidation loss against FD: {_correlation(rows, 'all {} runs')}; "
            f"{_correlation(dits, 'the {} DiT runs')}. Noise floor (FD of {record['n']} training digits): "
            f"{record['noise_floor_fd']:.1f}. Batch {record['batch_size']}; FLOPs of a training step: "
            f"forward and backward, 2 per multiply-add; FD of {record['n']} samples ({record['sampler']}, EMA "
            f"weights) against the 297 test digits; CPU capability {record['cpu_capability']}, bf16 autocast.")
