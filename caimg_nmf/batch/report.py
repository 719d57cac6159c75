"""The batch's summary: ``summary.csv`` and a static ``index.html`` (both written atomically).

The page needs no server and no script: per recording its status, reason, cell count, run time,
peak memory and warnings, links to its result, log and figures, and thumbnails of its figures
(small PNG copies in ``_thumbs/``, made with Pillow when it is installed, else the full PNGs
scaled by the browser). Every link is relative, so the folder can be moved, zipped or served.
"""
from __future__ import annotations

import csv
import datetime as _dt
import html
import io
from pathlib import Path
from urllib.parse import quote

from ..io.atomic import atomic_path
from .plan import LOG_NAME, RESULT_NAME

__all__ = ["write_reports", "write_summary_csv", "write_index_html", "COLUMNS", "KEY_FIGURES"]

COLUMNS = ("input", "output", "status", "reason", "n_cells", "run_time_s", "peak_memory_mb", "warnings")
#: Figures shown first, in this order; any other PNG follows by name.
KEY_FIGURES = ("contours_mean", "footprints", "traces_dff", "traces_heatmap", "reconstruction", "nmf_loss")
THUMB_DIR, THUMB_WIDTH = "_thumbs", 320


def _umask() -> int:
    import os

    mask = os.umask(0)
    os.umask(mask)
    return mask


def publish(*paths) -> None:
    """Give files made by ``atomic_path`` (mode 0600, from mkstemp) the usual permissions (0666 less
    the umask), so that a shared results folder and its web page are readable by the lab."""
    import os

    mode = 0o666 & ~_umask()
    for p in paths:
        try:
            os.chmod(p, mode)
        except OSError:
            pass


def write_reports(out_dir: Path, records: list, spec=None) -> tuple[Path, Path]:
    out_dir = Path(out_dir)
    return write_summary_csv(out_dir / "summary.csv", records), write_index_html(out_dir, records, spec)


def write_summary_csv(path: Path, records: list) -> Path:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    for r in records:
        w.writerow([" | ".join(r.get(c) or []) if c == "warnings" else r.get(c, "") for c in COLUMNS])
    with atomic_path(path) as tmp:
        tmp.write_text(buf.getvalue(), encoding="utf-8")
    publish(path)
    return Path(path)


def _figures(out_dir: Path, name: str) -> list[Path]:
    folder = out_dir / name / "figures"
    if not folder.is_dir() or folder.is_symlink() or (out_dir / name).is_symlink():  # not the batch's
        return []
    pngs = [p for p in folder.iterdir() if p.suffix.lower() == ".png" and not p.name.startswith(".")]
    order = {n: i for i, n in enumerate(KEY_FIGURES)}
    return sorted(pngs, key=lambda p: (order.get(p.stem, len(order)), p.name))


def _thumbnail(out_dir: Path, png: Path, name: str) -> Path:
    """A small copy of ``png`` under ``_thumbs/<name>/`` (remade when the figure is newer); the
    figure itself if Pillow is missing, the file cannot be read, or a link sits where the thumbnail
    goes (a thumbnail is never written through a link)."""
    thumb = out_dir / THUMB_DIR / name / png.name
    if any(p.is_symlink() for p in (thumb.parent.parent, thumb.parent, thumb)):
        return png
    try:
        if thumb.exists() and thumb.stat().st_mtime >= png.stat().st_mtime:
            return thumb
        from PIL import Image

        with Image.open(png) as im:
            im.load()
            if im.width <= THUMB_WIDTH:
                return png
            height = max(1, round(im.height * THUMB_WIDTH / im.width))
            small = im.convert("RGBA").resize((THUMB_WIDTH, height), Image.LANCZOS)
        thumb.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(thumb) as tmp:
            small.save(tmp, format="PNG", optimize=True)
        publish(thumb)
        return thumb
    except Exception:  # noqa: BLE001 - a thumbnail is a convenience; link the full figure instead
        return png


def _href(out_dir: Path, p: Path) -> str:
    return quote(p.relative_to(out_dir).as_posix())


_CSS = """
body{font:14px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.4em;margin:0 0 .3em} p.meta{color:#555;margin:.2em 0 1em}
table{border-collapse:collapse;width:100%} th,td{border-bottom:1px solid #ddd;padding:.45em .5em;
vertical-align:top;text-align:left} th{background:#f4f4f4;position:sticky;top:0}
td.num{text-align:right;white-space:nowrap} .status{font-weight:600;padding:.1em .45em;border-radius:3px}
.ok{background:#d8f3dc;color:#1b5e20}.skipped{background:#e3ecfa;color:#0d47a1}
.failed{background:#fde0dc;color:#b71c1c}.interrupted{background:#fff3cd;color:#7a5900}
.reason{max-width:28em;word-break:break-word} .warn{color:#8a5a00;font-size:.9em;max-width:24em}
.thumbs a{display:inline-block;margin:0 .3em .3em 0} .thumbs img{max-height:110px;max-width:240px;
border:1px solid #ccc;background:#fff} .links a{margin-right:.6em;white-space:nowrap}
"""


def write_index_html(out_dir: Path, records: list, spec=None) -> Path:
    out_dir = Path(out_dir)
    e = html.escape
    counts = {s: sum(1 for r in records if r["status"] == s) for s in ("ok", "skipped", "failed", "interrupted")}
    rows = []
    for r in records:
        name = r["name"]
        links = []
        for label, fname in (("result", RESULT_NAME), ("log", LOG_NAME)):
            p = out_dir / name / fname
            if p.exists():
                links.append(f'<a href="{_href(out_dir, p)}">{label}</a>')
        thumbs = []
        for png in _figures(out_dir, name):
            t = _thumbnail(out_dir, png, name)
            thumbs.append(f'<a href="{_href(out_dir, png)}" title="{e(png.stem)}"><img src="{_href(out_dir, t)}" '
                          f'alt="{e(name)}: {e(png.stem)}" loading="lazy"></a>')
        warnings = "<br>".join(e(w) for w in (r.get("warnings") or []))
        peak = r.get("peak_memory_mb", "")
        rows.append(
            f'<tr id="{e(name)}"><td><b>{e(name)}</b><br><small>{e(str(r.get("input", "")))}</small>'
            f'<div class="links">{"".join(links)}</div></td>'
            f'<td><span class="status {e(r["status"])}">{e(r["status"])}</span></td>'
            f'<td class="reason">{e(str(r.get("reason", "")))}</td>'
            f'<td class="num">{e(str(r.get("n_cells", "")))}</td>'
            f'<td class="num">{e(str(r.get("run_time_s", "")))}{" s" if r.get("run_time_s") != "" else ""}</td>'
            f'<td class="num">{e(str(peak))}{" MB" if peak != "" else ""}</td>'
            f'<td class="warn">{warnings}</td><td class="thumbs">{"".join(thumbs)}</td></tr>')
    source = e(str(spec.source)) if spec is not None else ""
    now = _dt.datetime.now().isoformat(timespec="seconds")
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>caimg-nmf batch: {len(records)} recordings</title><style>{_CSS}</style></head>
<body><h1>caimg-nmf batch</h1>
<p class="meta">{source} &middot; {now} &middot; {len(records)} recordings: {counts['ok']} ok, {counts['skipped']} skipped,
{counts['failed']} failed{f", {counts['interrupted']} interrupted" if counts['interrupted'] else ""} &middot;
<a href="summary.csv">summary.csv</a></p>
<table><thead><tr><th>recording</th><th>status</th><th>reason</th><th>cells</th><th>run time</th>
<th>peak memory</th><th>warnings</th><th>figures</th></tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody></table></body></html>
"""
    path = out_dir / "index.html"
    with atomic_path(path) as tmp:
        tmp.write_text(page, encoding="utf-8")
    publish(path)
    return path
