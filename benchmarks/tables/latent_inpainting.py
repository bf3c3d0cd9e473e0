"""Latent against pixel inpainting on the same Fashion-MNIST test images (``benchmarks.latent_inpainting``)."""

from __future__ import annotations

from benchmarks.tables.format import table


def _number(value, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def render(files: dict[str, dict]) -> str:
    """One row per mask, method and space (then the floors): rmse on the missing pixels, label accuracy, the seam,
    what the decoder changed on the kept pixels, seconds per image."""
    record = files["latent_inpainting"]
    rows = []
    for mask in record["masks"]:
        for r in (r for r in record["rows"] if r["mask"] == mask):
            rows.append([f"`{mask}`", r["method"], r["space"], _number(r["rmse"], 3), _number(r["accuracy"], 3),
                         _number(r["seam"], 2), _number(r.get("seam_decoded"), 2), _number(r.get("kept_rmse"), 3),
                         _number(r["seconds_per_image"], 3)])
        for floor in ("mean image", "autoencoder reconstruction"):
            f = record["floors"][f"{floor}: {mask}"]
            rows.append([f"`{mask}`", f"floor: {floor}, kept pixels put back", "-", _number(f["rmse"], 3),
                         _number(f["accuracy"], 3), _number(f["seam"], 2), "-", "-", "-"])
    rows.append(["none", "floor: the originals", "-", "0", _number(record["floors"]["original"]["accuracy"], 3),
                 "1.00", "-", "-", "-"])
    return table(["mask (missing)", "method", "space", "rmse, missing px", "label acc.", "seam",
                  "seam before replacement", "decoder's rmse on kept px", "s / image"], rows,
                 ["---", "---", "---", "---:", "---:", "---:", "---:", "---:", "---:"])
