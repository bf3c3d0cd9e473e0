"""Drive ``flowforge app`` in headless Chromium: click through Sample, Inpaint and Density, check what each tab
renders, and save a screenshot of each (tests/test_app_browser.py runs it on tiny runs; the README's
screenshots come from this script on the demo and digits runs).

    .venv/bin/python -m tools.app_screenshots runs/demo runs/fm-digits runs/realnvp-digits --out docs

Needs the app extra and a browser: ``pip install '.[app]' playwright`` and Debian's ``chromium`` (Playwright's
own browser download is not used; ``--chromium`` names the executable).
"""

from __future__ import annotations

import argparse
import socket
import time
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
TIMEOUT_MS = 180_000  # one click's work (sampling, an ODE likelihood of held-out images) on a slow CPU


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _status(page, elem: str, *words: str) -> str:
    """Wait until the status line ``#elem`` holds one of ``words`` or an error; return its text."""
    conditions = " || ".join(f"t.includes({w!r})" for w in (*words, "Error"))
    page.wait_for_function(f"(() => {{ const e = document.querySelector('#{elem}'); if (!e) return false; "
                           f"const t = e.innerText; return {conditions}; }})()", timeout=TIMEOUT_MS)
    return page.inner_text(f"#{elem}")


def _select(page, elem: str, option: str) -> None:
    page.click(f"#{elem} input")
    page.get_by_role("option", name=option, exact=True).click()


def _no_traceback(page) -> None:
    text = page.inner_text("body")
    assert "Traceback" not in text and 'File "' not in text, "a stack trace reached the page"


def drive(url: str, out: Path, *, points_model: str, image_model: str, bad_file: Path) -> dict[str, str]:
    """Click through the three tabs of the app at ``url``; assert on what renders; write app-sample.png,
    app-inpaint.png and app-density.png to ``out``. Returns the status lines and timings."""
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    seen: dict[str, str] = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"], headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            t0 = time.perf_counter()
            page.goto(url, wait_until="load")
            page.wait_for_selector("#sample-button", timeout=TIMEOUT_MS)

            # Sample: both models side by side
            boxes = page.locator("#sample-models label")
            for i in range(boxes.count()):
                label = boxes.nth(i)
                wanted = label.inner_text().strip() in (points_model, image_model)
                if label.locator("input").is_checked() != wanted:
                    label.click()
            page.click("#sample-button")
            text = _status(page, "sample-status", "NFE")
            seen["seconds_to_samples"] = f"{time.perf_counter() - t0:.1f}"
            assert "Error" not in text, text
            assert points_model in text and image_model in text, text
            page.wait_for_function("document.querySelectorAll('#sample-gallery img').length >= 2",
                                   timeout=TIMEOUT_MS)
            assert page.locator("#sample-download").count() == 1
            seen["sample"] = text
            _no_traceback(page)
            page.screenshot(path=str(out / "app-sample.png"), full_page=True)

            # Inpaint: a test image, a stroke painted with the mouse over its left half, RePaint
            page.get_by_role("tab", name="Inpaint").click()
            _select(page, "inpaint-model", image_model)
            page.click("#inpaint-load")
            assert "loaded" in _status(page, "inpaint-status", "loaded")
            canvas = page.locator("#inpaint-editor canvas").first
            box = canvas.bounding_box()
            page.wait_for_timeout(500)
            # the image sits in the middle of the canvas, at most the canvas's height across; a stroke must start
            # on the image, so each one starts at the middle column and moves left
            side = 0.8 * min(box["width"], box["height"])
            mid_x, mid_y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
            for frac in (-0.25, 0.0, 0.25):  # few mouse moves: each one redraws the canvas in software
                page.mouse.move(mid_x - 0.02 * side, mid_y + frac * side)
                page.mouse.down()
                page.mouse.move(mid_x - 0.45 * side, mid_y + frac * side, steps=3)
                page.mouse.up()
            method = page.locator("#inpaint-method")
            if method.is_visible():
                method.get_by_text("repaint", exact=True).click()
            page.click("#inpaint-button")
            text = _status(page, "inpaint-status", "filled")
            assert text.startswith("filled") and " 0 of" not in text, text
            for elem in ("inpaint-original", "inpaint-masked", "inpaint-filled"):
                assert page.locator(f"#{elem} img").count() == 1, elem
            seen["inpaint"] = text
            _no_traceback(page)
            page.screenshot(path=str(out / "app-inpaint.png"), full_page=True)
            seen["seconds_to_inpainted"] = f"{time.perf_counter() - t0:.1f}"
            # a bad upload: a message on the page, no stack trace
            page.locator("#inpaint-source").get_by_text("upload", exact=True).click()
            page.locator("#inpaint-upload input[type=file]").set_input_files(str(bad_file))
            page.wait_for_timeout(1000)
            page.click("#inpaint-load")
            text = _status(page, "inpaint-status", "Error")
            assert "not an image file" in text, text
            seen["bad_upload"] = text
            _no_traceback(page)

            # Density: typed points on the 2-D model, then uniform noise on the image model
            page.get_by_role("tab", name="Density").click()
            _select(page, "density-model", points_model)
            page.wait_for_timeout(500)
            # a 2-D model offers no "test image" (it would silently score the typed points)
            assert page.locator("#density-source").get_by_text("test image", exact=True).count() == 0
            page.locator("#density-source").get_by_text("typed points", exact=True).click()
            page.fill("#density-points textarea", "0.5, 0.25\n40, 40")
            page.click("#density-button")
            _status(page, "density-status", "scored")
            table = page.inner_text("#density-table")
            assert "outlier" in next(row for row in table.splitlines() if row.startswith("1")), table  # the far point
            seen["density_points"] = table
            _select(page, "density-model", image_model)
            page.locator("#density-source").get_by_text("uniform noise", exact=True).click()
            page.click("#density-button")
            page.wait_for_function("document.querySelector('#density-table').innerText.includes('bits/dim') && "
                                   "document.querySelector('#density-table').innerText.includes('first')",
                                   timeout=TIMEOUT_MS)
            page.wait_for_selector("#density-figure img", timeout=TIMEOUT_MS)
            page.wait_for_selector("#density-input img", timeout=TIMEOUT_MS)
            table = page.inner_text("#density-table")
            assert "Error" not in page.inner_text("#density-status"), page.inner_text("#density-status")
            seen["density_image"] = table
            _no_traceback(page)
            page.screenshot(path=str(out / "app-density.png"), full_page=True)
            seen["seconds_to_scored"] = f"{time.perf_counter() - t0:.1f}"
        finally:
            browser.close()
    return seen


def main() -> None:
    import torch

    from flowforge.app import logic
    from flowforge.app.ui import launch

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="run directories or model folders (a 2-D one and an image one)")
    parser.add_argument("--out", default="docs", help="where the screenshots go (default docs/)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    entries = logic.open_entries(args.runs)
    points = next(n for n, e in entries.items() if e.kind == "points")
    image = next(n for n, e in entries.items() if e.kind == "image")
    port = free_port()
    page = launch(args.runs, port=port, block=False)
    print(f"app up after {time.perf_counter() - t0:.1f} s")
    bad = Path(args.out) / ".not-an-image.png"
    bad.write_text("a text file with an image's name")
    try:
        seen = drive(f"http://127.0.0.1:{port}/", Path(args.out), points_model=points, image_model=image,
                     bad_file=bad)
    finally:
        bad.unlink()
        page.close()
    for key, value in seen.items():
        print(f"--- {key}\n{value}")


if __name__ == "__main__":
    main()
