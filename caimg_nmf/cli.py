"""The ``caimg-nmf`` command line: parse, call the Python API, map errors to exit codes.

Exit codes: 0 success, 2 bad input or usage (the message says what and how to fix it),
1 an unexpected failure, 130 interrupted.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from ._cli_evaluate import add_evaluate_parser
from ._version import __version__
from .errors import CaimgError
from .io.atomic import check_output_path, protected_inputs

__all__ = ["main", "build_parser"]

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # usage errors exit 2 with a one-line reason, as argparse does
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"caimg-nmf: error: {message}\n")


# flags that set a config key: (attribute, key). Errors about the key name the flag as typed.
_FLAG_KEYS = (("input", "input.path"), ("output", "output.path"), ("rank", "nmf.rank"),
              ("cell_diameter", "input.cell_diameter"), ("frame_rate", "input.frame_rate"))


def _overrides_from_args(args, labels: dict | None = None) -> dict:
    """``{"section.key": value}`` from --set and the flags that set a config key; ``labels`` (if
    given) receives ``{"section.key": the flag as typed}``, which errors about the key name."""
    labels = {} if labels is None else labels
    overrides = _set_overrides(args, labels)
    for flag, key in _FLAG_KEYS:
        value = getattr(args, flag, None)
        if value is not None:
            labels[key] = f"--{flag.replace('_', '-')} {value}"
            if flag in ("input", "output"):
                _not_empty(value, f"--{flag}")
            if flag == "input":
                value = str(Path(value).resolve())
            elif flag == "output":  # not resolved: a link at the output is refused, never written through
                value = os.path.abspath(value)
            elif flag in ("cell_diameter", "frame_rate"):
                value = float(value)  # kept as typed by argparse (_number_text), for the label
            overrides[key] = value
    if getattr(args, "overwrite", False):
        overrides["output.overwrite"] = True
    if getattr(args, "no_figures", False):
        overrides["figures.enabled"] = False
    return overrides


def _not_empty(path: str, given_as: str) -> None:
    """Refuse an empty path (an unset shell variable, -i "$MOVIE"): Path('') is the working folder."""
    if not str(path).strip():
        raise CaimgError(f"{given_as} '': the path is empty (an unset variable?); give the file's path.")


def _set_overrides(args, labels: dict) -> dict:
    """``{"section.key": value}`` from the --set options; ``labels`` receives ``{key: "--set ..."}``."""
    from .config import parse_override

    overrides = {}
    for text in args.set or []:
        key, overrides[key] = parse_override(text)
        labels[key] = f"--set {text}"
    return overrides


def _add_run_options(p):
    p.add_argument("--input", "-i", metavar="PATH", help="movie: a TIFF, HDF5 or .npy file, or a folder or glob "
                   "of TIFFs (overrides input.path)")
    p.add_argument("--output", "-o", metavar="RESULT.h5", help="result file (overrides output.path; default "
                   "<input name>_caimg/result.h5 in the current folder)")
    p.add_argument("--rank", "-k", type=_rank_arg, metavar="K", help="number of components, or 'auto' to "
                   "choose it by cross-validation (overrides nmf.rank). Given without factorize.method, it "
                   "selects the whole-field method (factorize.method = 'whole', the NMF primer's recipe); "
                   "the default local method finds the number of cells itself")
    p.add_argument("--cell-diameter", type=_number_text, metavar="PX", help="typical cell diameter in pixels, "
                   "from 2 px to a quarter of the frame's shorter side (overrides input.cell_diameter); "
                   "estimated from the movie when omitted")
    p.add_argument("--frame-rate", type=_number_text, metavar="HZ", help="frames per second of the recording "
                   "(overrides input.frame_rate); when omitted, read from the file's metadata (ImageJ, "
                   "ScanImage, OME, HDF5 attributes), else 10 Hz with a warning")
    p.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE",
                   help="override any config key, e.g. --set nmf.solver=mu (repeatable; 'caimg-nmf config' "
                   "lists every key)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing result (and the figures of the "
                   "run that made it); never an input of the run")
    p.add_argument("--no-figures", action="store_true", help="skip figures (figures.enabled = false)")


def _number_text(text):
    """argparse type: a number, kept as typed (so that an error about its value quotes the flag)."""
    try:
        float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    return text


def _rank_arg(text):
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r} (give an integer or 'auto')") from None


def cmd_run(args) -> int:
    from .config import load_config
    from .pipeline import run

    from .pipeline import check_rank_use
    from .progress import Reporter

    labels = {}
    overrides = _overrides_from_args(args, labels)
    cfg = load_config(args.config, overrides, labels)
    report = Reporter(quiet=args.quiet)
    cfg = check_rank_use(cfg, "nmf.rank" in overrides, report=report, given_as=labels.get("nmf.rank"))
    if not cfg.input.path:
        raise CaimgError("no input movie: give --input PATH or set input.path in a config file.")
    result = run(cfg, quiet=args.quiet, reporter=report)
    print(f"{result.n_cells} cells -> {result.path}")
    return EXIT_OK


def cmd_demo(args) -> int:
    from .config import Config
    from .pipeline import run
    from .synthetic import load_truth, sample_data_path

    started = time.perf_counter()
    out_dir = Path(args.output or "caimg_nmf_demo").resolve()
    movie_path = sample_data_path("five_cells.tif")
    cfg = Config().replace({"input.path": str(movie_path), "input.frame_rate": 10.0,
                            "input.cell_diameter": 8.0, "output.path": str(out_dir / "result.h5"),
                            "output.overwrite": _is_demo_result(out_dir / "result.h5", movie_path)})
    result = run(cfg, quiet=args.quiet)
    truth = load_truth(sample_data_path("five_cells_truth.h5"))
    summary = _compare_to_truth(result, truth)
    print(f"demo: found {result.n_cells} cells in {movie_path.name} "
          f"({result.n_frames} frames of {result.frame_shape[0]} x {result.frame_shape[1]}) "
          f"in {time.perf_counter() - started:.1f} s")
    print(f"demo: {summary}")
    print(f"demo: result {result.path}")
    print(f"demo: figures {result.path.parent / 'figures'}")
    return EXIT_OK


def _is_demo_result(path: Path, movie_path: Path) -> bool:
    """Whether ``path`` is a result an earlier demo made (which a new demo replaces); anything else
    there is refused as an existing file."""
    import h5py

    try:
        with h5py.File(path, "r") as fh:
            return str(fh.attrs.get("input_path", "")) == str(Path(movie_path).resolve())
    except (OSError, ValueError):
        return False


def _compare_to_truth(result, truth) -> str:
    from .evaluate import match_footprints
    import numpy as np

    pairs = match_footprints(result.footprints, truth.footprints, min_cosine=0.0)
    cos = [c for _, _, c in pairs]
    corr = [float(np.corrcoef(result.traces[i], truth.traces[j])[0, 1]) for i, j, _ in pairs]
    good = sum(1 for c, r in zip(cos, corr) if c >= 0.9 and r >= 0.9)
    return (f"{good}/{len(truth.footprints)} planted cells recovered (footprint cosine >= 0.9 and trace "
            f"correlation >= 0.9; worst cosine {min(cos, default=0):.3f}, worst correlation {min(corr, default=0):.3f})")


# --- caimg-nmf rank -------------------------------------------------------------------------------
_MATRIX_SUFFIXES = (".csv", ".txt", ".npy")


def cmd_rank(args) -> int:
    from . import _rank_io
    from .config import load_config
    from .progress import Reporter
    from .rank import count_fits, parse_ranks, select_rank

    _not_empty(args.data, "rank")
    data = Path(args.data)
    suffix = data.suffix.lower()
    flags = _rank_flags(args)  # checked before any data is read
    labels = {}
    overrides = _set_overrides(args, labels)
    is_matrix = suffix in _MATRIX_SUFFIXES
    if is_matrix and suffix == ".npy" and data.is_file():
        is_matrix = len(_rank_io.npy_header(data)[0]) != 3  # a 3-D .npy is a movie; the rest is said to be no matrix
    out_dir = Path(os.path.abspath(args.output or "."))
    if is_matrix:
        if overrides:
            raise CaimgError("--set applies to a config file or movie, not to a plain matrix.")
        inputs = _rank_outputs_checked(out_dir, args.overwrite, data)
        X, what = _rank_io.read_matrix(data), f"matrix {data.name}"
        rc, seed, solver, max_iter, n_jobs = None, 0, "hals", 300, 1
        default_ranks = f"1:{min(10, min(X.shape))}"
    else:
        if suffix != ".toml":  # a movie file: the default config with input.path
            overrides["input.path"] = str(data.resolve())
        cfg = load_config(data if suffix == ".toml" else None, overrides, labels)
        if not cfg.input.path:
            raise CaimgError(f"{data}: the config has no input.path; set the movie to analyse.")
        inputs = _rank_outputs_checked(out_dir, args.overwrite, data, cfg)
        X, shape = _rank_io.movie_matrix(cfg, quiet=args.quiet)
        rc, seed, solver = cfg.rank, cfg.nmf.seed, cfg.nmf.solver
        max_iter, n_jobs = cfg.nmf.max_iter, cfg.nmf.n_jobs
        what = f"movie {Path(cfg.input.path).name} after preprocessing ({shape[0]} frames of {shape[1]} x {shape[2]})"
        default_ranks = f"{rc.min_rank}:{min(rc.max_rank, min(X.shape))}:{rc.step}"
    ranks = parse_ranks(args.ranks or default_ranks, max_rank=min(X.shape),
                        label=f"--ranks {args.ranks}" if args.ranks else None)
    methods = flags.get("methods", rc.methods if rc else ("vaf", "cv", "stability"))
    replicates = flags.get("replicates", rc.replicates if rc else 5)
    holdout = flags.get("holdout", rc.holdout if rc else 0.1)
    report = Reporter(quiet=args.quiet)
    total = count_fits(len(ranks), methods, replicates)
    report.info(f"rank selection on {what}: ranks {ranks[0]}..{ranks[-1]}, {total} fits")
    with report.task("rank selection", total=total, unit="fits") as advance:
        sel = select_rank(X, ranks, methods=methods, replicates=replicates, holdout=holdout,
                          random_state=flags.get("seed", seed), solver=solver,
                          max_iter=max_iter, n_jobs=flags.get("n_jobs", n_jobs), progress=advance)
    with protected_inputs(inputs):
        paths = _rank_io.save_selection(sel, out_dir, overwrite=args.overwrite, source=str(data))
    print(sel.table())
    print(sel.reason)
    print(f"recommended rank: {sel.recommended}")
    print(f"wrote {', '.join(str(p) for p in paths)}")
    return EXIT_OK


def _rank_outputs_checked(out_dir: Path, overwrite: bool, data: Path, cfg=None) -> list:
    """Refuse, before any work, rank outputs that exist (without --overwrite) or are one of the files
    ``caimg-nmf rank`` reads (the data file, a config's movie); return those inputs."""
    from ._rank_io import OUTPUT_NAMES

    inputs = [("input", data)]
    if cfg is not None and cfg.input.path:
        inputs.append(("input movie", cfg.resolve_path(cfg.input.path)))
    for name in OUTPUT_NAMES:
        check_output_path(out_dir / name, overwrite=overwrite, inputs=inputs)
    return inputs


# rank's flags and the config keys whose declaration (type, bounds) they are checked against
_RANK_FLAG_KEYS = (("replicates", "rank.replicates"), ("holdout", "rank.holdout"), ("methods", "rank.methods"),
                   ("seed", "nmf.seed"), ("n_jobs", "nmf.n_jobs"))


def _rank_flags(args) -> dict:
    """The rank flags given, each checked against its config key; errors name the flag as typed.
    --ranks is checked for its form here, and against the data's size once that is known."""
    from .config import check_key
    from .rank import parse_ranks

    given = {}
    for flag, key in _RANK_FLAG_KEYS:
        text = getattr(args, flag)
        if text is None:
            continue
        value = [m.strip() for m in text.split(",")] if flag == "methods" else text
        given[flag] = check_key(key, value, label=f"--{flag.replace('_', '-')} {text}")
        if flag == "methods" and len(set(value)) != len(value):
            raise CaimgError(f"--methods {text}: each method at most once.")
    if args.ranks:
        parse_ranks(args.ranks, label=f"--ranks {args.ranks}")
    return given


def cmd_info(args) -> int:
    from .io.result import Result, stored_datasets

    result = Result.load(args.result)
    a = result.attrs
    H, W = result.frame_shape
    lines = [f"{args.result}: caimg_nmf result, schema v{a.get('schema_version')}, made by caimg_nmf "
             f"{a.get('caimg_nmf_version')} on {a.get('created')}",
             f"  input: {a.get('input_path') or a.get('input_source')} shape {a.get('input_shape')} "
             f"{a.get('input_dtype')} hash {a.get('input_hash')}",
             f"  cells: {result.n_cells}; frames: {result.n_frames} at {result.frame_rate:g} Hz; frame {H} x {W}",
             f"  run time: {a.get('elapsed_s')} s; stages: {a.get('stage_timings')}",
             "  datasets:"]
    for name, shape, dtype in stored_datasets(args.result):   # as stored in the file
        lines.append(f"    /{name} {shape} {dtype}")
    if args.config:
        lines += ["  config:", *("    " + l for l in result.config_toml.splitlines())]
    print("\n".join(lines))
    return EXIT_OK


def cmd_figures(args) -> int:
    from .config import check_key
    from .figures import make_figures
    from .progress import Reporter

    check_key("figures.dpi", args.dpi, label=f"--dpi {args.dpi}")
    out_dir = Path(args.out) if args.out else Path(args.result).resolve().parent / "figures"
    movie = None
    if args.movie:
        from .io import load_movie

        movie = load_movie(args.movie)
    inputs = [args.result, args.movie, args.style if args.style and os.path.isfile(args.style) else None]
    written = make_figures(args.result, out_dir, movie=movie, formats=tuple(args.format or ("png", "pdf")),
                           style=args.style, dpi=args.dpi, overwrite=args.overwrite, inputs=inputs,
                           movie_label=f"--movie {args.movie}", report=Reporter(quiet=args.quiet))
    for name, paths in written.items():
        print(f"{name}: {', '.join(str(p) for p in paths)}")
    return EXIT_OK


def cmd_export(args) -> int:
    from .export import export

    with protected_inputs([("result", args.result)]):
        written = export(args.result, args.to, args.out or _default_export_path(args.result, args.to),
                         overwrite=args.overwrite)
    for path in (written if isinstance(written, (list, tuple)) else [written]):
        print(path)
    return EXIT_OK


def _default_export_path(result_path, to) -> Path:
    base = Path(result_path).resolve()
    return base.with_name(base.stem + {"csv": "_traces.csv", "imagej": "_rois.zip", "nwb": ".nwb"}.get(to, ""))


def cmd_config(args) -> int:
    from .config import describe_defaults, load_config

    if args.config is None:
        print(describe_defaults())
    else:
        labels = {}
        print(load_config(args.config, _overrides_from_args(args, labels), labels).to_toml())
    return EXIT_OK


def cmd_batch(args) -> int:
    # Exit codes: 0 every recording ok or up to date, 1 any recording failed, 2 a bad batch file or
    # the output is locked by another run, 130/143 interrupted (Ctrl-C / SIGTERM).
    from .batch.runner import install_signal_handlers, run_batch
    from .batch.worker import Interrupted

    install_signal_handlers()
    try:
        summary = run_batch(args.batch, workers=args.workers, force=args.force, quiet=args.quiet)
    except Interrupted:
        print("caimg-nmf: batch interrupted (SIGTERM); finished results are kept, no partial result was left "
              "behind. Run the same command again to finish the rest.", file=sys.stderr)
        return 143
    if summary.failed:
        print(f"caimg-nmf: {len(summary.failed)} of {len(summary.records)} recording(s) failed; see "
              f"{summary.summary_csv}", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    # --quiet and --debug work before or after the subcommand; SUPPRESS keeps a subcommand's
    # unset flag from overwriting one given before it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--quiet", "-q", action="store_true", default=argparse.SUPPRESS,
                        help="no progress output")
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show tracebacks of unexpected errors")
    parser = _Parser(prog="caimg-nmf", description="Calcium-imaging movies to cells with NMF.",
                     parents=[common])
    parser.add_argument("--version", action="version", version=f"caimg-nmf {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    _add = sub.add_parser

    def add_parser(name, **kw):
        return _add(name, parents=[common], **kw)

    sub.add_parser = add_parser

    p = sub.add_parser("run", help="find cells in a movie")
    p.add_argument("config", nargs="?", help="TOML config file (optional)")
    _add_run_options(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("demo", help="run on the shipped sample movie")
    p.add_argument("--output", "-o", metavar="DIR", help="result folder (default ./caimg_nmf_demo); an earlier "
                   "demo's result there is replaced, any other file is not")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("rank", help="choose the number of components K (VAF, cross-validation, stability)")
    p.add_argument("data", help="TOML config (its movie is loaded and preprocessed as 'run' does), a movie "
                   "file, or a plain matrix: header-less numeric .csv or 2-D .npy")
    p.add_argument("--ranks", "-r", metavar="A:B", help="ranks to try: a:b (inclusive), a:b:step or a comma "
                   "list (default: the config's [rank] section; 1:10 for a matrix)")
    p.add_argument("--output", "-o", metavar="DIR", help="folder for rank_selection.h5/.png/.pdf (default: "
                   "current folder)")
    p.add_argument("--replicates", type=int, metavar="N", help="held-out masks and fits per rank, at least 2 "
                   "(default: rank.replicates, 5)")
    p.add_argument("--holdout", type=float, metavar="F", help="fraction of entries held out, above 0 up to 0.5 "
                   "(default: rank.holdout, 0.1)")
    p.add_argument("--methods", metavar="LIST", help="comma list of vaf,cv,stability (default all)")
    p.add_argument("--seed", type=int, help="random seed (default nmf.seed, or 0)")
    p.add_argument("--n-jobs", type=int, metavar="N", help="parallel fits, at least 1 (default nmf.n_jobs, or 1)")
    p.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="override a config key")
    p.add_argument("--overwrite", action="store_true", help="replace existing rank_selection files")
    p.set_defaults(func=cmd_rank)

    p = sub.add_parser("info", help="describe a result file")
    p.add_argument("result", help="result HDF5 file")
    p.add_argument("--config", action="store_true", help="also print the config the result was made with")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("figures", help="draw the figures of a result file (no recomputation)")
    p.add_argument("result", help="result HDF5 file")
    p.add_argument("--out", metavar="DIR", help="folder for the figures (default: figures/ beside the result)")
    p.add_argument("--style", default="paper", help="paper, screen, a matplotlib style name, or a .mplstyle "
                   "file")
    p.add_argument("--format", action="append", choices=("png", "pdf", "svg"), help="repeatable; default png and pdf")
    p.add_argument("--dpi", type=int, default=300, help="resolution of the PNGs, 50 to 1200 (default 300)")
    p.add_argument("--movie", metavar="PATH", help="the registered movie, for the reconstruction figure")
    p.add_argument("--overwrite", action="store_true", help="replace the figures already in the folder (figure "
                   "names only: footprints*, contours_*, traces_*, ...); the figures an earlier run wrote there "
                   "and this one does not are removed. Other files are never touched")
    p.set_defaults(func=cmd_figures)

    p = sub.add_parser("export", help="export a result to NWB, an ImageJ ROI set, or CSV")
    p.add_argument("result", help="result HDF5 file")
    p.add_argument("--to", required=True, choices=("nwb", "imagej", "csv"))
    p.add_argument("--out", metavar="PATH", help="output file (default: beside the result)")
    p.add_argument("--overwrite", action="store_true", help="replace existing export files (never the result)")
    p.set_defaults(func=cmd_export)
    add_evaluate_parser(sub)

    p = sub.add_parser("batch", help="analyse many recordings from a batch file (resumable, parallel)")
    p.add_argument("batch", help="batch TOML file: a [batch] section plus pipeline sections")
    p.add_argument("--workers", "-j", type=int, metavar="N", help="recordings at a time (overrides batch.workers)")
    p.add_argument("--force", action="store_true", help="run every recording again, even when up to date")
    p.set_defaults(func=cmd_batch)

    p = sub.add_parser("config", help="print every config key with its default, or a file's effective config")
    p.add_argument("config", nargs="?", help="TOML config file")
    p.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE")
    p.set_defaults(func=cmd_config)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.quiet = getattr(args, "quiet", False)
    args.debug = getattr(args, "debug", False)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        return args.func(args)
    except CaimgError as exc:
        print(f"caimg-nmf: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("caimg-nmf: interrupted; no partial result was left behind.", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - the last line of defence: say what, not a traceback
        if args.debug:
            raise
        print(f"caimg-nmf: unexpected error: {type(exc).__name__}: {exc}\n"
              "Run again with --debug for a traceback, and please report it.", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
