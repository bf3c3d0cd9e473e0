"""Seconds to reach the best peer's quality (``benchmarks.time_to_quality``)."""

from __future__ import annotations

from collections.abc import Callable

from benchmarks.tables.format import sig, table


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
