"""Neural spline flows and MAFs against zuko, normflows and nflows; the conditional two-moons task; one table
across families (``benchmarks.density_vs_peers``, ``benchmarks.sbi_vs_zuko``, ``benchmarks.density_families``)."""

from __future__ import annotations

from benchmarks.tables.format import bold_columns, short, table


def density_vs_peers(files: dict[str, dict]) -> str:
    """Per set and library: parameters, ms per step, its ratio to flowforge's NSF, the final test NLL and the NLL at
    flowforge's NSF wall-clock; the best NLLs of each set in bold; the baselines below each set."""
    rows = []
    for name, s in files["density_vs_peers"]["sets"].items():
        block, values = [], []
        for lib, r in s["summary"].items():
            late = "" if r["reached_flowforge_nsf_time"] else " *"
            block.append([name, lib, f"{r['params']:,}", f"{r['median_ms_per_step']:.1f}",
                          f"{r['ratio_to_flowforge_nsf']:.2f}", f"{r['final_test_nll']:.3f}",
                          f"{r['nll_at_flowforge_nsf_time']:.3f}{late}"])
            values.append([None] * 5 + [r["final_test_nll"], r["nll_at_flowforge_nsf_time"]])
        bold_columns(block, values, [5, 6])
        rows += block
        baselines = [("matched Gaussian", s["gaussian_baseline_nll"])]
        if "noise_floor_true_density_nll" in s:
            baselines.append(("true density", s["noise_floor_true_density_nll"]))
        rows += [[name, f"*{label}*", "", "", "", f"{v:.3f}", ""] for label, v in baselines]
    return table(["set", "library", "parameters", "ms / step", "vs flowforge NSF", "test NLL (nats)",
                  "NLL at flowforge NSF's wall-clock"], rows, ["---", "---"] + ["---:"] * 5)


def density_recipes(files: dict[str, dict]) -> str:
    """Per set and library, each built as its README or example builds it: the recipe, parameters, ms per step, its
    ratio to flowforge's NSF preset, the final test NLL and the NLL at flowforge's NSF wall-clock (best of each set in
    bold); the baselines below."""
    rows = []
    for name, s in files["density_recipes"]["sets"].items():
        block = [[name, lib, r["architecture"], f"{r['params']:,}", f"{r['median_ms_per_step']:.1f}",
                  f"{r['ratio_to_flowforge_nsf']:.2f}", f"{r['final_test_nll']:.3f}",
                  f"{r['nll_at_flowforge_nsf_time']:.3f}" + ("" if r["reached_flowforge_nsf_time"] else " *")]
                 for lib, r in s["summary"].items()]
        bold_columns(block, [[None] * 6 + [r["final_test_nll"], r["nll_at_flowforge_nsf_time"]]
                             for r in s["summary"].values()], [6, 7])
        rows += block
        baselines = [("matched Gaussian", s["gaussian_baseline_nll"])]
        if "noise_floor_true_density_nll" in s:
            baselines.append(("true density", s["noise_floor_true_density_nll"]))
        rows += [[name, f"*{label}*", "", "", "", "", f"{v:.3f}", ""] for label, v in baselines]
    return table(["set", "library", "recipe (its source)", "parameters", "ms / step", "vs flowforge NSF",
                  "test NLL (nats)", "NLL at flowforge NSF's wall-clock"], rows, ["---", "---", "---"] + ["---:"] * 5)


def density_seeds(files: dict[str, dict]) -> str:
    """Per set and library: the final test NLL over seeds, mean, standard deviation, range and the seeds run."""
    rows = [[name, lib, str(len(r["seeds"])), f"{r['mean']:.3f}", f"{r['std']:.3f}", f"{r['min']:.3f}",
             f"{r['max']:.3f}", f"{r['steps']} x {r['batch']}"]
            for name, libs in files["density_seeds"]["sets"].items() for lib, r in libs.items()]
    return table(["set", "library", "seeds", "mean test NLL", "std", "best", "worst", "steps x batch"], rows,
                 ["---", "---"] + ["---:"] * 6)


def sbi_vs_zuko(files: dict[str, dict]) -> str:
    """Conditional NSF on two moons: step time, held-out NLL, and the empirical coverage of the HPD regions."""
    summary = files["sbi_vs_zuko"]["summary"]
    levels = list(next(iter(summary.values()))["coverage"])
    rows = [[lib, f"{r['median_ms_per_step']:.1f}", f"{r['ratio_to_flowforge_nsf']:.2f}", f"{r['final_test_nll']:.3f}",
             *(f"{r['coverage'][g]:.2f}" for g in levels)] for lib, r in summary.items()]
    return table(["library", "ms / step", "vs flowforge NSF", "held-out -log q(theta | x), nats",
                  *(f"coverage at {g}" for g in levels)], rows, ["---"] + ["---:"] * (3 + len(levels)))


def density_families(files: dict[str, dict]) -> str:
    """Every family on the same sets: test NLL with the training and evaluation seconds."""
    rows = []
    for name, families in files["density_families"]["sets"].items():
        block = [[name, f, f"{r['params']:,}", f"{r['test_nll']:.3f}", short(r["train_s"]), short(r["eval_s"])]
                 for f, r in families.items()]
        bold_columns(block, [[None] * 3 + [r["test_nll"], None, None] for r in families.values()], [3])
        rows += block
    return table(["set", "family", "parameters", "test NLL (nats)", "train s", "eval s"], rows,
                 ["---", "---"] + ["---:"] * 4)
