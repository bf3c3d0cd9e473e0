"""Gradient checkpointing per DiT block (``benchmarks.checkpointing``)."""

from __future__ import annotations

from benchmarks.tables.format import clean_table, table


def render(files: dict[str, dict]) -> str:
    """Plain against checkpointed DiT blocks: one training step's time and activation memory."""
    record = files["checkpointing"]
    st, plain = record["setting"], record["rows"]["plain"]
    rows = []
    for label, r in record["rows"].items():
        ckpt = label == "checkpointed"
        time_ratio = r["median_step_s"] / plain["median_step_s"]
        mem_ratio = r["activation_mb"] / plain["activation_mb"]
        rows.append([f"DiT depth {st['depth']}, width {st['hidden']}, {st['batch']} x {st['tokens']} tokens"
                     if not ckpt else "", label, f"{1000 * r['median_step_s']:.0f}",
                     f"**{time_ratio:.2f}x**" if ckpt else "1x", f"{r['activation_mb']:.0f}",
                     f"**{mem_ratio:.2f}x**" if ckpt else "1x"])
    return clean_table(table(["model, batch", "blocks", "train step (ms)", "time vs plain",
                              "activation memory (MB)", "memory vs plain"], rows, ["---", "---"] + ["---:"] * 4))
