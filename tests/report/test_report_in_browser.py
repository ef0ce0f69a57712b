"""Open the reports in a real headless browser (Debian's `chromium`): every image must load, the page must render."""

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from optsearch.report import write_benchmark_report, write_report

DISCOVERY = Path(__file__).parents[2] / "docs" / "discovery"

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)")

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# Marks each image once the page has loaded; the deliberately broken image proves the probe can fail.
PROBE = ('<img id="broken" src="data:image/png;base64,AAAA"><script>window.addEventListener("load", () => {'
         'for (const img of document.images) img.dataset.loaded = img.complete && img.naturalWidth > 0 ? "yes" : "no";'
         'document.body.dataset.probed = "yes"; });</script></body>')


def chromium(tmp_path: Path, *args: str) -> str:
    profile = tmp_path / "chromium-profile"
    out = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def check_page(html: Path, tmp_path: Path) -> str:
    """Assert every image of the page loads and its screenshot shows coloured plots; returns the loaded DOM."""
    n_images = html.read_text().count("<img ")
    probe = html.with_name("probe.html")
    probe.write_text(html.read_text().replace("</body>", PROBE))
    dom = chromium(tmp_path, "--virtual-time-budget=5000", "--dump-dom", probe.as_uri())
    assert 'data-probed="yes"' in dom
    loaded = re.findall(r'data-loaded="(yes|no)"', dom)
    assert loaded.count("yes") == n_images >= 2 and loaded.count("no") == 1

    shot = tmp_path / f"{html.parent.name}.png"
    chromium(tmp_path, f"--screenshot={shot}", "--window-size=1200,2000", html.as_uri())
    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=float)
    not_white = (pixels.min(axis=2) < 200).mean()
    colourful = (pixels.max(axis=2) - pixels.min(axis=2) > 60).mean()
    assert not_white > 0.02, "the screenshot is blank"
    assert colourful > 0.002, "no coloured plot is visible"
    return dom


def loaded(dom: str, alt: str) -> bool:
    """Whether the page's image `alt` loaded (the probe marks each image once the page has loaded)."""
    return re.search(rf'<img [^>]*alt="{re.escape(alt)}"[^>]*data-loaded="yes"', dom) is not None


def test_search_report_renders_in_chromium(search_db, tmp_path):
    check_page(write_report(search_db, tmp_path / "search"), tmp_path)


def test_benchmark_report_renders_in_chromium(bench_dir, tmp_path):
    check_page(write_benchmark_report(bench_dir, tmp_path / "bench-report"), tmp_path)


def test_funnel_report_renders_in_chromium(funnel_db, tmp_path):
    dom = check_page(write_report(funnel_db, tmp_path / "funnel"), tmp_path)
    assert "Funnel: final leaderboard" in dom and loaded(dom, "stage 1 reward vs stage 2 mean")
    assert loaded(dom, "forest plot: mnist1d") and loaded(dom, "forest plot: digits")


@pytest.mark.slow
def test_the_second_runs_report_shows_its_forest_plots_in_chromium(tmp_path):
    db = tmp_path / "run2-ppo.sqlite"  # a copy: the committed store stays as it is
    db.write_bytes((DISCOVERY / "run2-ppo.sqlite").read_bytes())
    dom = check_page(write_report(db, tmp_path / "run2"), tmp_path)
    for task in ("mnist1d_large", "fashion_mnist_conv", "kjv_char_lstm"):
        assert loaded(dom, f"forest plot: {task}")
