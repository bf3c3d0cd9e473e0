"""Packed against padded training steps, and the attention kernels alone (``benchmarks.packing``)."""

from __future__ import annotations

from benchmarks.tables.format import clean_table, table


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
    return clean_table(table(["batch (DiT, sizes x images)", "layout", "train step (ms)", "real tokens/s",
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
    return clean_table(table(["pack (heads 4 x 32)", "kernel", "forward + backward (ms)", "forward (ms)",
                              "peak memory growth (MB)"], rows, ["---", "---", "---:", "---:", "---:"]))
