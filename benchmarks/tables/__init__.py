"""The registry of the documentation's benchmark tables: one module per benchmark under ``benchmarks/tables/``,
one line per table in :data:`TABLES`.

A table reads one or more results files (``benchmarks/results/<source>.json``, as the harness writes them) and
returns markdown; ``benchmarks.render_tables`` puts it between ``<!-- table:NAME -->`` and ``<!-- /table:NAME -->``
on the one page that marks it. Only the standard library is used, so the check runs anywhere.

To add a table: copy ``benchmarks/tables/checkpointing.py`` (one ``render(files) -> str``; the number formats are
in ``benchmarks/tables/format.py``), add one line ``"NAME": Table(("SOURCE",), MODULE.render)`` below, and put the
two markers on the page of what it measures.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from benchmarks.tables import (attention_memory, bf16_dit, checkpointing, compare, compile_speed, density,
                               ema_run_length, engine_overhead, few_step, few_step_images, flows_vs_peers, fm_vs_peers,
                               guidance_mnist, heun_last_step, image_metric_floors, inpaint, latent_channels,
                               latent_inpainting, latent_vs_pixel,
                               few_step_meanflow, meanflow_oracle, meanflow_weighting, mmdit_text,
                               multires_grids, nfe_curve, nice_curve, packing, sd3_qk_norm, sd3_resolution_shift,
                               sd3_scaling, sd3_time_sampling, time_to_quality, train_speed)


@dataclass(frozen=True)
class Table:
    """A documentation table: the results files it reads (``benchmarks/results/<name>.json``) and its renderer,
    which gets them as ``{name: record}``."""

    sources: tuple[str, ...]
    render: Callable[[dict[str, dict]], str]


# the MeanFlow sweeps' results files (issue 31): each call of a sweep wrote its own
MEANFLOW_2D = ("meanflow_weighting", "meanflow_weighting_b", "meanflow_weighting_5000", "meanflow_weighting_5000b",
               "meanflow_weighting_5000c", "meanflow_weighting_net", "meanflow_weighting_batch",
               "meanflow_weighting_preset")
MEANFLOW_DIGITS = ("few_step_meanflow_digits", "few_step_meanflow_digits_b", "few_step_meanflow_digits_c",
                   "few_step_meanflow_digits_d", "few_step_meanflow_digits_600", "few_step_meanflow_digits_e",
                   "few_step_meanflow_digits_f", "few_step_meanflow_digits_3000_fm",
                   "few_step_meanflow_digits_3000_paper", "few_step_meanflow_digits_3000_ot",
                   "few_step_meanflow_digits_3000_fm_seed1", "few_step_meanflow_digits_3000_paper_seed1",
                   "few_step_meanflow_digits_3000_ot_seed1")

TABLES: dict[str, Table] = {
    "flows_vs_peers": Table(("flows_vs_peers",), flows_vs_peers.render),
    "fm_vs_peers_moons": Table(("fm_vs_peers",), fm_vs_peers.fm_vs_peers("moons")),
    "fm_vs_peers_checkerboard": Table(("fm_vs_peers",), fm_vs_peers.fm_vs_peers("checkerboard")),
    "nfe_curve_digits": Table(("nfe_curve",), nfe_curve.nfe_curve_digits),
    "nfe_curve_mnist": Table(("nfe_curve_mnist", "heun_last_step"), nfe_curve.nfe_curve_mnist),
    "guidance_mnist": Table(("guidance_mnist",), guidance_mnist.render),
    "mmdit_text": Table(("mmdit_text", "mmdit_text_ema"), mmdit_text.render),
    "mmdit_text_latent": Table(("mmdit_text_pixel", "mmdit_text_latent"), mmdit_text.render_latent),
    "train_speed": Table(("train_speed",), train_speed.render),
    "engine_overhead": Table(("engine_overhead",), engine_overhead.render),
    "ema_run_length": Table(("ema_run_length",), ema_run_length.render),
    "heun_last_step_demo_digits": Table(("heun_last_step_demo_digits",),
                                        heun_last_step.heun_last_step("heun_last_step_demo_digits")),
    "image_metric_floors": Table(("image_metric_floors",), image_metric_floors.render),
    "latent_channels": Table(("latent_channels",), latent_channels.render),
    "latent_channels_flows": Table(("latent_channels",), latent_channels.render_flows),
    "ae_discriminator": Table(("ae_discriminator",), latent_channels.render_discriminator),
    "latent_vs_pixel": Table(("latent_vs_pixel",), latent_vs_pixel.render),
    "latent_vs_pixel_time": Table(("latent_vs_pixel_time",), latent_vs_pixel.render_time),
    "latent_inpainting": Table(("latent_inpainting",), latent_inpainting.render),
    "compare_digits": Table(("compare_digits",), compare.compare_table("compare_digits")),
    "compare_mnist": Table(("compare_mnist",), compare.compare_table("compare_mnist")),
    "few_step": Table(("few_step",), few_step.few_step("few_step")),
    "few_step_moons": Table(("few_step_moons",), few_step.few_step("few_step_moons")),
    "few_step_8gaussians": Table(("few_step_8gaussians",), few_step.few_step("few_step_8gaussians")),
    "few_step_pinwheel": Table(("few_step_pinwheel",), few_step.few_step("few_step_pinwheel")),
    "few_step_digits": Table(("few_step_digits",), few_step_images.few_step_images("few_step_digits")),
    "few_step_mnist": Table(("few_step_mnist",), few_step_images.few_step_images("few_step_mnist")),
    "meanflow_weighting": Table(MEANFLOW_2D, meanflow_weighting.scores(MEANFLOW_2D)),
    "few_step_meanflow_digits": Table(MEANFLOW_DIGITS, few_step_meanflow.sweep(MEANFLOW_DIGITS)),
    "meanflow_field_8gaussians": Table(("meanflow_weighting",), meanflow_weighting.field("meanflow_weighting")),
    "packing": Table(("packing",), packing.packing),
    "packing_attention": Table(("packing",), packing.packing_attention),
    "checkpointing": Table(("checkpointing",), checkpointing.render),
    "attention_memory": Table(("attention_memory",), attention_memory.render),
    "time_to_quality": Table(("time_to_quality",), time_to_quality.time_to_quality("time_to_quality")),
    "compile_speed": Table(("compile_speed",), compile_speed.render),
    "multires_grids": Table(("multires_grids",), multires_grids.render),
    "dit_vs_unet_mnist": Table(("dit_vs_unet_mnist",), compare.compare_table("dit_vs_unet_mnist")),
    "time_to_quality_digits": Table(("time_to_quality_digits",),
                                    time_to_quality.time_to_quality("time_to_quality_digits")),
    "nice_curve": Table(("nice_curve",), nice_curve.render),
    "bf16_dit": Table(("bf16_dit",), bf16_dit.render),
    "density_vs_peers": Table(("density_vs_peers",), density.density_vs_peers),
    "sbi_vs_zuko": Table(("sbi_vs_zuko",), density.sbi_vs_zuko),
    "density_families": Table(("density_families",), density.density_families),
    "density_recipes": Table(("density_recipes",), density.density_recipes),
    "density_seeds": Table(("density_seeds",), density.density_seeds),
    "sd3_qk_norm": Table(("sd3_qk_norm",), sd3_qk_norm.render),
    "sd3_time_sampling": Table(("sd3_time_sampling",), sd3_time_sampling.render),
    "sd3_scaling": Table(("sd3_scaling",), sd3_scaling.render),
    "meanflow_oracle": Table(("meanflow_oracle", "meanflow_oracle_5000"), meanflow_oracle.render),
    "sd3_resolution_shift": Table(("sd3_resolution_shift",), sd3_resolution_shift.render),
    "inpaint_accuracy": Table(inpaint.SOURCES, inpaint.scores("accuracy")),
    "inpaint_rmse": Table(inpaint.SOURCES, inpaint.scores("rmse")),
    "inpaint_fd": Table(inpaint.SOURCES, inpaint.scores("fd")),
    "inpaint_log_p": Table(inpaint.SOURCES, inpaint.log_p),
    "inpaint_landscape": Table(("inpaint_landscape",), inpaint.landscape),
    "inpaint_landscape_full": Table(("inpaint_landscape_full",), inpaint.landscape),
}
