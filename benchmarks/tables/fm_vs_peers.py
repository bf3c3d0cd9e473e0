"""Flow matching against torchcfm and flow_matching, one table per toy set (``benchmarks.fm_vs_peers``)."""

from __future__ import annotations

from collections.abc import Callable

from benchmarks.tables.format import clean_table, mean_std, sig, table


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
            ratio = f"{mean_std([x['ratio_to_flowforge'] for x in r])[0]:.2f}"
            if lib == "flowforge":
                ratio += f" ({mean_std([x['step_ms_median'] for x in r])[0]:.1f} ms)"
            cells = [sig(mean_std([x["energy"][k] for x in r])[0]) for k in nfes[:-1]]
            m, s = mean_std([x["energy"][top] for x in r])
            cells.append(f"{sig(m)} ± {sig(s, 2)}")
            rows.append([lib, ratio, *cells, sig(mean_std([x["sliced_w2"][top] for x in r])[0])])
        yard = {key: {m: mean_std([rep[key][m] for rep in reps])[0] for m in ("energy", "sliced_w2")}
                for key in ("noise_floor", "matched_gaussian")}
        rows.append(["noise floor / matched Gaussian", "", *[""] * (len(nfes) - 1),
                     f"{sig(yard['noise_floor']['energy'])} / {sig(yard['matched_gaussian']['energy'])}",
                     f"{sig(yard['noise_floor']['sliced_w2'])} / {sig(yard['matched_gaussian']['sliced_w2'])}"])
        header = [dataset, "step time vs flowforge", f"ED, NFE {nfes[0]}", *nfes[1:], f"sliced W2, NFE {top}"]
        return clean_table(table(header, rows, ["---"] + ["---:"] * (len(header) - 1)))

    return render
