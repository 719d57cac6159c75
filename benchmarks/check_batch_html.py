"""Check a batch's index.html in a real headless browser.

    python benchmarks/check_batch_html.py RESULTS/index.html     # a batch's page
    python benchmarks/check_batch_html.py                       # make a small batch (with figures) and check it

Checks: every ``src``/``href`` is relative and names an existing file; Chromium renders the page
(``--dump-dom`` of a copy with a tiny script that marks each image loaded when
``img.complete && naturalWidth > 0``; lazy loading is switched off in that copy so that every
thumbnail is fetched), every image loads, and a screenshot of the page is not blank.
Exit 0 when all pass, 1 otherwise; prints what failed.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's caimg_nmf

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run"]
_MARK = ("<script>window.addEventListener('load',()=>{for(const i of document.images)"
         "i.setAttribute('data-loaded',i.complete&&i.naturalWidth>0?'yes':'no');"
         "document.body.setAttribute('data-checked','yes');});</script>")


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.imgs, self.hrefs, self.loaded = [], [], []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.imgs.append(a.get("src", ""))
            if "data-loaded" in a:
                self.loaded.append((a.get("src", ""), a["data-loaded"]))
        elif tag == "a" and "href" in a:
            self.hrefs.append(a["href"])


def static_problems(index: Path) -> tuple[list[str], _Links]:
    """Links that are absolute or name missing files."""
    parser = _Links()
    parser.feed(index.read_text(encoding="utf-8"))
    problems = []
    for url in parser.imgs + parser.hrefs:
        u = urlparse(url)
        if u.scheme or u.netloc or url.startswith("/"):
            problems.append(f"not a relative link: {url}")
            continue
        target = index.parent / unquote(u.path)
        if not target.exists():
            problems.append(f"link to a missing file: {url}")
    return problems, parser


def _chromium(args, timeout=60) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
                              capture_output=True, text=True, timeout=timeout)


def browser_problems(index: Path, screenshot: Path | None = None) -> list[str]:
    """Render the page in headless Chromium; images that did not load, or a blank page."""
    problems = []
    page = index.read_text(encoding="utf-8")
    probe = index.parent / f".check_{os.getpid()}.html"
    probe.write_text(page.replace(' loading="lazy"', "").replace("</body>", _MARK + "</body>"), encoding="utf-8")
    try:
        p = _chromium(["--virtual-time-budget=10000", "--dump-dom", probe.resolve().as_uri()])
    finally:
        probe.unlink(missing_ok=True)
    if 'data-checked="yes"' not in p.stdout:
        return [f"the page did not render (chromium exit {p.returncode}): {p.stderr[-500:]}"]
    parser = _Links()
    parser.feed(p.stdout)
    bad = [src for src, ok in parser.loaded if ok != "yes"]
    problems += [f"image did not load: {src}" for src in bad]
    if len(parser.loaded) != len(parser.imgs):
        problems.append(f"{len(parser.imgs) - len(parser.loaded)} image(s) not checked")
    shot = screenshot or Path(tempfile.mkdtemp()) / "page.png"
    p = _chromium(["--window-size=1280,900", f"--screenshot={shot}", index.resolve().as_uri()])
    if not shot.exists():
        return problems + [f"no screenshot (chromium exit {p.returncode}): {p.stderr[-500:]}"]
    import matplotlib.image as mpimg

    img = mpimg.imread(shot)
    if img.ndim < 3 or float(img[..., :3].std()) < 0.01:
        problems.append("the screenshot is blank")
    return problems


def check_page(index, screenshot=None) -> dict:
    """``{"problems": [...], "images": n, "links": n}`` for a batch's index.html."""
    index = Path(index)
    problems, parser = static_problems(index)
    if Path(CHROMIUM).exists():
        problems += browser_problems(index, screenshot)
    else:
        problems.append(f"chromium not found at {CHROMIUM} (apt-get install -y chromium)")
    return {"problems": problems, "images": len(parser.imgs), "links": len(parser.hrefs)}


def _demo_batch(folder: Path) -> Path:
    from caimg_nmf.batch import run_batch
    from caimg_nmf.synthetic import make_movie

    (folder / "raw").mkdir(parents=True)
    for i in range(2):
        make_movie(3, (32, 32), 100, seed=i).save_movie(folder / "raw" / f"mouse{i} s1.tif")
    (folder / "raw" / "broken.tif").write_bytes(b"II*\0 not really a tiff")
    (folder / "batch.toml").write_text('[batch]\ninputs = ["raw/*.tif"]\noutput_dir = "out & results"\n'
                                       '[nmf]\nrank = 3\n[figures]\nformats = ["png"]\ndpi = 60\n')
    summary = run_batch(folder / "batch.toml", executor="serial", quiet=True)
    return summary.index_html


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    with tempfile.TemporaryDirectory() as tmp:
        index = Path(argv[0]) if argv else _demo_batch(Path(tmp))
        if index.is_dir():
            index = index / "index.html"
        shot = Path(tmp) / "page.png"
        report = check_page(index, shot)
        print(f"{index}: {report['images']} images, {report['links']} links")
        for p in report["problems"]:
            print(f"  PROBLEM: {p}")
        print("OK" if not report["problems"] else f"{len(report['problems'])} problem(s)")
        return 0 if not report["problems"] else 1


if __name__ == "__main__":
    sys.exit(main())
