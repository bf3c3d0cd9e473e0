"""Copy the benchmark figures the documentation shows from ``benchmarks/results/`` into ``docs/``.

Benchmarks write their figures beside their results files and never into ``docs/``: a trial run (another
``--out``, a quick setting) can then never replace a published picture, and the docs site (mkdocs serves only
``docs/``) shows a figure only once it is published here, on purpose, beside the table rendered from the same
results file.

    .venv/bin/python -m tools.publish_figures            # copy those present (`make docs-figures`)
    .venv/bin/python -m tools.publish_figures --check    # exit 1 if a present one differs from docs/
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
DOCS = ROOT / "docs"

# the figure each benchmark writes by default (benchmarks/results/NAME), shown in docs/ under the same name
FIGURES = ("ae-discriminator.png",        # benchmarks.ae_discriminator --figure benchmarks/results/ae-...
           "dit-multires.png",             # benchmarks.multires_grids
           "few-step-digits.png",          # benchmarks.few_step_images
           "few-step-mnist.png",           # benchmarks.few_step_images --parent runs/fm-mnist-cpu
           "guidance-mnist.png",           # benchmarks.guidance
           "latent-vs-pixel.png",          # benchmarks.latent_vs_pixel --minutes 24
           "mmdit-text.png",               # benchmarks.mmdit_text
           "mmdit-text-latent.png",        # benchmarks.mmdit_text runs/bench-latent/mmdit-latent --figure ...
           "mmdit-text-pixel.png",         # benchmarks.mmdit_text runs/bench-latent/mmdit-pixel --figure ...
           "nfe-curve-digits.png",         # benchmarks.nfe_curve
           "nfe-curve-mnist.png",          # benchmarks.nfe_curve --figure benchmarks/results/nfe-curve-mnist.png
           "nice-mnist-curves.png",        # benchmarks.nice_curve
           "sd3-qk-norm.png",              # benchmarks.sd3_qk_norm
           "sd3-time-sampling.png",        # benchmarks.sd3_time_sampling
           "sd3-scaling.png",              # benchmarks.sd3_scaling
           "sd3-resolution-shift.png",     # benchmarks.sd3_resolution_shift
           "time-to-quality.png",          # benchmarks.time_to_quality
           "time-to-quality-digits.png")   # benchmarks.time_to_quality --datasets digits


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="copy nothing; exit 1 if a figure differs")
    args = parser.parse_args(argv)
    stale = 0
    for name in FIGURES:
        src, dst = RESULTS / name, DOCS / name
        if not src.is_file():
            continue  # its benchmark has not written it here (the published one predates benchmarks/results)
        if dst.is_file() and dst.read_bytes() == src.read_bytes():
            continue
        stale += 1
        if not args.check:
            shutil.copyfile(src, dst)
        print(f"{'differs' if args.check else 'copied'}: benchmarks/results/{name} -> docs/{name}")
    return int(args.check and stale > 0)


if __name__ == "__main__":
    raise SystemExit(main())
