"""``flowforge app`` in a real browser: headless Chromium (Debian's package, driven by Playwright) loads the app
on a tiny 2-D run and a tiny image run, clicks through Sample, Inpaint and Density, and checks what renders
(tools/app_screenshots.py does the clicking). Skips, naming what to install, without Gradio, Playwright or
/usr/bin/chromium; `.ci/run` installs all three. FLOWFORGE_APP_SCREENSHOTS=DIR keeps the screenshots there."""

import importlib.util
import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _driver():
    spec = importlib.util.spec_from_file_location("app_screenshots", ROOT / "tools" / "app_screenshots.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _skip_reason() -> str | None:
    missing = [name for name in ("gradio", "playwright") if importlib.util.find_spec(name) is None]
    if missing:
        return f"needs {' and '.join(missing)}: make install-app (pip install '.[app]' playwright)"
    if shutil.which(_driver().CHROMIUM) is None:
        return f"needs Chromium at {_driver().CHROMIUM}: apt-get install chromium (Debian)"
    return None


@pytest.mark.skipif(_skip_reason() is not None, reason=str(_skip_reason()))
def test_app_in_a_browser(tmp_path):
    from conftest import tiny_overrides

    from flowforge import load_config
    from flowforge.app import logic
    from flowforge.app.ui import launch
    from flowforge.train import train

    # the first-run models of `make app`, shrunk: the 2-D demo (configs/rf-checkerboard.yaml) and the digits
    # U-Net (configs/fm-digits.yaml)
    train(load_config("configs/rf-checkerboard.yaml", tiny_overrides(tmp_path / "points", **{
        "data.name": "checkerboard", "train.steps": 60, "sample.steps": 8})), progress=False)
    unet = {"data.name": "digits", "model.net.name": "unet", "model.net.channels": 8, "model.net.channel_mult": "[1,2]",
            "model.net.attention_levels": "[1]", "model.net.num_res_blocks": 1, "train.steps": 10,
            "train.batch_size": 32, "train.warmup_steps": 0, "train.ckpt_every": 10, "sample.steps": 4}
    over = [o for o in tiny_overrides(tmp_path / "digits", **unet) if not o.startswith(("model.net.width",
                                                                                         "model.net.depth"))]
    train(load_config("configs/fm-digits.yaml", over), progress=False)
    runs = [tmp_path / "points", tmp_path / "digits"]
    names = list(logic.open_entries(runs))
    driver = _driver()
    port = driver.free_port()
    page = launch(runs, port=port, block=False, n_reference=20)
    bad = tmp_path / "notes.png"
    bad.write_text("a text file with an image's name")
    out = Path(os.environ.get("FLOWFORGE_APP_SCREENSHOTS") or tmp_path / "shots")
    try:
        seen = driver.drive(f"http://127.0.0.1:{port}/", out, points_model=names[0], image_model=names[1],
                            bad_file=bad)
    finally:
        page.close()
    print({k: v for k, v in seen.items() if k.startswith("seconds")})
    assert "not an image file" in seen["bad_upload"]
    for tab in ("sample", "inpaint", "density"):
        assert (out / f"app-{tab}.png").stat().st_size > 10_000
