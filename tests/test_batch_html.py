"""The batch's index.html: relative links to existing files, thumbnails, and a real browser render."""
import importlib.util
import shutil
from pathlib import Path

import pytest

from test_batch import HEADER, make_inputs, write_batch

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def _checker():
    spec = importlib.util.spec_from_file_location("check_batch_html", REPO / "benchmarks" / "check_batch_html.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    from caimg_nmf.batch import run_batch

    folder = tmp_path_factory.mktemp("html")
    raw = make_inputs(folder, names=("mouse 1 & <b>",))
    (raw / "broken.tif").write_bytes(b"II*\x00 not a movie")
    header = HEADER.replace("[figures]\nenabled = false\n", '[figures]\nformats = ["png"]\ndpi = 50\n')
    header = header.replace('output_dir = "out"', 'output_dir = "results #1"')
    summary = run_batch(write_batch(folder, header=header), quiet=True)
    return summary


def test_index_lists_every_recording_with_thumbnails_and_relative_links(page):
    html = page.index_html.read_text()
    checker = _checker()
    problems, links = checker.static_problems(page.index_html)
    assert problems == []
    assert "mouse_1_b" in html and "&lt;b&gt;" in html and "<b>mouse" not in html.replace("<b>mouse_1_b", "")
    assert "broken.tif" in html and 'class="status failed"' in html
    figs = sorted((page.output_dir / "mouse_1_b" / "figures").glob("*.png"))
    assert figs and len(links.imgs) == len(figs)
    assert all(src.startswith("_thumbs/") or src.startswith("mouse_1_b/figures/") for src in links.imgs)
    assert "mouse_1_b/result.h5" in links.hrefs and "summary.csv" in links.hrefs
    assert (page.output_dir / "summary.csv").stat().st_mode & 0o044  # readable by the lab


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium not installed (apt-get install -y chromium)")
def test_index_renders_in_headless_chromium(page, tmp_path):
    report = _checker().check_page(page.index_html, tmp_path / "shot.png")
    assert report["problems"] == [] and report["images"] >= 4
    assert (tmp_path / "shot.png").stat().st_size > 1000
